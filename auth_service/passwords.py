"""Password hashing: bcrypt over a SHA-256 pre-hash, off the gevent loop.

bcrypt reads only 72 bytes. Rather than reject long passphrases (docs/api.md allows 128 characters,
up to 512 bytes of UTF-8), every password is first reduced to base64(SHA-256(password)): 44 bytes,
so nothing is ever truncated and two long passwords sharing a 72-byte prefix stay different.
"""

from __future__ import annotations

import base64
import hashlib

import bcrypt
from gevent import get_hub
from gevent.monkey import is_module_patched


def _prehash(password: str) -> bytes:
    return base64.b64encode(hashlib.sha256(password.encode("utf-8")).digest())


def _off_loop(fn, *args):
    # bcrypt is CPU-bound (~0.3 s at 12 rounds): run it in gevent's threadpool so other
    # requests on this worker keep being served.
    if is_module_patched("socket"):
        return get_hub().threadpool.apply(fn, args)
    return fn(*args)


def hash_password(password: str, rounds: int) -> str:
    salt = bcrypt.gensalt(rounds=rounds)
    return _off_loop(bcrypt.hashpw, _prehash(password), salt).decode("ascii")


def verify_password(password: str, password_hash: str) -> bool:
    return _off_loop(bcrypt.checkpw, _prehash(password), password_hash.encode("ascii"))
