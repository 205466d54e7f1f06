"""auth_service.passwords: bcrypt over a SHA-256 pre-hash, so nothing past 72 bytes is ignored."""

from __future__ import annotations

import pytest

from auth_service.passwords import hash_password, verify_password

ROUNDS = 4

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

    stored = hash_password(password, ROUNDS)

    assert verify_password(password, stored)
    assert not verify_password(same_prefix, stored)


@pytest.mark.parametrize("password", ["short-ish", "exactly-seventy-two-bytes".ljust(72, "!"), "pässwörd"])
def test_password_verifies_and_a_wrong_one_does_not(password):
    stored = hash_password(password, ROUNDS)

    assert verify_password(password, stored)
    assert not verify_password(password + "x", stored)
    assert not verify_password(password[:-1], stored)


def test_hash_is_salted_bcrypt_and_holds_no_plaintext():
    first, second = hash_password("same password", ROUNDS), hash_password("same password", ROUNDS)

    assert first != second
    assert first.startswith("$2b$04$")
    assert "same password" not in first
