"""auth_service.passwords: bcrypt over a peppered HMAC-SHA256 pre-hash, so nothing past 72 bytes is
ignored and a leaked table cannot be matched against plain SHA-256 lists."""

from __future__ import annotations

import base64
import hashlib

import bcrypt
import pytest

from auth_service.passwords import hash_password, needs_upgrade, verify_password

ROUNDS = 4
PEPPER = "p" * 64

LONG_PASSWORDS = {
    # (password, another password sharing its first 72 bytes)
    "80-ascii": ("a" * 72 + "12345678", "a" * 72 + "87654321"),
    "128-ascii": ("p" * 127 + "1", "p" * 127 + "2"),
    "100-two-byte": ("é" * 100, "é" * 36 + "e" * 64),
    "100-three-byte": ("密" * 100, "密" * 24 + "x" * 76),
    "50-four-byte": ("🙂" * 50, "🙂" * 18 + "!" * 32),
}


@pytest.mark.parametrize(("password", "same_prefix"), list(LONG_PASSWORDS.values()), ids=list(LONG_PASSWORDS))
def test_long_password_verifies_and_its_72_byte_prefix_twin_does_not(password, same_prefix):
    assert len(password.encode()) > 72
    assert password.encode()[:72] == same_prefix.encode()[:72]

    stored = hash_password(password, ROUNDS, PEPPER)

    assert verify_password(password, stored, PEPPER)
    assert not verify_password(same_prefix, stored, PEPPER)


@pytest.mark.parametrize("password", ["short-ish", "exactly-seventy-two-bytes".ljust(72, "!"), "pässwörd"])
def test_password_verifies_and_a_wrong_one_does_not(password):
    stored = hash_password(password, ROUNDS, PEPPER)

    assert verify_password(password, stored, PEPPER)
    assert not verify_password(password + "x", stored, PEPPER)
    assert not verify_password(password[:-1], stored, PEPPER)


def test_hash_is_salted_bcrypt_and_holds_no_plaintext():
    first = hash_password("same password", ROUNDS, PEPPER)
    second = hash_password("same password", ROUNDS, PEPPER)

    assert first != second
    assert first.startswith("hmac-sha256$$2b$04$")
    assert "same password" not in first


def legacy_hash(password: str) -> str:
    """How passwords were stored before the pepper: bcrypt over base64(SHA-256(password))."""
    prehash = base64.b64encode(hashlib.sha256(password.encode()).digest())
    return bcrypt.hashpw(prehash, bcrypt.gensalt(rounds=ROUNDS)).decode()


def test_legacy_hash_still_verifies_and_asks_for_an_upgrade():
    stored = legacy_hash("an old password")

    assert verify_password("an old password", stored, PEPPER)
    assert not verify_password("another password", stored, PEPPER)
    assert needs_upgrade(stored)
    assert not needs_upgrade(hash_password("an old password", ROUNDS, PEPPER))


def test_peppered_hash_does_not_verify_under_another_pepper():
    stored = hash_password("correct horse battery", ROUNDS, PEPPER)

    assert not verify_password("correct horse battery", stored, "q" * 64)


def test_inner_value_is_not_the_plain_sha256_of_the_password():
    """Shucking: a bcrypt over plain SHA-256 matches leaked SHA-256 lists; the peppered one cannot."""
    stored = hash_password("correct horse battery", ROUNDS, PEPPER)
    plain = base64.b64encode(hashlib.sha256(b"correct horse battery").digest())

    assert not bcrypt.checkpw(plain, stored.removeprefix("hmac-sha256$").encode())
