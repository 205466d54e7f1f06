"""Fault injection against real processes: suites of our own, a client that remembers its sends,
and the invariants every fault must keep.

After any fault, once the faulty part is back:
- no lost user message: every send that got `message.created` has its user (and assistant) message stored;
- no message stuck in `streaming`;
- the free counters equal the counted requests: a user's `used` is the number of its free assistant
  messages that are complete, stopped, or failed after the first token, and the global `used` is the
  sum over every user of the suite (each fault suite is only driven through `FaultClient`s).
"""

from __future__ import annotations

import signal
import time
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

import requests

from runner.suite import Suite
from tests.e2e.conftest import Browserless, launch_suite
from tests.e2e.sse import BYOK_MODELS, Event, iter_events, send
from tests.e2e.sse import new_key as shared_new_key

T = TypeVar("T")

# Quota counts per UTC day: pin the day, so a run that crosses midnight cannot reset a counter.
FAULT_CLOCK = "2026-11-27T12:00:00Z"
COUNTED_STATUSES = ("complete", "stopped")


def launch_fault_suite(tmp_path_factory, request, backend: str, name: str, **env: str) -> Suite:
    """`launch_suite` with the quota day pinned; stopped when the requesting fixture's scope ends."""
    clock_file = tmp_path_factory.mktemp(f"{name}-clock") / "now"
    clock_file.write_text(FAULT_CLOCK)
    env.setdefault("KEYLM_FAKE_CLOCK_FILE", str(clock_file))
    suite = launch_suite(tmp_path_factory, request, backend, name, **env)
    suite.fault_clients = []  # type: ignore[attr-defined]
    # Throwaway processes: kill them outright (a graceful stop waits seconds per process);
    # this runs before launch_suite's own stop_all, which then has nothing left to do.
    request.addfinalizer(lambda: _kill_all(suite))
    return suite


def _kill_all(suite: Suite) -> None:
    for name in reversed(list(suite.processes)):
        suite.stop(name, signal.SIGKILL)


class ServiceDown:
    """`with ServiceDown(suite, "keys"):` the service is killed (SIGKILL) inside, started and healthy after;
    no other process is restarted."""

    def __init__(self, suite, name: str):
        self.suite, self.name = suite, name

    def __enter__(self):
        self.others = {n: p.pid for n, p in self.suite.processes.items() if n != self.name}
        self.suite.stop(self.name, signal.SIGKILL)
        return self

    def __exit__(self, *exc):
        self.suite.start(self.name)
        self.suite.wait_healthy([self.name])
        # Nobody else was restarted.
        assert {n: p.pid for n, p in self.suite.processes.items() if n != self.name} == self.others
        assert all(p.poll() is None for p in self.suite.processes.values())


def wait_until(check: Callable[[], T], timeout: float, what: str, interval: float = 0.1) -> T:
    """Call `check` until it returns something truthy; fail naming `what` (and the last value)."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not true after {timeout}s (last: {value!r})")
        time.sleep(interval)


def new_key(provider: str) -> str:
    return shared_new_key(provider, "fault")


class FaultClient(Browserless):
    """A signed-in browser-like client that records every `message.created` it sees."""

    def __init__(self, suite: Suite):
        super().__init__(suite)
        self.created: list[dict[str, Any]] = []
        self.account = self.register()  # email, password, id
        suite.fault_clients.append(self)  # type: ignore[attr-defined]

    # --- threads ------------------------------------------------------------------------------
    def free_thread(self) -> dict:
        response = self.post("/api/threads", json={"mode": "free"})
        assert response.status_code == 201, response.text
        return response.json()["thread"]

    def add_key(self, provider: str, api_key: str | None = None) -> tuple[str, str]:
        api_key = api_key or new_key(provider)
        response = self.post(f"/api/providers/{provider}/keys", json={"apiKey": api_key, "label": "fault"})
        assert response.status_code == 201, response.text
        return response.json()["key"]["id"], api_key

    def byok_thread(self, provider: str = "openai") -> tuple[dict, str]:
        key_id, api_key = self.add_key(provider)
        body = {"mode": "byok", "provider": provider, "model": BYOK_MODELS[provider], "keyId": key_id}
        response = self.post("/api/threads", json=body)
        assert response.status_code == 201, response.text
        return response.json()["thread"], api_key

    def messages(self, thread_id: str) -> list[dict]:
        response = self.get(f"/api/threads/{thread_id}")
        assert response.status_code == 200, response.text
        return response.json()["messages"]

    def settled_reply(self, thread_id: str, timeout: float = 10.0) -> dict:
        """The thread's last assistant message, once it is no longer `streaming`."""

        def last_reply() -> dict | None:
            reply = [m for m in self.messages(thread_id) if m["role"] == "assistant"][-1]
            return reply if reply["status"] != "streaming" else None

        return wait_until(last_reply, timeout, "the reply is still `streaming`")

    # --- sends --------------------------------------------------------------------------------
    def send(self, thread_id: str, content: str, request_id: str | None = None) -> requests.Response:
        return send(self, thread_id, content, request_id)

    def events(self, response: requests.Response) -> Iterator[Event | str]:
        """The response's events as they arrive ("ping" for comments); remembers message.created."""
        assert response.status_code == 200, response.text
        assert response.headers["Content-Type"].startswith("text/event-stream")
        for item in iter_events(response):
            if isinstance(item, Event) and item.name == "message.created":
                self.created.append(item.data)
            yield item

    def exchange(self, thread_id: str, content: str, request_id: str | None = None) -> list[Event | str]:
        """Send and read the whole stream: events and pings, in order."""
        with self.send(thread_id, content, request_id) as response:
            return list(self.events(response))


def only_events(items: list[Event | str]) -> list[Event]:
    return [item for item in items if isinstance(item, Event)]


def deltas_text(items: list[Event | str]) -> str:
    return "".join(e.data["text"] for e in only_events(items) if e.name == "delta")


def assert_terminal_error(items: list[Event | str], code: str, status: str = "failed") -> dict:
    """Exactly one terminal event, an `error` with `code`; the stored message it carries."""
    events = only_events(items)
    assert events[0].name == "message.created", [e.name for e in events]
    terminal = [e for e in events if e.name in ("done", "error")]
    assert len(terminal) == 1 and events[-1] is terminal[0], [e.name for e in events]
    error = terminal[0].data
    assert terminal[0].name == "error", error
    assert error["error"]["code"] == code, error
    assert error["message"]["status"] == status, error
    assert error["message"]["content"] == deltas_text(items)
    return error


# --- invariants ---------------------------------------------------------------------------------


def all_threads(client: FaultClient) -> list[dict]:
    threads, cursor = [], None
    while True:
        params = {"limit": 100, **({"cursor": cursor} if cursor else {})}
        page = client.get("/api/threads", params=params).json()
        threads += page["threads"]
        cursor = page["nextCursor"]
        if not cursor:
            return threads


def settled_messages(client: FaultClient, timeout: float) -> dict[str, tuple[dict, list[dict]]]:
    """Every thread of the client with its messages, once none is `streaming` any more."""

    def snapshot():
        state = {t["id"]: (t, client.messages(t["id"])) for t in all_threads(client)}
        streaming = [m for _, messages in state.values() for m in messages if m["status"] == "streaming"]
        return state if not streaming else None

    return wait_until(snapshot, timeout, "a message is still `streaming`", interval=0.2)


def counted_free_requests(state: dict[str, tuple[dict, list[dict]]]) -> int:
    """Free replies that count: complete, stopped, or failed after the first token (some content)."""
    return sum(
        1
        for thread, messages in state.values()
        if thread["mode"] == "free"
        for m in messages
        if m["role"] == "assistant"
        and (m["status"] in COUNTED_STATUSES or (m["status"] == "failed" and m["content"]))
    )


def assert_invariants(suite: Suite, timeout: float = 10.0) -> None:
    """The three invariants of the module docstring, for every client of the suite."""
    expected_global = 0
    for client in suite.fault_clients:  # type: ignore[attr-defined]
        state = settled_messages(client, timeout)
        stored = {m["id"]: m for _, messages in state.values() for m in messages}
        for created in client.created:
            user, assistant = created["userMessage"], created["assistantMessage"]
            assert user["id"] in stored, f"user message lost: {user}"
            assert stored[user["id"]]["content"] == user["content"]
            assert assistant["id"] in stored, f"assistant message lost: {assistant}"
        expected = counted_free_requests(state)
        expected_global += expected
        # A reservation given back late (its service was down) may take a moment to land.
        wait_until_equal(lambda client=client: _used(client, "user"), expected, timeout, "user free counter")
    if suite.fault_clients:  # type: ignore[attr-defined]
        client = suite.fault_clients[0]  # type: ignore[attr-defined]
        wait_until_equal(lambda: _used(client, "global"), expected_global, timeout, "global free counter")


def wait_until_equal(read: Callable[[], Any], expected: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while (value := read()) != expected:
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} is {value!r}, expected {expected!r} (waited {timeout}s)")
        time.sleep(0.2)


def _used(client: FaultClient, bucket: str) -> int:
    response = client.get("/api/usage/free")
    assert response.status_code == 200, response.text
    return response.json()[bucket]["used"]
