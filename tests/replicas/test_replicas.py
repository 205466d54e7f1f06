"""Replica safety: with two replicas of each service behind a balancer, every guarantee of one
replica still holds, and restarting or losing a replica loses nothing.

Every test shares one topology (tests/replicas/conftest.py); each leaves every service running.
"""

from __future__ import annotations

import json
import signal
import threading
import time
import uuid
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import pytest

from tests.conftest import unique_email
from tests.e2e.conftest import Browserless
from tests.e2e.sse import BYOK_MODELS, Event, Simulator, iter_events, send
from tests.faults.conftest import FaultClient, assert_invariants, only_events
from tests.replicas.conftest import (
    GLOBAL_FREE_LIMIT,
    LOGIN_LIMIT_PER_EMAIL,
    REPLICAS,
    SEND_LIMIT_PER_MINUTE,
    USER_FREE_LIMIT,
    DirectGateway,
    ReplicaSuite,
)

pytestmark = [pytest.mark.e2e, pytest.mark.slow, pytest.mark.postgres, pytest.mark.redis]


def served_paths(suite: ReplicaSuite, name: str) -> list[str]:
    """The paths one replica has answered so far (its JSON request log)."""
    paths = []
    for line in suite.log_path(name).read_text(errors="replace").splitlines():
        if line.startswith("{") and '"path"' in line:
            paths.append(json.loads(line)["path"])
    return paths


def byok_thread(client: Browserless) -> tuple[str, str]:
    """A thread on the simulator's OpenAI with a fresh key; (thread id, key)."""
    api_key = "sk-replica" + uuid.uuid4().hex
    response = client.post("/api/providers/openai/keys", json={"apiKey": api_key, "label": "replicas"})
    assert response.status_code == 201, response.text
    body = {
        "mode": "byok",
        "provider": "openai",
        "model": BYOK_MODELS["openai"],
        "keyId": response.json()["key"]["id"],
    }
    response = client.post("/api/threads", json=body)
    assert response.status_code == 201, response.text
    return response.json()["thread"]["id"], api_key


def test_every_hop_is_spread_over_the_replicas(replica_suite):
    client = Browserless(replica_suite)
    client.register()
    for _ in range(4):
        assert client.get("/api/threads").status_code == 200

    for service in ("gateway", "chat"):
        for name in replica_suite.running(service):
            assert "/api/threads" in served_paths(replica_suite, name), name


def test_concurrent_free_sends_grant_exactly_the_global_limit(fresh_day):
    suite = fresh_day
    users = []
    for _ in range(20):
        client = Browserless(suite)
        client.register()
        thread = client.post("/api/threads", json={"mode": "free"}).json()["thread"]
        users.append((client, thread["id"]))
    barrier = threading.Barrier(100, timeout=30)

    def free_send(index: int) -> tuple[int, str]:
        client, thread_id = users[index % len(users)]
        barrier.wait()
        with send(client, thread_id, "Hi [[sim:tokens=2]]") as response:
            if response.status_code != 200:
                return index % len(users), response.json()["error"]["code"]
            events = [e for e in iter_events(response) if isinstance(e, Event)]
            terminal = events[-1]
            if terminal.name == "error":
                assert terminal.data["error"]["code"] == "interrupted", terminal.data
            return index % len(users), terminal.name

    with ThreadPoolExecutor(max_workers=100) as pool:
        outcomes = list(pool.map(free_send, range(100)))

    granted = Counter(user for user, outcome in outcomes if outcome == "done")
    refused = [outcome for _, outcome in outcomes if outcome != "done"]
    assert sum(granted.values()) == GLOBAL_FREE_LIMIT, Counter(refused)
    assert max(granted.values()) <= USER_FREE_LIMIT, granted
    # A reply ended `interrupted` (its replica stalled past its lease) gave its request back.
    assert set(refused) <= {"free_quota_exhausted", "error"}, Counter(refused)
    usage = users[0][0].get("/api/usage/free").json()
    assert usage["global"]["used"] == GLOBAL_FREE_LIMIT
    for index, (client, _) in enumerate(users):
        assert client.get("/api/usage/free").json()["user"]["used"] == granted[index]


def test_identical_sends_on_both_chat_replicas_call_the_provider_once(replica_suite):
    suite = replica_suite
    client = Browserless(suite)
    client.register()
    thread_id, api_key = byok_thread(client)
    request_id = uuid.uuid4().hex
    copies = 8
    barrier = threading.Barrier(copies, timeout=30)

    def identical_send(_: int) -> str:
        barrier.wait()
        with send(client, thread_id, "Once [[sim:delay=50]] [[sim:tokens=10]]", request_id) as response:
            if response.status_code != 200:
                return response.json()["error"]["code"]
            return [e for e in iter_events(response) if isinstance(e, Event)][-1].name

    with ThreadPoolExecutor(max_workers=copies) as pool:
        outcomes = Counter(pool.map(identical_send, range(copies)))

    path = f"/api/threads/{thread_id}/messages"
    reached = [name for name in suite.running("chat") if path in served_paths(suite, name)]
    assert len(reached) == REPLICAS["chat"], "the copies did not reach every chat replica"
    assert outcomes["done"] >= 1 and set(outcomes) <= {"done", "request_in_progress"}, outcomes
    assert len(Simulator(suite.url("simulator")).chat_calls(api_key)) == 1
    messages = client.get(f"/api/threads/{thread_id}").json()["messages"]
    assert [m["role"] for m in messages] == ["user", "assistant"]


def test_logout_through_one_gateway_refuses_the_cookie_at_the_other(replica_suite):
    first_name, second_name = replica_suite.running("gateway")
    first = DirectGateway(replica_suite, first_name)
    first.register()
    cookies = first.http.cookies.get_dict()
    second = DirectGateway(replica_suite, second_name)
    second.http.cookies.update(cookies)
    assert second.get("/api/auth/me").status_code == 200

    assert first.post("/api/auth/logout").status_code == 204

    assert second.get("/api/auth/me").status_code == 401


def test_login_attempts_are_counted_once_across_gateways(replica_suite):
    gateways = [DirectGateway(replica_suite, name) for name in replica_suite.running("gateway")]
    gateways[0].register(email := unique_email("limited"))
    statuses = []
    for attempt in range(LOGIN_LIMIT_PER_EMAIL + 3):
        client = gateways[attempt % len(gateways)]
        response = client.post("/api/auth/login", json={"email": email, "password": "wrong password!"})
        statuses.append(response.status_code)

    assert statuses == [401] * LOGIN_LIMIT_PER_EMAIL + [429] * 3


def test_sends_are_counted_once_across_gateways(replica_suite):
    first = DirectGateway(replica_suite, replica_suite.running("gateway")[0])
    first.register()
    second = DirectGateway(replica_suite, replica_suite.running("gateway")[1], http=first.http)
    thread_id, _ = byok_thread(first)
    statuses = []
    for attempt in range(SEND_LIMIT_PER_MINUTE + 2):
        client = (first, second)[attempt % 2]
        with send(client, thread_id, "Hi [[sim:tokens=1]]") as response:
            statuses.append(response.status_code)
            if response.status_code == 200:
                list(iter_events(response))

    assert statuses == [200] * SEND_LIMIT_PER_MINUTE + [429] * 2


def test_a_chat_replica_killed_mid_stream_fails_the_reply_and_it_can_be_retried(fresh_day):
    suite = fresh_day
    client = FaultClient(suite)
    thread_id = client.free_thread()["id"]
    request_id = uuid.uuid4().hex
    path = f"/api/threads/{thread_id}/messages"

    with client.send(thread_id, "Long [[sim:delay=50]] [[sim:tokens=100]]", request_id) as response:
        events = client.events(response)
        first_delta = next(e for e in events if isinstance(e, Event) and e.name == "delta")
        assert first_delta.data["text"]
        (streaming,) = [name for name in suite.running("chat") if path in served_paths(suite, name)]
        suite.stop(streaming, signal.SIGKILL)  # no drain, no lease renewal: the process is gone
        rest = only_events(list(events))
    # The gateway relaying it sees its upstream break and ends the stream (without a terminal
    # event: nobody is left to store one); it never claims the reply is done.
    assert all(e.name == "delta" for e in rest), rest

    # The surviving replica reads the thread, finds the lease run out, and fails the reply.
    reply = client.settled_reply(thread_id, timeout=20)
    assert reply["status"] == "failed"
    suite.balancer.set_state(streaming, "maint")
    suite.start_replica(streaming)

    # A repeat of a failed reply tries again in its place, and completes.
    items = client.exchange(thread_id, "Long [[sim:delay=50]] [[sim:tokens=100]]", request_id)
    assert only_events(items)[-1].name == "done", only_events(items)
    assert_invariants(suite, timeout=15)


def test_a_rolling_restart_under_load_loses_nothing(fresh_day):
    suite = fresh_day
    simulator = Simulator(suite.url("simulator"))
    senders = []
    for _ in range(12):
        client = FaultClient(suite)
        thread_id, api_key = byok_thread(client)
        senders.append((client, thread_id, api_key))
    stop = threading.Event()
    results: list[tuple[str, str, list[Event] | int]] = []  # (api key, request id, events or status)

    def steady_sends(index: int) -> None:
        client, thread_id, api_key = senders[index]
        sent = 0
        # Paced under the per-user send limit, and bounded in count and time whatever happens.
        deadline = time.monotonic() + 150
        while not stop.is_set() and sent < 30 and time.monotonic() < deadline:
            request_id = uuid.uuid4().hex
            sent += 1
            # Every other reply outlasts DRAIN_SECONDS: a replica stopped under it must end it.
            tokens = 20 if sent % 2 else 50
            content = f"Steady [[sim:delay=40]] [[sim:tokens={tokens}]]"
            with client.send(thread_id, content, request_id) as response:
                if response.status_code != 200:
                    results.append((api_key, request_id, response.status_code))
                    continue
                results.append((api_key, request_id, only_events(list(client.events(response)))))
            time.sleep(2.0)

    threads = [threading.Thread(target=steady_sends, args=(i,), daemon=True) for i in range(len(senders))]
    for thread in threads:
        thread.start()
    time.sleep(1.0)
    for service in ("auth", "keys", "quota", "chat", "gateway"):
        for name in suite.running(service):
            suite.replace(name)
    stop.set()
    for thread in threads:
        thread.join(timeout=60)

    assert results, "no send ran during the restart"
    refused = [r for r in results if isinstance(r[2], int)]
    assert refused == [], refused
    interrupted = 0
    for _api_key, _request_id, events in results:
        assert events[0].name == "message.created", events
        terminal = events[-1]
        assert terminal.name in ("done", "error"), events
        if terminal.name == "error":
            assert terminal.data["error"]["retryable"], terminal.data
            interrupted += 1
    # One provider call per clientRequestId, and none the client did not ask for.
    for _, _, api_key in senders:
        calls = len(simulator.chat_calls(api_key))
        sent = [r for r in results if r[0] == api_key]
        done = [r for r in sent if r[2][-1].name == "done"]
        assert len(done) <= calls <= len(sent), (len(done), calls, len(sent))
    assert_invariants(suite, timeout=15)
    print(f"rolling restart: {len(results)} sends, {interrupted} ended with a retryable error")
