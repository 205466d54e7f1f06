"""Start the real suite for the benchmark, create its users/keys/threads, read process statistics."""

from __future__ import annotations

import os
import platform
import resource
import secrets
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import gevent
import gevent.pool
import requests

from bench.sseclient import Target
from runner.suite import Suite, free_port, simulator_base_urls, start_suite
from tests.conftest import base_env

MODEL = "gpt-4o-mini"
PASSWORD = "correct horse battery"  # noqa: S105 (throwaway benchmark users)
CLK_TCK = os.sysconf("SC_CLK_TCK")


# --- file descriptors -----------------------------------------------------------------------------
def raise_fd_limit() -> tuple[int, int]:
    """Raise the soft RLIMIT_NOFILE to the hard limit; the services inherit it from us."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or soft < hard:
        target = hard if hard != resource.RLIM_INFINITY else max(soft, 65536)
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)


# --- the machine ----------------------------------------------------------------------------------
def machine() -> dict[str, str]:
    meminfo = Path("/proc/meminfo").read_text().splitlines()
    total_kib = int(next(line for line in meminfo if line.startswith("MemTotal")).split()[1])
    model = ""
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            model = line.split(":", 1)[1].strip()
            break
    return {
        "nproc": str(os.cpu_count()),
        "memory": f"{total_kib / 1024 / 1024:.1f} GiB",
        "cpu": model or platform.processor(),
        "kernel": platform.release(),
        "python": platform.python_version(),
    }


# --- process statistics ---------------------------------------------------------------------------
def children(pid: int) -> list[int]:
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        # pid (comm) state ppid ...: comm may hold spaces, so split after the last ')'
        fields = stat.rsplit(")", 1)[1].split()
        if int(fields[1]) == pid:
            found.append(int(entry))
    return sorted(found)


@dataclass
class ProcSample:
    rss_kib: int
    cpu_ticks: int
    fds: int
    at: float


def sample(pids: list[int]) -> ProcSample:
    rss = ticks = fds = 0
    for pid in pids:
        try:
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    rss += int(line.split()[1])
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            ticks += int(fields[11]) + int(fields[12])  # utime, stime
            fds += len(os.listdir(f"/proc/{pid}/fd"))
        except OSError:
            continue
    return ProcSample(rss, ticks, fds, time.monotonic())


def cpu_percent(before: ProcSample, after: ProcSample) -> float:
    wall = after.at - before.at
    return 100.0 * (after.cpu_ticks - before.cpu_ticks) / CLK_TCK / wall if wall > 0 else 0.0


def self_cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def machine_busy_ticks() -> int:
    """CPU ticks spent by everything on the machine (all cores), from /proc/stat."""
    fields = [int(x) for x in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    user, nice, system, _idle, _iowait, irq, softirq, steal = fields[:8]
    return user + nice + system + irq + softirq + steal


# --- the suite ------------------------------------------------------------------------------------
@dataclass
class Bench:
    suite: Suite
    var_dir: Path
    workers: dict[str, list[int]] = field(default_factory=dict)
    drop_database: object = None

    def url(self, name: str) -> str:
        return self.suite.url(name)

    def sample(self, name: str) -> ProcSample:
        return sample(self.workers[name])

    def all_pids(self) -> list[int]:
        """Every process of the suite: the gunicorn masters and their workers."""
        masters = [p.pid for p in self.suite.processes.values()]
        return masters + [pid for pids in self.workers.values() for pid in pids if pid not in masters]

    def stop(self) -> None:
        self.suite.stop_all()
        if callable(self.drop_database):
            self.drop_database()


def _postgres_database(admin_url: str) -> tuple[str, object]:
    import psycopg2

    name = f"keylm_bench_{uuid.uuid4().hex[:10]}"
    connection = psycopg2.connect(admin_url, connect_timeout=5)
    connection.autocommit = True
    with connection.cursor() as cursor:
        cursor.execute(f'CREATE DATABASE "{name}"')

    def drop() -> None:
        with connection.cursor() as cursor:
            cursor.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        connection.close()

    return admin_url.rsplit("/", 1)[0] + f"/{name}", drop


def start(
    postgres: str | None, redis_url: str | None, log_level: str, extra_env: dict[str, str] | None = None
) -> Bench:
    var_dir = Path(tempfile.mkdtemp(prefix="keylm-bench-"))
    ports = {n: free_port() for n in ("auth", "keys", "chat", "quota", "gateway", "simulator")}
    gateway_url = f"http://127.0.0.1:{ports['gateway']}"
    env = base_env(
        var_dir,
        APP_BASE_URL=gateway_url,
        RATE_LIMIT_PER_MINUTE="1000000",
        LOGIN_LIMIT_PER_IP_PER_MINUTE="1000000",
        LOGIN_LIMIT_PER_EMAIL_PER_MINUTE="1000000",
        REGISTER_LIMIT_PER_IP_PER_MINUTE="1000000",
        KEY_CHECK_LIMIT_PER_MINUTE="1000000",
        MODEL_REFRESH_LIMIT_PER_MINUTE="1000000",
        THREAD_CREATE_LIMIT_PER_MINUTE="1000000",
        MAX_THREADS_PER_USER="1000000",
        # 100 concurrent streams come from 8 users: the per-user bound (4 by default) would refuse most.
        MAX_STREAMS_PER_USER="1000000",
        LOG_LEVEL=log_level,
        WEB_CONCURRENCY="1",
    )
    env.update(simulator_base_urls(f"http://127.0.0.1:{ports['simulator']}"))
    env["PATH"] = os.environ.get("PATH", "")
    env.update(extra_env or {})
    drop = None
    if postgres:
        env["DATABASE_URL"], drop = _postgres_database(postgres)
    if redis_url:
        env["REDIS_URL"] = redis_url
    try:
        suite = start_suite(env, var_dir / "log", ports=ports)
    except BaseException:
        if drop:
            drop()
        raise
    bench = Bench(suite=suite, var_dir=var_dir, drop_database=drop)
    for name, process in suite.processes.items():
        bench.workers[name] = children(process.pid) or [process.pid]
    return bench


# --- users, keys, threads -------------------------------------------------------------------------
@dataclass(frozen=True)
class Slot:
    """One thread a stream can be sent on, with its owner's cookie."""

    target: Target
    path: str


@dataclass
class User:
    http: requests.Session
    target: Target
    key_id: str = ""
    api_key: str = ""


def make_users(bench: Bench, count: int) -> list[User]:
    base = bench.url("gateway")
    host, port = "127.0.0.1", bench.suite.ports["gateway"]
    users = []
    for _ in range(count):
        http = requests.Session()
        http.headers["Origin"] = base
        email = f"bench-{uuid.uuid4().hex[:10]}@example.com"
        response = http.post(
            f"{base}/api/auth/register", json={"email": email, "password": PASSWORD}, timeout=30
        )
        response.raise_for_status()
        api_key = "sk-bench" + secrets.token_hex(16)
        response = http.post(
            f"{base}/api/providers/openai/keys", json={"apiKey": api_key, "label": "bench"}, timeout=30
        )
        response.raise_for_status()
        cookie = "; ".join(f"{c.name}={c.value}" for c in http.cookies)
        target = Target("gateway", host, port, (("Cookie", cookie), ("Origin", base)))
        users.append(User(http, target, response.json()["key"]["id"], api_key))
    return users


def make_threads(bench: Bench, users: list[User], count: int, concurrency: int = 16) -> list[Slot]:
    base = bench.url("gateway")

    def create(index: int) -> Slot:
        user = users[index % len(users)]
        body = {"mode": "byok", "provider": "openai", "model": MODEL, "keyId": user.key_id}
        response = user.http.post(f"{base}/api/threads", json=body, timeout=60)
        response.raise_for_status()
        return Slot(user.target, f"/api/threads/{response.json()['thread']['id']}/messages")

    pool = gevent.pool.Pool(concurrency)
    return list(pool.imap(create, range(count)))


def direct_target(bench: Bench, api_key: str) -> Target:
    return Target(
        "direct", "127.0.0.1", bench.suite.ports["simulator"], (("Authorization", f"Bearer {api_key}"),)
    )


DIRECT_PATH = "/openai/v1/chat/completions"


def prompt(tokens: int, delay_ms: int, framing: str = "chunked") -> str:
    """The simulator's directives: pace, length and how the body's end is marked."""
    return f"Benchmark stream [[sim:delay={delay_ms}]] [[sim:tokens={tokens}]] [[sim:framing={framing}]]"


def gateway_body(tokens: int, delay_ms: int, framing: str = "chunked") -> dict:
    return {"content": prompt(tokens, delay_ms, framing), "clientRequestId": uuid.uuid4().hex}


def direct_body(tokens: int, delay_ms: int, framing: str = "chunked") -> dict:
    # What chat_service's OpenAI adapter sends for a one-message thread.
    return {
        "model": MODEL,
        "messages": [{"role": "user", "content": prompt(tokens, delay_ms, framing)}],
        "stream": True,
        "stream_options": {"include_usage": True},
    }


def settle(seconds: float) -> None:
    gevent.sleep(seconds)
