"""Configuration: every environment variable of the product, read once and validated at start."""

from __future__ import annotations

import base64
import binascii
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlparse

from shared.providers import DEFAULT_BASE_URLS

SERVICE_NAMES = ("gateway", "auth", "keys", "chat", "quota")
DEFAULT_PORTS = {"gateway": 8000, "auth": 8001, "keys": 8002, "chat": 8003, "quota": 8004}
REPO_ROOT = Path(__file__).resolve().parent.parent
# The secrets each process needs to start; a deployment gives each service only its own (one
# Secret per service on Kubernetes). `None` (the runner, tests, key rotation) requires all three.
# The migration job needs none: it only reaches the database.
REQUIRED_SECRETS: dict[str | None, tuple[str, ...]] = {
    None: ("APP_AUTH_SECRET", "INTERNAL_AUTH_SECRET", "APP_ENCRYPTION_KEY"),
    "gateway": ("APP_AUTH_SECRET", "INTERNAL_AUTH_SECRET"),  # checks the cookie's signature
    "auth": ("APP_AUTH_SECRET", "INTERNAL_AUTH_SECRET"),  # signs session cookies
    "keys": ("INTERNAL_AUTH_SECRET", "APP_ENCRYPTION_KEY"),  # the vault's master key
    "chat": ("INTERNAL_AUTH_SECRET",),
    "quota": ("INTERNAL_AUTH_SECRET",),
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
    internal_secret: str | None = field(repr=False)
    encryption_key: bytes | None = field(repr=False)
    encryption_key_previous: bytes | None = field(repr=False)
    database_url: str | None = field(repr=False)  # may hold a password
    var_dir: Path
    redis_url: str | None = field(repr=False)  # may hold a password
    groq_api_key: str | None = field(repr=False)
    groq_free_model: str
    groq_free_fallback_models: tuple[str, ...]
    free_user_daily_limit: int
    free_global_daily_limit: int
    rate_limit_per_minute: int
    rate_limit_key_prefix: str
    login_limit_per_ip: int
    login_limit_per_email: int
    register_limit_per_ip: int
    password_reset_ttl_minutes: int
    session_ttl_hours: int
    app_base_url: str
    cookie_secure: bool
    smtp_url: str | None = field(repr=False)
    mail_from: str
    mail_outbox_dir: Path
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
    # Test-only: when set, quota_service reads "now" from this file (ISO 8601) so tests can cross
    # midnight in real processes. Never set it in production.
    fake_clock_file: Path | None = None

    @property
    def uses_sqlite(self) -> bool:
        return self.database_url is None or self.database_url.startswith("sqlite")


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


def _positive_int(value: str) -> int:
    try:
        number = int(value)
    except ValueError:
        raise ValueError("must be a whole number") from None
    if number < 1:
        raise ValueError("must be at least 1")
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
        _Var("INTERNAL_AUTH_SECRET", _secret),
        _Var("APP_ENCRYPTION_KEY", _aes_key),
        _Var("APP_ENCRYPTION_KEY_PREVIOUS", _aes_key, optional=True),
        _Var("DATABASE_URL", _database_url, optional=True),
        _Var("KEYLM_VAR_DIR", _text, default=str(REPO_ROOT / "var")),
        _Var("REDIS_URL", _redis_url, optional=True),
        _Var("GROQ_API_KEY", _text, optional=True),
        _Var("GROQ_FREE_MODEL", _text, default="moonshotai/kimi-k2-instruct-0905"),
        _Var("GROQ_FREE_FALLBACK_MODELS", _model_list, default=""),
        _Var("FREE_USER_DAILY_LIMIT", _positive_int, default="50"),
        _Var("FREE_GLOBAL_DAILY_LIMIT", _positive_int, default="1000"),
        _Var("RATE_LIMIT_PER_MINUTE", _positive_int, default="20"),
        _Var("RATE_LIMIT_KEY_PREFIX", _text, default="keylm"),
        _Var("LOGIN_LIMIT_PER_IP_PER_MINUTE", _positive_int, default="30"),
        _Var("LOGIN_LIMIT_PER_EMAIL_PER_MINUTE", _positive_int, default="5"),
        _Var("REGISTER_LIMIT_PER_IP_PER_MINUTE", _positive_int, default="10"),
        _Var("PASSWORD_RESET_TTL_MINUTES", _positive_int, default="60"),
        _Var("SESSION_TTL_HOURS", _positive_int, default="336"),
        _Var("APP_BASE_URL", _http_url, default="http://127.0.0.1:8000"),
        _Var("COOKIE_SECURE", _bool, default="false"),
        _Var("SMTP_URL", _smtp_url, optional=True),
        _Var("MAIL_FROM", _text, default="KeyLM <no-reply@keylm.local>"),
        _Var("MAIL_OUTBOX_DIR", _text, optional=True),
        _Var("OPENAI_BASE_URL", _http_url, default=DEFAULT_BASE_URLS["openai"]),
        _Var("ANTHROPIC_BASE_URL", _http_url, default=DEFAULT_BASE_URLS["anthropic"]),
        _Var("GEMINI_BASE_URL", _http_url, default=DEFAULT_BASE_URLS["gemini"]),
        _Var("GROQ_BASE_URL", _http_url, default=DEFAULT_BASE_URLS["groq"]),
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
        internal_secret=values["INTERNAL_AUTH_SECRET"],
        encryption_key=values["APP_ENCRYPTION_KEY"],
        encryption_key_previous=values["APP_ENCRYPTION_KEY_PREVIOUS"],
        database_url=values["DATABASE_URL"],
        var_dir=var_dir,
        redis_url=values["REDIS_URL"],
        groq_api_key=values["GROQ_API_KEY"],
        groq_free_model=values["GROQ_FREE_MODEL"],
        groq_free_fallback_models=values["GROQ_FREE_FALLBACK_MODELS"],
        free_user_daily_limit=values["FREE_USER_DAILY_LIMIT"],
        free_global_daily_limit=values["FREE_GLOBAL_DAILY_LIMIT"],
        rate_limit_per_minute=values["RATE_LIMIT_PER_MINUTE"],
        rate_limit_key_prefix=values["RATE_LIMIT_KEY_PREFIX"],
        login_limit_per_ip=values["LOGIN_LIMIT_PER_IP_PER_MINUTE"],
        login_limit_per_email=values["LOGIN_LIMIT_PER_EMAIL_PER_MINUTE"],
        register_limit_per_ip=values["REGISTER_LIMIT_PER_IP_PER_MINUTE"],
        password_reset_ttl_minutes=values["PASSWORD_RESET_TTL_MINUTES"],
        session_ttl_hours=values["SESSION_TTL_HOURS"],
        app_base_url=values["APP_BASE_URL"],
        cookie_secure=values["COOKIE_SECURE"],
        smtp_url=values["SMTP_URL"],
        mail_from=values["MAIL_FROM"],
        mail_outbox_dir=Path(outbox) if outbox else var_dir / "outbox",
        provider_base_urls={
            p: values[f"{p.upper()}_BASE_URL"] for p in ("openai", "anthropic", "gemini", "groq")
        },
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
        fake_clock_file=Path(values["KEYLM_FAKE_CLOCK_FILE"]) if values["KEYLM_FAKE_CLOCK_FILE"] else None,
    )


def secret_values(settings: Settings) -> list[str]:
    """The configured secrets whose exact values must never reach a log line."""
    keys = (settings.encryption_key, settings.encryption_key_previous)
    encoded_keys = [base64.b64encode(key).decode() for key in keys if key]
    secrets = (settings.groq_api_key, settings.auth_secret, settings.internal_secret, *encoded_keys)
    return [s for s in secrets if s]
