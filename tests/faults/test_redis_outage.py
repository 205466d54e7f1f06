"""Redis goes away under the gateway (our own throwaway redis-server): requests are still served,
rate limits fall back to memory, and Redis is used again once it is back."""

from __future__ import annotations

import shutil
import subprocess

import pytest
import redis

from runner.suite import free_port
from tests.conftest import unavailable, unique_email
from tests.e2e.conftest import Browserless
from tests.faults.conftest import (
    FaultClient,
    ServiceDown,
    assert_invariants,
    launch_fault_suite,
    only_events,
    wait_until,
)

pytestmark = [pytest.mark.slow, pytest.mark.e2e, pytest.mark.redis]

LOGIN_LIMIT = 3
FALLBACK_LOG = "falling back to in-memory storage"


class RedisServer:
    """A redis-server of our own on a free port, without persistence; stop/start at will."""

    def __init__(self, binary: str, workdir):
        self.binary, self.workdir, self.port = binary, workdir, free_port()
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def client(self) -> redis.Redis:
        return redis.Redis(host="127.0.0.1", port=self.port, socket_connect_timeout=1, socket_timeout=2)

    def start(self) -> None:
        self.process = subprocess.Popen(
            [self.binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--daemonize", "no", "--dir", str(self.workdir)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )  # fmt: skip
        wait_until(self._answers, 10, f"redis-server on port {self.port} answering PING")

    def _answers(self) -> bool:
        try:
            return bool(self.client().ping())
        except redis.RedisError:
            return False

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=10)
        self.process = None

    def keys(self) -> list[bytes]:
        """The rate-limit counters (the services' one-time credential ids live here too: not those)."""
        return [
            key for key in self.client().scan_iter(count=1000) if not key.startswith(b"keylm:internal-jti:")
        ]


@pytest.fixture(scope="module")
def own_redis(tmp_path_factory):
    binary = shutil.which("redis-server") or "/usr/bin/redis-server"
    if not shutil.which(binary):
        unavailable("redis-server is not installed")
    server = RedisServer(binary, tmp_path_factory.mktemp("redis"))
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def suite(request, tmp_path_factory, own_redis):
    return launch_fault_suite(
        tmp_path_factory,
        request,
        "sqlite",
        "redis-outage",
        REDIS_URL=own_redis.url,
        LOGIN_LIMIT_PER_EMAIL_PER_MINUTE=str(LOGIN_LIMIT),
    )


def failed_logins_until_limited(client: FaultClient, email: str) -> list[int]:
    """Wrong-password logins for `email` until the per-email limit answers (or one past it)."""
    statuses = []
    for _ in range(LOGIN_LIMIT + 1):
        response = client.post("/api/auth/login", json={"email": email, "password": "wrong password!"})
        statuses.append(response.status_code)
        if response.status_code == 429:
            assert response.json()["error"]["code"] == "rate_limited"
            assert int(response.headers["Retry-After"]) > 0
            break
    return statuses


def test_auth_service_down_is_503_and_rate_limits_stay_on_redis(suite, own_redis):
    """The send limit is keyed by the signed-in user, which only auth_service can confirm: its outage
    is a 503 for the caller, not a reason to move every limit off Redis into per-process memory."""
    client = FaultClient(suite)
    thread = client.free_thread()
    with ServiceDown(suite, "auth"):
        for response in (client.send(thread["id"], "Hi"), client.get("/api/threads")):
            assert response.status_code == 503, response.text
            assert response.json()["error"]["code"] == "service_unavailable"
    assert only_events(client.exchange(thread["id"], "Hi again"))[-1].name == "done"
    assert FALLBACK_LOG not in suite.log_path("gateway").read_text(errors="replace")
    assert failed_logins_until_limited(client, unique_email()) == [401] * LOGIN_LIMIT + [429]
    assert_invariants(suite)


def test_redis_stopped_then_started_again(suite, own_redis):
    client = FaultClient(suite)
    thread = client.free_thread()
    # On Redis: the limits are counted there.
    assert failed_logins_until_limited(client, unique_email()) == [401] * LOGIN_LIMIT + [429]
    assert own_redis.keys(), "the gateway keeps no rate-limit counters in Redis"

    own_redis.stop()
    try:
        # Still served: sign-in, threads, a message stream.
        account = {k: client.account[k] for k in ("email", "password")}
        login = Browserless(suite).post("/api/auth/login", json=account)
        assert login.status_code == 200, login.text
        assert client.get("/api/threads").status_code == 200
        assert only_events(client.exchange(thread["id"], "Hi while Redis is down"))[-1].name == "done"
        # Limits still hold, counted in memory.
        assert failed_logins_until_limited(client, unique_email()) == [401] * LOGIN_LIMIT + [429]
        log = suite.log_path("gateway").read_text(errors="replace")
        assert FALLBACK_LOG in log, "the gateway log does not mention the fallback"
    finally:
        own_redis.start()

    # Back on Redis (flask-limiter re-checks it with backoff, up to ~30 s apart): counters land there.
    def counted_in_redis() -> bool:
        failed_logins_until_limited(client, unique_email())
        return bool(own_redis.keys())

    wait_until(counted_in_redis, 45, "rate-limit counters written to Redis again", interval=0.5)
    assert "Rate limit storage recovered" in suite.log_path("gateway").read_text(errors="replace")
    assert only_events(client.exchange(thread["id"], "Hi after"))[-1].name == "done"
    assert_invariants(suite)
