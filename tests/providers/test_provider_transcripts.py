"""Recorded provider streams parse to the results listed in the transcripts' README.md (the recordings
are kept beside the repository, in ../shared/provider-transcripts/; without them these tests skip)."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from shared.providers import (
    ChatMessage,
    Done,
    ProviderError,
    TextDelta,
    UpstreamError,
    Usage,
)

SSE_HEADERS = {
    "openai": {"content-type": "text/event-stream; charset=utf-8"},
    "anthropic": {"content-type": "text/event-stream; charset=utf-8"},
    "gemini": {"content-type": "text/event-stream"},  # no charset: must not decode as Latin-1
    "groq": {"content-type": "text/event-stream"},
}


@dataclass(frozen=True)
class Expected:
    file: str
    provider: str
    text: str
    usage: tuple[int | None, int | None, int | None] | None
    message_id: str | None
    finish: str
    model: str | None


STREAMS = [
    Expected(
        "openai_stream_usage.sse",
        "openai",
        "I'm unable to provide real-time weather updates. To get the current weather in San "
        "Francisco, I recommend checking a reliable weather website or a weather app.",
        (14, 30, 44),
        "chatcmpl-ABfw031mOJeYCSHe4yI2ZjOA6kMJL",
        "stop",
        "gpt-4o-2024-08-06",
    ),
    Expected(
        "openai_stream_length.sse",
        "openai",
        '{"',
        (79, 1, 80),
        "chatcmpl-ABfw3Oqj8RD0z6aJiiX37oTjV2HFh",
        "length",
        "gpt-4o-2024-08-06",
    ),
    Expected(
        "openai_stream_gpt5.sse",
        "openai",
        "Olá!",
        (19, 75, 94),
        "chatcmpl-DuLddZr4DRHJOM0r9PiSog78i9fIY",
        "stop",
        "gpt-5-2025-08-07",
    ),
    Expected(
        "openai_stream_gpt4o_mini.sse",
        "openai",
        "Olá!",
        (20, 2, 22),
        "chatcmpl-DuLdOuviL2tiVxMim6HmX4YMnCorK",
        "stop",
        "gpt-4o-mini-2024-07-18",
    ),
    Expected(
        "groq_stream.sse",
        "groq",
        "Olá!",
        (20, 4, 24),
        "chatcmpl-f07b368c-ae72-4555-9465-ae09fe4614e6",
        "stop",
        "moonshotai/kimi-k2-instruct-0905",
    ),
    Expected(
        "anthropic_stream.sse",
        "anthropic",
        "Hello there!",
        (11, 6, 17),
        "msg_4QpJur2dWWDjF6C758FbBw5vm12BaVipnK",
        "stop",
        "claude-3-opus-latest",
    ),
    Expected(
        "anthropic_stream_docs.sse",
        "anthropic",
        "Hello!",
        (25, 15, 40),
        "msg_1nZdL29xx5MUA1yADyHTEsnR8uuvGzszyY",
        "stop",
        "claude-sonnet-4-5-20250929",
    ),
    Expected(
        "anthropic_stream_live.sse",
        "anthropic",
        'Olá! (That\'s "hi" in Portuguese)\n\nYou could also say "Oi!" which is a more casual way '
        "to say hi in Portuguese.",
        (16, 38, 54),
        "msg_01R8GdyyLQUhUfyjqSCMbnWg",
        "stop",
        "claude-sonnet-4-20250514",
    ),
    Expected(
        "anthropic_stream_refusal.sse",
        "anthropic",
        "",
        (20, 0, 20),
        "msg_01RefusalTestMessage123456789",
        "filtered",
        "claude-opus-4-7",
    ),
    Expected(
        "gemini_stream.sse",
        "gemini",
        "The capital of Wyoming is **Cheyenne**.\n",
        (7, 10, 17),
        None,
        "stop",
        "gemini-2.0-flash",
    ),
    Expected(
        "gemini_stream_thinking.sse",
        "gemini",
        "The sky is blue because tiny gas molecules in Earth's atmosphere scatter blue light from "
        "the sun more efficiently than other colors. Blue light has shorter, smaller wavelengths, "
        "causing it to be scattered in all directions, making the sky appear blue to our eyes.",
        (10, 48 + 540, 598),
        "0J-HaJetAqv0jrEPwu-tsQ0",
        "stop",
        "gemini-2.5-flash",
    ),
    Expected(
        "gemini_stream_live.sse",
        "gemini",
        'Of course!\n\nThe most common way to say "hi" in Portuguese is:\n\n**Oi**\n\nYou can also '
        'say:\n\n**Olá** (This is a bit more like "Hello" and can be used in any situation.)',
        (11, 49 + 603, 663),
        "aQCzaYSIIp3Uz7IP4L7z4Qk",
        "stop",
        "gemini-2.5-pro",
    ),
    Expected(
        "gemini_stream_gemini3.sse",
        "gemini",
        '"Hi" in Portuguese is **"Oi"** (pronounced like "oy"). \n\nYou can also use **"Olá"** '
        '(pronounced oh-LAH), which means "Hello".',
        (11, 39 + 206, 256),
        "NgCzaZz6I6nUz7IPhsKmmQw",
        "stop",
        "gemini-3.1-pro-preview",
    ),
]

FAILING_STREAMS = [
    # (file, provider, partial text seen first, exception class, code)
    ("anthropic_stream_error.sse", "anthropic", "", UpstreamError, "overloaded"),
    ("gemini_stream_error_midstream.sse", "gemini", "First Second ", UpstreamError, "upstream_error"),
]


def replay_stream(replay, transcripts, provider, file, chunks):
    adapter, transport = replay(provider)
    transport.add((transcripts / file).read_bytes(), headers=SSE_HEADERS[provider], chunks=chunks)
    stream = adapter.stream_chat("test-key", model="some-model", messages=[ChatMessage("user", "hi")])
    return stream, transport


@pytest.mark.parametrize("expected", STREAMS, ids=lambda e: e.file)
def test_transcript_parses_to_recorded_text_usage_id_and_finish(replay, transcripts, chunking, expected):
    stream, _ = replay_stream(replay, transcripts, expected.provider, expected.file, chunking)
    events = list(stream)
    text = "".join(e.text for e in events if isinstance(e, TextDelta))
    usages = [e for e in events if isinstance(e, Usage)]
    assert text == expected.text
    assert all(e.text for e in events if isinstance(e, TextDelta)), "no empty deltas"
    assert len(usages) == 1  # Groq's triple usage is reported once, not summed
    assert (usages[0].prompt_tokens, usages[0].output_tokens, usages[0].total_tokens) == expected.usage
    assert events[-1] == Done(expected.message_id, expected.finish, expected.model)
    assert stream.closed


@pytest.mark.parametrize(("file", "provider", "partial", "error_class", "code"), FAILING_STREAMS)
def test_transcript_with_error_event_raises_after_partial_text(
    replay, transcripts, chunking, file, provider, partial, error_class, code
):
    stream, transport = replay_stream(replay, transcripts, provider, file, chunking)
    seen = []
    with pytest.raises(error_class) as caught:
        for event in stream:
            assert not isinstance(event, Done | Usage)
            seen.append(event.text)
    assert "".join(seen) == partial
    assert caught.value.code == code
    assert caught.value.retryable
    assert caught.value.provider == provider
    assert transport.bodies[0].closed


def test_gemini_thought_parts_are_not_answer_text(replay, transcripts):
    stream, _ = replay_stream(replay, transcripts, "gemini", "gemini_stream_thinking.sse", None)
    text = "".join(e.text for e in stream if isinstance(e, TextDelta))
    assert "Exploring Sky Color" not in text
    assert text.startswith("The sky is blue")


@pytest.mark.parametrize(
    ("provider", "body"),
    [
        ("openai", b'data: {"id":"c1","model":"m","choices":[{"index":0,"delta":{"content":"Hi"}}]}\n\n'),
        (
            "groq",
            b'data: {"id":"c1","model":"m","choices":[{"index":0,"delta":{"content":"Hi"},'
            b'"finish_reason":"stop"}]}\n\n',
        ),
        (
            "anthropic",
            b'event: message_start\ndata: {"type":"message_start","message":{"id":"m1",'
            b'"usage":{"input_tokens":1}}}\n\nevent: content_block_delta\ndata: {"type":'
            b'"content_block_delta","delta":{"type":"text_delta","text":"Hi"}}\n\n',
        ),
        ("gemini", b'data: {"candidates":[{"content":{"parts":[{"text":"Hi"}]}}]}\r\n\r\n'),
    ],
)
def test_stream_cut_without_terminator_is_an_upstream_error(replay, provider, body):
    adapter, transport = replay(provider)
    transport.add(body, headers=SSE_HEADERS[provider], chunks=[7])
    stream = adapter.stream_chat("k", model="m", messages=[ChatMessage("user", "hi")])
    seen = []
    with pytest.raises(UpstreamError):
        for event in stream:
            seen.append(event)
    assert seen == [TextDelta("Hi")]


@pytest.mark.parametrize("provider", ["openai", "groq"])
def test_openai_style_error_chunk_mid_stream_raises_typed_error(replay, provider):
    adapter, transport = replay(provider)
    transport.add(
        b'data: {"id":"c","choices":[{"index":0,"delta":{"content":"Par"}}]}\n\n'
        b'data: {"error":{"message":"The server had an error","type":"server_error"}}'
        b"\n\n",
        headers=SSE_HEADERS[provider],
        chunks=[3],
    )
    stream = adapter.stream_chat("k", model="m", messages=[ChatMessage("user", "hi")])
    assert next(stream) == TextDelta("Par")
    with pytest.raises(UpstreamError) as caught:
        next(stream)
    assert caught.value.message == "The server had an error"
    assert list(stream) == []


def test_close_stops_the_stream_and_closes_the_response(replay, transcripts):
    stream, transport = replay_stream(replay, transcripts, "openai", "openai_stream_usage.sse", [40])
    with stream:
        first = next(stream)
        assert isinstance(first, TextDelta)
    assert transport.bodies[0].closed
    assert list(stream) == []


def test_malformed_json_chunk_is_an_upstream_error(replay):
    adapter, transport = replay("openai")
    transport.add(b"data: {not json\n\n", headers=SSE_HEADERS["openai"])
    with pytest.raises(UpstreamError):
        list(adapter.stream_chat("k", model="m", messages=[ChatMessage("user", "hi")]))


def test_every_transcript_file_is_covered(transcripts):
    covered = {e.file for e in STREAMS} | {f[0] for f in FAILING_STREAMS}
    assert {p.name for p in transcripts.glob("*.sse")} == covered


def test_provider_error_is_the_base_of_stream_failures():
    assert issubclass(UpstreamError, ProviderError)
