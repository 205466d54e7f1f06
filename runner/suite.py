"""Start and stop the whole suite as real gunicorn processes: used by `make run` and by the tests."""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import requests

from shared.config import DEFAULT_PORTS, REPO_ROOT
from shared.providers.registry import SPECS

APPS = {
    "auth": "auth_service.app:create_app()",
    "keys": "keys_service.app:create_app()",
    "chat": "chat_service.app:create_app()",
    "quota": "quota_service.app:create_app()",
    "gateway": "gateway.app:create_app()",
    "simulator": "simulator.app:create_app()",
}
BACKEND_ORDER = ("auth", "keys", "quota", "chat", "gateway")
SIMULATOR_PORT = 8099
GUNICORN_CONF = REPO_ROOT / "runner" / "gunicorn_conf.py"
# Past this, what is left is killed, so a stop ends within 10 s (`make run` drains streams for 2 s,
# and gunicorn's graceful_timeout is 2 s more).
STOP_GRACE_SECONDS = 8.0
_PR_SET_PDEATHSIG = 1


class StartInterrupted(Exception):
    """A stop was asked for while the suite was still starting."""


def _die_with_parent(parent_pid: int):
    """A preexec hook: the child gets SIGTERM when the process that started it dies, even by
    SIGKILL; each child runs in a session of its own, out of reach of the terminal's signals."""

    def hook() -> None:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
        if os.getppid() != parent_pid:  # the parent died before the hook ran
            os._exit(1)

    return hook


def free_ports(count: int) -> list[int]:
    """`count` distinct free ports: each socket stays bound until all are chosen, so the kernel
    cannot hand the same port out twice (free_port() called in a row may)."""
    with contextlib.ExitStack() as stack:
        sockets = [stack.enter_context(socket.socket()) for _ in range(count)]
        for sock in sockets:
            sock.bind(("127.0.0.1", 0))
        return [sock.getsockname()[1] for sock in sockets]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def simulator_base_urls(simulator_url: str) -> dict[str, str]:
    """Where each provider's API lives on the simulator."""
    return {spec.base_url_variable: simulator_url + spec.simulator_path for spec in SPECS.values()}


def service_env(base_env: Mapping[str, str], ports: Mapping[str, int]) -> dict[str, str]:
    """The environment every process gets: the base plus where each service listens."""
    env = dict(base_env)
    for name in ("auth", "keys", "chat", "quota", "gateway"):
        env[f"{name.upper()}_SERVICE_URL"] = f"http://127.0.0.1:{ports[name]}"
    env.setdefault("PYTHONUNBUFFERED", "1")
    return env


@dataclass
class Suite:
    """A running set of processes; `stop(name)`/`start(name)` let tests inject faults."""

    env: dict[str, str]
    ports: dict[str, int]
    log_dir: Path
    processes: dict[str, subprocess.Popen] = field(default_factory=dict)
    # Each service's METRICS_PORT (its gunicorn master serves /metrics there, not on the service port).
    metrics_ports: dict[str, int] = field(default_factory=dict)
    # Which app each process name serves; a test topology names replicas (`chat-a`, `chat-b`).
    apps: dict[str, str] = field(default_factory=lambda: dict(APPS))

    def url(self, name: str) -> str:
        return f"http://127.0.0.1:{self.ports[name]}"

    def metrics_url(self, name: str) -> str:
        return f"http://127.0.0.1:{self.metrics_ports[name]}/metrics"

    def process_env(self, name: str) -> dict[str, str]:
        """The suite's environment with this process's own METRICS_PORT (or none)."""
        env = {k: v for k, v in self.env.items() if k != "METRICS_PORT"}
        if name in self.metrics_ports:
            env["METRICS_PORT"] = str(self.metrics_ports[name])
        return env

    def log_path(self, name: str) -> Path:
        return self.log_dir / f"{name}.log"

    def start(self, name: str) -> None:
        command = [
            sys.executable,
            "-m",
            "gunicorn",
            "-c",
            str(GUNICORN_CONF),
            "-b",
            f"127.0.0.1:{self.ports[name]}",
            self.apps[name],
        ]
        self.spawn(name, command)

    def spawn(self, name: str, command: list[str]) -> None:
        """Start `command` as process `name`: its own session, its log file, dies with us."""
        log = open(self.log_path(name), "ab")  # the child keeps the descriptor
        self.processes[name] = subprocess.Popen(
            command,
            cwd=REPO_ROOT,
            env=self.process_env(name),
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=_die_with_parent(os.getpid()),
        )
        log.close()

    def stop(self, name: str, sig: int = signal.SIGTERM) -> None:
        """Stop one process (and its workers): `sig`, then SIGKILL after the grace period."""
        process = self.processes.pop(name, None)
        if process is not None:
            _stop_processes([process], sig, time.monotonic() + STOP_GRACE_SECONDS, lambda: False)

    def stop_all(
        self,
        sig: int = signal.SIGTERM,
        grace: float = STOP_GRACE_SECONDS,
        hurry: Callable[[], bool] = lambda: False,
    ) -> None:
        """Signal every process group at once; kill what is left after `grace` or once `hurry()`."""
        processes = list(self.processes.values())
        self.processes.clear()
        _stop_processes(processes, sig, time.monotonic() + grace, hurry)

    def wait_healthy(
        self,
        names: list[str] | None = None,
        timeout: float = 30.0,
        *,
        instance: str | None = None,
        interrupted: Callable[[], bool] = lambda: False,
    ) -> None:
        """Wait until each process answers /healthz with 200 (and, given `instance`, says it is
        one of ours: a port answered by somebody else's process does not count); raise with its
        log tail if one exits or stays unhealthy, StartInterrupted once `interrupted()`."""
        deadline = time.monotonic() + timeout
        for name in names or list(self.processes):
            while not self._is_healthy(name, instance):
                if interrupted():
                    raise StartInterrupted()
                process = self.processes.get(name)
                if process is not None and process.poll() is not None:
                    raise RuntimeError(f"{name} exited at start:\n{self.log_tail(name)}")
                if time.monotonic() > deadline:
                    raise RuntimeError(f"{name} not healthy after {timeout}s:\n{self.log_tail(name)}")
                time.sleep(0.1)

    def _is_healthy(self, name: str, instance: str | None) -> bool:
        try:
            response = requests.get(self.url(name) + "/healthz", timeout=2)
            if response.status_code != 200:
                return False
            return instance is None or response.json().get("instance") == instance
        except (requests.RequestException, ValueError, AttributeError):
            return False

    def log_tail(self, name: str, lines: int = 40) -> str:
        path = self.log_path(name)
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:]) if path.exists() else ""


def _stop_processes(
    processes: list[subprocess.Popen],
    sig: int,
    deadline: float,
    hurry: Callable[[], bool],
) -> None:
    """Signal each process group, wait until all have exited, `deadline` or `hurry()`; then
    SIGKILL each whole group: a worker whose master was killed must not outlive it."""
    running = [p for p in processes if p.poll() is None]
    for process in running:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, sig)
    while any(p.poll() is None for p in running) and time.monotonic() < deadline and not hurry():
        time.sleep(0.05)
    for process in running:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait()


def migrate_all(env: Mapping[str, str]) -> bool:
    """Bring every service's schema up to date (the `make migrate` step); False if that failed."""
    command = [sys.executable, "-m", "runner", "migrate"]
    return subprocess.run(command, cwd=REPO_ROOT, env=dict(env), start_new_session=True).returncode == 0


def metrics_ports_from(base: str | int | None) -> dict[str, int]:
    """`make run`: METRICS_PORT is the gateway's, the services take the next four ports."""
    if not base:
        return {}
    return {name: int(base) + offset for offset, name in enumerate(("gateway", *BACKEND_ORDER[:4]))}


def start_suite(
    base_env: Mapping[str, str],
    log_dir: Path,
    *,
    ports: Mapping[str, int] | None = None,
    with_simulator: bool = True,
    migrate: bool = True,
    metrics_ports: Mapping[str, int] | None = None,
) -> Suite:
    """Migrate, then start the simulator (optional) and the five services, and wait for health."""
    ports = dict(ports or {name: free_port() for name in APPS})
    log_dir.mkdir(parents=True, exist_ok=True)
    env = service_env(base_env, ports)
    if migrate and not migrate_all(env):
        raise RuntimeError("migrating the databases failed (see the output above)")
    suite = Suite(env=env, ports=ports, log_dir=log_dir)
    suite.metrics_ports = dict(metrics_ports or {name: free_port() for name in BACKEND_ORDER})
    try:
        names = (["simulator"] if with_simulator else []) + list(BACKEND_ORDER)
        for name in names:
            suite.start(name)
        suite.wait_healthy(names)
    except BaseException:
        suite.stop_all()
        raise
    return suite


__all__ = ["DEFAULT_PORTS", "SIMULATOR_PORT", "Suite", "free_port", "start_suite"]
