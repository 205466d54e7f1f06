"""Outgoing mail: SMTP when SMTP_URL is set, else one .eml file per mail in MAIL_OUTBOX_DIR."""

from __future__ import annotations

import logging
import smtplib
import uuid
from email.message import EmailMessage
from urllib.parse import unquote, urlparse

from shared.config import Settings
from shared.db import utcnow

logger = logging.getLogger(__name__)


def send_mail(settings: Settings, to: str, subject: str, body: str) -> None:
    message = EmailMessage()
    message["From"] = settings.mail_from
    message["To"] = to
    message["Subject"] = subject
    message.set_content(body)
    if settings.smtp_url:
        _send_smtp(settings.smtp_url, message)
    else:
        _write_outbox(settings, message)


def _send_smtp(smtp_url: str, message: EmailMessage) -> None:
    url = urlparse(smtp_url)
    secure = url.scheme == "smtps"
    port = url.port or (465 if secure else 587 if url.scheme == "smtp+starttls" else 25)
    smtp_class = smtplib.SMTP_SSL if secure else smtplib.SMTP
    with smtp_class(url.hostname or "localhost", port, timeout=10) as smtp:
        if url.scheme == "smtp+starttls":
            smtp.starttls()
        if url.username:
            smtp.login(unquote(url.username), unquote(url.password or ""))
        smtp.send_message(message)


def _write_outbox(settings: Settings, message: EmailMessage) -> None:
    outbox = settings.mail_outbox_dir
    outbox.mkdir(parents=True, exist_ok=True)
    name = f"{utcnow():%Y%m%dT%H%M%S}-{uuid.uuid4().hex[:8]}.eml"
    (outbox / name).write_bytes(bytes(message))
    logger.info("mail written to the outbox", extra={"file": name})
