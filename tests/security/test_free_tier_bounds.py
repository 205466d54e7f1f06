"""KeyLM Free has a bounded cost per request and per user, through the running services.

The shared free key pays for every free thread, so a free thread is held to small ceilings (output
tokens, system prompt, message, history resent) and each user to a daily token budget beside the
request count; a clientRequestId reused for other content is refused rather than replayed.
Each check runs on SQLite (in-memory limits) and on Postgres + Redis.
"""

from __future__ import annotations

import json
import uuid
from concurrent.futures import ThreadPoolExecutor

import pytest

from tests.conftest import BACKENDS
from tests.e2e.conftest import Browserless, launch_suite
from tests.e2e.sse import read_events
from tests.security.conftest import (
    Simulator,
    free_thread,
    send_message,
    signed_in_client,
)

pytestmark = pytest.mark.e2e

MAX_OUTPUT_TOKENS = 256
MAX_SYSTEM_PROMPT_CHARS = 500
MAX_MESSAGE_CHARS = 1000
MAX_HISTORY_CHARS = 1200
DAILY_TOKENS = 2000


@pytest.fixture(scope="module", params=BACKENDS)
def sec_suite(request, tmp_path_factory):
    """This module's suite with small free-tier bounds, so tests can reach each one."""
    suite = launch_suite(
        tmp_path_factory,
        request,
        request.param,
        "sec-free-bounds",
        FREE_MAX_OUTPUT_TOKENS=str(MAX_OUTPUT_TOKENS),
        FREE_MAX_SYSTEM_PROMPT_CHARS=str(MAX_SYSTEM_PROMPT_CHARS),
        FREE_MAX_MESSAGE_CHARS=str(MAX_MESSAGE_CHARS),
        FREE_MAX_HISTORY_CHARS=str(MAX_HISTORY_CHARS),
        FREE_USER_DAILY_TOKENS=str(DAILY_TOKENS),
        # Concurrent sends of one user test the token budget here, not the cap on open streams.
        MAX_STREAMS_PER_USER="1000",
    )
    suite.backend = request.param  # type: ignore[attr-defined]
    return suite


@pytest.fixture(scope="module")
def sim(sec_suite) -> Simulator:
    return Simulator(sec_suite.url("simulator"))


@pytest.fixture
def user(sec_suite):
    return signed_in_client(sec_suite)


def free_usage(client) -> dict:
    response = client.get("/api/usage/free")
    assert response.status_code == 200, response.text
    return response.json()


def free_calls(sec_suite, sim) -> int:
    return len(sim.chat_calls(sec_suite.env["GROQ_API_KEY"]))


# --- output, prompt and message size ------------------------------------------------------------


def test_free_thread_clamps_max_tokens_and_its_settings_say_so(user):
    thread = free_thread(user, settings={"maxTokens": 200_000, "temperature": 0.5})

    assert thread["settings"] == {
        "maxTokens": MAX_OUTPUT_TOKENS,
        "maxTokensClamped": True,
        "maxTokensRequested": 200_000,
        "temperature": 0.5,
    }
    unset = free_thread(user)
    assert unset["settings"] == {"maxTokens": MAX_OUTPUT_TOKENS}


def test_free_reply_stops_at_the_output_ceiling(user):
    thread = free_thread(user, settings={"maxTokens": 200_000})

    events = read_events(send_message(user, thread["id"], "Long please [[sim:tokens=1000]]"))

    done = events[-1]
    assert done.name == "done", done
    assert done.data["message"]["usage"]["outputTokens"] == MAX_OUTPUT_TOKENS
    assert done.data["message"]["finishReason"] == "length"


def test_free_thread_with_a_system_prompt_over_the_limit_is_refused(user):
    response = user.post(
        "/api/threads", json={"mode": "free", "systemPrompt": "s" * (MAX_SYSTEM_PROMPT_CHARS + 1)}
    )

    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "validation_error"
    assert "systemPrompt" in error["details"]["fields"]
    assert user.get("/api/threads").json()["threads"] == []
    free_thread(user, systemPrompt="s" * MAX_SYSTEM_PROMPT_CHARS)


def test_free_message_over_the_limit_is_refused_before_any_quota_or_provider_call(sec_suite, sim, user):
    thread = free_thread(user)
    calls_before = free_calls(sec_suite, sim)

    response = send_message(user, thread["id"], "m" * (MAX_MESSAGE_CHARS + 1))

    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "validation_error"
    assert "content" in error["details"]["fields"]
    assert free_calls(sec_suite, sim) == calls_before
    usage = free_usage(user)
    assert (usage["user"]["used"], usage["tokens"]["used"]) == (0, 0)
    assert user.get(f"/api/threads/{thread['id']}").json()["messages"] == []


# --- the history sent -----------------------------------------------------------------------------


def test_free_history_drops_the_oldest_turns_and_the_reply_says_how_many(user):
    thread = free_thread(user)
    for turn in range(1, 4):
        content = f"turn{turn}-" + "x" * 400 + " [[sim:text=ok]]"
        assert read_events(send_message(user, thread["id"], content))[-1].name == "done"

    events = read_events(send_message(user, thread["id"], "[[sim:echo]]"))

    done = events[-1]
    assert done.name == "done", done
    sent = json.loads(done.data["message"]["content"])
    sent_text = " ".join(content for _, content in sent["messages"])
    assert "turn1-" not in sent_text
    assert "turn2-" in sent_text and "turn3-" in sent_text
    assert done.data["message"]["historyDropped"] == 2
    stored = user.get(f"/api/threads/{thread['id']}").json()["messages"]
    assert [m["historyDropped"] for m in stored if m["role"] == "assistant"] == [0, 0, 0, 2]
    assert len(stored) == 8  # nothing is deleted: only what is sent is bounded


# --- the daily token budget -----------------------------------------------------------------------


def test_free_tokens_are_settled_from_the_providers_usage(user):
    thread = free_thread(user)

    done = read_events(send_message(user, thread["id"], "Count me [[sim:tokens=40]]"))[-1]

    assert done.name == "done", done
    total = done.data["message"]["usage"]["totalTokens"]
    assert total > 40
    usage = free_usage(user)
    assert usage["tokens"] == {"used": total, "limit": DAILY_TOKENS, "remaining": DAILY_TOKENS - total}


def test_free_token_budget_runs_out_before_the_request_count(sec_suite, sim, user):
    thread = free_thread(user)
    spent = 0
    for _ in range(20):
        response = send_message(user, thread["id"], f"Again {uuid.uuid4().hex} [[sim:tokens=1000]]")
        if response.status_code != 200:
            break
        spent += read_events(response)[-1].data["message"]["usage"]["totalTokens"]
    else:
        pytest.fail("the token budget never ran out")

    assert response.status_code == 429
    error = response.json()["error"]
    assert error["code"] == "free_quota_exhausted"
    assert error["details"]["bucket"] == "tokens"
    usage = free_usage(user)
    assert usage["tokens"]["used"] == spent <= DAILY_TOKENS
    assert usage["user"]["used"] < usage["user"]["limit"]
    # What is left is less than a send reserves (its prompt plus the whole output ceiling).
    assert usage["tokens"]["remaining"] < MAX_OUTPUT_TOKENS
    # The refused send took nothing and reached no provider.
    calls = free_calls(sec_suite, sim)
    assert send_message(user, thread["id"], "once more").status_code == 429
    assert free_calls(sec_suite, sim) == calls
    assert free_usage(user)["user"]["used"] == usage["user"]["used"]


def test_concurrent_free_sends_never_overspend_the_token_budget(sec_suite, user):
    """Twelve sends at once whose estimates (about 270 tokens each) do not all fit in the budget: the
    reservations (single conditional statements) let through only what fits, and what is charged in
    the end is exactly the usage the provider reported."""
    content = "Slowly [[sim:delay=40]] [[sim:tokens=20]]"
    threads = [free_thread(user)["id"] for _ in range(12)]
    cookie = user.session_cookie

    def send(thread_id: str):
        client = Browserless(sec_suite)
        client.http.cookies.set("keylm_session", cookie)
        response = send_message(client, thread_id, content)
        if response.status_code != 200:
            return response.status_code, response.json()["error"]
        return 200, read_events(response)[-1].data["message"]

    with ThreadPoolExecutor(max_workers=len(threads)) as pool:
        results = list(pool.map(send, threads))

    granted = [body for status, body in results if status == 200]
    refused = [body for status, body in results if status != 200]
    assert granted and refused
    assert {(e["code"], e["details"]["bucket"]) for e in refused} == {("free_quota_exhausted", "tokens")}
    assert all(message["status"] == "complete" for message in granted)
    usage = free_usage(user)
    assert usage["user"]["used"] == len(granted)
    assert usage["tokens"]["used"] == sum(message["usage"]["totalTokens"] for message in granted)


# --- idempotency -----------------------------------------------------------------------------------


def test_reused_client_request_id_with_other_content_is_409_idempotency_mismatch(sec_suite, sim, user):
    thread = free_thread(user)
    first = read_events(send_message(user, thread["id"], "What is 2+2?", "same-request"))
    assert first[-1].name == "done"
    usage_before, calls_before = free_usage(user), free_calls(sec_suite, sim)

    response = send_message(user, thread["id"], "Tell me a secret instead", "same-request")

    assert response.status_code == 409
    assert response.headers["Content-Type"].startswith("application/json")
    assert response.json()["error"] == {
        "code": "idempotency_mismatch",
        "message": "This clientRequestId was already used for a different message; "
        "send a new clientRequestId.",
        "retryable": False,
    }
    assert free_calls(sec_suite, sim) == calls_before
    assert free_usage(user)["user"] == usage_before["user"]
    # The stored exchange is untouched, and the same content still replays it.
    messages = user.get(f"/api/threads/{thread['id']}").json()["messages"]
    assert [m["content"] for m in messages if m["role"] == "user"] == ["What is 2+2?"]
    again = read_events(send_message(user, thread["id"], "What is 2+2?", "same-request"))
    assert again[-1].data["message"]["id"] == first[-1].data["message"]["id"]


def test_reused_client_request_id_of_a_failed_request_with_other_content_is_409(sec_suite, sim, user):
    thread = free_thread(user)
    failed = read_events(send_message(user, thread["id"], "Boom [[sim:fail_mid=2]]", "failing-request"))
    assert failed[-1].name == "error"

    response = send_message(user, thread["id"], "Something else", "failing-request")

    assert response.status_code == 409
    assert response.json()["error"]["code"] == "idempotency_mismatch"
