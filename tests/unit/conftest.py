"""Unit-test fixtures: valid settings, a tiny app on the shared factory, JSON log capture, a fake clock."""

from __future__ import annotations

import io
import json
import logging
import secrets
from collections.abc import Callable, Iterator

import pytest
from flask import Flask

from shared.app import create_service_app
from shared.config import Settings
from shared.logging import configure_logging
from tests.conftest import make_settings


@pytest.fixture
def settings(tmp_path) -> Settings:
    return make_settings(tmp_path / "var")


@pytest.fixture
def make_app(tmp_path) -> Callable[..., Flask]:
    """Build a public service app on the shared factory (no database), with extra env overrides."""

    def build(name: str = "unit", **env: str) -> Flask:
        app = create_service_app(name, make_settings(tmp_path / "var", **env), public=True)
        app.config["TESTING"] = True
        return app

    return build


class LogCapture:
    """The JSON lines the configured root handler wrote, parsed."""

    def __init__(self, stream: io.StringIO):
        self.stream = stream

    @property
    def text(self) -> str:
        return self.stream.getvalue()

    @property
    def records(self) -> list[dict]:
        return [json.loads(line) for line in self.text.splitlines() if line.strip()]

    def clear(self) -> None:
        self.stream.seek(0)
        self.stream.truncate()


@pytest.fixture
def json_log() -> Iterator[Callable[..., LogCapture]]:
    """Configure logging as a service does (`configure_logging`) and capture what it writes.

    The root logger is restored afterwards, so one test's handler never outlives it.
    """
    root = logging.getLogger()
    saved_handlers, saved_level = list(root.handlers), root.level

    def configure(service: str = "unit", secrets=(), level: str = "DEBUG") -> LogCapture:
        configure_logging(service, level, secrets)
        handler = next(h for h in root.handlers if getattr(h, "_keylm", False))
        stream = io.StringIO()
        handler.setStream(stream)
        return LogCapture(stream)

    yield configure
    root.handlers[:] = saved_handlers
    root.setLevel(saved_level)


BASE64URL = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"


def flip_high_bit(digit: str) -> str:
    """Another base64url digit that decodes differently even in a token's last, padded position."""
    return BASE64URL[BASE64URL.index(digit) ^ 0b100000]


class FakeClock:
    """A settable time.time() stand-in."""

    def __init__(self, now: float = 1_800_000_000.0):
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def secret() -> str:
    return secrets.token_hex(32)
