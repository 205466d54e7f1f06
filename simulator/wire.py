"""Wire helpers shared by the simulated providers: ids, JSON bodies, SSE frames, key gating."""

from __future__ import annotations

import base64
import contextlib
import json
import random
import socket
import string
import uuid
from collections.abc import Iterator
from typing import Any

from flask import Response, current_app, request, stream_with_context
from gunicorn.workers.base_async import ALREADY_HANDLED

from simulator.script import Plan, Reply, StreamScript, planned_frames, run_stream
from simulator.state import RequestRecord, SimState

_BASE62 = string.ascii_letters + string.digits


def state() -> SimState:
    """The app's SimState."""
    return current_app.extensions["sim"]


def rand(alphabet: str, length: int) -> str:
    """A random id part (ids need not be secure here)."""
    return "".join(random.choice(alphabet) for _ in range(length))


def openai_id() -> str:
    """chatcmpl- plus 29 base62 characters."""
    return "chatcmpl-" + rand(_BASE62, 29)


def groq_ids() -> tuple[str, str]:
    """(message id, request id) in Groq's formats."""
    return f"chatcmpl-{uuid.uuid4()}", "req_" + rand("0123456789abcdefghjkmnpqrstvwxyz", 26)


def anthropic_id(prefix: str = "msg_01") -> str:
    """msg_01 (or another prefix) plus 22 base62 characters."""
    return prefix + rand(_BASE62, 22)


def gemini_response_id() -> str:
    """A ~23 character base64url responseId."""
    return base64.urlsafe_b64encode(random.randbytes(17)).decode().rstrip("=")


def json_body(
    payload: Any,
    status: int,
    *,
    indent: int | None = None,
    newline: bool = False,
    content_type: str = "application/json",
    headers: dict[str, str] | None = None,
) -> Response:
    """A JSON response serialised the way the provider does (pretty or compact)."""
    separators = None if indent else (",", ":")
    text = json.dumps(payload, indent=indent, separators=separators, ensure_ascii=False)
    return Response(
        text + ("\n" if newline else ""), status=status, content_type=content_type, headers=headers
    )


def sse(payload: Any, *, event: str | None = None, crlf: bool = False, pad: int = 0) -> bytes:
    """One SSE frame; `pad` adds the spaces live Anthropic streams put before the last brace."""
    data = (
        payload
        if isinstance(payload, str)
        else json.dumps(payload, separators=(",", ":"), ensure_ascii=False)
    )
    if pad and data.endswith("}"):
        data = data[:-1] + " " * pad + "}"
    end = "\r\n" if crlf else "\n"
    head = f"event: {event}{end}" if event else ""
    return f"{head}data: {data}{end}{end}".encode()


def gate(provider: str, api_key: str | None) -> str | None:
    """The failure a key or the runtime state forces on every endpoint, if any."""
    sim = state()
    if provider in sim.down:
        return "down"
    if not api_key:
        return "missing_key"
    if "invalid" in api_key or sim.is_revoked(api_key):
        return "invalid_key"
    if "down" in api_key:
        return "down"
    if "ratelimit" in api_key:
        return "rate_limit"
    return None


def begin(provider: str, api_key: str | None, kind: str) -> RequestRecord:
    """Log the current request."""
    return state().record(provider, request.method, request.path, api_key, kind)


def stream_response(
    script: StreamScript,
    reply: Reply,
    plan: Plan,
    record: RequestRecord,
    content_type: str,
    headers: dict[str, str] | None = None,
) -> Response:
    """A 200 streaming response whose outcome is recorded under its `x-sim-stream-id`, framed as
    the plan says (`[[sim:framing=chunked|close|length]]`)."""
    stream_id = state().start_stream(record)
    record.status = 200
    frames, outcome = planned_frames(script, reply, plan)
    body: Iterator[bytes] = run_stream(frames, outcome, plan, record, request.environ)
    response = Response(stream_with_context(body), status=200, content_type=content_type)
    response.headers.update(headers or {})
    response.headers["x-sim-stream-id"] = stream_id
    response.headers["Cache-Control"] = "no-cache"
    if plan.framing == "length":
        response.headers["Content-Length"] = str(sum(len(frame.data) for frame in frames))
    elif plan.framing == "close":
        response.headers[CLOSE_DELIMITED_HEADER] = "1"
    return response


CLOSE_DELIMITED_HEADER = "X-Sim-Close-Delimited"


class CloseDelimitedResponses:
    """WSGI middleware for `[[sim:framing=close]]`. gunicorn frames every HTTP/1.1 body itself
    (chunked, or by Content-Length), yet a body that simply ends when the server closes the
    connection is valid HTTP, and proxies and self-hosted servers send it. A response marked with
    CLOSE_DELIMITED_HEADER is written to the client's socket by hand, which is then shut down."""

    def __init__(self, app: Any):
        self.app = app

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
        sock = environ.get("gunicorn.socket")
        captured: list[Any] = []

        def capture(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
            captured[:] = [status, headers]
            if sock is None or not _is_close_delimited(headers):
                return start_response(status, headers, exc_info)
            return lambda _data: None

        body = self.app(environ, capture)
        if sock is None or not captured or not _is_close_delimited(captured[1]):
            return body
        status, headers = captured
        skipped = {"content-length", "transfer-encoding", "connection", CLOSE_DELIMITED_HEADER.lower()}
        head = f"HTTP/1.1 {status}\r\n" + "".join(
            f"{name}: {value}\r\n" for name, value in headers if name.lower() not in skipped
        )
        try:
            sock.sendall((head + "Connection: close\r\n\r\n").encode("latin-1"))
            for piece in body:
                if piece:
                    sock.sendall(piece)
        except OSError:
            pass  # the client left
        finally:
            if hasattr(body, "close"):
                body.close()
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)  # the end of the body
        return ALREADY_HANDLED


def _is_close_delimited(headers: list[tuple[str, str]]) -> bool:
    return any(name.lower() == CLOSE_DELIMITED_HEADER.lower() for name, _ in headers)
