"""Configuration: every environment variable of the product, read once and validated at start."""

from __future__ import annotations

import base64
import binascii
import os
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from urllib.parse import urlparse

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from shared.providers import SPECS
from shared.signing import parse_private_key, parse_public_key, public_key_text

SERVICE_NAMES = ("gateway", "auth", "keys", "chat", "quota")
DATABASE_SERVICES = ("auth", "keys", "chat", "quota")
DEFAULT_PORTS = {"gateway": 8000, "auth": 8001, "keys": 8002, "chat": 8003, "quota": 8004}
REPO_ROOT = Path(__file__).resolve().parent.parent
# The secrets each process needs to start; a deployment gives each service only its own (one
# Secret per service on Kubernetes). `None` (the runner, tests, key rotation) requires all three.
# The migration job needs none: it only reaches the database.
REQUIRED_SECRETS: dict[str | None, tuple[str, ...]] = {
    None: ("APP_AUTH_SECRET", "APP_ENCRYPTION_KEY", "PASSWORD_PEPPER"),
    "gateway": ("APP_AUTH_SECRET", "GATEWAY_SIGNING_KEY"),  # keys the rate-limit counters' names
    "auth": ("PASSWORD_PEPPER", "AUTH_SIGNING_KEY"),  # the pepper keys the password pre-hash
    "keys": ("APP_ENCRYPTION_KEY", "KEYS_SIGNING_KEY"),  # the vault's master key
    "chat": ("CHAT_SIGNING_KEY",),
    "quota": ("QUOTA_SIGNING_KEY",),
    "migrate": (),
}


class ConfigError(Exception):
    """Raised at start when the environment is missing or has a bad value; names each variable."""

    def __init__(self, problems: list[str]):
        self.problems = problems
        super().__init__("Invalid configuration:\n  " + "\n  ".join(problems))


@dataclass(frozen=True)
class Settings:
    """Typed configuration shared by every service. Build it with `load_settings`."""

    # None only where the process was loaded for a service that does not use it (REQUIRED_SECRETS).
    auth_secret: str | None = field(repr=False)
    # Each service's Ed25519 private key (base64), by service name: `<NAME>_SIGNING_KEY`.
    signing_keys: Mapping[str, str] = field(repr=False)
    # The public keys each service's signatures are checked with (`<NAME>_PUBLIC_KEYS`, or derived
    # from its signing key); more than one while a rotation overlaps.
    public_keys: Mapping[str, tuple[str, ...]]
    password_pepper: str | None = field(repr=False)
    encryption_key: bytes | None = field(repr=False)
    encryption_key_previous: bytes | None = field(repr=False)
    database_url: str | None = field(repr=False)  # may hold a password
    # `<NAME>_DATABASE_URL`: the role a service connects as (rights on its own schema only); it
    # overrides DATABASE_URL in that service. Migrations run with DATABASE_URL, the owner.
    service_database_urls: Mapping[str, str] = field(repr=False)
    var_dir: Path
    redis_url: str | None = field(repr=False)  # may hold a password
    groq_api_key: str | None = field(repr=False)
    groq_free_model: str
    groq_free_fallback_models: tuple[str, ...]
    free_user_daily_limit: int
    free_global_daily_limit: int
    free_user_daily_tokens: int
    free_max_output_tokens: int
    free_max_system_prompt_chars: int
    free_max_message_chars: int
    free_max_history_chars: int
    free_require_verified_email: bool
    email_verification_ttl_hours: int
    rate_limit_per_minute: int
    rate_limit_key_prefix: str
    login_limit_per_ip: int
    login_limit_per_email: int
    login_slowdown_after: int
    login_slowdown_max_seconds: float
    register_limit_per_ip: int
    key_check_limit_per_minute: int
    model_refresh_limit_per_minute: int
    thread_create_limit_per_minute: int
    max_threads_per_user: int
    max_stored_bytes_per_user: int
    trusted_proxy_hops: int
    redis_connect_timeout: float
    redis_socket_timeout: float
    password_reset_ttl_minutes: int
    session_ttl_hours: int
    app_base_url: str
    csrf_trusted_origins: tuple[str, ...]
    cookie_secure: bool
    smtp_url: str | None = field(repr=False)
    mail_from: str
    mail_outbox_dir: Path
    mail_max_attempts: int
    mail_retry_seconds: float
    provider_base_urls: Mapping[str, str]
    provider_connect_timeout: float
    provider_read_timeout: float
    service_urls: Mapping[str, str]
    max_body_bytes: int
    db_pool_size: int
    db_max_overflow: int
    bcrypt_rounds: int
    sse_idle_ping_seconds: float
    stream_lease_seconds: float
    stream_max_seconds: float
    max_streams_per_user: int
    log_level: str
    # Set by the runner that started the process; /healthz repeats it so the runner knows its own.
    instance_id: str | None = None
    metrics_port: int | None = None
    # Loaded for `runner migrate` (service="migrate"): no secret, no signing key, no caller accepted.
    migrate_only: bool = False
    # Test-only: when set, quota_service reads "now" from this file (ISO 8601) so tests can cross
    # midnight in real processes. Never set it in production.
    fake_clock_file: Path | None = None

    def for_service(self, service: str) -> Settings:
        """These settings as `service` runs with them: its own database role when one is set."""
        url = self.service_database_urls.get(service)
        return replace(self, database_url=url) if url else self

    def private_key(self, service: str) -> Ed25519PrivateKey:
        """This service's signing key; a ConfigError naming the variable when it is not set."""
        value = self.signing_keys.get(service)
        if not value and self.migrate_only:
            return Ed25519PrivateKey.generate()  # an app built to migrate calls no other service
        if not value:
            raise ConfigError([f"{service.upper()}_SIGNING_KEY is required but not set"])
        return parse_private_key(value)

    def trusted_keys(self, callers: Iterable[str]) -> dict[str, tuple[Ed25519PublicKey, ...]]:
        """The public keys of the services a receiver accepts; a ConfigError names any missing."""
        if self.migrate_only:  # an app built to migrate serves nothing: no key verifies anything
            return {name: () for name in callers}
        missing = [f"{name.upper()}_PUBLIC_KEYS" for name in callers if not self.public_keys.get(name)]
        if missing:
            raise ConfigError([f"{name} is required but not set" for name in missing])
        return {name: tuple(parse_public_key(k) for k in self.public_keys[name]) for name in callers}

    @property
    def uses_sqlite(self) -> bool:
        return self.database_url is None or self.database_url.startswith("sqlite")

    @property
    def uses_redis(self) -> bool:
        """REDIS_URL names a real Redis (not `memory://`)."""
        return bool(self.redis_url) and self.redis_url.startswith(("redis://", "rediss://"))

    @property
    def session_cookie_name(self) -> str:
        """`__Host-` over HTTPS: the browser then refuses it unless Secure, Path=/ and no Domain, so a
        sibling subdomain cannot plant or overwrite it."""
        return "__Host-keylm_session" if self.cookie_secure else "keylm_session"


def _text(value: str) -> str:
    if not value.strip():
        raise ValueError("must not be empty")
    return value.strip()


def _secret(value: str) -> str:
    if len(value) < 32:
        raise ValueError("must be at least 32 characters (generate: openssl rand -hex 32)")
    return value


def _aes_key(value: str) -> bytes:
    try:
        raw = base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raw = b""
    if len(raw) != 32:
        raise ValueError("must be 32 bytes, base64 (generate: openssl rand -base64 32)")
    return raw


def _signing_key(value: str) -> str:
    parse_private_key(value)
    return value.strip()


def _public_keys(value: str) -> tuple[str, ...]:
    keys = tuple(item.strip() for item in value.split(",") if item.strip())
    for key in keys:
        parse_public_key(key)
    return keys


def _positive_int(value: str) -> int:
    try:
        number = int(value)
    except ValueError:
        raise ValueError("must be a whole number") from None
    if number < 1:
        raise ValueError("must be at least 1")
    return number


def _non_negative_int(value: str) -> int:
    try:
        number = int(value)
    except ValueError:
        raise ValueError("must be a whole number") from None
    if number < 0:
        raise ValueError("must be 0 or more")
    return number


def _port(value: str) -> int:
    number = _positive_int(value)
    if number > 65535:
        raise ValueError("must be a TCP port (1-65535)")
    return number


def _positive_float(value: str) -> float:
    try:
        number = float(value)
    except ValueError:
        raise ValueError("must be a number") from None
    if number <= 0:
        raise ValueError("must be greater than 0")
    return number


def _bool(value: str) -> bool:
    lowered = value.strip().lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off", ""):
        return False
    raise ValueError("must be true or false")


def _http_url(value: str) -> str:
    parsed = urlparse(value.strip())
    if parsed.scheme not in ("http", "https") or not parsed.netloc:
        raise ValueError("must be an http(s) URL such as http://127.0.0.1:8000")
    return value.strip().rstrip("/")


def _origin_list(value: str) -> tuple[str, ...]:
    origins = []
    for item in (part.strip() for part in value.split(",")):
        if not item:
            continue
        parsed = urlparse(item)
        if parsed.scheme not in ("http", "https") or not parsed.netloc or parsed.path not in ("", "/"):
            raise ValueError("must be a comma-separated list of origins such as https://keylm.example.com")
        origins.append(f"{parsed.scheme}://{parsed.netloc}".lower())
    return tuple(origins)


def _database_url(value: str) -> str:
    scheme = urlparse(value).scheme
    if not (scheme.startswith("postgresql") or scheme.startswith("sqlite")):
        raise ValueError("must be a postgresql:// (or sqlite://) URL")
    if scheme == "postgres":
        raise ValueError("must start with postgresql://, not postgres://")
    return value


def _redis_url(value: str) -> str:
    if urlparse(value).scheme not in ("redis", "rediss", "memory"):
        raise ValueError("must be a redis:// URL")
    return value


def _smtp_url(value: str) -> str:
    if urlparse(value).scheme not in ("smtp", "smtps", "smtp+starttls"):
        raise ValueError("must be smtp://user:pass@host:port, smtps://… or smtp+starttls://…")
    return value


def _model_list(value: str) -> tuple[str, ...]:
    return tuple(item.strip() for item in value.split(",") if item.strip())


def _log_level(value: str) -> str:
    level = value.strip().upper()
    if level not in ("DEBUG", "INFO", "WARNING", "ERROR"):
        raise ValueError("must be DEBUG, INFO, WARNING or ERROR")
    return level


@dataclass(frozen=True)
class _Var:
    name: str
    parse: Callable[[str], object]
    default: str | None = None  # None: required
    optional: bool = False  # optional: unset or empty means None


_VARS: dict[str, _Var] = {
    v.name: v
    for v in (
        _Var("APP_AUTH_SECRET", _secret),
        *(_Var(f"{name.upper()}_SIGNING_KEY", _signing_key, optional=True) for name in SERVICE_NAMES),
        *(_Var(f"{name.upper()}_PUBLIC_KEYS", _public_keys, optional=True) for name in SERVICE_NAMES),
        _Var("PASSWORD_PEPPER", _secret),
        _Var("APP_ENCRYPTION_KEY", _aes_key),
        _Var("APP_ENCRYPTION_KEY_PREVIOUS", _aes_key, optional=True),
        _Var("DATABASE_URL", _database_url, optional=True),
        *(_Var(f"{name.upper()}_DATABASE_URL", _database_url, optional=True) for name in DATABASE_SERVICES),
        _Var("KEYLM_VAR_DIR", _text, default=str(REPO_ROOT / "var")),
        _Var("REDIS_URL", _redis_url, optional=True),
        _Var("REDIS_CONNECT_TIMEOUT_SECONDS", _positive_float, default="0.5"),
        _Var("REDIS_SOCKET_TIMEOUT_SECONDS", _positive_float, default="0.5"),
        _Var("GROQ_API_KEY", _text, optional=True),
        _Var("GROQ_FREE_MODEL", _text, default="moonshotai/kimi-k2-instruct-0905"),
        _Var("GROQ_FREE_FALLBACK_MODELS", _model_list, default=""),
        _Var("FREE_USER_DAILY_LIMIT", _positive_int, default="50"),
        _Var("FREE_GLOBAL_DAILY_LIMIT", _positive_int, default="1000"),
        _Var("FREE_USER_DAILY_TOKENS", _positive_int, default="100000"),
        _Var("FREE_MAX_OUTPUT_TOKENS", _positive_int, default="1024"),
        _Var("FREE_MAX_SYSTEM_PROMPT_CHARS", _positive_int, default="4000"),
        _Var("FREE_MAX_MESSAGE_CHARS", _positive_int, default="8000"),
        _Var("FREE_MAX_HISTORY_CHARS", _positive_int, default="16000"),
        _Var("FREE_REQUIRE_VERIFIED_EMAIL", _bool, default="false"),
        _Var("EMAIL_VERIFICATION_TTL_HOURS", _positive_int, default="48"),
        _Var("RATE_LIMIT_PER_MINUTE", _positive_int, default="20"),
        _Var("RATE_LIMIT_KEY_PREFIX", _text, default="keylm"),
        _Var("LOGIN_LIMIT_PER_IP_PER_MINUTE", _positive_int, default="30"),
        _Var("LOGIN_LIMIT_PER_EMAIL_PER_MINUTE", _positive_int, default="5"),
        _Var("LOGIN_SLOWDOWN_AFTER_FAILURES", _positive_int, default="10"),
        _Var("LOGIN_SLOWDOWN_MAX_SECONDS", _positive_float, default="3"),
        _Var("REGISTER_LIMIT_PER_IP_PER_MINUTE", _positive_int, default="10"),
        _Var("KEY_CHECK_LIMIT_PER_MINUTE", _positive_int, default="10"),
        _Var("MODEL_REFRESH_LIMIT_PER_MINUTE", _positive_int, default="10"),
        _Var("THREAD_CREATE_LIMIT_PER_MINUTE", _positive_int, default="30"),
        _Var("MAX_THREADS_PER_USER", _positive_int, default="1000"),
        _Var("MAX_STORED_BYTES_PER_USER", _positive_int, default=str(50 * 1024 * 1024)),
        _Var("TRUSTED_PROXY_HOPS", _non_negative_int, default="0"),
        _Var("PASSWORD_RESET_TTL_MINUTES", _positive_int, default="60"),
        _Var("SESSION_TTL_HOURS", _positive_int, default="336"),
        _Var("APP_BASE_URL", _http_url, default="http://127.0.0.1:8000"),
        _Var("CSRF_TRUSTED_ORIGINS", _origin_list, default=""),
        _Var("COOKIE_SECURE", _bool, optional=True),  # unset: true when APP_BASE_URL is https
        _Var("SMTP_URL", _smtp_url, optional=True),
        _Var("MAIL_FROM", _text, default="KeyLM <no-reply@keylm.local>"),
        _Var("MAIL_OUTBOX_DIR", _text, optional=True),
        _Var("MAIL_MAX_ATTEMPTS", _positive_int, default="5"),
        _Var("MAIL_RETRY_SECONDS", _positive_float, default="30"),
        # <PROVIDER>_BASE_URL for each provider in the registry, defaulting to the real API.
        *(_Var(spec.base_url_variable, _http_url, default=spec.default_base_url) for spec in SPECS.values()),
        _Var("PROVIDER_CONNECT_TIMEOUT_SECONDS", _positive_float, default="5"),
        _Var("PROVIDER_READ_TIMEOUT_SECONDS", _positive_float, default="60"),
        _Var("MAX_BODY_BYTES", _positive_int, default=str(1024 * 1024)),
        _Var("DB_POOL_SIZE", _positive_int, default="5"),
        _Var("DB_MAX_OVERFLOW", _positive_int, default="10"),
        _Var("BCRYPT_ROUNDS", _positive_int, default="12"),
        _Var("SSE_IDLE_PING_SECONDS", _positive_float, default="0.5"),
        _Var("STREAM_LEASE_SECONDS", _positive_float, default="120"),
        _Var("STREAM_MAX_SECONDS", _positive_float, default="600"),
        _Var("MAX_STREAMS_PER_USER", _positive_int, default="4"),
        _Var("LOG_LEVEL", _log_level, default="INFO"),
        _Var("METRICS_PORT", _port, optional=True),
        _Var("KEYLM_FAKE_CLOCK_FILE", _text, optional=True),
        _Var("KEYLM_INSTANCE_ID", _text, optional=True),
        *(_Var(f"{name.upper()}_SERVICE_URL", _http_url, optional=True) for name in SERVICE_NAMES),
    )
}


def load_settings(env: Mapping[str, str] | None = None, service: str | None = None) -> Settings:
    """Parse and validate the environment; raises ConfigError naming every bad variable.

    `service` requires only that service's secrets (REQUIRED_SECRETS); the others may be unset."""
    env = os.environ if env is None else env
    required = REQUIRED_SECRETS[service]
    values: dict[str, object] = {}
    problems: list[str] = []
    for var in _VARS.values():
        raw = env.get(var.name)
        not_needed = var.name in REQUIRED_SECRETS[None] and var.name not in required
        if not_needed and (raw is None or not raw.strip()):
            values[var.name] = None
            continue
        if raw is None or (raw.strip() == "" and (var.optional or var.default is not None)):
            if var.name in required and service is not None:  # e.g. the service's own signing key
                problems.append(f"{var.name} is required but not set")
                continue
            if var.optional:
                values[var.name] = None
                continue
            if var.default is None:
                problems.append(f"{var.name} is required but not set")
                continue
            raw = var.default
        try:
            values[var.name] = var.parse(raw)
        except ValueError as exc:
            problems.append(f"{var.name} {exc}")
    if problems:
        raise ConfigError(problems)

    var_dir = Path(str(values["KEYLM_VAR_DIR"]))
    service_urls = {
        name: values[f"{name.upper()}_SERVICE_URL"] or f"http://127.0.0.1:{DEFAULT_PORTS[name]}"
        for name in SERVICE_NAMES
    }
    outbox = values["MAIL_OUTBOX_DIR"]
    return Settings(
        auth_secret=values["APP_AUTH_SECRET"],
        signing_keys={
            name: values[f"{name.upper()}_SIGNING_KEY"]
            for name in SERVICE_NAMES
            if values[f"{name.upper()}_SIGNING_KEY"]
        },
        public_keys=_service_public_keys(values),
        password_pepper=values["PASSWORD_PEPPER"],
        encryption_key=values["APP_ENCRYPTION_KEY"],
        encryption_key_previous=values["APP_ENCRYPTION_KEY_PREVIOUS"],
        database_url=values["DATABASE_URL"],
        service_database_urls={
            name: values[f"{name.upper()}_DATABASE_URL"]
            for name in DATABASE_SERVICES
            if values[f"{name.upper()}_DATABASE_URL"]
        },
        var_dir=var_dir,
        redis_url=values["REDIS_URL"],
        groq_api_key=values["GROQ_API_KEY"],
        groq_free_model=values["GROQ_FREE_MODEL"],
        groq_free_fallback_models=values["GROQ_FREE_FALLBACK_MODELS"],
        free_user_daily_limit=values["FREE_USER_DAILY_LIMIT"],
        free_global_daily_limit=values["FREE_GLOBAL_DAILY_LIMIT"],
        free_user_daily_tokens=values["FREE_USER_DAILY_TOKENS"],
        free_max_output_tokens=values["FREE_MAX_OUTPUT_TOKENS"],
        free_max_system_prompt_chars=values["FREE_MAX_SYSTEM_PROMPT_CHARS"],
        free_max_message_chars=values["FREE_MAX_MESSAGE_CHARS"],
        free_max_history_chars=values["FREE_MAX_HISTORY_CHARS"],
        free_require_verified_email=values["FREE_REQUIRE_VERIFIED_EMAIL"],
        email_verification_ttl_hours=values["EMAIL_VERIFICATION_TTL_HOURS"],
        rate_limit_per_minute=values["RATE_LIMIT_PER_MINUTE"],
        rate_limit_key_prefix=values["RATE_LIMIT_KEY_PREFIX"],
        login_limit_per_ip=values["LOGIN_LIMIT_PER_IP_PER_MINUTE"],
        login_limit_per_email=values["LOGIN_LIMIT_PER_EMAIL_PER_MINUTE"],
        login_slowdown_after=values["LOGIN_SLOWDOWN_AFTER_FAILURES"],
        login_slowdown_max_seconds=values["LOGIN_SLOWDOWN_MAX_SECONDS"],
        register_limit_per_ip=values["REGISTER_LIMIT_PER_IP_PER_MINUTE"],
        key_check_limit_per_minute=values["KEY_CHECK_LIMIT_PER_MINUTE"],
        model_refresh_limit_per_minute=values["MODEL_REFRESH_LIMIT_PER_MINUTE"],
        thread_create_limit_per_minute=values["THREAD_CREATE_LIMIT_PER_MINUTE"],
        max_threads_per_user=values["MAX_THREADS_PER_USER"],
        max_stored_bytes_per_user=values["MAX_STORED_BYTES_PER_USER"],
        trusted_proxy_hops=values["TRUSTED_PROXY_HOPS"],
        redis_connect_timeout=values["REDIS_CONNECT_TIMEOUT_SECONDS"],
        redis_socket_timeout=values["REDIS_SOCKET_TIMEOUT_SECONDS"],
        password_reset_ttl_minutes=values["PASSWORD_RESET_TTL_MINUTES"],
        session_ttl_hours=values["SESSION_TTL_HOURS"],
        app_base_url=values["APP_BASE_URL"],
        csrf_trusted_origins=values["CSRF_TRUSTED_ORIGINS"],
        cookie_secure=(
            values["APP_BASE_URL"].startswith("https://")
            if values["COOKIE_SECURE"] is None
            else values["COOKIE_SECURE"]
        ),
        smtp_url=values["SMTP_URL"],
        mail_from=values["MAIL_FROM"],
        mail_outbox_dir=Path(outbox) if outbox else var_dir / "outbox",
        mail_max_attempts=values["MAIL_MAX_ATTEMPTS"],
        mail_retry_seconds=values["MAIL_RETRY_SECONDS"],
        provider_base_urls={spec.id: values[spec.base_url_variable] for spec in SPECS.values()},
        provider_connect_timeout=values["PROVIDER_CONNECT_TIMEOUT_SECONDS"],
        provider_read_timeout=values["PROVIDER_READ_TIMEOUT_SECONDS"],
        service_urls=service_urls,
        max_body_bytes=values["MAX_BODY_BYTES"],
        db_pool_size=values["DB_POOL_SIZE"],
        db_max_overflow=values["DB_MAX_OVERFLOW"],
        bcrypt_rounds=values["BCRYPT_ROUNDS"],
        sse_idle_ping_seconds=values["SSE_IDLE_PING_SECONDS"],
        stream_lease_seconds=values["STREAM_LEASE_SECONDS"],
        stream_max_seconds=values["STREAM_MAX_SECONDS"],
        max_streams_per_user=values["MAX_STREAMS_PER_USER"],
        log_level=values["LOG_LEVEL"],
        instance_id=values["KEYLM_INSTANCE_ID"],
        migrate_only=service == "migrate",
        metrics_port=values["METRICS_PORT"],
        fake_clock_file=Path(values["KEYLM_FAKE_CLOCK_FILE"]) if values["KEYLM_FAKE_CLOCK_FILE"] else None,
    )


def _service_public_keys(values: Mapping[str, object]) -> dict[str, tuple[str, ...]]:
    """`<NAME>_PUBLIC_KEYS` as listed, or else the public half of `<NAME>_SIGNING_KEY` (one .env
    for the whole suite under `make run`)."""
    keys = {}
    for name in SERVICE_NAMES:
        listed = values[f"{name.upper()}_PUBLIC_KEYS"]
        private = values[f"{name.upper()}_SIGNING_KEY"]
        if listed:
            keys[name] = listed
        elif private:
            keys[name] = (public_key_text(parse_private_key(private)),)
    return keys


def metrics_port_from(env: Mapping[str, str]) -> int | None:
    """METRICS_PORT alone, validated like the rest: gunicorn's master reads it before any app
    exists (and the simulator, which has no Settings, runs under the same gunicorn config)."""
    raw = (env.get("METRICS_PORT") or "").strip()
    if not raw:
        return None
    try:
        return _port(raw)
    except ValueError as exc:
        raise ConfigError([f"METRICS_PORT {exc}"]) from None


def secret_values(settings: Settings) -> list[str]:
    """The configured secrets whose exact values must never reach a log line."""
    keys = (settings.encryption_key, settings.encryption_key_previous)
    encoded_keys = [base64.b64encode(key).decode() for key in keys if key]
    secrets = (
        settings.groq_api_key,
        settings.auth_secret,
        *settings.signing_keys.values(),
        settings.password_pepper,
        *encoded_keys,
    )
    return [s for s in secrets if s]
