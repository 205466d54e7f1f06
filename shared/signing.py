"""Ed25519 keys and the signed tokens built on them: session tokens and internal credentials.

A token is `base64url(json payload) "." base64url(signature)`. Whoever holds the private key signs;
everyone else verifies with the public key, so a receiver that is broken into cannot forge.
"""

from __future__ import annotations

import base64
import binascii
import json
import time
from collections.abc import Callable, Iterable
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat


class TokenInvalid(Exception):
    """The token is malformed, tampered with, signed with another key, or expired."""


class TokenExpired(TokenInvalid):
    """The signature is good but the token's expiry has passed."""


def new_private_key() -> str:
    """A fresh Ed25519 private key as the environment holds it: 32 raw bytes, base64."""
    return base64.b64encode(Ed25519PrivateKey.generate().private_bytes_raw()).decode()


def parse_private_key(value: str) -> Ed25519PrivateKey:
    """Raises ValueError unless `value` is 32 bytes of base64 (what new_private_key writes)."""
    try:
        raw = base64.b64decode(value.strip(), validate=True)
    except (binascii.Error, ValueError):
        raw = b""
    if len(raw) != 32:
        raise ValueError("must be an Ed25519 private key: 32 bytes, base64 (make run generates one)")
    return Ed25519PrivateKey.from_private_bytes(raw)


def parse_public_key(value: str) -> Ed25519PublicKey:
    try:
        raw = base64.b64decode(value.strip(), validate=True)
    except (binascii.Error, ValueError):
        raw = b""
    if len(raw) != 32:
        raise ValueError("must list Ed25519 public keys: 32 bytes each, base64, comma-separated")
    return Ed25519PublicKey.from_public_bytes(raw)


def public_key_text(private_key: Ed25519PrivateKey) -> str:
    """The base64 public key of `private_key` (what *_PUBLIC_KEYS lists)."""
    raw = private_key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    return base64.b64encode(raw).decode()


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def sign_token(private_key: Ed25519PrivateKey, kind: str, payload: dict[str, Any]) -> str:
    """Sign `payload` as a token of `kind` (the kind is signed too: one kind never passes as another)."""
    body = json.dumps({**payload, "typ": kind}, separators=(",", ":"), sort_keys=True).encode()
    return _b64(body) + "." + _b64(private_key.sign(body))


def read_token(token: str, kind: str, public_keys: Iterable[Ed25519PublicKey]) -> dict[str, Any]:
    """The payload of a token of `kind` signed by one of `public_keys`; raises TokenInvalid."""
    try:
        body_text, signature_text = token.split(".")
        body, signature = _unb64(body_text), _unb64(signature_text)
    except (ValueError, binascii.Error):
        raise TokenInvalid("malformed token") from None
    for key in public_keys:
        try:
            key.verify(signature, body)
            break
        except InvalidSignature:
            continue
    else:
        raise TokenInvalid("bad signature")
    try:
        payload = json.loads(body)
    except ValueError:
        raise TokenInvalid("bad token payload") from None
    if not isinstance(payload, dict) or payload.get("typ") != kind:
        raise TokenInvalid("another kind of token")
    if not isinstance(payload.get("exp"), int):
        raise TokenInvalid("bad token payload")
    return payload


class SessionTokens:
    """Session cookies: signed by auth_service alone (it holds the private key), verified by the gateway."""

    KIND = "keylm.session.v2"

    def __init__(
        self,
        private_key: Ed25519PrivateKey | None,
        public_keys: Iterable[Ed25519PublicKey],
        clock: Callable[[], float] = time.time,
    ):
        self._private_key = private_key
        self._public_keys = tuple(public_keys)
        self._clock = clock

    def encode(self, payload: dict[str, Any], ttl_seconds: float) -> str:
        if self._private_key is None:
            raise RuntimeError("only auth_service signs session tokens")
        return sign_token(self._private_key, self.KIND, {**payload, "exp": int(self._clock() + ttl_seconds)})

    def decode(self, token: str) -> dict[str, Any]:
        payload = read_token(token, self.KIND, self._public_keys)
        if payload["exp"] < self._clock():
            raise TokenExpired("token expired")
        return payload
