"""Every service at two replicas (auth at one) on one machine, behind HAProxy, on Postgres + Redis.

Each replica is a real gunicorn process. HAProxy has one frontend per service and spreads every
hop over that service's replicas, round robin; services find each other through it, as they would
through a Kubernetes Service. Each service also has one spare slot, stopped and out of rotation, so
a rolling restart can start a replacement before stopping the replica it replaces (Kubernetes'
`maxSurge: 1`). HAProxy's runtime socket takes a replica out of rotation before it is stopped, as
a Deployment takes a terminating pod out of its Service's endpoints.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import time
from pathlib import Path

import pytest
import requests

from runner.suite import APPS, Suite, free_ports, migrate_all, simulator_base_urls
from tests.conftest import base_env, unavailable
from tests.e2e.conftest import Browserless

REPLICAS = {"gateway": 2, "auth": 1, "keys": 2, "chat": 2, "quota": 2}
SLOT_NAMES = "abc"
GLOBAL_FREE_LIMIT = 37
USER_FREE_LIMIT = 3
SEND_LIMIT_PER_MINUTE = 20
LOGIN_LIMIT_PER_EMAIL = 5
# A reply whose chat replica died is failed by the next reader once its lease is this old. Short,
# so a test need not wait long; not so short that a replica stalled by the load (2 shared cores,
# 100 streams at once) loses live replies: at 2 s some did.
STREAM_LEASE_SECONDS = 6
# Fixed days for the free counters: each test that spends free requests gets a day of its own.
QUOTA_DAY = "2026-11-20T12:00:00Z"

HAPROXY_CONFIG = """\
global
    maxconn 4000
    stats socket {socket} mode 600 level admin

defaults
    mode http
    timeout connect 1s
    timeout client 60s
    timeout server 60s
    timeout queue 5s
    timeout check 1s
    # A new connection to a replica per request: every request is balanced on its own, and none
    # is sent on a connection a stopping replica is closing.
    option http-server-close
    # A replica that refuses the connection (it is stopping, or dead) costs a retry elsewhere.
    retries 3
    option redispatch 1
    default-server inter 300ms fall 1 rise 1
"""


def slots(service: str) -> list[str]:
    """A service's process names: its replicas, then the spare slot."""
    return [f"{service}-{slot}" for slot in SLOT_NAMES[: REPLICAS[service] + 1]]


class Balancer:
    """HAProxy's runtime API: put a replica in or out of rotation, read what it sees."""

    def __init__(self, socket_path: Path):
        self.socket_path = socket_path

    def command(self, line: str) -> str:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(5)
            sock.connect(str(self.socket_path))
            sock.sendall(line.encode() + b"\n")
            chunks = []
            while chunk := sock.recv(65536):
                chunks.append(chunk)
        return b"".join(chunks).decode()

    def set_state(self, name: str, state: str) -> None:
        """`ready` or `maint` (no new requests; those in flight go on)."""
        service = name.rsplit("-", 1)[0]
        answer = self.command(f"set server {service}/{name} state {state}")
        assert answer.strip() == "", answer

    def status(self, name: str) -> str:
        """UP, DOWN or MAINT, as HAProxy's health checks and our commands left it."""
        service = name.rsplit("-", 1)[0]
        for line in self.command("show stat").splitlines():
            fields = line.split(",")
            if len(fields) > 17 and fields[0] == service and fields[1] == name:
                return fields[17]
        raise AssertionError(f"{name} is not in HAProxy's table")

    def wait_up(self, name: str, timeout: float = 10.0) -> None:
        deadline = time.monotonic() + timeout
        while (status := self.status(name)) != "UP":
            if time.monotonic() > deadline:
                raise AssertionError(f"HAProxy never saw {name} up (last: {status})")
            time.sleep(0.1)


class ReplicaSuite(Suite):
    """A Suite of replicas: `url(service)` is HAProxy's frontend, `url("chat-a")` one replica."""

    balancer: Balancer
    fault_clients: list

    def running(self, service: str) -> list[str]:
        return [name for name in slots(service) if name in self.processes]

    def spare(self, service: str) -> str:
        return next(name for name in slots(service) if name not in self.processes)

    def start_replica(self, name: str) -> None:
        """Start a replica in its slot and put it in rotation once it is healthy."""
        self.start(name)
        self.wait_healthy([name])
        self.balancer.set_state(name, "ready")
        self.balancer.wait_up(name)

    def stop_replica(self, name: str, sig: int = signal.SIGTERM) -> None:
        """Take a replica out of rotation, then stop it (SIGTERM drains its streams)."""
        self.balancer.set_state(name, "maint")
        self.stop(name, sig)

    def replace(self, name: str) -> str:
        """One step of a rolling restart: start the spare slot, then stop `name`. The new name."""
        service = name.rsplit("-", 1)[0]
        new = self.spare(service)
        self.start_replica(new)
        self.stop_replica(name)
        return new


def haproxy_config(ports: dict[str, int], socket_path: Path) -> str:
    parts = [HAPROXY_CONFIG.format(socket=socket_path)]
    for service in REPLICAS:
        parts.append(
            f"frontend {service}\n    bind 127.0.0.1:{ports[service]}\n    default_backend {service}\n"
        )
        servers = []
        for index, name in enumerate(slots(service)):
            spare = index == REPLICAS[service]
            # The spare slot starts out of rotation; start_replica puts it in.
            servers.append(f"    server {name} 127.0.0.1:{ports[name]} check{' disabled' if spare else ''}")
        parts.append(
            f"backend {service}\n    balance roundrobin\n    option httpchk GET /healthz\n"
            "    http-check expect status 200\n" + "\n".join(servers) + "\n"
        )
    return "\n".join(parts)


@pytest.fixture(scope="session")
def replica_suite(request, tmp_path_factory, new_postgres_database, redis_url) -> ReplicaSuite:
    haproxy = shutil.which("haproxy") or shutil.which("haproxy", path="/usr/sbin")
    if haproxy is None:
        unavailable("haproxy is not installed (make system-deps installs Debian's package)")
    var_dir = tmp_path_factory.mktemp("replicas")
    names = [name for service in REPLICAS for name in [service, *slots(service)]] + ["simulator"]
    ports = dict(zip(names, free_ports(len(names)), strict=True))
    gateway_url = f"http://127.0.0.1:{ports['gateway']}"
    clock_file = var_dir / "now"
    clock_file.write_text(QUOTA_DAY)
    env = base_env(
        var_dir,
        APP_BASE_URL=gateway_url,
        DATABASE_URL=new_postgres_database(),
        REDIS_URL=redis_url,
        FREE_GLOBAL_DAILY_LIMIT=str(GLOBAL_FREE_LIMIT),
        FREE_USER_DAILY_LIMIT=str(USER_FREE_LIMIT),
        RATE_LIMIT_PER_MINUTE=str(SEND_LIMIT_PER_MINUTE),
        LOGIN_LIMIT_PER_EMAIL_PER_MINUTE=str(LOGIN_LIMIT_PER_EMAIL),
        MAX_STREAMS_PER_USER="10",
        STREAM_LEASE_SECONDS=str(STREAM_LEASE_SECONDS),
        KEYLM_FAKE_CLOCK_FILE=str(clock_file),
        PATH=os.environ.get("PATH", ""),
        PYTHONUNBUFFERED="1",
    )
    env.update(simulator_base_urls(f"http://127.0.0.1:{ports['simulator']}"))
    # Every hop goes through the balancer.
    for service in REPLICAS:
        env[f"{service.upper()}_SERVICE_URL"] = f"http://127.0.0.1:{ports[service]}"
    assert migrate_all(env), "migrating the replica suite's database failed"

    apps = {"simulator": APPS["simulator"]}
    apps |= {name: APPS[service] for service in REPLICAS for name in slots(service)}
    suite = ReplicaSuite(env=env, ports=ports, log_dir=var_dir / "log", apps=apps)
    suite.log_dir.mkdir()
    suite.clock_file = clock_file  # type: ignore[attr-defined]
    suite.fault_clients = []
    socket_path = var_dir / "haproxy.sock"
    config = var_dir / "haproxy.cfg"
    config.write_text(haproxy_config(ports, socket_path))
    suite.balancer = Balancer(socket_path)
    request.addfinalizer(lambda: suite.stop_all(signal.SIGKILL))
    suite.spawn("balancer", [haproxy, "-db", "-f", str(config)])
    replicas = [name for service in REPLICAS for name in slots(service)[: REPLICAS[service]]]
    for name in ["simulator", *replicas]:
        suite.start(name)
    suite.wait_healthy(["simulator", *replicas], timeout=60)
    for name in replicas:
        suite.balancer.wait_up(name)
    return suite


@pytest.fixture
def fresh_day(replica_suite):
    """Move the free counters to a day nobody has used yet; forget earlier tests' clients."""
    day = int(replica_suite.clock_file.read_text()[8:10]) + 1
    replica_suite.clock_file.write_text(f"2026-11-{day:02d}T12:00:00Z")
    replica_suite.fault_clients = []
    return replica_suite


class DirectGateway(Browserless):
    """A client of one gateway replica, sending the Origin users see (the balancer's URL)."""

    def __init__(self, suite: ReplicaSuite, name: str, http: requests.Session | None = None):
        super().__init__(suite)
        self.base = suite.url(name)
        if http is not None:
            self.http = http
        self.http.headers["Origin"] = suite.url("gateway")
