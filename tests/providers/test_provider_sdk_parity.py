"""The official SDKs, pointed at the simulator, read the same text and usage as our adapters.

Needs the packages pinned in requirements-providers-test.txt.
"""

from __future__ import annotations

import pytest

from shared.providers import ChatMessage, ChatSettings, TextDelta, Usage

openai = pytest.importorskip("openai", reason="pip install -r requirements-providers-test.txt")
anthropic = pytest.importorskip("anthropic", reason="pip install -r requirements-providers-test.txt")
genai = pytest.importorskip("google.genai", reason="pip install -r requirements-providers-test.txt")
genai_types = pytest.importorskip("google.genai.types")
genai_errors = pytest.importorskip("google.genai.errors")

KEY = "sdk-test-key-0123456789"
PROMPT = "Say hi in Portuguese, Olá ação 日本 [[sim:tokens=12]]"
SYSTEM = "You are terse."


def ours(sim, provider, model, prompt=PROMPT):
    stream = sim.adapter(provider).stream_chat(
        KEY,
        model=model,
        messages=[ChatMessage("user", prompt)],
        system_prompt=SYSTEM,
        settings=ChatSettings(max_tokens=200),
    )
    events = list(stream)
    text = "".join(e.text for e in events if isinstance(e, TextDelta))
    usage = next(e for e in events if isinstance(e, Usage))
    return text, (usage.prompt_tokens, usage.output_tokens, usage.total_tokens)


def openai_client(sim, provider):
    return openai.OpenAI(api_key=KEY, base_url=sim.base_url(provider), max_retries=0, timeout=10)


def anthropic_client(sim):
    return anthropic.Anthropic(api_key=KEY, base_url=sim.root + "/anthropic", max_retries=0, timeout=10)


def gemini_client(sim, key=KEY):
    options = genai_types.HttpOptions(base_url=sim.root + "/gemini", api_version="v1beta", timeout=10_000)
    return genai.Client(api_key=key, http_options=options)


@pytest.mark.parametrize(("provider", "model"), [("openai", "gpt-4o-mini"), ("groq", "llama-3.1-8b-instant")])
def test_openai_sdk_reads_what_our_adapter_reads(sim, provider, model):
    stream = openai_client(sim, provider).chat.completions.create(
        model=model,
        stream=True,
        stream_options={"include_usage": True},
        max_completion_tokens=200,
        messages=[{"role": "system", "content": SYSTEM}, {"role": "user", "content": PROMPT}],
    )
    text, usage = "", None
    for chunk in stream:
        if chunk.choices and chunk.choices[0].delta.content:
            text += chunk.choices[0].delta.content
        usage = chunk.usage or usage
    assert (text, (usage.prompt_tokens, usage.completion_tokens, usage.total_tokens)) == ours(
        sim, provider, model
    )


def test_anthropic_sdk_reads_what_our_adapter_reads(sim):
    client = anthropic_client(sim)
    with client.messages.stream(
        model="claude-haiku-4-5",
        max_tokens=200,
        system=SYSTEM,
        messages=[{"role": "user", "content": PROMPT}],
    ) as stream:
        text = "".join(stream.text_stream)
        message = stream.get_final_message()
    usage = message.usage
    assert message.stop_reason == "end_turn"
    assert message.model == "claude-haiku-4-5-20251001"
    assert (
        text,
        (usage.input_tokens, usage.output_tokens, usage.input_tokens + usage.output_tokens),
    ) == ours(sim, "anthropic", "claude-haiku-4-5")


def test_gemini_sdk_reads_what_our_adapter_reads(sim):
    config = genai_types.GenerateContentConfig(system_instruction=SYSTEM, max_output_tokens=200)
    text, meta = "", None
    client = gemini_client(sim)  # keep a reference: a collected Client closes its HTTP pool
    for chunk in client.models.generate_content_stream(
        model="gemini-2.5-flash", contents=PROMPT, config=config
    ):
        text += chunk.text or ""
        meta = chunk.usage_metadata or meta
    output = meta.candidates_token_count + (meta.thoughts_token_count or 0)
    assert (text, (meta.prompt_token_count, output, meta.total_token_count)) == ours(
        sim, "gemini", "gemini-2.5-flash"
    )


def test_sdk_pagers_see_every_model_our_adapters_keep(sim):
    claude_ids = {m.id for m in anthropic_client(sim).models.list(limit=3)}
    client = gemini_client(sim)
    gemini_ids = {m.name.removeprefix("models/") for m in client.models.list(config={"page_size": 4})}
    assert {m.id for m in sim.adapter("anthropic").list_models(KEY)} == claude_ids
    assert {m.id for m in sim.adapter("gemini").list_models(KEY)} < gemini_ids


def test_sdks_raise_their_own_auth_errors_for_a_bad_key(sim):
    bad = "sdk-invalid-key"
    with pytest.raises(openai.AuthenticationError):
        openai.OpenAI(api_key=bad, base_url=sim.base_url("openai"), max_retries=0).models.list()
    with pytest.raises(anthropic.AuthenticationError):
        anthropic.Anthropic(api_key=bad, base_url=sim.root + "/anthropic", max_retries=0).models.list()
    client = gemini_client(sim, bad)
    with pytest.raises(genai_errors.ClientError) as caught:
        list(client.models.list())
    assert caught.value.code == 400 and caught.value.status == "INVALID_ARGUMENT"


def test_sdks_raise_on_the_simulated_mid_stream_errors(sim):
    messages = [{"role": "user", "content": "[[sim:fail_mid=2]]"}]
    with pytest.raises(openai.APIError):
        list(
            openai_client(sim, "openai").chat.completions.create(
                model="gpt-4o-mini", stream=True, messages=messages
            )
        )
    with (
        pytest.raises(anthropic.APIStatusError) as caught,
        anthropic_client(sim).messages.stream(
            model="claude-haiku-4-5", max_tokens=50, messages=messages
        ) as stream,
    ):
        list(stream.text_stream)
    assert "overloaded" in str(caught.value).lower()


def test_sdks_see_rate_limits_as_rate_limits(sim):
    messages = [{"role": "user", "content": "[[sim:429]]"}]
    with pytest.raises(openai.RateLimitError):
        openai_client(sim, "groq").chat.completions.create(
            model="llama-3.1-8b-instant", stream=True, messages=messages
        )
    with pytest.raises(anthropic.RateLimitError):
        anthropic_client(sim).messages.create(
            model="claude-haiku-4-5", max_tokens=50, stream=True, messages=messages
        )
