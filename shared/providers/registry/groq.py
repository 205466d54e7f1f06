"""Groq: OpenAI's wire format with its own model list (active flag, context_window)."""

from shared.providers.groq import GroqAdapter
from shared.providers.registry import ProviderSpec

SPEC = ProviderSpec(
    id="groq",
    display_name="Groq",
    adapter=GroqAdapter,
    default_base_url="https://api.groq.com/openai/v1",
    key_placeholder="gsk_…",
    key_pattern=r"\bgsk_[\w\-*.]{8,}",
    test_key_prefix="gsk_",
    key_url="https://console.groq.com/keys",
    monogram="Q",
    color="#f55036",
    simulator_path="/groq/openai/v1",
    simulator_blueprint="simulator.openai_api:make_blueprint",
    sample_model="llama-3.1-8b-instant",
)
