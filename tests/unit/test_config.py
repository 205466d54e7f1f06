"""shared.config: the environment is validated once, and every problem names its variable."""

from __future__ import annotations

import base64
import secrets

import pytest

from shared.config import SERVICE_NAMES, ConfigError, load_settings
from shared.signing import new_private_key, parse_private_key, public_key_text

REQUIRED_SECRETS = ("APP_AUTH_SECRET", "PASSWORD_PEPPER", "APP_ENCRYPTION_KEY")


@pytest.fixture
def env(tmp_path) -> dict[str, str]:
    """The smallest valid environment: the four required secrets (everything else defaults)."""
    return {
        "APP_AUTH_SECRET": secrets.token_hex(32),
        "CHAT_SIGNING_KEY": new_private_key(),
        "PASSWORD_PEPPER": secrets.token_hex(32),
        "APP_ENCRYPTION_KEY": base64.b64encode(secrets.token_bytes(32)).decode(),
        "KEYLM_VAR_DIR": str(tmp_path / "var"),
    }


def config_problems(env: dict[str, str]) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        load_settings(env)
    return caught.value.problems


def test_minimal_environment_loads(env):
    settings = load_settings(env)

    assert settings.auth_secret == env["APP_AUTH_SECRET"]
    assert len(settings.encryption_key) == 32


@pytest.mark.parametrize("name", REQUIRED_SECRETS)
def test_missing_required_secret_raises_config_error_naming_it(env, name):
    del env[name]

    problems = config_problems(env)

    assert problems == [f"{name} is required but not set"]


@pytest.mark.parametrize("name", REQUIRED_SECRETS)
def test_empty_required_secret_is_refused_naming_it(env, name):
    env[name] = "   "

    problems = config_problems(env)

    assert len(problems) == 1
    assert problems[0].startswith(f"{name} ")


def test_config_error_message_lists_every_problem(env):
    del env["APP_AUTH_SECRET"]

    with pytest.raises(ConfigError) as caught:
        load_settings(env)

    assert "APP_AUTH_SECRET is required but not set" in str(caught.value)


@pytest.mark.parametrize(
    "bad_key",
    [
        pytest.param("not base64 at all!", id="not-base64"),
        pytest.param(base64.b64encode(b"k" * 16).decode(), id="16-bytes"),
        pytest.param(base64.b64encode(b"k" * 31).decode(), id="31-bytes"),
        pytest.param(base64.b64encode(b"k" * 33).decode(), id="33-bytes"),
        pytest.param(secrets.token_hex(32), id="64-hex-chars"),
        pytest.param("k" * 32, id="32-raw-chars"),
    ],
)
@pytest.mark.parametrize("name", ["APP_ENCRYPTION_KEY", "APP_ENCRYPTION_KEY_PREVIOUS"])
def test_bad_encryption_key_must_be_32_bytes_base64(env, name, bad_key):
    env[name] = bad_key

    problems = config_problems(env)

    assert len(problems) == 1
    assert problems[0].startswith(f"{name} must be 32 bytes, base64")


@pytest.mark.parametrize("name", ["APP_AUTH_SECRET"])
def test_short_hmac_secret_is_refused(env, name):
    env[name] = "x" * 31

    problems = config_problems(env)

    assert problems == [f"{name} must be at least 32 characters (generate: openssl rand -hex 32)"]


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("FREE_USER_DAILY_LIMIT", "fifty"),
        ("FREE_USER_DAILY_LIMIT", "0"),
        ("FREE_GLOBAL_DAILY_LIMIT", "1.5"),
        ("FREE_GLOBAL_DAILY_LIMIT", "-1"),
        ("FREE_USER_DAILY_TOKENS", "0"),
        ("FREE_MAX_OUTPUT_TOKENS", "1k"),
        ("FREE_MAX_SYSTEM_PROMPT_CHARS", "-5"),
        ("FREE_MAX_MESSAGE_CHARS", "lots"),
        ("FREE_MAX_HISTORY_CHARS", "0"),
        ("FREE_REQUIRE_VERIFIED_EMAIL", "maybe"),
        ("EMAIL_VERIFICATION_TTL_HOURS", "2d"),
        ("PASSWORD_RESET_TTL_MINUTES", "1h"),
        ("SESSION_TTL_HOURS", "0"),
        ("RATE_LIMIT_PER_MINUTE", "lots"),
        ("LOGIN_LIMIT_PER_IP_PER_MINUTE", "3.0"),
        ("LOGIN_LIMIT_PER_EMAIL_PER_MINUTE", "five"),
        ("MAX_BODY_BYTES", "1MB"),
        ("BCRYPT_ROUNDS", "twelve"),
        ("PROVIDER_CONNECT_TIMEOUT_SECONDS", "0"),
        ("PROVIDER_READ_TIMEOUT_SECONDS", "soon"),
        ("SSE_IDLE_PING_SECONDS", "-0.5"),
        ("COOKIE_SECURE", "maybe"),
        ("COOKIE_SECURE", "2"),
        ("APP_BASE_URL", "127.0.0.1:8000"),
        ("APP_BASE_URL", "ftp://example.com"),
        ("APP_BASE_URL", "http://"),
        ("OPENAI_BASE_URL", "api.openai.com/v1"),
        ("ANTHROPIC_BASE_URL", "not a url"),
        ("GEMINI_BASE_URL", "file:///etc/passwd"),
        ("GROQ_BASE_URL", "groq"),
        ("AUTH_SERVICE_URL", "localhost:8001"),
        ("QUOTA_SERVICE_URL", "tcp://127.0.0.1:8004"),
        ("DATABASE_URL", "mysql://root@localhost/keylm"),
        ("DATABASE_URL", "postgres://keylm@localhost/keylm"),
        ("REDIS_URL", "http://127.0.0.1:6379"),
        ("SMTP_URL", "mail.example.com:25"),
        ("LOG_LEVEL", "LOUD"),
    ],
)
def test_bad_value_is_refused_naming_the_variable(env, name, value):
    env[name] = value

    problems = config_problems(env)

    assert len(problems) == 1, problems
    assert problems[0].startswith(f"{name} ")


def test_several_problems_are_reported_together(env):
    del env["APP_AUTH_SECRET"]
    env["APP_ENCRYPTION_KEY"] = "too-short"
    env["FREE_USER_DAILY_LIMIT"] = "many"
    env["COOKIE_SECURE"] = "perhaps"
    env["APP_BASE_URL"] = "keylm.example.com"

    problems = config_problems(env)

    named = sorted(problem.split(" ", 1)[0] for problem in problems)
    assert named == sorted(
        ["APP_AUTH_SECRET", "APP_ENCRYPTION_KEY", "FREE_USER_DAILY_LIMIT", "COOKIE_SECURE", "APP_BASE_URL"]
    )


@pytest.mark.parametrize(
    "name",
    ["APP_AUTH_SECRET", "CHAT_SIGNING_KEY", "APP_ENCRYPTION_KEY", "DATABASE_URL", "SMTP_URL"],
)
def test_config_error_never_echoes_the_rejected_value(env, name):
    rejected = "mysql://keylm:Pa55w0rd-in-url@db/keylm" if name.endswith("_URL") else "short-but-secret-value"
    env[name] = rejected

    with pytest.raises(ConfigError) as caught:
        load_settings(env)

    assert rejected not in str(caught.value)
    assert "Pa55w0rd" not in str(caught.value)


@pytest.mark.parametrize(
    ("attribute", "expected"),
    [
        ("free_user_daily_limit", 50),
        ("free_global_daily_limit", 1000),
        ("free_user_daily_tokens", 100_000),
        ("free_max_output_tokens", 1024),
        ("free_max_system_prompt_chars", 4000),
        ("free_max_message_chars", 8000),
        ("free_max_history_chars", 16_000),
        ("free_require_verified_email", False),
        ("email_verification_ttl_hours", 48),
        ("password_reset_ttl_minutes", 60),
        ("session_ttl_hours", 336),
        ("rate_limit_per_minute", 20),
        ("login_limit_per_ip", 30),
        ("login_limit_per_email", 5),
        ("register_limit_per_ip", 10),
        ("app_base_url", "http://127.0.0.1:8000"),
        ("cookie_secure", False),
        ("max_body_bytes", 1024 * 1024),
        ("bcrypt_rounds", 12),
        ("log_level", "INFO"),
        ("database_url", None),
        ("redis_url", None),
        ("smtp_url", None),
        ("encryption_key_previous", None),
        ("groq_api_key", None),
        ("fake_clock_file", None),
    ],
)
def test_unset_variable_takes_its_default(env, attribute, expected):
    assert getattr(load_settings(env), attribute) == expected


@pytest.mark.parametrize(
    ("name", "attribute", "expected"),
    [
        ("FREE_USER_DAILY_LIMIT", "free_user_daily_limit", 50),
        ("FREE_GLOBAL_DAILY_LIMIT", "free_global_daily_limit", 1000),
        ("PASSWORD_RESET_TTL_MINUTES", "password_reset_ttl_minutes", 60),
        ("DATABASE_URL", "database_url", None),
    ],
)
def test_empty_value_means_unset(env, name, attribute, expected):
    env[name] = ""

    assert getattr(load_settings(env), attribute) == expected


def test_defaults_derive_outbox_and_service_urls(env, tmp_path):
    settings = load_settings(env)

    assert settings.mail_outbox_dir == tmp_path / "var" / "outbox"
    assert settings.service_urls == {
        "gateway": "http://127.0.0.1:8000",
        "auth": "http://127.0.0.1:8001",
        "keys": "http://127.0.0.1:8002",
        "chat": "http://127.0.0.1:8003",
        "quota": "http://127.0.0.1:8004",
    }
    assert settings.uses_sqlite


@pytest.mark.parametrize(
    ("raw", "expected"),
    [("true", True), ("TRUE", True), ("1", True), ("yes", True), ("on", True)]
    + [("false", False), ("0", False), ("no", False), ("off", False)],
)
def test_cookie_secure_accepts_common_booleans(env, raw, expected):
    env["COOKIE_SECURE"] = raw

    assert load_settings(env).cookie_secure is expected


def test_set_values_are_parsed_to_their_types(env):
    env.update(
        FREE_USER_DAILY_LIMIT="7",
        PROVIDER_READ_TIMEOUT_SECONDS="2.5",
        APP_BASE_URL="https://keylm.example.com/",
        GROQ_FREE_FALLBACK_MODELS=" a , b,,c ",
        DATABASE_URL="postgresql://keylm@127.0.0.1:5432/keylm",
        LOG_LEVEL="debug",
    )

    settings = load_settings(env)

    assert settings.free_user_daily_limit == 7
    assert settings.provider_read_timeout == 2.5
    assert settings.app_base_url == "https://keylm.example.com"
    assert settings.groq_free_fallback_models == ("a", "b", "c")
    assert not settings.uses_sqlite
    assert settings.log_level == "DEBUG"


def test_settings_repr_holds_no_secret(env):
    previous_key = base64.b64encode(secrets.token_bytes(32)).decode()
    env.update(
        APP_ENCRYPTION_KEY_PREVIOUS=previous_key,
        GROQ_API_KEY="gsk_" + secrets.token_hex(24),
        SMTP_URL="smtp+starttls://mailer:smtp-Pa55word@mail.example.com:587",
        DATABASE_URL="postgresql://keylm:db-Pa55word@db.example.com:5432/keylm",
        REDIS_URL="redis://:redis-Pa55word@cache.example.com:6379/0",
    )
    settings = load_settings(env)
    shown = repr(settings) + str(settings)

    secret_texts = [
        env["APP_AUTH_SECRET"],
        env["CHAT_SIGNING_KEY"],
        env["APP_ENCRYPTION_KEY"],
        previous_key,
        env["GROQ_API_KEY"],
        "smtp-Pa55word",
        "db-Pa55word",
        "redis-Pa55word",
        repr(settings.encryption_key),
        repr(settings.encryption_key_previous),
    ]
    for secret in secret_texts:
        assert secret not in shown
    assert "free_user_daily_limit=50" in shown  # the repr is still useful


@pytest.mark.parametrize(
    ("base_url", "cookie_secure", "expected_secure", "cookie_name"),
    [
        ("http://127.0.0.1:8000", None, False, "keylm_session"),
        ("https://keylm.example.com", None, True, "__Host-keylm_session"),
        ("https://keylm.example.com", "false", False, "keylm_session"),
        ("http://127.0.0.1:8000", "true", True, "__Host-keylm_session"),
    ],
)
def test_cookie_secure_defaults_to_the_base_url_scheme_and_names_the_cookie(
    env, base_url, cookie_secure, expected_secure, cookie_name
):
    env["APP_BASE_URL"] = base_url
    if cookie_secure is not None:
        env["COOKIE_SECURE"] = cookie_secure

    settings = load_settings(env)

    assert settings.cookie_secure is expected_secure
    assert settings.session_cookie_name == cookie_name


def test_csrf_trusted_origins_are_parsed_to_lowercase_origins(env):
    env["CSRF_TRUSTED_ORIGINS"] = " https://KeyLM.example.com , http://localhost:8000/ ,"

    assert load_settings(env).csrf_trusted_origins == ("https://keylm.example.com", "http://localhost:8000")


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("CSRF_TRUSTED_ORIGINS", "keylm.example.com"),
        ("CSRF_TRUSTED_ORIGINS", "https://keylm.example.com/app"),
        ("TRUSTED_PROXY_HOPS", "-1"),
        ("TRUSTED_PROXY_HOPS", "one"),
        ("METRICS_PORT", "70000"),
        ("REDIS_SOCKET_TIMEOUT_SECONDS", "0"),
        ("PASSWORD_PEPPER", "short"),
        ("KEY_CHECK_LIMIT_PER_MINUTE", "0"),
        ("MAX_THREADS_PER_USER", "many"),
        ("MAIL_MAX_ATTEMPTS", "0"),
    ],
)
def test_bad_hardening_value_is_refused_naming_the_variable(env, name, value):
    env[name] = value

    problems = config_problems(env)

    assert len(problems) == 1, problems
    assert problems[0].startswith(f"{name} ")


def test_hardening_defaults(env):
    settings = load_settings(env)

    assert settings.trusted_proxy_hops == 0
    assert settings.csrf_trusted_origins == ()
    assert settings.metrics_port is None
    assert settings.redis_socket_timeout == settings.redis_connect_timeout == 0.5


def test_every_variable_is_documented_in_env_example():
    from shared.config import _VARS, REPO_ROOT

    documented = {
        line.split("=", 1)[0]
        for line in (REPO_ROOT / ".env.example").read_text().splitlines()
        if "=" in line and not line.startswith("#")
    }

    test_only = {"KEYLM_FAKE_CLOCK_FILE"}
    # One comment line documents every provider's base URL; each registry module names its default.
    from shared.providers.registry import SPECS

    registry_variables = {spec.base_url_variable for spec in SPECS.values()}
    assert "<PROVIDER>_BASE_URL" in (REPO_ROOT / ".env.example").read_text()
    assert sorted(set(_VARS) - documented - test_only - registry_variables) == []


@pytest.mark.parametrize(
    ("url", "expected"),
    [(None, False), ("memory://", False), ("redis://127.0.0.1:6379/0", True), ("rediss://cache:6380", True)],
)
def test_uses_redis_only_for_a_real_redis_url(env, url, expected):
    if url:
        env["REDIS_URL"] = url

    assert load_settings(env).uses_redis is expected


# Each service requires only its own secrets, so a deployment can hand each one only those.
SERVICE_SECRETS = {
    "gateway": {"APP_AUTH_SECRET", "GATEWAY_SIGNING_KEY"},
    "auth": {"PASSWORD_PEPPER", "AUTH_SIGNING_KEY"},
    "keys": {"APP_ENCRYPTION_KEY", "KEYS_SIGNING_KEY"},
    "chat": {"CHAT_SIGNING_KEY"},
    "quota": {"QUOTA_SIGNING_KEY"},
    "migrate": set(),
}


def with_every_signing_key(env: dict[str, str]) -> dict[str, str]:
    return {**env, **{f"{name.upper()}_SIGNING_KEY": new_private_key() for name in SERVICE_NAMES}}


@pytest.mark.parametrize("service", sorted(SERVICE_SECRETS))
def test_service_starts_with_only_its_own_secrets(env, service):
    env = with_every_signing_key(env)
    for name in set(REQUIRED_SECRETS) - SERVICE_SECRETS[service]:
        del env[name]

    settings = load_settings(env, service=service)

    assert (settings.encryption_key is not None) == ("APP_ENCRYPTION_KEY" in SERVICE_SECRETS[service])
    assert (settings.auth_secret is not None) == ("APP_AUTH_SECRET" in SERVICE_SECRETS[service])


@pytest.mark.parametrize("service", sorted(SERVICE_SECRETS))
def test_service_still_refuses_a_missing_secret_of_its_own(env, service):
    env = with_every_signing_key(env)
    for name in SERVICE_SECRETS[service]:
        without = {k: v for k, v in env.items() if k != name}
        with pytest.raises(ConfigError) as caught:
            load_settings(without, service=service)
        assert caught.value.problems == [f"{name} is required but not set"]


@pytest.mark.parametrize("name", ["GATEWAY_SIGNING_KEY", "AUTH_SIGNING_KEY", "CHAT_SIGNING_KEY"])
def test_malformed_signing_key_is_refused_naming_it(env, name):
    env[name] = "not-an-ed25519-key"

    problems = config_problems(env)

    assert len(problems) == 1 and problems[0].startswith(f"{name} must be an Ed25519 private key")


def test_missing_signing_key_fails_naming_the_services_own_variable(env):
    settings = load_settings(env)

    with pytest.raises(ConfigError) as caught:
        settings.private_key("keys")
    assert caught.value.problems == ["KEYS_SIGNING_KEY is required but not set"]
    with pytest.raises(ConfigError) as caught:
        settings.trusted_keys(["gateway", "chat"])
    assert caught.value.problems == ["GATEWAY_PUBLIC_KEYS is required but not set"]


def test_public_keys_derive_from_the_signing_key_unless_listed(env):
    derived = public_key_text(parse_private_key(env["CHAT_SIGNING_KEY"]))
    assert load_settings(env).public_keys["chat"] == (derived,)

    listed = [public_key_text(parse_private_key(new_private_key())) for _ in range(2)]
    env["CHAT_PUBLIC_KEYS"] = ",".join(listed)
    assert load_settings(env).public_keys["chat"] == tuple(listed)
    env["CHAT_PUBLIC_KEYS"] = listed[0] + ",bad"
    assert config_problems(env)[0].startswith("CHAT_PUBLIC_KEYS must list Ed25519 public keys")


def test_settings_to_migrate_need_no_secret_and_trust_no_caller(tmp_path):
    settings = load_settings({"KEYLM_VAR_DIR": str(tmp_path)}, service="migrate")

    assert settings.migrate_only
    assert settings.trusted_keys(["gateway", "auth"]) == {"gateway": (), "auth": ()}
    assert settings.private_key("chat") is not None  # a throwaway key: nobody accepts it
