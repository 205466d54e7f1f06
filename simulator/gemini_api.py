"""Simulated Gemini API: CRLF SSE, cumulative usageMetadata, google.rpc.Status errors."""

from __future__ import annotations

import base64
import json
from typing import Any

from flask import Blueprint, Response, request

from simulator import catalog
from simulator.script import Conversation, Reply, StreamScript, parse_plan, wait_for
from simulator.wire import begin, gate, gemini_response_id, json_body, sse, stream_response

blueprint = Blueprint("gemini_api", __name__)
NAME = "gemini"
_DETAIL = "type.googleapis.com/google.rpc."
_JSON = "application/json; charset=UTF-8"
_SETTINGS = ("temperature", "topP", "topK", "maxOutputTokens", "stopSequences", "thinkingConfig")


def status_body(
    code: int, status: str, message: str, details: list[dict[str, Any]] | None = None
) -> dict[str, Any]:
    """A google.rpc.Status error document."""
    error: dict[str, Any] = {"code": code, "message": message, "status": status}
    if details:
        error["details"] = details
    return {"error": error}


def error(code: int, status: str, message: str, details: list[dict[str, Any]] | None = None) -> Response:
    """Google's error envelope, pretty-printed with two spaces."""
    return json_body(
        status_body(code, status, message, details), code, indent=2, newline=True, content_type=_JSON
    )


def gate_error(failure: str) -> Response:
    """The response for a key or runtime failure."""
    if failure == "missing_key":
        return error(
            403,
            "PERMISSION_DENIED",
            "Method doesn't allow unregistered callers (callers "
            "without established identity). Please use API Key or other form of API "
            "consumer identity to call this API.",
        )
    if failure == "invalid_key":
        message = "API key not valid. Please pass a valid API key."
        return error(
            400,
            "INVALID_ARGUMENT",
            message,
            [
                {
                    "@type": _DETAIL + "ErrorInfo",
                    "reason": "API_KEY_INVALID",
                    "domain": "googleapis.com",
                    "metadata": {"service": "generativelanguage.googleapis.com"},
                },
                {"@type": _DETAIL + "LocalizedMessage", "locale": "en-US", "message": message},
            ],
        )
    if failure == "rate_limit":
        return rate_limited()
    return overloaded()


def overloaded() -> Response:
    """503 UNAVAILABLE, the model is overloaded."""
    return error(503, "UNAVAILABLE", "The model is overloaded. Please try again later.")


def rate_limited() -> Response:
    """429 RESOURCE_EXHAUSTED with QuotaFailure and RetryInfo."""
    return error(
        429,
        "RESOURCE_EXHAUSTED",
        "You exceeded your current quota, please check your "
        "plan and billing details. For more information on this error, head to: "
        "https://ai.google.dev/gemini-api/docs/rate-limits.",
        [
            {
                "@type": _DETAIL + "QuotaFailure",
                "violations": [
                    {
                        "quotaMetric": "generativelanguage.googleapis.com/"
                        "generate_content_free_tier_requests",
                        "quotaId": "GenerateRequestsPerMinutePerProjectPerModel-FreeTier",
                        "quotaValue": "10",
                    }
                ],
            },
            {"@type": _DETAIL + "RetryInfo", "retryDelay": "2s"},
        ],
    )


def _api_key() -> str | None:
    return request.headers.get("x-goog-api-key") or request.args.get("key")


@blueprint.get("/models")
def list_models() -> Response:
    """GET /v1beta/models."""
    api_key = _api_key()
    record = begin(NAME, api_key, "models")
    response = models_page(api_key)
    record.status = response.status_code
    return response


def models_page(api_key: str | None) -> Response:
    """One page of models: `pageSize` (default 50) from `pageToken`."""
    if failure := gate(NAME, api_key):
        return gate_error(failure)
    try:
        size = min(int(request.args.get("pageSize") or 50), 1000)
        token = request.args.get("pageToken")
        start = int(base64.urlsafe_b64decode(token).decode().rpartition(":")[2]) if token else 0
    except ValueError:
        return error(400, "INVALID_ARGUMENT", "Invalid page token or page size.")
    size = size if size > 0 else 50
    page = catalog.GEMINI_MODELS[start : start + size]
    body: dict[str, Any] = {"models": page}
    if start + size < len(catalog.GEMINI_MODELS):
        body["nextPageToken"] = base64.urlsafe_b64encode(f"models:{start + size}".encode()).decode()
    return json_body(body, 200, indent=2, newline=True, content_type=_JSON)


@blueprint.post("/models/<path:target>")
def model_action(target: str) -> Response:
    """POST /v1beta/models/{model}:streamGenerateContent."""
    api_key = _api_key()
    model, _, action = target.removeprefix("models/").rpartition(":")
    record = begin(NAME, api_key, "chat")
    record.model = model
    response = respond(api_key, model, action, record)
    record.status = record.status or response.status_code
    return response


def _text(parts: Any) -> str:
    if not isinstance(parts, list):
        return ""
    return "".join(p.get("text", "") for p in parts if isinstance(p, dict))


def respond(api_key: str | None, model: str, action: str, record: Any) -> Response:
    """Validate a generateContent request and stream (or refuse) it."""
    if failure := gate(NAME, api_key):
        return gate_error(failure)
    entry = next((m for m in catalog.GEMINI_MODELS if m["name"] == f"models/{model}"), None)
    if (
        action != "streamGenerateContent"
        or entry is None
        or "generateContent" not in entry["supportedGenerationMethods"]
    ):
        return error(
            404,
            "NOT_FOUND",
            f"models/{model} is not found for API version v1beta, or is "
            "not supported for generateContent. Call ListModels to see the list of "
            "available models and their supported methods.",
        )
    if request.args.get("alt") != "sse":
        return error(400, "INVALID_ARGUMENT", "The simulator only streams with alt=sse.")
    body = request.get_json(silent=True)
    contents = body.get("contents") if isinstance(body, dict) else None
    if not isinstance(contents, list) or not contents:
        return error(
            400, "INVALID_ARGUMENT", "* GenerateContentRequest.contents: contents is not specified\n"
        )
    roles = [c.get("role", "user") for c in contents if isinstance(c, dict)]
    if any(a == b for a, b in zip(roles, roles[1:], strict=False)) or roles[-1] != "user":
        return error(
            400, "INVALID_ARGUMENT", "Please ensure that multiturn requests alternate between user and model."
        )
    config = body.get("generationConfig") or {}
    system = body.get("systemInstruction") or body.get("system_instruction") or {}
    conversation = Conversation(
        model=model,
        system=_text(system.get("parts")) or None,
        messages=[
            ("assistant" if c.get("role") == "model" else "user", _text(c.get("parts")))
            for c in contents
            if isinstance(c, dict)
        ],
        settings={k: config[k] for k in _SETTINGS if k in config},
        max_tokens=config.get("maxOutputTokens"),
    )
    plan = parse_plan(conversation.last_user_text)
    if plan.rate_limit:
        return rate_limited()
    if plan.fail_before:
        return overloaded()
    if plan.hang_before is not None:
        wait_for(plan.hang_before, request.environ)
    reply = Reply.build("Gemini", conversation, plan)
    served = catalog.GEMINI_SERVED_AS.get(model, model)
    thoughts = catalog.GEMINI_THOUGHT_TOKENS if entry.get("thinking") else 0
    return stream_response(
        script(served, reply, thoughts, plan.thoughts), reply, plan, record, "text/event-stream"
    )


def script(model: str, reply: Reply, thoughts: int, show_thoughts: bool) -> StreamScript:
    """One GenerateContentResponse per token, CRLF framed, no sentinel; errors as raw JSON."""
    response_id = gemini_response_id()
    prompt = reply.prompt_tokens
    finish = "MAX_TOKENS" if reply.truncated else "STOP"

    def chunk(parts: list[dict[str, Any]], sent: int, last: bool) -> bytes:
        candidate: dict[str, Any] = {"content": {"parts": parts, "role": "model"}}
        if last:
            candidate["finishReason"] = finish
        candidate["index"] = 0
        usage: dict[str, Any] = {"promptTokenCount": prompt}
        if sent:
            usage["candidatesTokenCount"] = sent
        usage["totalTokenCount"] = prompt + sent + thoughts
        usage["promptTokensDetails"] = [{"modality": "TEXT", "tokenCount": prompt}]
        if thoughts:
            usage["thoughtsTokenCount"] = thoughts
        return sse(
            {
                "candidates": [candidate],
                "usageMetadata": usage,
                "modelVersion": model,
                "responseId": response_id,
            },
            crlf=True,
        )

    head = []
    if show_thoughts:
        head.append(
            chunk([{"text": "**Thinking it over**\n\nThe user wants a reply.", "thought": True}], 0, False)
        )

    def token(index: int, text: str, last: bool) -> bytes:
        return chunk([{"text": text}], index + 1, last)

    tail = [] if reply.tokens else [chunk([{"text": ""}], 0, True)]
    # Mid-stream failures arrive as a bare pretty-printed JSON document, not a data: line.
    mid_error = (
        b"\r\n"
        + json.dumps(
            status_body(503, "UNAVAILABLE", "The model is overloaded. Please try again later."), indent=2
        ).encode()
        + b"\r\n"
    )
    return StreamScript(head, token, tail, mid_error)


def make_blueprint(_provider: str) -> Blueprint:
    """The blueprint the registry mounts for gemini."""
    return blueprint
