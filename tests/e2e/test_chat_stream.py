"""The message stream end to end: gateway -> chat -> keys/quota -> provider simulator."""

from __future__ import annotations

import time
import uuid
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

from tests.e2e.conftest import Browserless
from tests.e2e.sse import BYOK_MODELS, Event, Simulator, iter_events, new_key, read_events, send

pytestmark = pytest.mark.e2e


@pytest.fixture
def sim(suite) -> Simulator:
    return Simulator(suite.url("simulator"))


def add_key(client: Browserless, provider: str, api_key: str | None = None) -> tuple[str, str]:
    api_key = api_key or new_key(provider)
    response = client.post(f"/api/providers/{provider}/keys", json={"apiKey": api_key, "label": "test"})
    assert response.status_code == 201, response.text
    return response.json()["key"]["id"], api_key


def byok_thread(client: Browserless, provider: str, **extra) -> tuple[dict, str]:
    key_id, api_key = add_key(client, provider)
    body = {"mode": "byok", "provider": provider, "model": BYOK_MODELS[provider], "keyId": key_id, **extra}
    response = client.post("/api/threads", json=body)
    assert response.status_code == 201, response.text
    return response.json()["thread"], api_key


def free_thread(client: Browserless, **extra) -> dict:
    response = client.post("/api/threads", json={"mode": "free", **extra})
    assert response.status_code == 201, response.text
    return response.json()["thread"]


def free_used(client: Browserless) -> int:
    return client.get("/api/usage/free").json()["user"]["used"]


def test_free_thread_streams_in_order_and_counts_one_request(signed_in):
    thread = free_thread(signed_in, systemPrompt="Answer briefly.")
    assert (thread["provider"], thread["model"]) == ("groq", "moonshotai/kimi-k2-instruct-0905")
    events = read_events(send(signed_in, thread["id"], "Hello [[sim:tokens=6]]"))
    names = [e.name for e in events]
    assert names[0] == "message.created" and names[-1] == "done"
    assert names.count("delta") >= 2 and names[-2] == "usage"
    created = events[0].data
    assert (
        created["assistantMessage"]["status"] == "streaming" and created["assistantMessage"]["content"] == ""
    )
    done = events[-1].data["message"]
    assert done["status"] == "complete"
    assert done["content"] == "".join(e.data["text"] for e in events if e.name == "delta")
    assert done["usage"]["totalTokens"] == done["usage"]["promptTokens"] + done["usage"]["outputTokens"]
    assert done["providerMessageId"]
    assert free_used(signed_in) == 1

    stored = signed_in.get(f"/api/threads/{thread['id']}").json()
    assert [m["role"] for m in stored["messages"]] == ["user", "assistant"]
    assert stored["messages"][1]["content"] == done["content"]
    assert stored["thread"]["usage"] == done["usage"]


def test_free_model_decommissioned_falls_back_and_message_names_the_model(signed_in):
    thread = free_thread(signed_in)
    done = read_events(send(signed_in, thread["id"], "Hi"))[-1]
    assert done.name == "done"
    # The simulator answers 400 model_decommissioned for the documented default model.
    assert done.data["message"]["model"] == "openai/gpt-oss-120b"


def test_free_request_refunded_when_provider_fails_before_first_token(signed_in):
    thread = free_thread(signed_in)
    before = free_used(signed_in)
    events = read_events(send(signed_in, thread["id"], "Hi [[sim:fail_before]]"))
    assert events[-1].name == "error"
    assert events[-1].data["message"]["status"] == "failed"
    assert events[-1].data["error"]["code"].startswith("upstream")
    assert free_used(signed_in) == before


def test_failure_mid_stream_keeps_partial_text_and_counts(signed_in):
    thread, _ = byok_thread(signed_in, "anthropic")
    events = read_events(send(signed_in, thread["id"], "Hi [[sim:fail_mid]] [[sim:tokens=8]]"))
    assert events[-1].name == "error"
    message = events[-1].data["message"]
    assert message["status"] == "failed" and message["content"]
    assert message["content"] == "".join(e.data["text"] for e in events if e.name == "delta")


@pytest.mark.parametrize("provider", list(BYOK_MODELS))
def test_byok_thread_streams_text_and_usage_for_each_provider(signed_in, sim, provider):
    thread, api_key = byok_thread(
        signed_in, provider, systemPrompt="You are terse.", settings={"temperature": 0.3, "maxTokens": 64}
    )
    events = read_events(send(signed_in, thread["id"], "Say hi [[sim:echo]]"))
    assert events[-1].name == "done", events[-1]
    message = events[-1].data["message"]
    assert message["content"] and message["model"]
    usage = next(e.data for e in events if e.name == "usage")
    assert usage["promptTokens"] > 0 and usage["outputTokens"] > 0 and usage["totalTokens"] > 0
    # The simulator echoes what it received: the system prompt and the settings reached it.
    assert "You are terse." in message["content"]
    assert len(sim.chat_calls(api_key)) == 1


def test_history_carries_system_prompt_and_earlier_messages(signed_in):
    thread, _ = byok_thread(signed_in, "openai", systemPrompt="Pirate voice.")
    read_events(send(signed_in, thread["id"], "first question"))
    events = read_events(send(signed_in, thread["id"], "second question [[sim:echo]]"))
    echoed = events[-1].data["message"]["content"]
    assert "Pirate voice." in echoed and "first question" in echoed and "second question" in echoed


def test_stop_mid_stream_stores_stopped_and_closes_the_provider_connection(signed_in, sim):
    thread, api_key = byok_thread(signed_in, "openai")
    response = send(signed_in, thread["id"], "Long one [[sim:delay=100]] [[sim:tokens=300]]")
    deltas = 0
    for event in iter_events(response):
        if isinstance(event, Event) and event.name == "delta":
            deltas += 1
            if deltas == 3:
                break
    response.close()  # the client leaves
    stream = sim.wait_for_stream_state(api_key, "client_closed", timeout=5)
    assert stream["tokens_sent"] < 300

    deadline = time.monotonic() + 5
    while True:
        messages = signed_in.get(f"/api/threads/{thread['id']}").json()["messages"]
        if messages[-1]["status"] != "streaming" or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    assert messages[-1]["status"] == "stopped"
    assert messages[-1]["content"]


def test_stopped_free_reply_still_counts(signed_in, sim):
    thread = free_thread(signed_in)
    before = free_used(signed_in)
    response = send(signed_in, thread["id"], "Long [[sim:delay=100]] [[sim:tokens=200]]")
    for event in iter_events(response):
        if isinstance(event, Event) and event.name == "delta":
            break
    response.close()
    time.sleep(1.5)
    assert free_used(signed_in) == before + 1


def test_repeat_of_finished_request_replays_without_calling_provider(signed_in, sim):
    thread, api_key = byok_thread(signed_in, "gemini")
    first = read_events(send(signed_in, thread["id"], "Hello", request_id="same-id"))
    again = read_events(send(signed_in, thread["id"], "Hello", request_id="same-id"))
    assert [e.name for e in again] == ["message.created", "delta", "usage", "done"]
    assert again[1].data["text"] == first[-1].data["message"]["content"]
    assert again[-1].data["message"]["id"] == first[-1].data["message"]["id"]
    assert len(sim.chat_calls(api_key)) == 1
    messages = signed_in.get(f"/api/threads/{thread['id']}").json()["messages"]
    assert len(messages) == 2


def test_repeat_while_streaming_is_409_request_in_progress(signed_in):
    thread, _ = byok_thread(signed_in, "openai")
    content = "Slow [[sim:delay=100]] [[sim:tokens=30]]"
    first = send(signed_in, thread["id"], content, request_id="dup")
    stream = iter_events(first)
    next(e for e in stream if isinstance(e, Event))  # message.created: the request is stored
    second = signed_in.post(
        f"/api/threads/{thread['id']}/messages", json={"content": content, "clientRequestId": "dup"}
    )
    assert second.status_code == 409
    assert second.json()["error"]["code"] == "request_in_progress"
    assert second.json()["error"]["retryable"] is True
    first.close()


def test_failed_request_can_be_retried_with_the_same_client_request_id(signed_in, sim):
    thread, api_key = byok_thread(signed_in, "openai")
    sim.set_down("openai", True)
    try:
        failed = read_events(send(signed_in, thread["id"], "Hello", request_id="retry-me"))
    finally:
        sim.set_down("openai", False)
    assert failed[-1].name == "error" and failed[-1].data["message"]["status"] == "failed"
    retried = read_events(send(signed_in, thread["id"], "Hello", request_id="retry-me"))
    assert retried[-1].name == "done"
    assert retried[-1].data["message"]["id"] == failed[-1].data["message"]["id"]
    messages = signed_in.get(f"/api/threads/{thread['id']}").json()["messages"]
    assert [m["status"] for m in messages] == ["complete", "complete"]


def test_provider_rejecting_the_key_mid_use_marks_it_invalid(signed_in, sim):
    thread, api_key = byok_thread(signed_in, "groq")
    sim.revoke(api_key)
    events = read_events(send(signed_in, thread["id"], "Hello"))
    assert events[-1].name == "error"
    assert events[-1].data["error"]["code"] == "upstream_auth_failed"
    keys = signed_in.get("/api/providers/groq/keys").json()["keys"]
    assert keys[0]["status"] == "invalid"
    # The next send is refused before streaming: the key is no longer active.
    refused = send(signed_in, thread["id"], "Again")
    assert refused.status_code == 409 and refused.json()["error"]["code"] == "key_not_active"


def test_model_catalog_is_cached_and_served_stale_when_refresh_fails(signed_in, sim):
    key_id, api_key = add_key(signed_in, "anthropic")
    first = signed_in.get(f"/api/providers/anthropic/models?keyId={key_id}").json()
    assert first["stale"] is False and first["keyId"] == key_id
    ids = [m["id"] for m in first["models"]]
    assert ids == sorted(ids) and len(ids) >= 10
    assert set(first["models"][0]) >= {"id", "displayName"}
    calls = len([r for r in sim.requests(api_key) if r["path"].endswith("/models")])

    cached = signed_in.get("/api/providers/anthropic/models").json()
    assert cached["fetchedAt"] == first["fetchedAt"]
    assert len([r for r in sim.requests(api_key) if r["path"].endswith("/models")]) == calls

    sim.set_down("anthropic", True)
    try:
        stale = signed_in.post("/api/providers/anthropic/models/refresh", json={"keyId": key_id})
        assert stale.status_code == 200
        assert stale.json()["stale"] is True and stale.json()["models"] == first["models"]
    finally:
        sim.set_down("anthropic", False)
    fresh = signed_in.get(f"/api/providers/anthropic/models?keyId={key_id}&refresh=true").json()
    assert fresh["stale"] is False


def test_model_catalog_with_nothing_cached_fails_clearly(signed_in, sim):
    key_id, _ = add_key(signed_in, "gemini")
    sim.set_down("gemini", True)
    try:
        response = signed_in.get(f"/api/providers/gemini/models?keyId={key_id}")
    finally:
        sim.set_down("gemini", False)
    assert response.status_code in (502, 503)
    assert response.json()["error"]["code"].startswith("upstream")


def test_models_without_an_active_key_is_409_key_not_active(signed_in):
    response = signed_in.get("/api/providers/openai/models")
    assert response.status_code == 409
    assert response.json()["error"]["code"] == "key_not_active"
    key_id, _ = add_key(signed_in, "openai")
    assert signed_in.delete(f"/api/providers/openai/keys/{key_id}").status_code == 204
    response = signed_in.get(f"/api/providers/openai/models?keyId={key_id}")
    assert response.status_code == 409


def test_byok_thread_needs_an_active_key_and_a_catalog_model(signed_in):
    response = signed_in.post("/api/threads", json={"mode": "byok", "provider": "openai", "model": "gpt-4o"})
    assert response.status_code == 400 and "keyId" in response.json()["error"]["details"]["fields"]
    add_key(signed_in, "openai")
    response = signed_in.post("/api/threads", json={"mode": "byok", "provider": "openai", "model": "no-such"})
    assert response.status_code == 400 and "model" in response.json()["error"]["details"]["fields"]


def test_threads_list_newest_first_with_cursor_pages_and_rename_only_title(signed_in):
    ids = [free_thread(signed_in, title=f"t{i}")["id"] for i in range(5)]
    page = signed_in.get("/api/threads?limit=2").json()
    assert [t["id"] for t in page["threads"]] == ids[::-1][:2]
    seen = [t["id"] for t in page["threads"]]
    while page["nextCursor"]:
        page = signed_in.get(f"/api/threads?limit=2&cursor={page['nextCursor']}").json()
        seen += [t["id"] for t in page["threads"]]
    assert seen == ids[::-1]

    renamed = signed_in.patch(f"/api/threads/{ids[0]}", json={"title": "Renamed"})
    assert renamed.status_code == 200 and renamed.json()["thread"]["title"] == "Renamed"
    locked = signed_in.patch(f"/api/threads/{ids[0]}", json={"title": "x", "model": "other"})
    assert locked.status_code == 400
    assert (
        signed_in.get(f"/api/threads/{ids[0]}").json()["thread"]["model"]
        == "moonshotai/kimi-k2-instruct-0905"
    )
    assert signed_in.delete(f"/api/threads/{ids[0]}").status_code == 204
    assert signed_in.get(f"/api/threads/{ids[0]}").status_code == 404


def test_another_users_thread_is_404_everywhere(suite, signed_in):
    thread, _ = byok_thread(signed_in, "openai")
    read_events(send(signed_in, thread["id"], "mine"))
    other = Browserless(suite)
    other.register()
    path = f"/api/threads/{thread['id']}"
    for response in (
        other.get(path),
        other.patch(path, json={"title": "stolen"}),
        other.delete(path),
        send(other, thread["id"], "hi"),
    ):
        assert response.status_code == 404, response.text
        assert response.json()["error"]["code"] == "not_found"
    assert thread["id"] not in [t["id"] for t in other.get("/api/threads").json()["threads"]]
    assert signed_in.get(path).json()["thread"]["title"] == thread["title"]


def test_send_validation_errors_are_plain_json(signed_in):
    thread = free_thread(signed_in)
    for body in (
        {},
        {"content": "", "clientRequestId": "a"},
        {"content": "x", "clientRequestId": "a" * 129},
        {"content": 5, "clientRequestId": "a"},
        {"content": "x", "clientRequestId": "a", "extra": 1},
    ):
        response = signed_in.post(f"/api/threads/{thread['id']}/messages", json=body)
        assert response.status_code == 400, body
        assert response.json()["error"]["code"] == "validation_error"


def test_concurrent_identical_sends_make_one_provider_call(suite, sim):
    client = Browserless(suite)
    client.register()
    thread, api_key = byok_thread(client, "openai")
    request_id = uuid.uuid4().hex
    body = {"content": "Once please [[sim:delay=20]]", "clientRequestId": request_id}

    def fire(_):
        response = client.http.post(
            f"{client.base}/api/threads/{thread['id']}/messages",
            json=body,
            timeout=30,
            cookies=client.http.cookies,
            headers={"Origin": client.base},
        )
        return response.status_code, response.text

    with ThreadPoolExecutor(max_workers=20) as pool:
        results = list(pool.map(fire, range(20)))
    statuses = sorted(status for status, _ in results)
    assert set(statuses) <= {200, 409}, results
    assert len(sim.chat_calls(api_key)) == 1
    messages = client.get(f"/api/threads/{thread['id']}").json()["messages"]
    assert len(messages) == 2


def test_sse_headers_and_pings_while_provider_is_silent(signed_in):
    thread, _ = byok_thread(signed_in, "openai")
    response = send(signed_in, thread["id"], "Think first [[sim:hang_before=1500]] [[sim:tokens=2]]")
    assert response.headers["Cache-Control"] == "no-cache"
    assert response.headers["X-Accel-Buffering"] == "no"
    kinds = [e if isinstance(e, str) else e.name for e in iter_events(response)]
    first_delta = kinds.index("delta")
    assert "ping" in kinds[:first_delta]
    assert kinds[-1] == "done"


def test_direct_request_to_chat_port_without_credential_is_401(suite):
    response = requests.get(suite.url("chat") + "/api/threads", timeout=5)
    assert response.status_code == 401
