"""Simulated OpenAI and Groq chat-completions APIs (Groq is OpenAI's format plus `x_groq`)."""

from __future__ import annotations

import random
import re
import time
from typing import Any

from flask import Blueprint, Response, request

from simulator import catalog
from simulator.script import Conversation, Plan, Reply, StreamScript, parse_plan, wait_for
from simulator.wire import begin, gate, groq_ids, json_body, openai_id, sse, stream_response

_REASONING = re.compile(r"^(o\d|gpt-5)")
_SETTINGS = (
    "temperature",
    "top_p",
    "max_tokens",
    "max_completion_tokens",
    "stream_options",
    "seed",
    "stop",
    "n",
)
_REASONING_TOKENS = 16


class Flavor:
    """The OpenAI wire format, with the differences Groq shows."""

    def __init__(self, name: str):
        self.name = name
        self.groq = name == "groq"
        self.label = "Groq" if self.groq else "OpenAI"
        self.models = catalog.GROQ_MODELS if self.groq else catalog.OPENAI_MODELS

    def error(
        self,
        status: int,
        message: str,
        kind: str,
        code: str | None,
        param: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> Response:
        """An error envelope: OpenAI pretty with `param`; Groq compact without it, plus newline."""
        error: dict[str, Any] = {"message": message, "type": kind}
        if self.groq:
            if code is not None:
                error["code"] = code
            return json_body({"error": error}, status, newline=True, headers=headers)
        error.update(param=param, code=code)
        return json_body({"error": error}, status, indent=2, newline=True, headers=headers)

    def models_response(self) -> Response:
        """GET /models: the catalog, without the simulator's own `chat` marks."""
        data = [{k: v for k, v in m.items() if k != "chat"} for m in self.models]
        return json_body({"object": "list", "data": data}, 200, indent=None if self.groq else 2)

    def gate_error(self, failure: str, api_key: str | None) -> Response:
        """The response for a key or runtime failure."""
        if failure == "missing_key":
            return self.error(
                401,
                "You didn't provide an API key. You need to provide your API key "
                "in an Authorization header using Bearer auth (i.e. Authorization: "
                "Bearer YOUR_KEY).",
                "invalid_request_error",
                None,
            )
        if failure == "invalid_key":
            if self.groq:
                return self.error(401, "Invalid API Key", "invalid_request_error", "invalid_api_key")
            key = api_key or ""
            masked = key[:8] + "*" * max(len(key) - 12, 4) + key[-4:]
            return self.error(
                401,
                f"Incorrect API key provided: {masked}. You can find your API "
                "key at https://platform.openai.com/account/api-keys.",
                "invalid_request_error",
                "invalid_api_key",
            )
        if failure == "rate_limit":
            return self.rate_limited()
        return self.unavailable()

    def unavailable(self) -> Response:
        """503 for a downed provider or a `down` key."""
        if self.groq:
            return self.error(503, "Service Unavailable", "internal_server_error", None)
        return self.error(503, "The server is overloaded or not ready yet.", "server_error", None)

    def server_error(self) -> Response:
        """500 before the first token (`[[sim:fail_before]]`)."""
        if self.groq:
            return self.error(500, "Internal Server Error", "internal_server_error", None)
        return self.error(
            500,
            "The server had an error while processing your request. Sorry about that!",
            "server_error",
            None,
        )

    def rate_limited(self, model: str | None = None) -> Response:
        """429 with retry-after (and OpenAI's retry-after-ms)."""
        model = model or ("llama-3.1-8b-instant" if self.groq else "gpt-4o-mini")
        headers = {
            "retry-after": "2",
            "x-ratelimit-remaining-requests": "0",
            "x-ratelimit-reset-requests": "2s",
        }
        if self.groq:
            return self.error(
                429,
                f"Rate limit reached for model `{model}` in organization "
                "`org_01simulator` service tier `on_demand` on requests per minute "
                "(RPM): Limit 30, Used 30, Requested 1. Please try again in 2s.",
                "requests",
                "rate_limit_exceeded",
                headers=headers,
            )
        headers["retry-after-ms"] = "2000"
        return self.error(
            429,
            f"Rate limit reached for {model} in organization org-simulator on "
            "requests per min (RPM): Limit 3, Used 3, Requested 1. Please try again "
            "in 2s.",
            "requests",
            "rate_limit_exceeded",
            headers=headers,
        )

    def model_error(self, model: str) -> Response | None:
        """None if the model can chat, else the provider's answer."""
        entry = next((m for m in self.models if m["id"] == model), None)
        if entry is None:
            return self.error(
                404,
                f"The model `{model}` does not exist or you do not have access to it.",
                "invalid_request_error",
                "model_not_found",
            )
        if model in catalog.GROQ_DECOMMISSIONED and self.groq:
            return self.error(
                400,
                f"The model `{model}` has been decommissioned and is no longer "
                "supported. Please refer to https://console.groq.com/docs/deprecations"
                " for a recommendation on which model to use instead.",
                "invalid_request_error",
                "model_decommissioned",
            )
        if not entry.get("chat", True):
            return self.error(
                404,
                "This is not a chat model and thus not supported in the "
                "v1/chat/completions endpoint. Did you mean to use v1/completions?",
                "invalid_request_error",
                None,
            )
        return None

    def param_error(self, body: dict[str, Any], model: str) -> Response | None:
        """The 400s real reasoning models give for legacy or non-default parameters."""
        if self.groq or not _REASONING.match(model):
            return None
        if "max_tokens" in body:
            return self.error(
                400,
                "Unsupported parameter: 'max_tokens' is not supported with this "
                "model. Use 'max_completion_tokens' instead.",
                "invalid_request_error",
                "unsupported_parameter",
                "max_tokens",
            )
        for name in ("temperature", "top_p"):
            if body.get(name) not in (None, 1):
                return self.error(
                    400,
                    f"Unsupported value: '{name}' does not support "
                    f"{body[name]} with this model. Only the default (1) value is "
                    "supported.",
                    "invalid_request_error",
                    "unsupported_value",
                    name,
                )
        return None

    def chunk(self, ident: str, model: str, created: int, choices: list[Any], **extra: Any) -> dict[str, Any]:
        """One chat.completion.chunk object."""
        base: dict[str, Any] = {
            "id": ident,
            "object": "chat.completion.chunk",
            "created": created,
            "model": model,
            "system_fingerprint": "fp_sim0000001",
        }
        if not self.groq:
            base["service_tier"] = "default"
        base["choices"] = choices
        base.update(extra)
        if not self.groq:
            base["obfuscation"] = "".join(random.choices("abcdefghXYZ0123", k=random.randint(3, 12)))
        return base

    def usage(self, reply: Reply, model: str, sent: int) -> dict[str, Any]:
        """Usage as each flavor reports it (reasoning tokens on OpenAI reasoning models)."""
        reasoning = _REASONING_TOKENS if (not self.groq and _REASONING.match(model)) else 0
        output = sent + reasoning
        usage: dict[str, Any] = {
            "prompt_tokens": reply.prompt_tokens,
            "completion_tokens": output,
            "total_tokens": reply.prompt_tokens + output,
        }
        if self.groq:
            return {
                "queue_time": 0.01,
                **usage,
                "prompt_time": 0.002,
                "completion_time": 0.03,
                "total_time": 0.032,
            }
        usage["prompt_tokens_details"] = {"cached_tokens": 0, "audio_tokens": 0}
        usage["completion_tokens_details"] = {
            "reasoning_tokens": reasoning,
            "audio_tokens": 0,
            "accepted_prediction_tokens": 0,
            "rejected_prediction_tokens": 0,
        }
        return usage

    def script(self, model: str, reply: Reply, include_usage: bool) -> StreamScript:
        """Role chunk, content chunks, finish chunk, optional usage chunk, `[DONE]`."""
        ident, request_id = groq_ids() if self.groq else (openai_id(), None)
        created = int(time.time())
        # OpenAI marks intermediate chunks `usage: null` only when usage was requested.
        null_usage = {"usage": None} if include_usage and not self.groq else {}
        first_delta: dict[str, Any] = {"role": "assistant", "content": ""}
        first_extra = dict(null_usage)
        if self.groq:
            first_extra["x_groq"] = {"id": request_id, "seed": random.randint(1, 2**31)}
        else:
            first_delta["refusal"] = None
        head = [
            sse(
                self.chunk(
                    ident,
                    model,
                    created,
                    [{"index": 0, "delta": first_delta, "logprobs": None, "finish_reason": None}],
                    **first_extra,
                )
            )
        ]

        def token(_index: int, text: str, _last: bool) -> bytes:
            return sse(
                self.chunk(
                    ident,
                    model,
                    created,
                    [{"index": 0, "delta": {"content": text}, "logprobs": None, "finish_reason": None}],
                    **null_usage,
                )
            )

        sent = len(reply.tokens)
        usage = self.usage(reply, model, sent)
        finish = {
            "index": 0,
            "delta": {},
            "logprobs": None,
            "finish_reason": "length" if reply.truncated else "stop",
        }
        finish_extra = dict(null_usage)
        if self.groq:
            # Groq repeats usage on the finish chunk (twice) and again in the usage chunk.
            finish_extra = {"x_groq": {"id": request_id, "usage": usage}, "usage": usage}
        tail = [sse(self.chunk(ident, model, created, [finish], **finish_extra))]
        if include_usage:
            extra: dict[str, Any] = {"usage": usage}
            if self.groq:
                extra["service_tier"] = "on_demand"
            tail.append(sse(self.chunk(ident, model, created, [], **extra)))
        tail.append(b"data: [DONE]\n\n")
        mid_error = sse(
            {
                "error": {
                    "message": "The server had an error while processing your request. Sorry about that!",
                    "type": "server_error",
                    "param": None,
                    "code": None,
                }
            }
        )
        return StreamScript(head, token, tail, mid_error)


def _text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(p.get("text", "") for p in content if isinstance(p, dict))
    return ""


def _bearer() -> str | None:
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    return (token.strip() or None) if scheme == "Bearer" else None


def make_blueprint(name: str, flavor: Flavor | None = None) -> Blueprint:
    """Routes for one flavor: GET /models and POST /chat/completions."""
    flavor = flavor or Flavor(name)
    blueprint = Blueprint(f"{name}_api", __name__)

    @blueprint.get("/models")
    def list_models() -> Response:
        api_key = _bearer()
        record = begin(name, api_key, "models")
        if failure := gate(name, api_key):
            response = flavor.gate_error(failure, api_key)
        else:
            response = flavor.models_response()
        record.status = response.status_code
        return response

    @blueprint.post("/chat/completions")
    def chat() -> Response:
        api_key = _bearer()
        record = begin(name, api_key, "chat")
        body = request.get_json(silent=True)
        record.model = body.get("model") if isinstance(body, dict) else None
        response = respond(api_key, body, record)
        record.status = record.status or response.status_code
        return response

    def respond(api_key: str | None, body: Any, record: Any) -> Response:
        if failure := gate(name, api_key):
            return flavor.gate_error(failure, api_key)
        if not isinstance(body, dict) or not isinstance(body.get("messages"), list):
            return flavor.error(
                400, "We could not parse the JSON body of your request.", "invalid_request_error", None
            )
        model = str(body.get("model") or "")
        if error := flavor.model_error(model) or flavor.param_error(body, model):
            return error
        if body.get("stream") is not True:
            return flavor.error(
                400, "The simulator only supports stream: true.", "invalid_request_error", None, "stream"
            )
        system = "\n\n".join(
            _text(m.get("content"))
            for m in body["messages"]
            if isinstance(m, dict) and m.get("role") in ("system", "developer")
        )
        messages = [
            (m.get("role"), _text(m.get("content")))
            for m in body["messages"]
            if isinstance(m, dict) and m.get("role") in ("user", "assistant")
        ]
        conversation = Conversation(
            model=model,
            system=system or None,
            messages=messages,
            settings={k: body[k] for k in _SETTINGS if k in body},
            max_tokens=body.get("max_completion_tokens") or body.get("max_tokens"),
        )
        plan: Plan = parse_plan(conversation.last_user_text)
        if plan.rate_limit:
            return flavor.rate_limited(model)
        if plan.fail_before:
            return flavor.server_error()
        if plan.hang_before is not None:
            wait_for(plan.hang_before, request.environ)
        reply = Reply.build(flavor.label, conversation, plan)
        include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
        content_type = "text/event-stream" if flavor.groq else "text/event-stream; charset=utf-8"
        headers = {"x-request-id": "req_" + openai_id()[9:]}
        if flavor.groq:
            headers["x-groq-region"] = "sim"
        return stream_response(
            flavor.script(model, reply, include_usage), reply, plan, record, content_type, headers
        )

    return blueprint
