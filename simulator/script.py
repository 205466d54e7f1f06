"""What a simulated chat does: directives in the prompt, the reply text, and the paced stream."""

from __future__ import annotations

import json
import re
import select
import socket
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from simulator.state import RequestRecord

DEFAULT_DELAY = 0.005
LONG_WAIT = 600.0  # "hang" lasts until the client leaves, at most ten minutes
_POLL = 0.1

# chunked: Transfer-Encoding: chunked (what a server does by default); close: no length and no
# chunks, the body ends when the server closes the connection; length: a Content-Length header.
FRAMINGS = ("chunked", "close", "length")
_DIRECTIVE = re.compile(r"\[\[sim:([a-z0-9_]+)(?:=(.*?))?\]\]", re.S)
_TOKEN = re.compile(r"\s*\S+|\s+$")


@dataclass
class Conversation:
    """A chat request, normalised across providers."""

    model: str
    system: str | None
    messages: list[tuple[str, str]]  # (role, text), roles "user" / "assistant"
    settings: dict[str, Any] = field(default_factory=dict)  # as the provider received them
    max_tokens: int | None = None

    @property
    def last_user_text(self) -> str:
        """The text of the last user message (where directives are read)."""
        return next((text for role, text in reversed(self.messages) if role == "user"), "")

    @property
    def prompt_tokens(self) -> int:
        """A deterministic stand-in for a tokenizer: the number of words sent."""
        texts = [self.system or ""] + [text for _, text in self.messages]
        return sum(len(text.split()) for text in texts)


@dataclass
class Plan:
    """Behaviour chosen by `[[sim:...]]` directives in the last user message."""

    delay: float = DEFAULT_DELAY
    tokens: int | None = None
    fail_before: bool = False
    fail_mid: int | None = None  # error after this many tokens
    cut: int | None = None  # close without terminator after this many tokens
    hang: float | None = None  # seconds of silence after the headers
    hang_before: float | None = None  # seconds of silence before the headers
    rate_limit: bool = False
    echo: bool = False
    thoughts: bool = False
    text: str | None = None
    framing: str = "chunked"  # how the body's end is marked: chunked | close | length


def _seconds(value: str | None, default: float) -> float:
    return float(value) / 1000.0 if value else default


def parse_plan(text: str) -> Plan:
    """Read the directives in a user message; unknown ones are ignored."""
    plan = Plan()
    for name, value in _DIRECTIVE.findall(text):
        if name == "delay":
            plan.delay = _seconds(value, DEFAULT_DELAY)
        elif name == "tokens" and value:
            plan.tokens = max(int(value), 0)
        elif name == "fail_before":
            plan.fail_before = True
        elif name == "fail_mid":
            plan.fail_mid = int(value) if value else -1
        elif name == "cut":
            plan.cut = int(value) if value else -1
        elif name == "hang":
            plan.hang = _seconds(value, LONG_WAIT)
        elif name == "hang_before":
            plan.hang_before = _seconds(value, LONG_WAIT)
        elif name == "429":
            plan.rate_limit = True
        elif name == "echo":
            plan.echo = True
        elif name == "thoughts":
            plan.thoughts = True
        elif name == "text":
            plan.text = (value or "").replace("\\n", "\n")
        elif name == "framing" and value in FRAMINGS:
            plan.framing = value
    return plan


def strip_directives(text: str) -> str:
    """The message without its `[[sim:...]]` directives."""
    return " ".join(_DIRECTIVE.sub(" ", text).split())


def reply_text(label: str, conversation: Conversation, plan: Plan) -> str:
    """The assistant's answer: exact text, an echo of the request, or a greeting."""
    if plan.text is not None:
        return plan.text
    if plan.echo:
        return json.dumps(
            {
                "model": conversation.model,
                "system": conversation.system,
                "messages": [list(m) for m in conversation.messages],
                "settings": conversation.settings,
            },
            ensure_ascii=False,
        )
    said = strip_directives(conversation.last_user_text)
    return f"Hello from the {label} simulator. You said: {said}"


def split_tokens(text: str, count: int | None = None) -> list[str]:
    """Word-sized tokens whose concatenation is the text; `count` repeats or cuts them."""
    tokens = _TOKEN.findall(text)
    if count is None:
        return tokens
    if not tokens:
        tokens = [" word"]
    return [tokens[i % len(tokens)] for i in range(count)]


@dataclass
class Reply:
    """A planned answer: its tokens, whether max_tokens cut it, and its usage."""

    tokens: list[str]
    truncated: bool
    prompt_tokens: int

    @classmethod
    def build(cls, label: str, conversation: Conversation, plan: Plan) -> Reply:
        """Plan the tokens for one chat, honouring the request's max_tokens."""
        tokens = split_tokens(reply_text(label, conversation, plan), plan.tokens)
        truncated = conversation.max_tokens is not None and len(tokens) > conversation.max_tokens
        if truncated:
            tokens = tokens[: conversation.max_tokens]
        return cls(tokens, truncated, conversation.prompt_tokens)


def client_gone(environ: dict[str, Any]) -> bool:
    """True once the client closed its socket (gunicorn exposes it; other servers do not)."""
    sock = environ.get("gunicorn.socket")
    if sock is None:
        return False
    try:
        readable, _, _ = select.select([sock], [], [], 0)
        return bool(readable) and sock.recv(1, socket.MSG_PEEK) == b""
    except (OSError, ValueError):
        return True


def wait_for(seconds: float, environ: dict[str, Any]) -> bool:
    """Sleep up to `seconds`; False as soon as the client has gone."""
    deadline = time.monotonic() + seconds
    while (left := deadline - time.monotonic()) > 0:
        if client_gone(environ):
            return False
        time.sleep(min(_POLL, left))
    return not client_gone(environ)


def _split_multibyte(frame: bytes) -> list[bytes]:
    # Real streams split UTF-8 characters across TCP writes; do it on purpose.
    for i, byte in enumerate(frame):
        if byte >= 0xC0:
            return [frame[: i + 1], frame[i + 1 :]]
    return [frame]


@dataclass
class StreamScript:
    """Provider framing for one stream; the runner paces it and records the outcome."""

    head: list[bytes]
    token: Callable[[int, str, bool], bytes]  # (index, text, is_last) -> frame
    tail: list[bytes]
    mid_error: bytes


@dataclass(frozen=True)
class Frame:
    """One write of a stream; a token frame is paced (and counted) as the model's output."""

    data: bytes
    is_token: bool = False


def planned_frames(script: StreamScript, reply: Reply, plan: Plan) -> tuple[list[Frame], str]:
    """Every frame of the stream, in order, and its outcome: completed or failed."""
    frames = [Frame(data) for data in script.head]
    count = len(reply.tokens)
    stop_at = {plan.fail_mid, plan.cut} - {None}
    for index, text in enumerate(reply.tokens):
        if index in stop_at or (-1 in stop_at and index == max(count // 2, 1)):
            break
        frames.append(Frame(script.token(index, text, index == count - 1), is_token=True))
    if plan.fail_mid is not None:
        return [*frames, Frame(script.mid_error)], "failed"
    if plan.cut is not None:
        return frames, "failed"  # the body just ends: no terminator, no usage
    return [*frames, *(Frame(data) for data in script.tail)], "completed"


def run_stream(
    frames: list[Frame], outcome: str, plan: Plan, record: RequestRecord, environ: dict[str, Any]
) -> Iterator[bytes]:
    """Yield the frames with a pause per token; note completed, client_closed or failed."""
    try:
        yield b""  # headers go out now
        if plan.hang is not None:
            if wait_for(plan.hang, environ):
                record.finish("failed")
            return
        for frame in frames:
            if not frame.is_token:
                yield frame.data
                continue
            if not wait_for(plan.delay, environ):
                return
            yield from _split_multibyte(frame.data)
            record.tokens_sent += 1
        record.finish(outcome)
    except Exception:
        record.finish("failed")
        raise
    finally:
        record.finish("client_closed")
