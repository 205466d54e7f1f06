"""OpenAI: chat completions; the model list is mixed, so chat models are picked by id (catalog.py)."""

from shared.providers.openai import OpenAIAdapter
from shared.providers.registry import ProviderSpec

SPEC = ProviderSpec(
    id="openai",
    display_name="OpenAI",
    adapter=OpenAIAdapter,
    default_base_url="https://api.openai.com/v1",
    key_placeholder="sk-…",
    # Legacy sk-, project sk-proj- and service-account keys; also the masked echo in a 401 message.
    key_pattern=r"\bsk-[\w\-*.]{8,}",
    test_key_prefix="sk-proj-",
    key_url="https://platform.openai.com/api-keys",
    monogram="O",
    color="#10a37f",
    simulator_path="/openai/v1",
    simulator_blueprint="simulator.openai_api:make_blueprint",
    sample_model="gpt-4o-mini",
)
