"""Password hashing: bcrypt over an HMAC-SHA256 pre-hash keyed with a server pepper, off the loop.

bcrypt reads only 72 bytes. Rather than reject long passphrases (docs/api.md allows 128 characters,
up to 512 bytes of UTF-8), every password is first reduced to base64(HMAC-SHA256(pepper, password)):
44 bytes, so nothing is ever truncated and two long passwords sharing a 72-byte prefix stay different.

The pepper (PASSWORD_PEPPER) lives in the environment, never in the database: a leaked users table
alone cannot be "shucked" by matching its inner values against lists of leaked plain SHA-256 hashes.
Hashes made before the pepper (bcrypt over plain SHA-256, no prefix) still verify; `needs_upgrade`
tells the caller to re-hash them with the password it just checked.
"""

from __future__ import annotations

import base64
import hashlib
import hmac

import bcrypt
from gevent import get_hub
from gevent.monkey import is_module_patched

PEPPERED_PREFIX = "hmac-sha256$"


def _peppered(password: str, pepper: str) -> bytes:
    digest = hmac.new(pepper.encode("utf-8"), password.encode("utf-8"), hashlib.sha256).digest()
    return base64.b64encode(digest)


def _legacy_prehash(password: str) -> bytes:
    return base64.b64encode(hashlib.sha256(password.encode("utf-8")).digest())


def _off_loop(fn, *args):
    # bcrypt is CPU-bound (~0.3 s at 12 rounds): run it in gevent's threadpool so other
    # requests on this worker keep being served.
    if is_module_patched("socket"):
        return get_hub().threadpool.apply(fn, args)
    return fn(*args)


def hash_password(password: str, rounds: int, pepper: str) -> str:
    """The stored form: `hmac-sha256$` + bcrypt(base64(HMAC-SHA256(pepper, password)))."""
    salt = bcrypt.gensalt(rounds=rounds)
    return PEPPERED_PREFIX + _off_loop(bcrypt.hashpw, _peppered(password, pepper), salt).decode("ascii")


def verify_password(password: str, password_hash: str, pepper: str) -> bool:
    """Check a password against a peppered hash or a legacy (plain SHA-256 pre-hash) one."""
    if password_hash.startswith(PEPPERED_PREFIX):
        stored = password_hash.removeprefix(PEPPERED_PREFIX).encode("ascii")
        return _off_loop(bcrypt.checkpw, _peppered(password, pepper), stored)
    return _off_loop(bcrypt.checkpw, _legacy_prehash(password), password_hash.encode("ascii"))


def needs_upgrade(password_hash: str) -> bool:
    """True for a hash made before the pepper: re-hash it at the next successful login."""
    return not password_hash.startswith(PEPPERED_PREFIX)
