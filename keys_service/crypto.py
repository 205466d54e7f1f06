"""How a provider key is kept: AES-256-GCM bound to its row, rotatable master keys, and its mask.

Stored form: ``v1:<fingerprint>:<base64url(nonce + ciphertext + tag)>``.
- ``fingerprint`` names the master key that encrypted it (an HMAC of the key, not the key), so
  rotation knows which rows are still on the previous key.
- The associated data is the owner, the provider and the row id: a ciphertext copied to another
  row, user or provider fails authentication instead of decrypting.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import os
from dataclasses import dataclass

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from shared.config import Settings

VERSION = "v1"
NONCE_BYTES = 12  # 96 bits, the size GCM is designed for; fresh and random for every encryption


class DecryptionFailed(Exception):
    """The stored value is malformed, tampered, bound to another row, or under an unknown master key."""


@dataclass(frozen=True)
class KeyBinding:
    """What a ciphertext belongs to; authenticated as associated data."""

    user_id: str
    provider: str
    key_id: str

    def associated_data(self) -> bytes:
        # JSON keeps the three values unambiguous whatever characters they hold.
        return json.dumps(
            ["keylm.provider_key", VERSION, self.user_id, self.provider, self.key_id],
            separators=(",", ":"),
        ).encode("utf-8")


def master_key_fingerprint(master_key: bytes) -> str:
    """A short, non-reversible name for a master key (16 hex characters)."""
    return hmac.new(master_key, b"keylm.keys.fingerprint", hashlib.sha256).hexdigest()[:16]


class KeyCipher:
    """Encrypts with the current master key; decrypts with the current or the previous one."""

    def __init__(self, current_key: bytes, previous_key: bytes | None = None):
        if len(current_key) != 32 or (previous_key is not None and len(previous_key) != 32):
            raise ValueError("master keys must be 32 bytes")
        self._current = (master_key_fingerprint(current_key), AESGCM(current_key))
        self._by_fingerprint = {self._current[0]: self._current[1]}
        if previous_key is not None:
            self._by_fingerprint.setdefault(master_key_fingerprint(previous_key), AESGCM(previous_key))

    def __repr__(self) -> str:
        return f"KeyCipher(current={self._current[0]})"

    @classmethod
    def from_settings(cls, settings: Settings) -> KeyCipher:
        return cls(settings.encryption_key, settings.encryption_key_previous)

    def encrypt(self, api_key: str, binding: KeyBinding) -> str:
        """The stored form of `api_key`, under the current master key."""
        fingerprint, aead = self._current
        nonce = os.urandom(NONCE_BYTES)
        sealed = aead.encrypt(nonce, api_key.encode("utf-8"), binding.associated_data())
        payload = base64.urlsafe_b64encode(nonce + sealed).decode("ascii")
        return f"{VERSION}:{fingerprint}:{payload}"

    def decrypt(self, stored: str, binding: KeyBinding) -> str:
        """The plaintext key; DecryptionFailed (never saying more) if it cannot be recovered."""
        version, fingerprint, payload = _split(stored)
        aead = self._by_fingerprint.get(fingerprint)
        if version != VERSION or aead is None:
            raise DecryptionFailed()
        try:
            raw = base64.urlsafe_b64decode(payload.encode("ascii"))
        except (binascii.Error, ValueError, UnicodeEncodeError):
            raise DecryptionFailed() from None
        if len(raw) <= NONCE_BYTES:
            raise DecryptionFailed()
        try:
            plaintext = aead.decrypt(raw[:NONCE_BYTES], raw[NONCE_BYTES:], binding.associated_data())
            return plaintext.decode("utf-8")
        except (InvalidTag, UnicodeDecodeError):
            raise DecryptionFailed() from None

    def is_current(self, stored: str) -> bool:
        """True when `stored` is already under the current master key and format version."""
        version, fingerprint, _ = _split(stored)
        return version == VERSION and fingerprint == self._current[0]


def _split(stored: str) -> tuple[str, str, str]:
    parts = stored.split(":", 2)
    if len(parts) != 3:
        raise DecryptionFailed()
    return parts[0], parts[1], parts[2]


def mask_key(api_key: str, head: int = 3) -> str:
    """What a user sees of a key: at most the first `head` and last 4 characters (``sk-...AbCd``).

    Shorter keys show less, so no mask ever shows more than about a third of its key.
    """
    length = len(api_key)
    head = head if length >= 24 else 0
    tail = 4 if length >= 12 else 2 if length >= 8 else 0
    return f"{api_key[:head]}...{api_key[length - tail :] if tail else ''}"
