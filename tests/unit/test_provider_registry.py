"""The provider registry is the one place a provider is declared: everything else derives from it."""

from __future__ import annotations

import base64
import re
import secrets

import pytest

from runner.suite import simulator_base_urls
from shared.config import load_settings
from shared.logging import Redactor
from shared.providers import PROVIDERS, get_adapter
from shared.providers.base import redact
from shared.providers.registry import PROVIDER_MODULES, SPECS, get_spec, public_providers
from shared.redaction import MASK
from tests.e2e.sse import BYOK_MODELS, KEY_PREFIX

each_spec = pytest.mark.parametrize("spec", list(SPECS.values()), ids=list(SPECS))


@pytest.fixture
def env_minimal(tmp_path) -> dict[str, str]:
    """The required secrets; every provider variable left to its default."""
    return {
        "APP_AUTH_SECRET": secrets.token_hex(32),
        "PASSWORD_PEPPER": secrets.token_hex(32),
        "APP_ENCRYPTION_KEY": base64.b64encode(secrets.token_bytes(32)).decode(),
        "KEYLM_VAR_DIR": str(tmp_path / "var"),
    }


def test_the_registry_list_is_the_provider_list():
    assert PROVIDERS == PROVIDER_MODULES == tuple(SPECS)


@each_spec
def test_each_spec_is_complete_and_consistent(spec):
    assert re.fullmatch(r"[a-z][a-z0-9]*", spec.id)
    assert spec.adapter.name == spec.id
    assert spec.default_base_url.startswith("https://")
    assert spec.simulator_path.startswith(f"/{spec.id}/")
    assert re.fullmatch(r"#[0-9a-f]{6}", spec.color)
    assert spec.key_url.startswith("https://")
    assert spec.display_name and spec.key_placeholder and spec.monogram
    assert get_adapter(spec.id).base_url == spec.default_base_url


def test_an_unknown_provider_is_refused():
    with pytest.raises(ValueError, match="unknown provider"):
        get_spec("nope")


@each_spec
def test_the_base_url_variable_comes_from_the_registry(spec, env_minimal):
    defaults = load_settings(env_minimal)
    assert defaults.provider_base_urls[spec.id] == spec.default_base_url
    pointed = load_settings({**env_minimal, spec.base_url_variable: "http://127.0.0.1:9/x"})
    assert pointed.provider_base_urls[spec.id] == "http://127.0.0.1:9/x"


def test_the_simulator_mounts_every_provider_where_the_suite_points_it():
    from simulator.app import create_app

    rules = {rule.rule for rule in create_app().url_map.iter_rules()}
    urls = simulator_base_urls("http://sim")
    for spec in SPECS.values():
        assert urls[spec.base_url_variable] == "http://sim" + spec.simulator_path
        assert spec.simulator_path + "/models" in rules


def test_test_helpers_cover_every_provider():
    assert set(BYOK_MODELS) == set(KEY_PREFIX) == set(PROVIDERS)


@each_spec
def test_a_key_of_each_shaped_provider_is_masked_in_logs_and_provider_messages(spec):
    if not spec.key_pattern:
        pytest.skip(f"{spec.id} keys have no recognisable shape; only the exact key is masked")
    key = spec.test_key_prefix + secrets.token_urlsafe(30)
    line = f"upstream said: bad key {key} (retry)"
    assert key not in Redactor()(line) and MASK in Redactor()(line)
    assert key not in redact(line)


@each_spec
def test_an_exact_key_is_masked_whatever_its_shape(spec):
    key = spec.test_key_prefix + secrets.token_hex(16)
    assert key not in redact(f"the key {key} was refused", key)


def test_public_metadata_holds_only_what_the_client_needs():
    providers = public_providers()
    assert [p["id"] for p in providers] == list(PROVIDERS)
    for provider in providers:
        assert set(provider) == {"id", "name", "keyPlaceholder", "keyUrl", "monogram", "color", "hint"}


def test_the_gateway_serves_the_registry_without_a_session(tmp_path):
    from gateway.app import create_app
    from tests.conftest import make_settings

    client = create_app(make_settings(tmp_path / "var")).test_client()
    response = client.get("/api/providers")
    assert response.status_code == 200
    assert response.get_json() == {"providers": public_providers()}
    assert "Set-Cookie" not in response.headers
