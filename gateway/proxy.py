"""Forwarding to the services: a whitelist of headers each way, and unbuffered SSE pass-through."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from urllib.parse import quote

import requests
from flask import Response, g, request, stream_with_context

from gateway.sessions import Identity
from shared.http import ServiceClient, error_from_response
from shared.metrics import OPEN_STREAMS
from shared.sse import PING, PING_BYTES, iter_arriving, pump
from shared.tokens import CLEAR_SESSION_HEADER, SET_SESSION_HEADER
from shared.web import get_settings

logger = logging.getLogger(__name__)

# Only these travel from the browser to a service. Anything else (X-User-Id, X-KeyLM-Internal,
# Cookie, ...) is dropped: a service learns who is calling from the signed credential alone.
FORWARDED_REQUEST_HEADERS = ("Content-Type", "Accept", "Last-Event-ID")
FORWARDED_RESPONSE_HEADERS = ("Content-Type", "Cache-Control", "X-Accel-Buffering", "Retry-After")
# Characters a path segment may hold unescaped (RFC 3986 pchar, and the `/` between segments).
PATH_SAFE = "/:@!$&'()*+,;="
# Longer than any provider call a service may make on the caller's behalf (key validation).
PROXY_READ_TIMEOUT = 90.0


def forward(client: ServiceClient, service: str, identity: Identity | None) -> Response:
    """Send this request to `service` as the given user and relay the answer."""
    headers = {name: request.headers[name] for name in FORWARDED_REQUEST_HEADERS if name in request.headers}
    path = forwarded_path()
    upstream = client.request(
        service,
        request.method,
        path,
        user_id=identity.user_id if identity else None,
        session_id=identity.session_id if identity else None,
        data=request.get_data(),
        extra_headers=headers,
        stream=True,
        read_timeout=PROXY_READ_TIMEOUT,
    )
    if upstream.status_code >= 500 and not _is_json(upstream):
        upstream.close()
        raise error_from_response(upstream.status_code, None, service)
    if upstream.headers.get("Content-Type", "").startswith("text/event-stream"):
        response = Response(stream_with_context(_relay(upstream)), status=upstream.status_code)
    else:
        response = Response(upstream.content, status=upstream.status_code)
        upstream.close()
    for name in FORWARDED_RESPONSE_HEADERS:
        if name in upstream.headers:
            response.headers[name] = upstream.headers[name]
    _apply_session_headers(upstream, response)
    return response


def forwarded_path() -> str:
    """The path to ask the service for, encoded again (werkzeug decoded it: a `%23`, `%3F` or `%25`
    inside an id must not reach the service as a fragment, a query or an escape), and the query."""
    path = quote(request.path, safe=PATH_SAFE)
    if request.query_string:
        path += "?" + request.query_string.decode()
    return path


def _is_json(upstream: requests.Response) -> bool:
    return upstream.headers.get("Content-Type", "").startswith("application/json")


def _relay(upstream: requests.Response) -> Iterator[bytes]:
    """Pass SSE bytes on as they arrive; pings while silent, so a client that left is noticed."""
    at_event_boundary = True
    OPEN_STREAMS.labels("gateway").inc()
    try:
        chunks = iter_arriving(upstream)
        # chat_service pings once per interval while the provider is silent, and those pings pass
        # through; the gateway adds its own only when chat itself goes quiet, so a client gets one
        # ping per interval, not two.
        idle_seconds = 2 * get_settings().sse_idle_ping_seconds
        for chunk in pump(chunks, idle_seconds, close=upstream.close):
            if chunk is PING:
                # A comment may only go between events, never inside a half-relayed one.
                if at_event_boundary:
                    yield PING_BYTES
                continue
            at_event_boundary = chunk.endswith(b"\n\n")
            yield chunk
    except requests.RequestException as exc:
        logger.warning("stream from upstream broke: %s", type(exc).__name__)
    finally:
        OPEN_STREAMS.labels("gateway").dec()
        logger.info("stream closed", extra={"request_id": g.get("request_id")})


def _apply_session_headers(upstream: requests.Response, response: Response) -> None:
    settings = get_settings()
    token = upstream.headers.get(SET_SESSION_HEADER)
    if token:
        response.set_cookie(
            settings.session_cookie_name,
            token,
            max_age=settings.session_ttl_hours * 3600,
            httponly=True,
            samesite="Lax",
            secure=settings.cookie_secure,
            path="/",
        )
    if upstream.headers.get(CLEAR_SESSION_HEADER):
        clear_session_cookie(response)


def clear_session_cookie(response: Response) -> None:
    settings = get_settings()
    response.delete_cookie(
        settings.session_cookie_name, path="/", httponly=True, samesite="Lax", secure=settings.cookie_secure
    )
