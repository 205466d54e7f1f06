"""`python -m runner run|migrate|env|rotate-key|rotate-service-keys|openapi`: the commands behind
`make run`, `make migrate`, `make rotate-key`, `make rotate-service-keys` and `make openapi` (each
but `openapi` reads .env, where the real environment leaves
a variable unset)."""

from __future__ import annotations

import argparse
import dataclasses
import importlib
import os
import signal
import sys
import time
import uuid

from runner.envfile import ensure_env_file, env_file_path, load_env_file, rotate_service_keys
from runner.ports import busy_ports_message
from runner.suite import (
    APPS,
    SIMULATOR_PORT,
    StartInterrupted,
    Suite,
    metrics_ports_from,
    migrate_all,
    service_env,
    simulator_base_urls,
)
from shared.config import DEFAULT_PORTS, REPO_ROOT, ConfigError, load_settings

DATABASE_SERVICES = ("auth", "keys", "chat", "quota")

BANNER = """
  KeyLM is running: {url}
    services: auth :{auth}  keys :{keys}  chat :{chat}  quota :{quota}
    database: {database}
    rate limits: {limits}
{simulated}  Logs: var/log/<service>.log. Stop with Ctrl-C (or SIGTERM): every service stops within 10 s.
"""
SIMULATED = """
  !! KeyLM Free is SIMULATED: GROQ_API_KEY is not set, so the free pool talks to the local
  !! provider simulator on :{port} and its replies are canned. Set GROQ_API_KEY in .env for real ones.
"""


def migrate() -> None:
    """Upgrade every service's schema to its newest revision."""
    import flask_migrate

    # Fail fast, naming the bad variable, before touching any database. Migrating needs no secret
    # (the migration job on Kubernetes gets the database URL alone), and runs as the owner
    # (DATABASE_URL), never as a service's own role, which may not create tables.
    settings = load_settings(service="migrate")
    owner = dataclasses.replace(settings, service_database_urls={})
    for name in DATABASE_SERVICES:
        module_name = APPS[name].split(":")[0]
        app = importlib.import_module(module_name).create_app(owner)
        if "migrate" not in app.extensions:
            continue
        with app.app_context():
            flask_migrate.upgrade()
        print(f"migrated {name}", flush=True)


def is_migrated(name: str) -> bool:
    """True when the service's schema is at the newest revision of its migration history."""
    from alembic.runtime.migration import MigrationContext
    from alembic.script import ScriptDirectory

    from shared.db import db

    module_name = APPS[name].split(":")[0]
    app = importlib.import_module(module_name).create_app(load_settings(service="migrate"))
    schema = app.config["KEYLM_SCHEMA"]
    heads = set(ScriptDirectory(str(REPO_ROOT / "migrations" / schema)).get_heads())
    with app.app_context():
        with db.engine.connect() as connection:
            context = MigrationContext.configure(connection, opts={"version_table_schema": schema})
            return set(context.get_current_heads()) == heads


def wait_migrated(name: str, timeout: float = 600.0) -> int:
    """Wait until the migration job has brought `name`'s schema up to date (a pod's init step)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            if is_migrated(name):
                print(f"{name}: schema is up to date", flush=True)
                return 0
            print(f"{name}: waiting for the migration job", flush=True)
        except Exception as exc:  # the database may not answer yet: keep waiting
            print(f"{name}: cannot check the schema yet ({type(exc).__name__})", flush=True)
        if time.monotonic() > deadline:
            return 1
        time.sleep(3)


class StopRequest:
    """SIGINT, SIGTERM and SIGHUP become a request to stop, never an exception: a signal may come
    at any moment (during start-up, or again while stopping, as GNU make passes a fatal signal on
    to its child) and must never cut the clean-up short. A signal more than a second after the
    first one (not make's echo of it) hurries the stop: what still runs is killed."""

    ECHO_SECONDS = 1.0

    def __init__(self) -> None:
        self.first_at: float | None = None
        self.signal_name = ""
        self.hurried = False

    def install(self) -> None:
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            signal.signal(sig, self._on_signal)

    def _on_signal(self, signum: int, _frame: object) -> None:
        now = time.monotonic()
        if self.first_at is None:
            self.first_at, self.signal_name = now, signal.Signals(signum).name
        elif now - self.first_at > self.ECHO_SECONDS:
            self.hurried = True

    @property
    def requested(self) -> bool:
        return self.first_at is not None


def run() -> int:
    """Start the simulator (when needed) and the five services; stop them all on a signal."""
    stop = StopRequest()
    stop.install()
    env = dict(os.environ)
    try:
        settings = load_settings(env)
    except ConfigError as exc:
        print(exc, file=sys.stderr)
        return 2
    ports = {name: int(env.get(f"{name.upper()}_PORT") or port) for name, port in DEFAULT_PORTS.items()}
    simulated = not settings.groq_api_key
    if simulated:
        ports["simulator"] = int(env.get("SIMULATOR_PORT") or SIMULATOR_PORT)
    metrics_ports = metrics_ports_from(env.get("METRICS_PORT"))
    busy = busy_ports_message({**ports, **{f"{name} metrics": port for name, port in metrics_ports.items()}})
    if busy:
        print(busy, file=sys.stderr)
        return 1
    if not env.get("APP_BASE_URL"):
        env["APP_BASE_URL"] = f"http://127.0.0.1:{ports['gateway']}"
    if simulated:
        simulator_url = f"http://127.0.0.1:{ports['simulator']}"
        env["GROQ_API_KEY"] = "gsk_simulated_free_pool_key"
        providers = simulator_base_urls(simulator_url)
        if env.get("SIMULATE_PROVIDERS", "").lower() in ("1", "true", "all"):
            env.update(providers)
        else:
            env["GROQ_BASE_URL"] = providers["GROQ_BASE_URL"]
    # A stop must end within 10 s: replies in flight get 2 s, then end with a retryable error.
    env.setdefault("DRAIN_SECONDS", "2")
    # Each service's /healthz repeats this, so the health wait below knows its own processes.
    env["KEYLM_INSTANCE_ID"] = instance = uuid.uuid4().hex

    # In a process of its own (and out of reach of Ctrl-C): the runner then holds no database
    # connection, whose closing at exit (a SQLite checkpoint on a busy disk) could delay a stop.
    if not migrate_all(env) or stop.requested:
        return 0 if stop.requested else 1
    log_dir = settings.var_dir / "log"
    log_dir.mkdir(parents=True, exist_ok=True)
    suite = Suite(env=service_env(env, ports), ports=ports, log_dir=log_dir)
    suite.metrics_ports = metrics_ports
    names = (["simulator"] if simulated else []) + ["auth", "keys", "quota", "chat", "gateway"]
    try:
        for name in names:
            if stop.requested:
                return 0
            suite.start(name)
        suite.wait_healthy(names, timeout=30, instance=instance, interrupted=lambda: stop.requested)
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
        while not stop.requested:
            dead = [name for name, p in suite.processes.items() if p.poll() is not None]
            if dead:
                print(f"stopped: {', '.join(dead)} exited\n{suite.log_tail(dead[0])}", file=sys.stderr)
                return 1
            time.sleep(0.2)
        return 0
    except StartInterrupted:
        return 0
    except RuntimeError as exc:
        print(exc, file=sys.stderr)
        return 1
    finally:
        suite.stop_all(hurry=lambda: stop.hurried)
        if stop.requested:
            print(f"KeyLM stopped ({stop.signal_name}).", flush=True)


def openapi_command(check: bool) -> int:
    """Write docs/openapi.json from every package's description (needs no environment)."""
    from runner.openapi import write_openapi

    return write_openapi(check=check)


def rotate_service_keys_command() -> int:
    """New Ed25519 keys for every service in .env, the previous public keys still accepted."""
    path = env_file_path()
    if path is None:
        print("KEYLM_ENV_FILE=none: there is no .env to rotate keys in", file=sys.stderr)
        return 2
    ensure_env_file()
    rotated = rotate_service_keys(path)
    print(f"new signing keys for {', '.join(rotated)} in {path.name}; the previous public keys stay")
    print("accepted until the next rotation. Restart the services (make run, or docker compose up -d).")
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m runner")
    parser.add_argument(
        "command",
        choices=["run", "migrate", "wait-migrated", "env", "rotate-key", "rotate-service-keys", "openapi"],
    )
    parser.add_argument("service", nargs="?", choices=DATABASE_SERVICES, help="wait-migrated: which")
    parser.add_argument("--check", action="store_true", help="openapi: fail if docs/openapi.json is stale")
    args = parser.parse_args()
    os.chdir(REPO_ROOT)
    if args.command == "openapi":
        return openapi_command(args.check)
    if args.command == "wait-migrated":
        if not args.service:
            parser.error("wait-migrated needs the service: " + ", ".join(DATABASE_SERVICES))
        return wait_migrated(args.service)
    if args.command == "env":
        ensure_env_file()
        return 0
    if args.command == "rotate-service-keys":
        return rotate_service_keys_command()
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
    return run()


if __name__ == "__main__":
    sys.exit(main())
