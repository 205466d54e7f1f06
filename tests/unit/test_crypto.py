"""keys_service.crypto: AES-256-GCM bound to its row, master-key rotation, masks."""

from __future__ import annotations

import base64
import secrets

import pytest

from keys_service.crypto import DecryptionFailed, KeyBinding, KeyCipher, mask_key, master_key_fingerprint

API_KEY = "sk-proj-" + "Ab3dEf6hIj9kLm2nOp5qRs8tUv1wXy4z"
BINDING = KeyBinding(user_id="user-a", provider="openai", key_id="key-1")


def new_master_key() -> bytes:
    return secrets.token_bytes(32)


@pytest.fixture
def cipher() -> KeyCipher:
    return KeyCipher(new_master_key())


def flip_payload_byte(stored: str, index: int) -> str:
    version, fingerprint, payload = stored.split(":")
    raw = bytearray(base64.urlsafe_b64decode(payload))
    raw[index] ^= 0x01
    return f"{version}:{fingerprint}:{base64.urlsafe_b64encode(bytes(raw)).decode()}"


def test_round_trip_returns_the_plaintext(cipher):
    stored = cipher.encrypt(API_KEY, BINDING)
    assert cipher.decrypt(stored, BINDING) == API_KEY


def test_stored_value_is_versioned_and_holds_no_plaintext(cipher):
    stored = cipher.encrypt(API_KEY, BINDING)
    version, fingerprint, payload = stored.split(":")
    assert version == "v1"
    assert len(fingerprint) == 16
    assert API_KEY not in stored
    assert API_KEY[-8:] not in stored


def test_every_encryption_uses_a_fresh_nonce(cipher):
    first, second = cipher.encrypt(API_KEY, BINDING), cipher.encrypt(API_KEY, BINDING)
    assert first != second
    nonce = lambda stored: base64.urlsafe_b64decode(stored.split(":")[2])[:12]  # noqa: E731
    assert nonce(first) != nonce(second)


@pytest.mark.parametrize("index", [0, 11, 12, 20, -1], ids=["nonce", "nonce-end", "body", "body-mid", "tag"])
def test_a_changed_byte_fails_to_decrypt(cipher, index):
    stored = cipher.encrypt(API_KEY, BINDING)
    with pytest.raises(DecryptionFailed):
        cipher.decrypt(flip_payload_byte(stored, index), BINDING)


def test_a_wrong_master_key_fails_to_decrypt(cipher):
    stored = cipher.encrypt(API_KEY, BINDING)
    with pytest.raises(DecryptionFailed):
        KeyCipher(new_master_key()).decrypt(stored, BINDING)


def test_a_wrong_key_under_a_forged_fingerprint_fails_to_decrypt(cipher):
    other_key = new_master_key()
    _, _, payload = cipher.encrypt(API_KEY, BINDING).split(":")
    forged = f"v1:{master_key_fingerprint(other_key)}:{payload}"
    with pytest.raises(DecryptionFailed):
        KeyCipher(other_key).decrypt(forged, BINDING)


@pytest.mark.parametrize(
    "moved_to",
    [
        KeyBinding(user_id="user-a", provider="openai", key_id="key-2"),
        KeyBinding(user_id="user-b", provider="openai", key_id="key-1"),
        KeyBinding(user_id="user-a", provider="groq", key_id="key-1"),
    ],
    ids=["another-row", "another-user", "another-provider"],
)
def test_a_ciphertext_moved_elsewhere_fails_to_decrypt(cipher, moved_to):
    stored = cipher.encrypt(API_KEY, BINDING)
    with pytest.raises(DecryptionFailed):
        cipher.decrypt(stored, moved_to)


def test_binding_fields_cannot_be_shifted_into_each_other(cipher):
    stored = cipher.encrypt(API_KEY, KeyBinding("ab", "c", "d"))
    with pytest.raises(DecryptionFailed):
        cipher.decrypt(stored, KeyBinding("a", "bc", "d"))


@pytest.mark.parametrize(
    "stored",
    ["", "garbage", "v1:abc", "v2:0000000000000000:AAAA", "v1:0000000000000000:!!!!", "v1:x:é"],
)
def test_malformed_values_fail_to_decrypt(cipher, stored):
    with pytest.raises(DecryptionFailed):
        cipher.decrypt(stored, BINDING)


def test_a_truncated_payload_fails_to_decrypt(cipher):
    version, fingerprint, payload = cipher.encrypt(API_KEY, BINDING).split(":")
    short = base64.urlsafe_b64encode(base64.urlsafe_b64decode(payload)[:12]).decode()
    with pytest.raises(DecryptionFailed):
        cipher.decrypt(f"{version}:{fingerprint}:{short}", BINDING)


def test_previous_master_key_still_decrypts_until_rows_are_reencrypted():
    old, new = new_master_key(), new_master_key()
    stored_under_old = KeyCipher(old).encrypt(API_KEY, BINDING)

    rotating = KeyCipher(new, previous_key=old)
    assert not rotating.is_current(stored_under_old)
    assert rotating.decrypt(stored_under_old, BINDING) == API_KEY

    reencrypted = rotating.encrypt(rotating.decrypt(stored_under_old, BINDING), BINDING)
    assert rotating.is_current(reencrypted)
    after_rotation = KeyCipher(new)  # APP_ENCRYPTION_KEY_PREVIOUS unset
    assert after_rotation.decrypt(reencrypted, BINDING) == API_KEY
    with pytest.raises(DecryptionFailed):
        after_rotation.decrypt(stored_under_old, BINDING)


def test_cipher_repr_and_fingerprint_do_not_reveal_the_master_key():
    master_key = new_master_key()
    cipher = KeyCipher(master_key)
    for text in (repr(cipher), master_key_fingerprint(master_key)):
        assert master_key.hex() not in text
        assert base64.b64encode(master_key).decode() not in text


def test_master_keys_must_be_32_bytes():
    with pytest.raises(ValueError):
        KeyCipher(b"short")
    with pytest.raises(ValueError):
        KeyCipher(new_master_key(), previous_key=b"short")


@pytest.mark.parametrize(
    ("api_key", "mask"),
    [
        ("sk-proj-abcdefghijklmnopqrstuvwxyzAbCd", "sk-...AbCd"),
        ("sk-ant-api03-" + "x" * 80 + "WXYZ", "sk-...WXYZ"),
        ("gsk_" + "q" * 48 + "9876", "gsk...9876"),
        ("AIzaSyA-" + "z" * 27 + "Lmno", "AIz...Lmno"),
        ("abcdefghijklmnopqrstuvw", "...tuvw"),  # 23 characters: no prefix
        ("abcdefghijkl", "...ijkl"),
        ("abcdefgh", "...gh"),
        ("abcdefg", "..."),
        ("x", "..."),
    ],
)
def test_mask_shows_at_most_first_three_and_last_four(api_key, mask):
    assert mask_key(api_key) == mask


@pytest.mark.parametrize("length", range(1, 60))
def test_mask_never_shows_more_than_a_third_of_the_key(length):
    api_key = secrets.token_urlsafe(64)[:length]
    visible = len(mask_key(api_key).replace("...", ""))
    assert visible <= 7
    assert visible * 3 <= length
