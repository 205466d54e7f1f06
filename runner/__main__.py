"""`python -m runner run|migrate|env|rotate-key`: the commands behind `make run`, `make migrate`
and `make rotate-key` (each reads .env, where the real environment leaves a variable unset)."""

from __future__ import annotations

import argparse
import importlib
import os
import signal
import sys
import time

from runner.envfile import ensure_env_file, load_env_file
from runner.suite import APPS, SIMULATOR_PORT, Suite, metrics_ports_from, service_env, simulator_base_urls
from shared.config import DEFAULT_PORTS, REPO_ROOT, ConfigError, load_settings

DATABASE_SERVICES = ("auth", "keys", "chat", "quota")

BANNER = """
  KeyLM is running: {url}
    services: auth :{auth}  keys :{keys}  chat :{chat}  quota :{quota}
    database: {database}
    rate limits: {limits}
{simulated}  Logs: var/log/<service>.log. Stop with Ctrl-C.
"""
SIMULATED = """
  !! KeyLM Free is SIMULATED: GROQ_API_KEY is not set, so the free pool talks to the local
  !! provider simulator on :{port} and its replies are canned. Set GROQ_API_KEY in .env for real ones.
"""


def migrate() -> None:
    """Upgrade every service's schema to its newest revision."""
    import flask_migrate

    load_settings()  # fail fast, naming the bad variable, before touching any database
    for name in DATABASE_SERVICES:
        module_name = APPS[name].split(":")[0]
        app = importlib.import_module(module_name).create_app()
        if "migrate" not in app.extensions:
            continue
        with app.app_context():
            flask_migrate.upgrade()
        print(f"migrated {name}", flush=True)


def run() -> int:
    """Start the simulator (when needed) and the five services; stop them all on Ctrl-C."""
    env = dict(os.environ)
    try:
        settings = load_settings(env)
    except ConfigError as exc:
        print(exc, file=sys.stderr)
        return 2
    ports = {name: int(env.get(f"{name.upper()}_PORT") or port) for name, port in DEFAULT_PORTS.items()}
    ports["simulator"] = int(env.get("SIMULATOR_PORT") or SIMULATOR_PORT)
    if not env.get("APP_BASE_URL"):
        env["APP_BASE_URL"] = f"http://127.0.0.1:{ports['gateway']}"
    simulated = not settings.groq_api_key
    if simulated:
        simulator_url = f"http://127.0.0.1:{ports['simulator']}"
        env["GROQ_API_KEY"] = "gsk_simulated_free_pool_key"
        providers = simulator_base_urls(simulator_url)
        if env.get("SIMULATE_PROVIDERS", "").lower() in ("1", "true", "all"):
            env.update(providers)
        else:
            env["GROQ_BASE_URL"] = providers["GROQ_BASE_URL"]

    log_dir = settings.var_dir / "log"
    log_dir.mkdir(parents=True, exist_ok=True)
    suite = Suite(env=service_env(env, ports), ports=ports, log_dir=log_dir)
    suite.metrics_ports = metrics_ports_from(env.get("METRICS_PORT"))
    names = (["simulator"] if simulated else []) + ["auth", "keys", "quota", "chat", "gateway"]
    try:
        for name in names:
            suite.start(name)
        suite.wait_healthy(names, timeout=30)
        print(
            BANNER.format(
                url=f"http://127.0.0.1:{ports['gateway']}",
                database=settings.database_url
                and "Postgres (DATABASE_URL)"
                or f"SQLite files in {settings.var_dir}",
                limits="Redis (REDIS_URL)" if settings.redis_url else "in memory",
                simulated=SIMULATED.format(port=ports["simulator"]) if simulated else "",
                **ports,
            ),
            flush=True,
        )
        signal.signal(signal.SIGTERM, lambda *_: (_ for _ in ()).throw(KeyboardInterrupt()))
        while all(p.poll() is None for p in suite.processes.values()):
            time.sleep(0.5)
        dead = [name for name, p in suite.processes.items() if p.poll() is not None]
        print(f"stopped: {', '.join(dead)} exited\n{suite.log_tail(dead[0])}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 0
    except RuntimeError as exc:
        print(exc, file=sys.stderr)
        return 1
    finally:
        suite.stop_all()


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m runner")
    parser.add_argument("command", choices=["run", "migrate", "env", "rotate-key"])
    args = parser.parse_args()
    os.chdir(REPO_ROOT)
    if args.command == "env":
        ensure_env_file()
        return 0
    ensure_env_file()
    load_env_file()
    if args.command == "rotate-key":
        from keys_service.rotate import main as rotate_main

        return rotate_main()
    if args.command == "migrate":
        try:
            migrate()
        except ConfigError as exc:
            print(exc, file=sys.stderr)
            return 2
        return 0
    migrate()
    return run()


if __name__ == "__main__":
    sys.exit(main())
