"""FREE_REQUIRE_VERIFIED_EMAIL through the running services: throwaway accounts get no free requests
until their owner opens the single-use link mailed to them. On SQLite and on Postgres + Redis."""

from __future__ import annotations

from email import policy
from email.parser import BytesParser
from pathlib import Path
from urllib.parse import unquote

import pytest

from tests.conftest import BACKENDS
from tests.e2e.conftest import launch_suite
from tests.e2e.sse import read_events
from tests.security.conftest import (
    Simulator,
    add_key,
    byok_thread,
    free_thread,
    send_message,
    signed_in_client,
)

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module", params=BACKENDS)
def sec_suite(request, tmp_path_factory):
    suite = launch_suite(
        tmp_path_factory, request, request.param, "sec-verify-email", FREE_REQUIRE_VERIFIED_EMAIL="true"
    )
    suite.backend = request.param  # type: ignore[attr-defined]
    return suite


@pytest.fixture(scope="module")
def sim(sec_suite) -> Simulator:
    return Simulator(sec_suite.url("simulator"))


def confirmation_links(suite, email: str) -> list[str]:
    """Every confirmation token mailed to `email`, oldest first."""
    outbox = Path(suite.env["KEYLM_VAR_DIR"]) / "outbox"
    tokens = []
    for path in sorted(outbox.glob("*.eml"), key=lambda p: (p.stat().st_mtime_ns, p.name)):
        message = BytesParser(policy=policy.default).parsebytes(path.read_bytes())
        if message["To"] != email:
            continue
        for word in message.get_body(preferencelist=("plain",)).get_content().split():
            if "/verify-email?token=" in word:
                assert word.startswith(suite.env["APP_BASE_URL"] + "/verify-email?token=")
                tokens.append(unquote(word.split("token=", 1)[1]))
    return tokens


def free_calls(suite, sim) -> int:
    return len(sim.chat_calls(suite.env["GROQ_API_KEY"]))


def test_an_unconfirmed_user_gets_no_free_request_and_spends_nothing(sec_suite, sim):
    user = signed_in_client(sec_suite)
    assert user.user["emailVerified"] is False
    usage = user.get("/api/usage/free").json()
    assert usage["requiresVerifiedEmail"] is True
    thread = free_thread(user)
    calls = free_calls(sec_suite, sim)

    response = send_message(user, thread["id"], "Hello")

    assert response.status_code == 403
    assert response.json()["error"]["code"] == "email_not_verified"
    assert response.json()["error"]["retryable"] is False
    assert free_calls(sec_suite, sim) == calls
    assert user.get("/api/usage/free").json()["user"]["used"] == 0
    assert user.get(f"/api/threads/{thread['id']}").json()["messages"] == []


def test_the_mailed_link_confirms_once_and_opens_keylm_free(sec_suite):
    user = signed_in_client(sec_suite)
    [token] = confirmation_links(sec_suite, user.user["email"])
    # The link is for the web page; the gateway serves it.
    page = user.get("/verify-email", params={"token": token})
    assert page.status_code == 200 and "text/html" in page.headers["Content-Type"]

    confirmed = user.post("/api/auth/email-verification/confirm", json={"token": token})

    assert confirmed.status_code == 200
    assert confirmed.json()["user"]["emailVerified"] is True
    assert user.get("/api/auth/me").json()["user"]["emailVerified"] is True
    thread = free_thread(user)
    assert read_events(send_message(user, thread["id"], "Hello"))[-1].name == "done"
    again = user.post("/api/auth/email-verification/confirm", json={"token": token})
    assert again.status_code == 400
    assert again.json()["error"]["code"] == "invalid_token"


def test_the_link_works_without_a_session(sec_suite):
    """Opened in another browser: the token alone confirms; it signs nobody in."""
    user = signed_in_client(sec_suite)
    [token] = confirmation_links(sec_suite, user.user["email"])
    stranger = signed_in_client(sec_suite)
    stranger.http.cookies.clear()

    response = stranger.post("/api/auth/email-verification/confirm", json={"token": token})

    assert response.status_code == 200
    assert "keylm_session" not in response.headers.get("Set-Cookie", "")
    assert user.get("/api/auth/me").json()["user"]["emailVerified"] is True


def test_resend_mails_a_new_single_use_link(sec_suite):
    user = signed_in_client(sec_suite)

    response = user.post("/api/auth/email-verification/request")

    assert response.status_code == 202
    first, second = confirmation_links(sec_suite, user.user["email"])
    assert first != second
    assert user.post("/api/auth/email-verification/confirm", json={"token": second}).status_code == 200
    assert user.post("/api/auth/email-verification/confirm", json={"token": first}).status_code == 400


def test_resend_needs_a_session(sec_suite):
    user = signed_in_client(sec_suite)
    user.http.cookies.clear()
    response = user.post("/api/auth/email-verification/request")
    assert response.status_code == 401


def test_byok_threads_do_not_need_a_confirmed_email(sec_suite):
    user = signed_in_client(sec_suite)
    key = add_key(user, "openai")
    thread = byok_thread(user, "openai", key["id"])

    assert read_events(send_message(user, thread["id"], "Hello"))[-1].name == "done"
