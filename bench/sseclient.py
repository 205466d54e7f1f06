"""A minimal HTTP/1.1 SSE client on raw (gevent) sockets, cheap enough to hold 1,000 streams.

One new connection per stream, like a browser's fetch() of a message. The clock starts just before
connect(); every event that arrives in one recv() gets that recv's timestamp.

`full` mode decodes chunked framing and parses every event (the measured streams); `light` mode
only counts delta markers and watches for an error event or the end (the background streams of
the capacity step), so the client spends little CPU on them.
"""

from __future__ import annotations

import json
import socket
import time
from dataclasses import dataclass, field

RECV_BYTES = 65536


@dataclass(frozen=True)
class Target:
    """Where a stream is requested: the gateway's message endpoint or the simulator directly."""

    kind: str  # "gateway" | "direct"
    host: str
    port: int
    headers: tuple[tuple[str, str], ...] = ()

    def request(self, path: str, body: dict) -> bytes:
        payload = json.dumps(body, separators=(",", ":")).encode()
        lines = [
            f"POST {path} HTTP/1.1",
            f"Host: {self.host}:{self.port}",
            "Accept: text/event-stream",
            "Content-Type: application/json",
            f"Content-Length: {len(payload)}",
            *(f"{name}: {value}" for name, value in self.headers),
        ]
        return ("\r\n".join(lines) + "\r\n\r\n").encode() + payload


@dataclass
class StreamResult:
    kind: str
    started: float = 0.0  # perf_counter just before connect()
    status: int | None = None
    first_delta: float | None = None  # perf_counter of the first delta's arrival
    delta_times: list[float] = field(default_factory=list)  # full mode only
    deltas: int = 0
    ended: str | None = None  # done | eof | error | http_error | exception | timeout
    error: str | None = None

    @property
    def ttfd_ms(self) -> float | None:
        return None if self.first_delta is None else (self.first_delta - self.started) * 1000

    def gaps_ms(self) -> list[float]:
        times = self.delta_times
        return [(b - a) * 1000 for a, b in zip(times, times[1:], strict=False)]

    @property
    def ok(self) -> bool:
        return self.ended == "done" and self.error is None


class _Chunked:
    """Incremental Transfer-Encoding: chunked decoder."""

    def __init__(self) -> None:
        self.buf = b""
        self.left = 0  # bytes left in the current chunk
        self.state = "size"  # size | data | crlf | end
        self.finished = False

    def feed(self, data: bytes) -> bytes:
        self.buf += data
        out = []
        while True:
            if self.state == "size":
                at = self.buf.find(b"\r\n")
                if at < 0:
                    break
                size = int(self.buf[:at].split(b";", 1)[0] or b"0", 16)
                self.buf = self.buf[at + 2 :]
                if size == 0:
                    self.state, self.finished = "end", True
                    break
                self.left, self.state = size, "data"
            elif self.state == "data":
                if not self.buf:
                    break
                piece = self.buf[: self.left]
                self.buf = self.buf[len(piece) :]
                self.left -= len(piece)
                out.append(piece)
                if self.left == 0:
                    self.state = "crlf"
            elif self.state == "crlf":
                if len(self.buf) < 2:
                    break
                self.buf = self.buf[2:]
                self.state = "size"
            else:
                break
        return b"".join(out)


def _classify_gateway(block: bytes) -> str | None:
    for line in block.split(b"\n"):
        if line.startswith(b"event:"):
            return line[6:].strip().decode()
    return None


def _classify_openai(block: bytes) -> str | None:
    data = b"\n".join(line[5:].strip() for line in block.split(b"\n") if line.startswith(b"data:"))
    if not data:
        return None
    if data == b"[DONE]":
        return "done"
    obj = json.loads(data)
    if obj.get("error"):
        return "error"
    choices = obj.get("choices") or []
    if choices and (choices[0].get("delta") or {}).get("content"):
        return "delta"
    return None


def stream(
    target: Target,
    path: str,
    body: dict,
    *,
    light: bool = False,
    timeout: float = 60.0,
    result: StreamResult | None = None,
) -> StreamResult:
    """Open one stream and read it to its end (or until the calling greenlet is killed)."""
    result = result or StreamResult(kind=target.kind)
    request = target.request(path, body)
    classify = _classify_gateway if target.kind == "gateway" else _classify_openai
    result.started = time.perf_counter()
    sock = None
    try:
        sock = socket.create_connection((target.host, target.port), timeout=timeout)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.sendall(request)
        head = b""
        while b"\r\n\r\n" not in head:
            data = sock.recv(RECV_BYTES)
            if not data:
                result.ended, result.error = "eof", "connection closed before the headers"
                return result
            head += data
        header_bytes, rest = head.split(b"\r\n\r\n", 1)
        lines = header_bytes.decode("latin-1").split("\r\n")
        result.status = int(lines[0].split()[1])
        headers = {k.strip().lower(): v.strip() for k, _, v in (ln.partition(":") for ln in lines[1:])}
        chunked = "chunked" in headers.get("transfer-encoding", "").lower()
        if result.status != 200:
            length = int(headers.get("content-length", "0") or 0)
            while len(rest) < length:
                data = sock.recv(RECV_BYTES)
                if not data:
                    break
                rest += data
            text = _Chunked().feed(rest) if chunked else rest
            result.ended, result.error = "http_error", f"HTTP {result.status}: {text[:300]!r}"
            return result
        if light:
            _read_light(sock, rest, result)
        else:
            _read_full(sock, rest, chunked, classify, result)
        return result
    except TimeoutError:
        result.ended, result.error = "timeout", f"no data for {timeout:.0f}s"
        return result
    except OSError as exc:
        result.ended, result.error = "exception", f"{type(exc).__name__}: {exc}"
        return result
    finally:
        if sock is not None:
            sock.close()


def _read_full(sock, rest: bytes, chunked: bool, classify, result: StreamResult) -> None:
    decoder = _Chunked() if chunked else None
    pending = b""
    data = rest
    while True:
        now = time.perf_counter()
        if data:
            pending += decoder.feed(data) if decoder else data
            if b"\r" in pending:
                pending = pending.replace(b"\r\n", b"\n")
            while b"\n\n" in pending:
                block, pending = pending.split(b"\n\n", 1)
                kind = classify(block)
                if kind == "delta":
                    if result.first_delta is None:
                        result.first_delta = now
                    result.deltas += 1
                    result.delta_times.append(now)
                elif kind == "error":
                    result.ended, result.error = "error", block[:300].decode("utf-8", "replace")
                    return
                elif kind == "done":
                    result.ended = "done"
                    return
        if decoder is not None and decoder.finished:
            result.ended, result.error = "eof", "body ended without a done event"
            return
        data = sock.recv(RECV_BYTES)
        if not data:
            result.ended, result.error = "eof", "connection closed without a done event"
            return


_DELTA, _ERROR, _DONE = b"event: delta", b"event: error", b"event: done"


def _read_light(sock, rest: bytes, result: StreamResult) -> None:
    """Count deltas, stop at an error/done event or the end; gateway streams only."""
    tail = b""
    data = rest
    while True:
        if data:
            window = tail + data
            count = window.count(_DELTA) - tail.count(_DELTA)
            if count:
                if result.first_delta is None:
                    result.first_delta = time.perf_counter()
                result.deltas += count
            if _ERROR in window:
                at = window.index(_ERROR)
                result.ended, result.error = "error", window[at : at + 300].decode("utf-8", "replace")
                return
            if _DONE in window:
                result.ended = "done"
                return
            if window.endswith(b"\r\n0\r\n\r\n"):
                result.ended, result.error = "eof", "body ended without a done event"
                return
            tail = window[-16:]
        data = sock.recv(RECV_BYTES)
        if not data:
            result.ended, result.error = "eof", "connection closed without a done event"
            return
