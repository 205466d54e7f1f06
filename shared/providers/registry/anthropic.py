"""Anthropic: the Messages API with named SSE events."""

from shared.providers.anthropic import AnthropicAdapter
from shared.providers.registry import ProviderSpec

SPEC = ProviderSpec(
    id="anthropic",
    display_name="Anthropic",
    adapter=AnthropicAdapter,
    default_base_url="https://api.anthropic.com/v1",
    key_placeholder="sk-ant-…",
    key_pattern=r"\bsk-ant-[\w\-*.]{8,}",
    test_key_prefix="sk-ant-api03-",
    key_url="https://console.anthropic.com/settings/keys",
    monogram="A",
    color="#d97757",
    simulator_path="/anthropic/v1",
    simulator_blueprint="simulator.anthropic_api:make_blueprint",
    sample_model="claude-sonnet-4-5-20250929",
)
