"""The local `.env`: made from `.env.example` with fresh secrets when missing; the real env wins."""

from __future__ import annotations

import base64
import os
import secrets
from pathlib import Path

from dotenv import dotenv_values

from shared.config import DATABASE_SERVICES, REPO_ROOT, SERVICE_NAMES
from shared.signing import new_private_key, parse_private_key, public_key_text

EXAMPLE = REPO_ROOT / ".env.example"
GENERATED_SECRETS = {
    "APP_AUTH_SECRET": lambda: secrets.token_hex(32),
    # Each service's Ed25519 key for its internal credentials (auth's also signs sessions).
    **{f"{name.upper()}_SIGNING_KEY": new_private_key for name in SERVICE_NAMES},
    # The passwords of the per-schema Postgres roles docker compose creates (deploy/postgres/).
    **{f"{name.upper()}_DB_PASSWORD": lambda: secrets.token_hex(24) for name in DATABASE_SERVICES},
    "PASSWORD_PEPPER": lambda: secrets.token_hex(32),
    "APP_ENCRYPTION_KEY": lambda: base64.b64encode(secrets.token_bytes(32)).decode(),
}


def env_file_path() -> Path | None:
    """KEYLM_ENV_FILE names another file, or `none` to ignore .env entirely (the tests do)."""
    configured = os.environ.get("KEYLM_ENV_FILE", "")
    if configured.lower() == "none":
        return None
    return Path(configured) if configured else REPO_ROOT / ".env"


def ensure_env_file() -> None:
    path = env_file_path()
    if path is None:
        return
    if path.exists():
        _add_missing_pepper(path)
        _add_missing_signing_keys(path)
        return
    lines = []
    for line in EXAMPLE.read_text().splitlines():
        name = line.split("=", 1)[0]
        if name in GENERATED_SECRETS and line.strip() == f"{name}=":
            line = f"{name}={GENERATED_SECRETS[name]()}"
        lines.append(line)
    path.write_text("\n".join(lines) + "\n")
    path.chmod(0o600)
    print(f"created {path.name} with fresh secrets (from .env.example)", flush=True)
    print(
        "  for docker compose, set APP_BASE_URL in it to the URL browsers will use"
        " (e.g. http://localhost:8000 or https://keylm.example.com)",
        flush=True,
    )


def _add_missing_pepper(path: Path) -> None:
    """A .env written before PASSWORD_PEPPER existed gets one, unless the real environment sets it.

    Only the pepper: it is safe to create once (existing hashes still verify and are upgraded at the
    next login), while a new encryption or session key would lose data or sessions.
    """
    if os.environ.get("PASSWORD_PEPPER") or dotenv_values(path).get("PASSWORD_PEPPER"):
        return
    text = path.read_text()
    lines = [line for line in text.splitlines() if line.split("=", 1)[0].strip() != "PASSWORD_PEPPER"]
    lines.append(f"PASSWORD_PEPPER={GENERATED_SECRETS['PASSWORD_PEPPER']()}")
    path.write_text("\n".join(lines) + "\n")
    print(f"added a fresh PASSWORD_PEPPER to {path.name}", flush=True)


def _add_missing_signing_keys(path: Path) -> None:
    """A .env written before the services had their own keys (and database roles) gets them;
    sessions signed by the old shared secret end once: everyone signs in again."""
    present = dotenv_values(path)
    wanted = [f"{name.upper()}_SIGNING_KEY" for name in SERVICE_NAMES]
    wanted += [f"{name.upper()}_DB_PASSWORD" for name in DATABASE_SERVICES]
    missing = [name for name in wanted if not os.environ.get(name) and not present.get(name)]
    if not missing:
        return
    lines = [line for line in path.read_text().splitlines() if line.split("=", 1)[0].strip() not in missing]
    lines += [f"{name}={GENERATED_SECRETS[name]()}" for name in missing]
    path.write_text("\n".join(lines) + "\n")
    print(f"added fresh {', '.join(missing)} to {path.name}", flush=True)


def rotate_service_keys(path: Path) -> list[str]:
    """Give every service a new signing key, keeping the previous public key listed beside the new
    one (`<NAME>_PUBLIC_KEYS=new,previous`): tokens and credentials signed before still verify
    until the next rotation drops it. Returns the services rotated."""
    values = dotenv_values(path)
    updates: dict[str, str] = {}
    for name in SERVICE_NAMES:
        upper = name.upper()
        current = values.get(f"{upper}_SIGNING_KEY")
        fresh = new_private_key()
        keys = [public_key_text(parse_private_key(fresh))]
        if current:
            keys.append(public_key_text(parse_private_key(current)))
        updates[f"{upper}_SIGNING_KEY"] = fresh
        updates[f"{upper}_PUBLIC_KEYS"] = ",".join(keys)
    lines = [line for line in path.read_text().splitlines() if line.split("=", 1)[0].strip() not in updates]
    lines += [f"{name}={value}" for name, value in updates.items()]
    path.write_text("\n".join(lines) + "\n")
    path.chmod(0o600)
    return list(SERVICE_NAMES)


def load_env_file() -> None:
    """Fill in only what the real environment does not set, so `FOO=1 make run` always wins."""
    path = env_file_path()
    if path is None or not path.exists():
        return
    for name, value in dotenv_values(path).items():
        if value is not None:
            os.environ.setdefault(name, value)
