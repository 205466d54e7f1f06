"""Google Gemini: generateContent streams; the key travels in x-goog-api-key."""

from shared.providers.gemini import GeminiAdapter
from shared.providers.registry import ProviderSpec

SPEC = ProviderSpec(
    id="gemini",
    display_name="Gemini",
    adapter=GeminiAdapter,
    default_base_url="https://generativelanguage.googleapis.com/v1beta",
    key_placeholder="AIza…",
    # Google API keys: AIza plus 35 characters; shorter matches cover keys cut in a message.
    key_pattern=r"\bAIza[\w\-*.]{8,}",
    test_key_prefix="AIza",
    key_url="https://aistudio.google.com/apikey",
    monogram="G",
    color="#4285f4",
    simulator_path="/gemini/v1beta",
    simulator_blueprint="simulator.gemini_api:make_blueprint",
    sample_model="gemini-2.5-flash",
)
