"""Types, errors, the adapter interface and the SSE reader shared by the provider adapters."""

from __future__ import annotations

import abc
import email.utils
import enum
import json
import re
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import requests
import urllib3

from shared.redaction import MASK, mask_secret_shapes
from shared.sse import iter_arriving

_ERROR_BODY_LIMIT = 64 * 1024
_LINE_LIMIT = 8 * 1024 * 1024
_MESSAGE_LIMIT = 500


def redact(text: str, secret: str | None = None) -> str:
    """Return text with the given secret and anything key-shaped masked, cut to a sane length."""
    if secret:
        text = text.replace(secret, MASK)
    return mask_secret_shapes(text)[:_MESSAGE_LIMIT]


# --- value types ---------------------------------------------------------------------------


@dataclass(frozen=True)
class ChatMessage:
    role: str  # "user" | "assistant"
    content: str


@dataclass(frozen=True)
class ChatSettings:
    temperature: float | None = None
    max_tokens: int | None = None
    top_p: float | None = None


@dataclass(frozen=True)
class ModelInfo:
    id: str
    display_name: str
    context_window: int | None = None

    def to_dict(self) -> dict[str, Any]:
        """Return the API shape: {"id", "displayName", "contextWindow"}."""
        return {"id": self.id, "displayName": self.display_name, "contextWindow": self.context_window}


@dataclass(frozen=True)
class TextDelta:
    text: str


@dataclass(frozen=True)
class Usage:
    prompt_tokens: int | None
    output_tokens: int | None
    total_tokens: int | None


@dataclass(frozen=True)
class Done:
    provider_message_id: str | None
    finish_reason: str  # stop | length | filtered | tool | other
    model: str | None


StreamEvent = TextDelta | Usage | Done
DEFAULT_SETTINGS = ChatSettings()


class KeyCheck(enum.Enum):
    VALID = "valid"
    INVALID = "invalid"
    UNAVAILABLE = "unavailable"


_FINISH_REASONS = {
    "stop": "stop",
    "end_turn": "stop",
    "stop_sequence": "stop",
    "STOP": "stop",
    "length": "length",
    "max_tokens": "length",
    "MAX_TOKENS": "length",
    "model_context_window_exceeded": "length",
    "content_filter": "filtered",
    "refusal": "filtered",
    "SAFETY": "filtered",
    "RECITATION": "filtered",
    "BLOCKLIST": "filtered",
    "PROHIBITED_CONTENT": "filtered",
    "SPII": "filtered",
    "IMAGE_SAFETY": "filtered",
    "tool_calls": "tool",
    "tool_use": "tool",
    "function_call": "tool",
}


def normalize_finish_reason(reason: str | None) -> str:
    """Map a provider stop reason to stop | length | filtered | tool | other."""
    return _FINISH_REASONS.get(reason or "", "other")


# --- errors --------------------------------------------------------------------------------


class ProviderError(Exception):
    """A failed provider call; `message` is safe to show and never holds the API key."""

    code = "provider_error"
    retryable = False

    def __init__(
        self,
        message: str,
        *,
        provider: str | None = None,
        status: int | None = None,
        code: str | None = None,
        retryable: bool | None = None,
    ):
        self.message = redact(message or "The provider request failed.")
        self.provider = provider
        self.status = status
        if code is not None:
            self.code = code
        if retryable is not None:
            self.retryable = retryable
        super().__init__(self.message)

    def scrub(self, secret: str | None) -> ProviderError:
        """Mask one exact secret in the message (used with the key of the failing call)."""
        self.message = redact(self.message, secret)
        self.args = (self.message,)
        return self

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(provider={self.provider!r}, status={self.status!r}, "
            f"code={self.code!r}, message={self.message!r})"
        )


class AuthFailed(ProviderError):
    """The provider rejected the key (wrong, revoked, expired, leaked)."""

    code = "auth_failed"


class PermissionDenied(AuthFailed):
    """The key authenticated but may not use this API/resource (project disabled, missing scope)."""

    code = "permission_denied"


class RateLimited(ProviderError):
    """Rate or quota limit; `out_of_credit` marks billing exhaustion (retrying will not help)."""

    code = "rate_limited"
    retryable = True

    def __init__(
        self, message: str, *, retry_after: float | None = None, out_of_credit: bool = False, **kwargs: Any
    ):
        if out_of_credit:
            kwargs.setdefault("code", "out_of_credit")
            kwargs.setdefault("retryable", False)
        super().__init__(message, **kwargs)
        self.retry_after = retry_after
        self.out_of_credit = out_of_credit


class ModelUnavailable(ProviderError):
    """The model does not exist, was decommissioned, or this key cannot use it."""

    code = "model_unavailable"


class BadRequest(ProviderError):
    """The provider refused the request as malformed; retrying the same request will not help."""

    code = "bad_request"


class UpstreamError(ProviderError):
    """5xx, overload, a mid-stream error event, or a malformed or truncated stream."""

    code = "upstream_error"
    retryable = True


class UpstreamTimeout(ProviderError):
    """Connect or read timeout, or the provider could not be reached at all."""

    code = "upstream_timeout"
    retryable = True


def parse_retry_after(headers: Any) -> float | None:
    """Seconds to wait from `retry-after-ms` or `retry-after` (seconds or HTTP date)."""
    if not headers:
        return None
    value = headers.get("retry-after-ms")
    if value:
        try:
            return max(float(value) / 1000.0, 0.0)
        except ValueError:
            pass
    value = headers.get("retry-after")
    if not value:
        return None
    try:
        return max(float(value), 0.0)
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(when.timestamp() - time.time(), 0.0)


_DURATION = re.compile(r"(?:(\d+)h)?(?:(\d+)m(?!s))?(?:(\d+(?:\.\d+)?)s)?(?:(\d+(?:\.\d+)?)ms)?$")


def parse_duration(text: str | None) -> float | None:
    """Seconds in a Go/protobuf duration such as "47s", "34.4s", "9m38.016s" or "120ms"."""
    match = _DURATION.match((text or "").strip())
    if not match or not any(match.groups()):
        return None
    hours, minutes, seconds, millis = match.groups()
    return int(hours or 0) * 3600 + int(minutes or 0) * 60 + float(seconds or 0) + float(millis or 0) / 1000.0


_TRY_AGAIN = re.compile(r"try again in ([0-9hms.]+)")


def retry_after_from_message(message: str) -> float | None:
    """Seconds quoted in a "Please try again in 9m38.016s" message (Groq, OpenAI)."""
    match = _TRY_AGAIN.search(message or "")
    return parse_duration(match.group(1).rstrip(".")) if match else None


# --- server-sent events ----------------------------------------------------------------------


@dataclass(frozen=True)
class SSEEvent:
    event: str | None
    data: str


@dataclass(frozen=True)
class RawDocument:
    """A bare JSON document outside any `data:` line (Gemini sends mid-stream errors this way)."""

    payload: Any


def iter_sse(chunks: Iterable[bytes]) -> Iterator[SSEEvent | RawDocument]:
    """Parse SSE from raw byte chunks: LF/CRLF lines, comments, multi-line data, dispatch at EOF."""
    buffer = bytearray()
    event: str | None = None
    data: list[str] = []
    raw: list[str] = []
    first = True

    def handle(line: str) -> Iterator[SSEEvent | RawDocument]:
        nonlocal event, data, raw
        if raw or line.startswith("{"):
            if data and not raw:  # a bare document also ends the event before it
                yield SSEEvent(event, "\n".join(data))
                event, data = None, []
            raw.append(line)
            if sum(map(len, raw)) > _LINE_LIMIT:
                raise UpstreamError("The provider sent an unreadable stream.")
            if not line.rstrip().endswith("}"):
                return  # a document can only be complete on a closing-brace line
            try:
                payload = json.loads("\n".join(raw))
            except ValueError:
                return
            raw = []
            yield RawDocument(payload)
            return
        if not line:
            if data:
                yield SSEEvent(event, "\n".join(data))
            event, data = None, []
            return
        if line.startswith(":"):
            return
        name, _, value = line.partition(":")
        if value.startswith(" "):
            value = value[1:]
        if name == "data":
            data.append(value)
        elif name == "event":
            event = value

    for chunk in chunks:
        if not chunk:
            continue
        buffer += chunk
        start = 0
        while (end := buffer.find(b"\n", start)) != -1:
            line = bytes(buffer[start:end]).removesuffix(b"\r").decode("utf-8", errors="replace")
            if first:
                line, first = line.removeprefix("\ufeff"), False
            start = end + 1
            yield from handle(line)
        del buffer[:start]
        if len(buffer) > _LINE_LIMIT:
            raise UpstreamError("The provider sent an oversized stream line.")
    if buffer:
        yield from handle(bytes(buffer).removesuffix(b"\r").decode("utf-8", errors="replace"))
    if raw:
        raise UpstreamError("The provider stream ended inside an unreadable document.")
    yield from handle("")  # dispatch an event left without its closing blank line


def load_json(text: str) -> dict[str, Any]:
    """Parse one stream chunk as a JSON object or raise UpstreamError."""
    try:
        value = json.loads(text)
    except ValueError:
        raise UpstreamError("The provider sent a malformed stream chunk.") from None
    if not isinstance(value, dict):
        raise UpstreamError("The provider sent a malformed stream chunk.")
    return value


# --- streams and the adapter interface -------------------------------------------------------


def _is_read_timeout(exc: BaseException) -> bool:
    if isinstance(exc, requests.Timeout | urllib3.exceptions.TimeoutError):
        return True
    return any(isinstance(arg, urllib3.exceptions.TimeoutError) for arg in exc.args)


class ChatStream:
    """Iterator of TextDelta | Usage | Done from one streamed response; ends after Done."""

    def __init__(
        self,
        response: requests.Response,
        events: Iterator[StreamEvent],
        provider: str,
        redactor: Callable[[str], str] | None = None,
    ):
        self._response = response
        self._events = events
        self._redact = redactor
        self.provider = provider
        self.closed = False

    def __iter__(self) -> ChatStream:
        return self

    def __next__(self) -> StreamEvent:
        if self.closed:
            raise StopIteration
        try:
            event = next(self._events)
        except StopIteration:
            self.close()
            raise
        except ProviderError as exc:
            self.close()
            exc.provider = exc.provider or self.provider
            if self._redact:
                exc.message = self._redact(exc.message)
                exc.args = (exc.message,)
            raise
        except (requests.RequestException, urllib3.exceptions.HTTPError, OSError) as exc:
            was_closed = self.closed
            self.close()
            if was_closed:
                raise StopIteration from None
            if _is_read_timeout(exc):
                raise UpstreamTimeout(
                    "The provider stopped sending data (read timeout).", provider=self.provider
                ) from None
            raise UpstreamError("The provider connection broke mid-stream.", provider=self.provider) from None
        if isinstance(event, Done):
            self.close()
        return event

    def close(self) -> None:
        """Stop reading and close the HTTP response (and its socket) now."""
        if self.closed:
            return
        self.closed = True
        try:
            self._events.close()  # type: ignore[attr-defined]
        except (ValueError, RuntimeError):
            pass  # a generator that is executing elsewhere; closing the response stops it
        finally:
            self._response.close()

    def __enter__(self) -> ChatStream:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<ChatStream provider={self.provider} closed={self.closed}>"


class ProviderAdapter(abc.ABC):
    """One provider's HTTP API: key check, model list and streamed chat, over `requests`."""

    name: str = ""

    def __init__(
        self,
        base_url: str,
        *,
        connect_timeout: float = 5.0,
        read_timeout: float = 60.0,
        session: requests.Session | None = None,
    ):
        self.base_url = base_url.rstrip("/")
        self.connect_timeout = connect_timeout
        self.read_timeout = read_timeout
        self.session = session or requests.Session()

    def __repr__(self) -> str:
        return f"{type(self).__name__}(base_url={self.base_url!r})"

    # Subclasses provide these.
    @abc.abstractmethod
    def auth_headers(self, api_key: str) -> dict[str, str]:
        """Headers that carry the key (never the URL)."""

    @abc.abstractmethod
    def classify_error(self, status: int | None, payload: Any, headers: Any) -> ProviderError:
        """Turn an error status/body (or a mid-stream error object) into a typed ProviderError."""

    @abc.abstractmethod
    def validate_key(self, api_key: str) -> KeyCheck:
        """Check the key with the cheapest free request."""

    @abc.abstractmethod
    def list_models(self, api_key: str) -> list[ModelInfo]:
        """Chat-capable models, all pages, sorted by id."""

    @abc.abstractmethod
    def stream_chat(
        self,
        api_key: str,
        *,
        model: str,
        messages: list[ChatMessage],
        system_prompt: str | None = None,
        settings: ChatSettings = DEFAULT_SETTINGS,
    ) -> ChatStream:
        """Start a streamed chat completion."""

    # Shared plumbing.
    def request(
        self,
        method: str,
        path: str,
        api_key: str,
        *,
        params: dict[str, Any] | None = None,
        body: dict[str, Any] | None = None,
        stream: bool = False,
    ) -> requests.Response:
        """Send one call with timeouts; non-2xx answers raise the classified ProviderError."""
        try:
            response = self.session.request(
                method,
                self.base_url + path,
                params=params,
                json=body,
                stream=stream,
                headers={
                    "Accept": "text/event-stream" if stream else "application/json",
                    **self.auth_headers(api_key),
                },
                timeout=(self.connect_timeout, self.read_timeout),
                allow_redirects=False,
            )
        except requests.Timeout:
            raise UpstreamTimeout("The provider did not answer in time.", provider=self.name) from None
        except requests.ConnectionError:
            raise UpstreamTimeout(
                "The provider could not be reached.", provider=self.name, code="upstream_unreachable"
            ) from None
        except requests.RequestException:
            raise UpstreamError("The provider request failed.", provider=self.name) from None
        if not 200 <= response.status_code < 300:
            try:
                error = self.classify_error(
                    response.status_code, _read_error_body(response), response.headers
                )
            finally:
                response.close()
            error.provider, error.status = self.name, response.status_code
            raise error.scrub(api_key)
        return response

    def get_json(self, path: str, api_key: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
        """GET a JSON object or raise."""
        response = self.request("GET", path, api_key, params=params)
        try:
            body = response.json()
        except ValueError:
            body = None
        finally:
            response.close()
        if not isinstance(body, dict):
            raise UpstreamError(
                "The provider sent a malformed response.", provider=self.name, status=response.status_code
            )
        return body

    def check_key(self, path: str, api_key: str, params: dict[str, Any] | None = None) -> KeyCheck:
        """VALID if the call succeeds, INVALID only when the key itself is rejected."""
        try:
            self.get_json(path, api_key, params)
        except AuthFailed:
            return KeyCheck.INVALID
        except ProviderError:
            return KeyCheck.UNAVAILABLE
        return KeyCheck.VALID

    def open_stream(
        self,
        path: str,
        api_key: str,
        body: dict[str, Any],
        decode: Callable[[Iterator[SSEEvent | RawDocument]], Iterator[StreamEvent]],
        params: dict[str, Any] | None = None,
    ) -> ChatStream:
        """POST a streaming request and wrap its body in a ChatStream."""
        response = self.request("POST", path, api_key, params=params, body=body, stream=True)
        events = decode(iter_sse(iter_arriving(response)))
        return ChatStream(response, events, self.name, redactor=_redactor(api_key))


def _redactor(secret: str) -> Callable[[str], str]:
    # A closure, not a stored attribute, so no repr or vars() of the stream shows the key.
    return lambda text: redact(text, secret)


def _read_error_body(response: requests.Response) -> Any:
    body = b""
    try:
        for chunk in response.iter_content(chunk_size=8192):
            body += chunk
            if len(body) >= _ERROR_BODY_LIMIT:
                break
    except (requests.RequestException, OSError):
        pass
    try:
        return json.loads(body.decode("utf-8", errors="replace"))
    except ValueError:
        return None


def error_message(payload: Any, default: str) -> str:
    """The `error.message` of a provider error body, if any."""
    error = payload.get("error") if isinstance(payload, dict) else None
    if isinstance(error, dict) and isinstance(error.get("message"), str):
        return error["message"]
    if isinstance(error, str):
        return error
    return default


def merge_turns(messages: Iterable[ChatMessage]) -> list[ChatMessage]:
    """Merge adjacent same-role turns, drop empty ones, and start the history with a user turn."""
    merged: list[ChatMessage] = []
    for message in messages:
        if message.role not in ("user", "assistant"):
            raise ValueError(f"unsupported role {message.role!r}")
        if not message.content.strip():
            continue
        if merged and merged[-1].role == message.role:
            merged[-1] = ChatMessage(message.role, merged[-1].content + "\n\n" + message.content)
        elif merged or message.role == "user":
            merged.append(message)
    return merged
