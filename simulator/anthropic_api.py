"""Simulated Anthropic Messages API: named events, ping, padded JSON, cursor-paged models."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, request

from simulator import catalog
from simulator.script import Conversation, Reply, StreamScript, parse_plan, wait_for
from simulator.wire import anthropic_id, begin, gate, json_body, sse, stream_response

blueprint = Blueprint("anthropic_api", __name__)
NAME = "anthropic"
_SETTINGS = ("max_tokens", "temperature", "top_p", "top_k", "stop_sequences")


def error(status: int, kind: str, message: str, headers: dict[str, str] | None = None) -> Response:
    """The compact error envelope with a request id."""
    body = {
        "type": "error",
        "error": {"type": kind, "message": message},
        "request_id": anthropic_id("req_011C"),
    }
    return json_body(body, status, headers=headers)


def gate_error(failure: str) -> Response:
    """The response for a key or runtime failure."""
    if failure == "missing_key":
        return error(401, "authentication_error", "x-api-key header is required")
    if failure == "invalid_key":
        return error(401, "authentication_error", "invalid x-api-key")
    if failure == "rate_limit":
        return rate_limited()
    return error(503, "api_error", "Service unavailable")


def rate_limited() -> Response:
    """429 rate_limit_error with retry-after."""
    return error(
        429,
        "rate_limit_error",
        "This request would exceed the rate limit for your "
        "organization (sim-org) of 5 requests per minute. For details, refer to: "
        "https://docs.claude.com/en/api/rate-limits.",
        headers={"retry-after": "2", "anthropic-ratelimit-requests-remaining": "0"},
    )


def _api_key() -> str | None:
    # The 2026 SDKs send the key as a bearer token; the documented header is x-api-key.
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    return request.headers.get("x-api-key") or (token.strip() if scheme == "Bearer" else None)


def _text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(b.get("text", "") for b in content if isinstance(b, dict) and b.get("type") == "text")
    return ""


@blueprint.get("/models")
def list_models() -> Response:
    """GET /v1/models."""
    api_key = _api_key()
    record = begin(NAME, api_key, "models")
    response = models_page(api_key)
    record.status = response.status_code
    return response


def models_page(api_key: str | None) -> Response:
    """One page of models: `limit` (default 20) after `after_id`, newest first."""
    if failure := gate(NAME, api_key):
        return gate_error(failure)
    try:
        limit = int(request.args.get("limit", 20))
    except ValueError:
        return error(400, "invalid_request_error", "limit: Input should be a valid integer")
    if not 1 <= limit <= 1000:
        return error(400, "invalid_request_error", "limit: Input should be between 1 and 1000")
    ids = [m["id"] for m in catalog.ANTHROPIC_MODELS]
    start = 0
    if after := request.args.get("after_id"):
        if after not in ids:
            return error(400, "invalid_request_error", f"after_id: unknown model id {after!r}")
        start = ids.index(after) + 1
    page = catalog.ANTHROPIC_MODELS[start : start + limit]
    return json_body(
        {
            "data": page,
            "has_more": start + limit < len(ids),
            "first_id": page[0]["id"] if page else None,
            "last_id": page[-1]["id"] if page else None,
        },
        200,
    )


@blueprint.post("/messages")
def create_message() -> Response:
    """POST /v1/messages (stream: true only)."""
    api_key = _api_key()
    record = begin(NAME, api_key, "chat")
    body = request.get_json(silent=True)
    record.model = body.get("model") if isinstance(body, dict) else None
    response = respond(api_key, body, record)
    record.status = record.status or response.status_code
    return response


def respond(api_key: str | None, body: Any, record: Any) -> Response:
    """Validate a /messages request and stream (or refuse) it."""
    if failure := gate(NAME, api_key):
        return gate_error(failure)
    if not request.headers.get("anthropic-version"):
        return error(400, "invalid_request_error", "anthropic-version: header is required")
    if not isinstance(body, dict) or not isinstance(body.get("messages"), list):
        return error(400, "invalid_request_error", "messages: Field required")
    model = str(body.get("model") or "")
    served = catalog.ANTHROPIC_ALIASES.get(model, model)
    if served not in {m["id"] for m in catalog.ANTHROPIC_MODELS}:
        return error(404, "not_found_error", f"model: {model}")
    if problem := invalid_params(body):
        return error(400, "invalid_request_error", problem)
    if body.get("stream") is not True:
        return error(400, "invalid_request_error", "The simulator only supports stream: true.")
    system = body.get("system")
    conversation = Conversation(
        model=model,
        system=_text(system) or None,
        messages=[(m.get("role"), _text(m.get("content"))) for m in body["messages"] if isinstance(m, dict)],
        settings={k: body[k] for k in _SETTINGS if k in body},
        max_tokens=body["max_tokens"],
    )
    plan = parse_plan(conversation.last_user_text)
    if plan.rate_limit:
        return rate_limited()
    if plan.fail_before:
        return error(529, "overloaded_error", "Overloaded")
    if plan.hang_before is not None:
        wait_for(plan.hang_before, request.environ)
    reply = Reply.build("Anthropic", conversation, plan)
    headers = {"request-id": anthropic_id("req_011C")}
    return stream_response(
        script(served, reply), reply, plan, record, "text/event-stream; charset=utf-8", headers
    )


def invalid_params(body: dict[str, Any]) -> str | None:
    """The 400 messages the real API gives for the parameters KeyLM maps."""
    if not isinstance(body.get("max_tokens"), int) or body["max_tokens"] < 1:
        return "max_tokens: Field required"
    temperature = body.get("temperature")
    if temperature is not None and not 0 <= temperature <= 1:
        return "temperature: Input should be less than or equal to 1"
    if temperature is not None and body.get("top_p") is not None:
        return "`temperature` and `top_p` cannot both be specified for this model. Please use only one."
    roles = [m.get("role") for m in body["messages"] if isinstance(m, dict)]
    if not roles or roles[0] != "user" or any(a == b for a, b in zip(roles, roles[1:], strict=False)):
        return 'messages: roles must alternate between "user" and "assistant", starting with "user"'
    return None


def script(model: str, reply: Reply) -> StreamScript:
    """message_start, content_block_start, ping, deltas, stop events; JSON padded like live."""
    usage = {
        "input_tokens": reply.prompt_tokens,
        "cache_creation_input_tokens": 0,
        "cache_read_input_tokens": 0,
        "output_tokens": 1,
        "service_tier": "standard",
    }
    message = {
        "model": model,
        "id": anthropic_id(),
        "type": "message",
        "role": "assistant",
        "content": [],
        "stop_reason": None,
        "stop_sequence": None,
        "usage": usage,
    }
    head = [
        sse({"type": "message_start", "message": message}, event="message_start", pad=3),
        sse(
            {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
            event="content_block_start",
            pad=12,
        ),
        sse('{"type": "ping"}', event="ping"),
    ]

    def token(index: int, text: str, _last: bool) -> bytes:
        return sse(
            {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": text}},
            event="content_block_delta",
            pad=(index * 7) % 15,
        )

    stop_reason = "max_tokens" if reply.truncated else "end_turn"
    tail = [
        sse({"type": "content_block_stop", "index": 0}, event="content_block_stop", pad=12),
        sse(
            {
                "type": "message_delta",
                "delta": {"stop_reason": stop_reason, "stop_sequence": None},
                "usage": {
                    "input_tokens": reply.prompt_tokens,
                    "cache_creation_input_tokens": 0,
                    "cache_read_input_tokens": 0,
                    "output_tokens": len(reply.tokens),
                },
            },
            event="message_delta",
            pad=12,
        ),
        sse({"type": "message_stop"}, event="message_stop", pad=7),
    ]
    mid_error = sse(
        '{"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}', event="error"
    )
    return StreamScript(head, token, tail, mid_error)


def make_blueprint(_provider: str) -> Blueprint:
    """The blueprint the registry mounts for anthropic."""
    return blueprint
