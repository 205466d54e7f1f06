"""Server-sent events: framing, and a pump that keeps writing while the source is silent.

A client that leaves is only noticed on the next write (the WSGI server learns of a closed socket
when a write to it fails), so while a provider is silent we write an SSE comment every
`idle_seconds`; the write fails, the generator is closed, and its `finally` closes the upstream
request.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

import gevent
import gevent.queue
import requests
import urllib3

T = TypeVar("T")

PING = object()  # yielded by `pump` when the source was silent for `idle_seconds`
PING_BYTES = b": ping\n\n"
SSE_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}


def iter_arriving(response: requests.Response, size: int = 64 * 1024) -> Iterator[bytes]:
    """A streamed response's body, each piece as soon as it arrives, whatever its framing.

    `iter_content` reads a body that has neither a length nor chunks (one that ends when the
    server closes the connection) to its very end before it returns anything; `read1` returns what
    one read of the socket brings. Errors come out as `requests`' own, as from `iter_content`."""
    raw = response.raw
    try:
        while chunk := raw.read1(size, decode_content=True):
            yield chunk
    except urllib3.exceptions.ReadTimeoutError as exc:
        raise requests.exceptions.ReadTimeout(exc) from exc
    except urllib3.exceptions.DecodeError as exc:
        raise requests.exceptions.ContentDecodingError(exc) from exc
    except (urllib3.exceptions.ProtocolError, urllib3.exceptions.SSLError) as exc:
        raise requests.exceptions.ChunkedEncodingError(exc) from exc


def sse_event(name: str, data: Any) -> bytes:
    """One `event:` + `data:` frame; the JSON is compact and on a single line."""
    payload = json.dumps(data, separators=(",", ":"), ensure_ascii=False)
    return f"event: {name}\ndata: {payload}\n\n".encode()


class _End:
    def __init__(self, error: BaseException | None = None):
        self.error = error


def pump(
    source: Iterator[T], idle_seconds: float, close: Callable[[], None] | None = None
) -> Iterator[T | object]:
    """Yield the source's items as they come, and PING whenever it is silent for idle_seconds.

    On exit (end, error, or the consumer closing us) the reader greenlet is killed first, then
    `close` runs: closing a response while another greenlet reads it raises a reentrant-call error.
    """
    queue: gevent.queue.Queue = gevent.queue.Queue()

    def read() -> None:
        try:
            for item in source:
                queue.put(item)
            queue.put(_End())
        except gevent.GreenletExit:
            raise
        except BaseException as exc:  # handed to the consumer, which re-raises it
            queue.put(_End(exc))

    reader = gevent.spawn(read)
    try:
        while True:
            try:
                item = queue.get(timeout=idle_seconds)
            except gevent.queue.Empty:
                yield PING
                continue
            if isinstance(item, _End):
                if item.error is not None:
                    raise item.error
                return
            yield item
    finally:
        reader.kill(block=True)
        if close is not None:
            close()
