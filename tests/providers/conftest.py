"""Fixtures for the provider adapter and simulator tests.

Helpers are exposed as fixtures (not a helper module) so the tests work under any pytest import mode.
"""

from __future__ import annotations

import itertools
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from requests.adapters import BaseAdapter
from requests.structures import CaseInsensitiveDict

from shared.providers import get_adapter
from shared.providers.registry import SPECS

REPO = Path(__file__).resolve().parents[2]
# The one thing outside the repository a test may read: recorded real provider responses, kept
# beside the project (not in it). A clone on its own skips the tests that replay them.
TRANSCRIPTS = REPO.parent / "shared" / "provider-transcripts"
SIM_PATHS = {spec.id: spec.simulator_path for spec in SPECS.values()}


@pytest.fixture(scope="session")
def transcripts() -> Path:
    """The recorded provider responses in ../shared/provider-transcripts/ beside the repository."""
    if not (TRANSCRIPTS / "README.md").is_file():
        pytest.skip(
            "recorded provider transcripts are read from ../shared/provider-transcripts/ beside the "
            f"repository, and {TRANSCRIPTS} is absent"
        )
    return TRANSCRIPTS


class ChunkedBody:
    """A raw response body that hands out bytes in fixed awkward sizes, like a slow socket."""

    def __init__(self, data: bytes, sizes: list[int] | None):
        self.data, self.pos, self.closed = data, 0, False
        self.sizes = itertools.cycle(sizes or [len(data) or 1])

    def read(self, amt: int | None = None, **_: Any) -> bytes:
        if self.closed or self.pos >= len(self.data):
            return b""
        size = next(self.sizes)
        chunk = self.data[self.pos : self.pos + size]
        self.pos += len(chunk)
        return chunk

    # What one read of the socket brings (urllib3's read1, which the adapters use): the next piece.
    read1 = read

    def close(self) -> None:
        self.closed = True


class ReplayTransport(BaseAdapter):
    """A requests transport that answers from a queue and remembers what was sent."""

    def __init__(self) -> None:
        super().__init__()
        self.queue: list[tuple[int, dict[str, str], bytes, list[int] | None]] = []
        self.sent: list[requests.PreparedRequest] = []
        self.bodies: list[ChunkedBody] = []

    def add(
        self,
        body: bytes | str,
        status: int = 200,
        headers: dict[str, str] | None = None,
        chunks: list[int] | None = None,
    ) -> ReplayTransport:
        data = body.encode() if isinstance(body, str) else body
        self.queue.append((status, headers or {"content-type": "application/json"}, data, chunks))
        return self

    def send(self, request: requests.PreparedRequest, **kwargs: Any) -> requests.Response:
        self.sent.append(request)
        status, headers, data, chunks = self.queue.pop(0)
        response = requests.Response()
        response.status_code, response.reason = status, "OK" if status < 400 else "Error"
        response.headers = CaseInsensitiveDict(headers)
        response.raw = ChunkedBody(data, chunks)
        self.bodies.append(response.raw)
        response.url, response.request, response.encoding = request.url, request, None
        return response

    def close(self) -> None:
        pass


@pytest.fixture
def replay() -> Any:
    """make(provider) -> (adapter, transport): an adapter whose HTTP goes to a ReplayTransport."""

    def make(provider: str) -> tuple[Any, ReplayTransport]:
        transport = ReplayTransport()
        session = requests.Session()
        session.mount("https://", transport)
        return get_adapter(provider, session=session), transport

    return make


CHUNKINGS = {
    "whole": None,
    "bytewise": [1],
    "awkward": [1, 2, 3, 5, 8, 13, 21, 34, 55, 89],
}


@pytest.fixture(params=sorted(CHUNKINGS))
def chunking(request: pytest.FixtureRequest) -> list[int] | None:
    """Chunk sizes for replayed bodies; bytewise splits every UTF-8 character and CRLF."""
    return CHUNKINGS[request.param]


# --- the simulator as a real process ----------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Simulator:
    """A running simulator: base URLs per provider and its `/_sim/` control API."""

    def __init__(self, root: str):
        self.root = root
        self.http = requests.Session()

    def base_url(self, provider: str) -> str:
        return self.root + SIM_PATHS[provider]

    def adapter(self, provider: str, **kwargs: Any) -> Any:
        return get_adapter(provider, self.base_url(provider), **kwargs)

    def control(self, method: str, path: str, body: Any = None) -> Any:
        response = self.http.request(method, self.root + "/_sim" + path, json=body, timeout=5)
        response.raise_for_status()
        return response.json()

    def stream_state(self, stream_id: str) -> dict[str, Any]:
        return self.control("GET", f"/streams/{stream_id}")

    def wait_for_state(self, stream_id: str, timeout: float = 2.0) -> dict[str, Any]:
        """Poll a stream's record until it leaves `streaming` or the timeout passes."""
        deadline = time.monotonic() + timeout
        while True:
            record = self.stream_state(stream_id)
            if record["state"] != "streaming" or time.monotonic() > deadline:
                return record
            time.sleep(0.05)

    def requests_log(self, provider: str | None = None) -> list[dict[str, Any]]:
        query = f"?provider={provider}" if provider else ""
        return self.control("GET", "/requests" + query)["requests"]

    def last_stream_id(self, provider: str) -> str:
        return [r for r in self.requests_log(provider) if r["stream_id"]][-1]["stream_id"]


@pytest.fixture(scope="session")
def simulator_process(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Simulator]:
    """`python -m simulator` (gunicorn, one gevent worker) on a free loopback port."""
    port = _free_port()
    log = tmp_path_factory.mktemp("simulator") / "simulator.log"
    with log.open("wb") as out:
        process = subprocess.Popen(  # noqa: S603 - fixed argv
            [sys.executable, "-m", "simulator", "--port", str(port)],
            cwd=REPO,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    sim = Simulator(f"http://127.0.0.1:{port}")
    deadline = time.monotonic() + 30
    try:
        while True:
            if process.poll() is not None:
                pytest.fail("simulator exited early:\n" + log.read_text())
            try:
                if sim.http.get(sim.root + "/_sim/stats", timeout=1).ok:
                    break
            except (requests.ConnectionError, requests.Timeout):
                pass  # not listening yet, or its worker is still loading the app
            if time.monotonic() > deadline:
                pytest.fail("simulator did not start:\n" + log.read_text())
            time.sleep(0.1)
        yield sim
    finally:
        sim.http.close()
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@pytest.fixture
def sim(simulator_process: Simulator) -> Simulator:
    """The shared simulator with its runtime state reset for this test."""
    simulator_process.control("POST", "/reset")
    return simulator_process
