"""Postgres restarts (or is briefly down) under running services: on a throwaway cluster of our own,
so the machine's shared server is never touched. Services are never restarted: pool_pre_ping and
the stream's own bookkeeping have to cope."""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import psycopg2
import pytest

from runner.suite import free_port
from tests.conftest import unavailable
from tests.e2e.conftest import Browserless
from tests.e2e.sse import Event
from tests.faults.conftest import (
    FaultClient,
    assert_invariants,
    deltas_text,
    launch_fault_suite,
    only_events,
    wait_until,
)

pytestmark = [pytest.mark.slow, pytest.mark.e2e, pytest.mark.postgres]

STREAM_BOUND_SECONDS = 30.0


def pg_binary(name: str) -> str | None:
    """A Postgres server binary: Debian keeps them under /usr/lib/postgresql/<version>/bin."""
    versions = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"), key=lambda p: int(p.split("/")[4]))
    return versions[-1] if versions else shutil.which(name)


class PostgresCluster:
    """initdb + pg_ctl on a free port, run as the `postgres` user when we are root (initdb refuses root)."""

    def __init__(self):
        self.initdb, self.pg_ctl = pg_binary("initdb"), pg_binary("pg_ctl")
        if not (self.initdb and self.pg_ctl):
            unavailable("Postgres server binaries (initdb, pg_ctl) are not installed")
        self.as_user: list[str] = []
        self.dir = Path(tempfile.mkdtemp(prefix="keylm-faults-pg-"))
        if os.geteuid() == 0:
            try:
                owner = pwd.getpwnam("postgres")
            except KeyError:
                shutil.rmtree(self.dir)
                unavailable("running as root and there is no `postgres` user to run initdb as")
            os.chown(self.dir, owner.pw_uid, owner.pw_gid)
            self.as_user = ["runuser", "-u", "postgres", "--"]
        self.data = self.dir / "data"
        self.port = free_port()
        self.run(
            self.initdb, "-D", str(self.data), "-A", "trust", "-U", "postgres", "--no-sync", "-E", "UTF8"
        )

    @property
    def options(self) -> str:
        return f"-p {self.port} -k {self.dir} -c listen_addresses=127.0.0.1 -c fsync=off"

    def run(self, *command: str) -> None:
        result = subprocess.run(
            [*self.as_user, *command], capture_output=True, text=True, timeout=120, cwd=self.dir
        )
        if result.returncode != 0:
            raise RuntimeError(f"{command[:2]} failed:\n{result.stdout}\n{result.stderr}")

    def ctl(self, action: str, *extra: str) -> None:
        log = str(self.dir / "server.log")
        self.run(
            self.pg_ctl, "-D", str(self.data), "-l", log, "-o", self.options, "-w", "-t", "60", *extra, action
        )

    def start(self) -> None:
        self.ctl("start")

    def stop(self) -> None:
        self.ctl("stop", "-m", "fast")

    def restart(self) -> None:
        self.ctl("restart", "-m", "fast")

    def url(self, database: str) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"

    def create_database(self, name: str) -> str:
        connection = psycopg2.connect(self.url("postgres"), connect_timeout=5)
        connection.autocommit = True
        with connection.cursor() as cursor:
            cursor.execute(f'CREATE DATABASE "{name}"')
        connection.close()
        return self.url(name)

    def destroy(self) -> None:
        try:
            self.ctl("stop", "-m", "immediate")
        except RuntimeError:
            pass  # not running
        shutil.rmtree(self.dir, ignore_errors=True)


@pytest.fixture(scope="module")
def own_postgres():
    cluster = PostgresCluster()
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.destroy()


@pytest.fixture(scope="module")
def suite(request, tmp_path_factory, own_postgres):
    database_url = own_postgres.create_database("keylm_faults")
    return launch_fault_suite(
        tmp_path_factory, request, "own-postgres", "pg-restart", DATABASE_URL=database_url
    )


def process_ids(suite) -> dict[str, int]:
    assert all(p.poll() is None for p in suite.processes.values()), "a service died"
    return {name: p.pid for name, p in suite.processes.items()}


def read_to_the_end(client: FaultClient, stream, started: float) -> list[Event | str]:
    """The rest of a stream, failing (not hanging) if it has not ended within the bound."""
    items = []
    for item in stream:
        items.append(item)
        assert time.monotonic() - started < STREAM_BOUND_SECONDS, "the stream never ended"
    return items


def assert_one_terminal(items: list[Event | str]) -> Event:
    events = only_events(items)
    terminal = [e for e in events if e.name in ("done", "error")]
    assert len(terminal) == 1 and events[-1] is terminal[0], [e.name for e in events]
    assert terminal[0].data["message"]["content"] == deltas_text(items)
    return terminal[0]


def test_restart_while_a_send_is_in_flight(suite, own_postgres):
    client = FaultClient(suite)
    byok, _ = client.byok_thread("openai")
    free = client.free_thread()
    pids = process_ids(suite)

    response = client.send(byok["id"], "Slow [[sim:delay=100]] [[sim:tokens=50]]")
    started = time.monotonic()
    stream = client.events(response)
    items = []
    for item in stream:
        items.append(item)
        if len([e for e in items if isinstance(e, Event) and e.name == "delta"]) == 3:
            break
    own_postgres.restart()
    items += read_to_the_end(client, stream, started)
    response.close()
    terminal = assert_one_terminal(items)
    print(f"in-flight send across a Postgres restart ended with {terminal.name}")

    # Later requests work with no service restarted (pool_pre_ping replaces the dead connections).
    for thread in (byok, free):
        events = only_events(client.exchange(thread["id"], "after the restart"))
        assert events[-1].name == "done", events[-1]
    login = Browserless(suite).post(
        "/api/auth/login", json={k: client.account[k] for k in ("email", "password")}
    )
    assert login.status_code == 200, login.text
    assert client.get("/api/usage/free").json()["user"]["used"] == 1
    assert process_ids(suite) == pids
    assert_invariants(suite)


def test_postgres_down_when_a_reply_is_stored(suite, own_postgres):
    """The provider finishes while Postgres is down: the reply must not stay `streaming` for ever."""
    client = FaultClient(suite)
    thread = client.free_thread()
    pids = process_ids(suite)

    response = client.send(thread["id"], "Slow [[sim:delay=100]] [[sim:tokens=20]]")
    started = time.monotonic()
    stream = client.events(response)
    items = [next(item for item in stream if isinstance(item, Event))]
    assert items[0].name == "message.created"
    own_postgres.stop()
    try:
        items += read_to_the_end(client, stream, started)
        response.close()
        terminal = assert_one_terminal(items)

        # Meanwhile a new request fails fast with an error envelope: no hang, nothing half-written.
        refused = client.send(thread["id"], "while Postgres is down")
        assert refused.status_code >= 500, refused.text
        assert refused.json()["error"]["retryable"] is True
    finally:
        own_postgres.start()

    reply = client.settled_reply(thread["id"], timeout=20)
    assert reply["id"] == terminal.data["message"]["id"]
    assert reply["content"] == deltas_text(items)
    assert reply["status"] == terminal.data["message"]["status"]
    wait_until(lambda: client.get("/api/healthz").status_code == 200, 10, "all services healthy")
    assert process_ids(suite) == pids
    assert_invariants(suite)
