"""Mistral (shared/providers/registry/mistral.py) against its simulator fixture and its error shapes."""

from __future__ import annotations

import json
import secrets

import pytest

from keys_service.crypto import mask_key
from shared.providers import (
    AuthFailed,
    BadRequest,
    ChatMessage,
    ChatSettings,
    KeyCheck,
    ModelUnavailable,
    PermissionDenied,
    RateLimited,
    TextDelta,
    UpstreamError,
    Usage,
    get_adapter,
)
from shared.providers.registry import get_spec

KEY = secrets.token_hex(16)


def test_the_key_is_checked_with_the_model_list(sim):
    adapter = sim.adapter("mistral")
    assert adapter.validate_key(KEY) is KeyCheck.VALID
    assert adapter.validate_key("invalid" + KEY) is KeyCheck.INVALID


def test_the_catalog_keeps_current_chat_models_with_their_context_windows(sim):
    models = {m.id: m for m in sim.adapter("mistral").list_models(KEY)}
    assert "mistral-embed" not in models and "mistral-moderation-latest" not in models
    assert "open-mistral-7b" not in models  # past its deprecation date
    assert models["codestral-latest"].context_window == 256000
    assert {"mistral-small-latest", "mistral-small-2506", "mistral-large-latest"} <= set(models)


def test_the_body_has_only_fields_mistral_accepts_and_usage_comes_on_the_last_chunk(sim):
    # The simulator answers 422 to stream_options or max_completion_tokens, as Mistral does.
    stream = sim.adapter("mistral").stream_chat(
        KEY,
        model="mistral-small-latest",
        messages=[ChatMessage("user", "[[sim:echo]] hi")],
        settings=ChatSettings(max_tokens=200, temperature=0.3, top_p=0.9),
    )
    events = list(stream)
    echo = json.loads("".join(e.text for e in events if isinstance(e, TextDelta)))
    assert echo["settings"] == {"max_tokens": 200, "temperature": 0.3, "top_p": 0.9}
    assert any(isinstance(e, Usage) and e.output_tokens for e in events)


def test_a_refused_field_is_a_bad_request_with_the_validation_message(sim):
    adapter = sim.adapter("mistral")
    body = {"model": "mistral-small-latest", "stream": True, "messages": [{"role": "user", "content": "hi"}]}
    with pytest.raises(BadRequest) as caught:
        adapter.request("POST", "/chat/completions", KEY, body={**body, "stream_options": {}})
    assert caught.value.status == 422 and caught.value.message == "Extra inputs are not permitted"


def test_an_unknown_model_is_a_model_error(sim):
    with pytest.raises(ModelUnavailable) as caught:
        sim.adapter("mistral").stream_chat(KEY, model="mistral-ultra", messages=[ChatMessage("user", "hi")])
    assert caught.value.message == "Invalid model: mistral-ultra"


def test_an_error_chunk_inside_the_stream_is_an_upstream_error(sim):
    stream = sim.adapter("mistral").stream_chat(
        KEY,
        model="mistral-small-latest",
        messages=[ChatMessage("user", "[[sim:tokens=4]] [[sim:fail_mid=1]]")],
    )
    with pytest.raises(UpstreamError) as caught:
        list(stream)
    assert "during generation" in caught.value.message


@pytest.mark.parametrize(
    ("status", "body", "error_type", "message"),
    [
        (401, {"message": "Unauthorized", "request_id": "r"}, AuthFailed, "Unauthorized"),
        (403, {"message": "Forbidden"}, PermissionDenied, "Forbidden"),
        (429, {"message": "Requests rate limit exceeded"}, RateLimited, "Requests rate limit exceeded"),
        (500, {"detail": "Internal Server Error"}, UpstreamError, "Internal Server Error"),
        (
            422,
            {"detail": [{"loc": ["body", "n"], "msg": "Input should be 1"}]},
            BadRequest,
            "Input should be 1",
        ),
        (
            400,
            {"object": "error", "message": "Invalid model: x", "type": "invalid_model", "code": "1500"},
            ModelUnavailable,
            "Invalid model: x",
        ),
        (
            None,
            {"object": "error", "message": "boom", "type": "internal_server_error"},
            UpstreamError,
            "boom",
        ),
    ],
)
def test_each_error_shape_maps_and_keeps_its_message(status, body, error_type, message):
    error = get_adapter("mistral").classify_error(status, body, None)
    assert type(error) is error_type and error.message == message


def test_a_key_mask_shows_none_of_a_prefixless_key_start():
    spec = get_spec("mistral")
    assert spec.key_pattern is None and spec.mask_head == 0
    assert mask_key(KEY, spec.mask_head) == "..." + KEY[-4:]
