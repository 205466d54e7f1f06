"""Structured (JSON) logs to stdout, with a filter that masks anything secret-shaped."""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import Iterable

from flask import g, has_request_context
from pythonjsonlogger.json import JsonFormatter

from shared.redaction import MASK, mask_secret_shapes

# Emails in rate-limit log lines (flask-limiter names the limit key it refused): our own keys hold
# only a keyed hash of an email, this is the second line of defence.
_EMAIL = re.compile(r"[A-Za-z0-9._%+\-]+@[A-Za-z0-9\-]+(?:\.[A-Za-z0-9\-]+)+")
EMAIL_REDACTED_LOGGERS = ("flask-limiter", "gateway.limits")


class Redactor:
    """Masks secret-shaped substrings and, exactly, the secret values it was given."""

    def __init__(self, secrets: Iterable[str] = ()):
        self.secrets = sorted({s for s in secrets if s and len(s) >= 6}, key=len, reverse=True)

    def __call__(self, text: str) -> str:
        for secret in self.secrets:
            text = text.replace(secret, MASK)
        return mask_secret_shapes(text)


class RedactionFilter(logging.Filter):
    """Rewrites each record's message and traceback through a Redactor before any handler sees it."""

    def __init__(self, redactor: Redactor):
        super().__init__()
        self.redact = redactor

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg = self.redact(record.getMessage())
        record.args = None
        if record.name.startswith(EMAIL_REDACTED_LOGGERS):
            record.msg = _EMAIL.sub(MASK, record.msg)
        if record.exc_info:
            record.exc_text = self.redact(logging.Formatter().formatException(record.exc_info))
            record.exc_info = None
        for name, value in list(vars(record).items()):
            if name not in _STANDARD_ATTRS and isinstance(value, str):
                setattr(record, name, self.redact(value))
        return True


class RequestContextFilter(logging.Filter):
    """Adds the service name and, inside a request, its X-Request-Id to every record."""

    def __init__(self, service: str):
        super().__init__()
        self.service = service

    def filter(self, record: logging.LogRecord) -> bool:
        record.service = self.service
        if has_request_context() and "request_id" in g:
            record.request_id = g.request_id
        return True


_STANDARD_ATTRS = set(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message"}


def configure_logging(service: str, level: str, secrets: Iterable[str] = ()) -> None:
    """Configure the root logger once per process: JSON lines on stdout, redacted."""
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(
        JsonFormatter(
            "%(asctime)s %(levelname)s %(name)s %(message)s",
            rename_fields={"levelname": "level", "asctime": "time", "name": "logger"},
            timestamp=False,
        )
    )
    handler.addFilter(RequestContextFilter(service))
    handler.addFilter(RedactionFilter(Redactor(secrets)))
    root = logging.getLogger()
    for existing in list(root.handlers):
        if getattr(existing, "_keylm", False):
            root.removeHandler(existing)
    handler._keylm = True  # type: ignore[attr-defined]
    root.addHandler(handler)
    root.setLevel(level)
    for noisy in ("urllib3", "werkzeug", "gevent", "alembic.runtime.migration"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
