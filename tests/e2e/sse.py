"""Test helpers for the message stream, test keys and the provider simulator."""

from __future__ import annotations

import hashlib
import json
import secrets
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass

import requests

from shared.providers.registry import SPECS

# From the provider registry: a chat model of each provider that the simulator lists, and a
# prefix each provider's keys really start with.
BYOK_MODELS = {spec.id: spec.sample_model for spec in SPECS.values()}
KEY_PREFIX = {spec.id: spec.test_key_prefix for spec in SPECS.values()}


def new_key(provider: str, tag: str = "e2e") -> str:
    """A fresh, provider-shaped test key (unique, so the simulator's log can be filtered by it)."""
    return KEY_PREFIX[provider] + tag + secrets.token_hex(16)


@dataclass
class Event:
    name: str
    data: dict


def iter_events(response: requests.Response) -> Iterator[Event | str]:
    """Parse an SSE response as it arrives: Event objects, and the string "ping" for comments."""
    name, data = None, []
    for raw in response.iter_lines(chunk_size=1):
        line = raw.decode("utf-8")
        if line.startswith(":"):
            yield "ping"
        elif line.startswith("event:"):
            name = line.split(":", 1)[1].strip()
        elif line.startswith("data:"):
            data.append(line.split(":", 1)[1].strip())
        elif line == "" and name:
            yield Event(name, json.loads("\n".join(data)))
            name, data = None, []


def read_events(response: requests.Response) -> list[Event]:
    assert response.status_code == 200, response.text
    assert response.headers["Content-Type"].startswith("text/event-stream")
    return [e for e in iter_events(response) if isinstance(e, Event)]


def send(client, thread_id: str, content: str, request_id: str | None = None) -> requests.Response:
    return client.post(
        f"/api/threads/{thread_id}/messages",
        json={"content": content, "clientRequestId": request_id or uuid.uuid4().hex},
        stream=True,
    )


def key_digest(api_key: str) -> str:
    """How the simulator logs a key (never the key itself)."""
    return hashlib.sha256(api_key.encode()).hexdigest()[:16]


class Simulator:
    """The provider simulator's control endpoints."""

    def __init__(self, url: str):
        self.url = url

    def requests(self, api_key: str | None = None, provider: str | None = None) -> list[dict]:
        params = {"provider": provider} if provider else {}
        records = requests.get(f"{self.url}/_sim/requests", params=params, timeout=5).json()["requests"]
        if api_key:
            records = [r for r in records if r["key_sha256"] == key_digest(api_key)]
        return records

    def chat_calls(self, api_key: str) -> list[dict]:
        chat_paths = ("/chat/completions", "/messages", ":streamGenerateContent")
        return [r for r in self.requests(api_key) if r["path"].endswith(chat_paths)]

    def set_down(self, provider: str, down: bool) -> None:
        requests.post(
            f"{self.url}/_sim/providers/{provider}/down", json={"down": down}, timeout=5
        ).raise_for_status()

    def revoke(self, api_key: str) -> None:
        requests.post(f"{self.url}/_sim/keys/revoke", json={"key": api_key}, timeout=5).raise_for_status()

    def wait_for_stream_state(self, api_key: str, state: str, timeout: float = 5.0) -> dict:
        deadline = time.monotonic() + timeout
        while True:
            streams = [r for r in self.requests(api_key) if r["stream_id"]]
            if streams and streams[-1]["state"] == state:
                return streams[-1]
            if time.monotonic() > deadline:
                raise AssertionError(f"stream never reached {state}: {streams[-1:]}")
            time.sleep(0.05)
