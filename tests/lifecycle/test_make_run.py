"""`make run` itself, as a user runs it: signals at start-up, idle and mid-stream, a killed runner,
a second instance, a port held by another program. After each, no process it started may remain and
every port must be free within 10 s.

Every process of one `make run` carries a marker in its environment, so the test finds all of them,
orphans included, by reading /proc, whatever the runner believes it started.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import sqlite3
import subprocess
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from runner.ports import port_is_free
from runner.suite import free_port
from tests.conftest import REPO_ROOT, base_env, unique_email
from tests.e2e.sse import iter_events

pytestmark = [pytest.mark.slow, pytest.mark.e2e]

SERVICE_PORTS = ("GATEWAY_PORT", "AUTH_PORT", "KEYS_PORT", "CHAT_PORT", "QUOTA_PORT", "SIMULATOR_PORT")
BANNER = "KeyLM is running"
STOP_WITHIN = 10.0


def processes_with(marker: str) -> list[int]:
    """Pids of every process whose environment holds the marker."""
    needle = marker.encode()
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if needle in (entry / "environ").read_bytes():
                pids.append(int(entry.name))
        except OSError:
            continue
    return pids


def describe(pid: int) -> str:
    try:
        return f"{pid}: " + Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return f"{pid}: gone"


def is_zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except (OSError, IndexError):
        return True


class MakeRun:
    """One `make run` in a process group of its own, its output collected as it comes."""

    def __init__(self, tmp_path: Path, ports: dict[str, int] | None = None, **env_overrides: str):
        self.marker = f"KEYLM_LIFECYCLE_TEST={uuid.uuid4().hex}"
        self.ports = ports or {name: free_port() for name in SERVICE_PORTS}
        self.var_dir = tmp_path / "var"
        env = base_env(self.var_dir)
        env.pop("GROQ_API_KEY")  # as on a fresh clone: the simulator starts too (six processes)
        env.update({name: str(port) for name, port in self.ports.items()})
        env["PATH"] = os.environ["PATH"]
        env["KEYLM_LIFECYCLE_TEST"] = self.marker.split("=", 1)[1]
        env.update(env_overrides)
        self.env = env
        self.lines: list[str] = []
        self.process: subprocess.Popen | None = None

    @property
    def gateway(self) -> str:
        return f"http://127.0.0.1:{self.ports['GATEWAY_PORT']}"

    @property
    def output(self) -> str:
        return "".join(self.lines)

    def start(self) -> MakeRun:
        self.process = subprocess.Popen(
            ["make", "--no-print-directory", "run"],
            cwd=REPO_ROOT,
            env=self.env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,  # its own process group, as a terminal gives it
        )
        threading.Thread(target=self._collect, daemon=True).start()
        return self

    def _collect(self) -> None:
        for line in self.process.stdout:
            self.lines.append(line)

    def wait_for(self, condition, timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        while not condition():
            assert time.monotonic() < deadline, f"{what} not seen in {timeout}s; output:\n{self.output}"
            time.sleep(0.05)

    def wait_banner(self) -> None:
        self.wait_for(lambda: BANNER in self.output, 60, "the banner")

    def signal_group(self, sig: int) -> None:
        os.killpg(self.process.pid, sig)

    def live_processes(self) -> list[int]:
        return [pid for pid in processes_with(self.marker) if not is_zombie(pid)]

    def service_processes(self) -> list[int]:
        """Live gunicorn processes of this instance."""
        found = []
        for pid in self.live_processes():
            try:
                if b"gunicorn" in Path(f"/proc/{pid}/cmdline").read_bytes():
                    found.append(pid)
            except OSError:
                continue
        return found

    def assert_all_gone(self, since: float) -> None:
        """Nothing of this instance runs and every port is free, within STOP_WITHIN of `since`."""
        deadline = since + STOP_WITHIN
        while self.live_processes() or not all(port_is_free(p) for p in self.ports.values()):
            if time.monotonic() > deadline:
                left = [describe(pid) for pid in self.live_processes()]
                self.kill_everything()
                pytest.fail(f"still running {STOP_WITHIN}s after the signal: {left}\n{self.output}")
            time.sleep(0.1)
        self.process.wait(timeout=5)

    def kill_everything(self) -> None:
        for pid in processes_with(self.marker):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass


@pytest.fixture
def make_run(tmp_path):
    started: list[MakeRun] = []

    def launch(ports: dict[str, int] | None = None, **env: str) -> MakeRun:
        run = MakeRun(tmp_path / f"run{len(started)}", ports, **env).start()
        started.append(run)
        return run

    yield launch
    for run in started:
        run.kill_everything()


def start_long_stream(gateway: str) -> tuple[requests.Response, Iterator]:
    """Register, open a free thread and start a reply that would stream for half a minute.

    The events' iterator is returned too: dropping it would close the connection (the client
    leaving, which stores the reply as stopped)."""
    http = requests.Session()
    http.headers["Origin"] = gateway
    response = http.post(
        gateway + "/api/auth/register",
        json={"email": unique_email("life"), "password": "correct horse battery"},
        timeout=30,
    )
    assert response.status_code == 201, response.text
    thread = http.post(gateway + "/api/threads", json={"mode": "free"}, timeout=30).json()["thread"]
    stream = http.post(
        f"{gateway}/api/threads/{thread['id']}/messages",
        json={"content": "[[sim:tokens=300]] [[sim:delay=100]] go", "clientRequestId": uuid.uuid4().hex},
        stream=True,
        timeout=30,
    )
    assert stream.status_code == 200, stream.text
    events = iter_events(stream)
    for event in events:
        if getattr(event, "name", None) == "delta":
            return stream, events
    pytest.fail("the stream ended before its first delta")


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_signal_at_start_up_stops_everything(make_run, sig):
    run = make_run()
    run.wait_for(lambda: run.service_processes(), 60, "a service process")
    assert BANNER not in run.output
    signalled = time.monotonic()
    run.signal_group(sig)
    run.assert_all_gone(signalled)
    assert BANNER not in run.output
    assert "Traceback" not in run.output


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_signal_when_idle_stops_everything_with_one_line(make_run, sig):
    run = make_run()
    run.wait_banner()
    assert len(run.service_processes()) >= 6
    before = len(run.lines)
    signalled = time.monotonic()
    run.signal_group(sig)
    run.assert_all_gone(signalled)
    said = [line for line in run.lines[before:] if line.strip() and not line.startswith("make")]
    assert said == [f"KeyLM stopped ({sig.name}).\n"], run.output
    assert "Traceback" not in run.output


def stored_reply(run: MakeRun) -> tuple[str, str, dict]:
    """(status, content, metadata) of the one assistant message, read from the database."""
    query = "SELECT status, content, metadata FROM {}messages WHERE role = 'assistant'"
    if "DATABASE_URL" not in run.env:
        with sqlite3.connect(run.var_dir / "chat.db") as db:
            status, content, metadata = db.execute(query.format("")).fetchone()
        return status, content, json.loads(metadata)
    import psycopg2

    with psycopg2.connect(run.env["DATABASE_URL"]) as db, db.cursor() as cursor:
        cursor.execute(query.format("chat."))
        status, content, metadata = cursor.fetchone()
    db.close()
    return status, content, metadata if isinstance(metadata, dict) else json.loads(metadata)


@pytest.mark.parametrize(
    ("sig", "backend"),
    [(signal.SIGTERM, "sqlite"), (signal.SIGINT, "sqlite"), (signal.SIGTERM, "postgres")],
    ids=["SIGTERM-sqlite", "SIGINT-sqlite", "SIGTERM-postgres"],
)
def test_signal_mid_stream_stops_everything_and_leaves_the_reply_retryable(make_run, request, sig, backend):
    env = {}
    if backend == "postgres":
        env["DATABASE_URL"] = request.getfixturevalue("new_postgres_database")()
        env["REDIS_URL"] = request.getfixturevalue("redis_url")
    run = make_run(**env)
    run.wait_banner()
    stream, events = start_long_stream(run.gateway)
    signalled = time.monotonic()
    run.signal_group(sig)
    # The reply in flight runs on for the drain time, then ends with a retryable error.
    last = [event for event in events if not isinstance(event, str)][-1]
    assert last.name == "error", last
    assert last.data["error"]["code"] == "interrupted"
    assert last.data["error"]["retryable"] is True
    run.assert_all_gone(signalled)
    stream.close()
    assert "Traceback" not in run.output
    # It is stored that way too, with its part, not left `streaming`.
    status, content, metadata = stored_reply(run)
    assert status == "failed"
    assert content
    assert metadata["error"]["code"] == "interrupted"


def test_repeated_signals_only_hurry_the_stop(make_run):
    run = make_run()
    run.wait_banner()
    stream, _ = start_long_stream(run.gateway)
    signalled = time.monotonic()
    run.signal_group(signal.SIGTERM)  # make passes each one on as well: the runner sees it twice
    time.sleep(0.2)
    run.signal_group(signal.SIGTERM)
    time.sleep(1.5)
    run.signal_group(signal.SIGINT)
    run.assert_all_gone(signalled)
    stream.close()
    assert "Traceback" not in run.output


def test_a_killed_runner_takes_its_services_with_it(make_run):
    run = make_run()
    run.wait_banner()
    runners = [
        pid for pid in run.live_processes() if b"-m\0runner\0run" in Path(f"/proc/{pid}/cmdline").read_bytes()
    ]
    assert len(runners) == 1, runners
    killed = time.monotonic()
    os.kill(runners[0], signal.SIGKILL)
    run.assert_all_gone(killed)


def test_a_second_make_run_refuses_naming_the_port(make_run):
    first = make_run()
    first.wait_banner()
    second = make_run(ports=first.ports)
    second.process.wait(timeout=60)
    assert second.process.returncode != 0
    assert BANNER not in second.output
    assert str(first.ports["GATEWAY_PORT"]) in second.output
    assert "Address already in use" not in second.output
    assert "Traceback" not in second.output
    # The first instance is untouched.
    assert requests.get(first.gateway + "/api/healthz", timeout=10).status_code == 200
    signalled = time.monotonic()
    first.signal_group(signal.SIGTERM)
    first.assert_all_gone(signalled)


def test_a_port_held_by_another_program_is_named_and_nothing_starts(make_run, tmp_path):
    ports = {name: free_port() for name in SERVICE_PORTS}
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", ports["CHAT_PORT"]))
        squatter.listen()
        run = make_run(ports=ports)
        run.process.wait(timeout=60)
        assert run.process.returncode != 0
        assert BANNER not in run.output
        assert f"port {ports['CHAT_PORT']} (chat)" in run.output
        assert f"pid {os.getpid()}" in run.output  # the holder, read from /proc
        assert run.live_processes() == []
