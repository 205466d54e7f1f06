"""Simulated OpenAI-compatible providers described by a fixture (simulator/fixtures/<id>.json).

Many providers speak OpenAI's chat-completions stream but list models and report errors in their
own shapes. A fixture holds those shapes as the provider's documentation shows them: the
`GET /models` document, extra GET documents (e.g. OpenRouter's `/key`), each error body, fields the
provider refuses, and what a stream adds (comment lines, fields on each chunk, where usage goes).
The registry points such a provider's `simulator_blueprint` here; nothing else changes.

Fixture keys: label, models, non_chat (ids), routes ({path: document}), errors ({name: {status,
body, headers}}; names invalid_key, model_not_found, not_chat, rate_limit, out_of_credit,
unavailable, server_error, bad_request, refused_field, mid_stream), refused_fields, stream
({preamble: [comment lines], chunk_extra: {...}, usage_on_finish: bool}). `{model}`, `{field}` and
`{message}` in an error body are filled in.
"""

from __future__ import annotations

import copy
import json
import time
from pathlib import Path
from typing import Any

from flask import Blueprint, Response

from simulator import openai_api
from simulator.script import Reply, StreamScript
from simulator.wire import begin, gate, json_body, openai_id, sse

FIXTURES = Path(__file__).parent / "fixtures"


def load_fixture(provider: str) -> dict[str, Any]:
    """The recorded shapes of one provider."""
    return json.loads((FIXTURES / f"{provider}.json").read_text())


def _fill(value: Any, values: dict[str, str]) -> Any:
    if isinstance(value, str):
        for name, text in values.items():
            value = value.replace("{" + name + "}", text)
        return value
    if isinstance(value, dict):
        return {k: _fill(v, values) for k, v in value.items()}
    if isinstance(value, list):
        return [_fill(v, values) for v in value]
    return value


class FixtureFlavor(openai_api.Flavor):
    """OpenAI's stream with the fixture's model list, errors and stream details."""

    def __init__(self, name: str, fixture: dict[str, Any]):
        self.name = name
        self.groq = False
        self.label = fixture["label"]
        self.fixture = fixture
        non_chat = set(fixture.get("non_chat", ()))
        self.models = [{"id": m["id"], "chat": m["id"] not in non_chat} for m in fixture["models"]["data"]]
        self.stream = fixture.get("stream", {})

    def models_response(self) -> Response:
        """The fixture's model document, as the provider sends it."""
        return json_body(self.fixture["models"], 200)

    def named_error(self, name: str, **values: str) -> Response:
        """One of the fixture's error answers, with its placeholders filled in."""
        answer = self.fixture["errors"][name]
        body = _fill(copy.deepcopy(answer["body"]), values)
        return json_body(body, answer["status"], headers=answer.get("headers"))

    def error(
        self,
        status: int,
        message: str,
        kind: str,
        code: str | None,
        param: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> Response:
        """Any other refusal (unparsable body, stream false) as the provider's bad request."""
        return self.named_error("bad_request", message=message)

    def gate_error(self, failure: str, api_key: str | None) -> Response:
        """Missing or wrong key, rate limit or outage."""
        if failure in ("missing_key", "invalid_key"):
            return self.named_error("invalid_key")
        if failure == "rate_limit":
            return self.rate_limited()
        return self.unavailable()

    def unavailable(self) -> Response:
        return self.named_error("unavailable")

    def server_error(self) -> Response:
        return self.named_error("server_error")

    def rate_limited(self, model: str | None = None) -> Response:
        return self.named_error("rate_limit", model=model or "")

    def model_error(self, model: str) -> Response | None:
        entry = next((m for m in self.models if m["id"] == model), None)
        if entry is None:
            return self.named_error("model_not_found", model=model)
        if not entry["chat"]:
            return self.named_error("not_chat", model=model)
        return None

    def param_error(self, body: dict[str, Any], model: str) -> Response | None:
        """Fields the provider's strict validation refuses."""
        for field in self.fixture.get("refused_fields", ()):
            if field in body:
                return self.named_error("refused_field", field=field)
        return None

    def chunk(self, ident: str, model: str, created: int, choices: list[Any], **extra: Any) -> dict[str, Any]:
        base: dict[str, Any] = {
            "id": ident,
            "object": "chat.completion.chunk",
            "created": created,
            "model": model,
            **self.stream.get("chunk_extra", {}),
            "choices": choices,
        }
        base.update(extra)
        return base

    def usage(self, reply: Reply, model: str, sent: int) -> dict[str, Any]:
        return {
            "prompt_tokens": reply.prompt_tokens,
            "completion_tokens": sent,
            "total_tokens": reply.prompt_tokens + sent,
        }

    def script(self, model: str, reply: Reply, include_usage: bool) -> StreamScript:
        """Preamble comments, role chunk, content chunks, finish chunk, usage, `[DONE]`."""
        ident, created = "gen-" + openai_id()[9:], int(time.time())
        head = [line.encode() + b"\n\n" for line in self.stream.get("preamble", ())]
        head.append(
            sse(
                self.chunk(
                    ident,
                    model,
                    created,
                    [{"index": 0, "delta": {"role": "assistant", "content": ""}, "finish_reason": None}],
                )
            )
        )

        def token(_index: int, text: str, _last: bool) -> bytes:
            return sse(
                self.chunk(
                    ident, model, created, [{"index": 0, "delta": {"content": text}, "finish_reason": None}]
                )
            )

        usage = self.usage(reply, model, len(reply.tokens))
        finish = {
            "index": 0,
            "delta": {"content": ""},
            "finish_reason": "length" if reply.truncated else "stop",
        }
        on_finish = {"usage": usage} if self.stream.get("usage_on_finish") else {}
        tail = [sse(self.chunk(ident, model, created, [finish], **on_finish))]
        if include_usage and not on_finish:
            tail.append(sse(self.chunk(ident, model, created, [], usage=usage)))
        tail.append(b"data: [DONE]\n\n")
        mid_error = sse(_fill(copy.deepcopy(self.fixture["errors"]["mid_stream"]["body"]), {"model": model}))
        return StreamScript(head, token, tail, mid_error)


def make_blueprint(provider: str) -> Blueprint:
    """The OpenAI routes with the fixture's shapes, plus the fixture's extra GET documents."""
    fixture = load_fixture(provider)
    flavor = FixtureFlavor(provider, fixture)
    blueprint = openai_api.make_blueprint(provider, flavor)
    for path, document in fixture.get("routes", {}).items():
        blueprint.add_url_rule(path, f"route_{path.strip('/')}", _document_view(provider, flavor, document))
    return blueprint


def _document_view(provider: str, flavor: FixtureFlavor, document: Any):
    def view() -> Response:
        api_key = openai_api._bearer()
        record = begin(provider, api_key, "key")
        response = (
            flavor.gate_error(failure, api_key)
            if (failure := gate(provider, api_key))
            else json_body(document, 200)
        )
        record.status = response.status_code
        return response

    return view
