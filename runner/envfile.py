"""The local `.env`: made from `.env.example` with fresh secrets when missing; the real env wins."""

from __future__ import annotations

import base64
import os
import secrets
from pathlib import Path

from dotenv import dotenv_values

from shared.config import REPO_ROOT

EXAMPLE = REPO_ROOT / ".env.example"
GENERATED_SECRETS = {
    "APP_AUTH_SECRET": lambda: secrets.token_hex(32),
    "INTERNAL_AUTH_SECRET": lambda: secrets.token_hex(32),
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


def load_env_file() -> None:
    """Fill in only what the real environment does not set, so `FOO=1 make run` always wins."""
    path = env_file_path()
    if path is None or not path.exists():
        return
    for name, value in dotenv_values(path).items():
        if value is not None:
            os.environ.setdefault(name, value)
