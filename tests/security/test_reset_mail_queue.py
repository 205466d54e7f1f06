"""Password-reset mail leaves the request (issue 10): the answer is the same for known and unknown
emails, whatever the mail server does, and mail that could not be sent is retried until it goes."""

from __future__ import annotations

import statistics
import time

import pytest

from runner.suite import Suite, free_port
from tests.conftest import BACKENDS, unique_email
from tests.e2e.conftest import launch_suite
from tests.security.conftest import RecordingClient
from tests.security.smtp_sink import SmtpSink

pytestmark = pytest.mark.e2e

RESET = "/api/auth/password-reset/request"


@pytest.fixture(scope="module", params=BACKENDS)
def mail_suite(request, tmp_path_factory):
    """A suite whose SMTP server is down at first (nothing listens on its port)."""
    sink = SmtpSink(free_port())
    suite = launch_suite(
        tmp_path_factory,
        request,
        request.param,
        "sec-mail",
        SMTP_URL=f"smtp://127.0.0.1:{sink.port}",
        MAIL_RETRY_SECONDS="0.3",
        MAIL_MAX_ATTEMPTS="8",
    )
    request.addfinalizer(sink.stop)
    return suite, sink


def answer(client: RecordingClient, email: str) -> tuple[float, int, bytes, str]:
    started = time.monotonic()
    response = client.post(RESET, json={"email": email})
    return (
        time.monotonic() - started,
        response.status_code,
        response.content,
        response.headers["Content-Type"],
    )


def test_known_and_unknown_emails_answer_alike_while_smtp_is_down(mail_suite):
    suite, _ = mail_suite
    client = RecordingClient(suite)
    known = client.register()["email"]

    known_answers = [answer(client, known) for _ in range(5)]
    unknown_answers = [answer(client, unique_email()) for _ in range(5)]

    assert (
        {a[1:] for a in known_answers}
        == {a[1:] for a in unknown_answers}
        == {(202, b'{"ok":true}\n', "application/json")}
    )
    known_time = statistics.median(a[0] for a in known_answers)
    unknown_time = statistics.median(a[0] for a in unknown_answers)
    assert known_time < 0.5 and unknown_time < 0.5
    assert abs(known_time - unknown_time) < 0.05
    assert wait_for_log(suite, "job failed; retrying")


def wait_for_log(suite: Suite, text: str, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while text not in suite.log_path("auth").read_text():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.1)
    return True


def test_mail_that_could_not_be_sent_is_retried_until_the_server_is_back(mail_suite):
    suite, sink = mail_suite
    client = RecordingClient(suite)
    known = client.register()["email"]
    unknown = unique_email()
    assert client.post(RESET, json={"email": known}).status_code == 202
    assert client.post(RESET, json={"email": unknown}).status_code == 202
    time.sleep(0.5)  # at least one attempt failed meanwhile
    sink.start()

    deadline = time.monotonic() + 30
    while not sink.mails_to(known):
        assert time.monotonic() < deadline, "the reset mail was never retried"
        time.sleep(0.1)

    [mail] = sink.mails_to(known)
    assert "/reset?token=" in mail.get_body(("plain",)).get_content()
    assert sink.mails_to(unknown) == []
    assert "Traceback" not in suite.log_path("auth").read_text()
