"""The bounds of one KeyLM Free request: output ceiling, prompt sizes, history, token estimates."""

from __future__ import annotations

import pytest

from chat_service.free_limits import (
    bound_history,
    check_free_message,
    check_free_system_prompt,
    estimate_prompt_tokens,
    free_max_tokens,
    free_thread_settings,
    tokens_used,
)
from shared.errors import ValidationFailed
from shared.providers import ChatMessage
from tests.conftest import make_settings


@pytest.fixture
def settings(tmp_path):
    return make_settings(
        tmp_path / "var",
        FREE_MAX_OUTPUT_TOKENS="1024",
        FREE_MAX_SYSTEM_PROMPT_CHARS="100",
        FREE_MAX_MESSAGE_CHARS="200",
    )


def user(text: str) -> ChatMessage:
    return ChatMessage(role="user", content=text)


def assistant(text: str) -> ChatMessage:
    return ChatMessage(role="assistant", content=text)


@pytest.mark.parametrize(
    ("requested", "stored"),
    [
        ({}, {"maxTokens": 1024}),
        ({"maxTokens": 100, "temperature": 0.2}, {"maxTokens": 100, "temperature": 0.2}),
        ({"maxTokens": 1024}, {"maxTokens": 1024}),
        (
            {"maxTokens": 200_000, "topP": 0.9},
            {"maxTokens": 1024, "topP": 0.9, "maxTokensClamped": True, "maxTokensRequested": 200_000},
        ),
    ],
)
def test_free_thread_settings_clamp_max_tokens_and_say_so(settings, requested, stored):
    assert free_thread_settings(settings, requested) == stored


@pytest.mark.parametrize(("stored", "sent"), [(None, 1024), (50, 50), (1024, 1024), (4096, 1024)])
def test_a_free_send_never_asks_for_more_than_the_ceiling(settings, stored, sent):
    assert free_max_tokens(settings, stored) == sent


def test_a_system_prompt_over_the_free_limit_is_a_validation_error(settings):
    check_free_system_prompt(settings, None)
    check_free_system_prompt(settings, "s" * 100)
    with pytest.raises(ValidationFailed) as refused:
        check_free_system_prompt(settings, "s" * 101)
    assert refused.value.details == {
        "fields": {"systemPrompt": ["KeyLM Free allows at most 100 characters."]}
    }


def test_a_message_over_the_free_limit_is_a_validation_error(settings):
    check_free_message(settings, "m" * 200)
    with pytest.raises(ValidationFailed) as refused:
        check_free_message(settings, "m" * 201)
    assert refused.value.details == {"fields": {"content": ["KeyLM Free allows at most 200 characters."]}}


def test_history_that_fits_is_kept_whole():
    earlier = [user("a" * 10), assistant("b" * 10), user("c" * 10), assistant("d" * 10)]
    assert bound_history(earlier, 40) == (earlier, 0)


def test_history_drops_the_oldest_whole_turns_first():
    earlier = [user("a" * 10), assistant("b" * 10), user("c" * 10), assistant("d" * 10), user("e" * 5)]

    kept, dropped = bound_history(earlier, 30)

    assert kept == earlier[2:]
    assert dropped == 2


def test_history_keeps_nothing_when_even_the_newest_turn_is_too_long():
    earlier = [user("a" * 10), assistant("b" * 50)]
    assert bound_history(earlier, 40) == ([], 2)


def test_history_starting_with_a_reply_counts_it_as_the_oldest_turn():
    earlier = [assistant("x" * 30), user("a" * 10), assistant("b" * 10)]
    assert bound_history(earlier, 25) == (earlier[1:], 1)


def test_prompt_estimate_counts_characters_and_framing():
    messages = [user("a" * 40), assistant("b" * 40), user("c" * 1)]
    # 81 + 20 system characters -> 26 tokens, plus 4 for each of the 3 messages and the system prompt.
    assert estimate_prompt_tokens("s" * 20, messages) == 26 + 16
    assert estimate_prompt_tokens(None, [user("hi")]) == 1 + 4


@pytest.mark.parametrize(
    ("usage", "used"),
    [
        ({"promptTokens": 10, "outputTokens": 5, "totalTokens": 15}, 15),
        ({"promptTokens": 10, "outputTokens": 5, "totalTokens": None}, 15),
        ({"promptTokens": None, "outputTokens": 7, "totalTokens": None}, 7),
        ({"promptTokens": None, "outputTokens": None, "totalTokens": None}, 100 + 3),
        (None, 100 + 3),
    ],
)
def test_tokens_used_are_the_providers_count_or_an_estimate(usage, used):
    assert tokens_used(usage, 100, "twelve chars") == used
