"""runner.envfile: .env gets fresh secrets, and a .env from before PASSWORD_PEPPER gets one added."""

from __future__ import annotations

from dotenv import dotenv_values

from runner import envfile
from shared.signing import parse_private_key, public_key_text


def test_new_env_file_has_every_generated_secret(tmp_path, monkeypatch):
    path = tmp_path / ".env"
    monkeypatch.setenv("KEYLM_ENV_FILE", str(path))
    monkeypatch.delenv("PASSWORD_PEPPER", raising=False)

    envfile.ensure_env_file()

    values = dotenv_values(path)
    for name in envfile.GENERATED_SECRETS:
        assert len(values[name] or "") >= 32, name


def test_existing_env_file_without_a_pepper_gets_one_and_keeps_the_rest(tmp_path, monkeypatch):
    path = tmp_path / ".env"
    path.write_text("APP_AUTH_SECRET=keep-me\nPASSWORD_PEPPER=\n")
    monkeypatch.setenv("KEYLM_ENV_FILE", str(path))
    monkeypatch.delenv("PASSWORD_PEPPER", raising=False)

    envfile.ensure_env_file()
    first = dotenv_values(path)
    envfile.ensure_env_file()  # a second run changes nothing

    assert first["APP_AUTH_SECRET"] == "keep-me"
    assert len(first["PASSWORD_PEPPER"]) == 64
    assert dotenv_values(path) == first


def test_pepper_from_the_real_environment_is_not_written(tmp_path, monkeypatch):
    path = tmp_path / ".env"
    path.write_text("APP_AUTH_SECRET=keep-me\n")
    monkeypatch.setenv("KEYLM_ENV_FILE", str(path))
    monkeypatch.setenv("PASSWORD_PEPPER", "p" * 64)

    envfile.ensure_env_file()

    assert "PASSWORD_PEPPER" not in path.read_text()


SIGNING_KEYS = [f"{name}_SIGNING_KEY" for name in ("GATEWAY", "AUTH", "KEYS", "CHAT", "QUOTA")]


def test_every_service_gets_its_own_signing_key(tmp_path, monkeypatch):
    path = tmp_path / ".env"
    monkeypatch.setenv("KEYLM_ENV_FILE", str(path))
    for name in SIGNING_KEYS:
        monkeypatch.delenv(name, raising=False)

    envfile.ensure_env_file()

    values = dotenv_values(path)
    keys = [values[name] for name in SIGNING_KEYS]
    assert len(set(keys)) == len(keys)
    for key in keys:
        parse_private_key(key)


def test_existing_env_file_without_signing_keys_gets_them_once(tmp_path, monkeypatch):
    path = tmp_path / ".env"
    path.write_text("APP_AUTH_SECRET=keep-me\nPASSWORD_PEPPER=" + "p" * 64 + "\n")
    monkeypatch.setenv("KEYLM_ENV_FILE", str(path))
    for name in SIGNING_KEYS:
        monkeypatch.delenv(name, raising=False)

    envfile.ensure_env_file()
    first = dotenv_values(path)
    envfile.ensure_env_file()

    assert first["APP_AUTH_SECRET"] == "keep-me"
    assert all(first[name] for name in SIGNING_KEYS)
    assert dotenv_values(path) == first


def test_rotation_replaces_each_key_and_keeps_the_previous_public_key_accepted(tmp_path, monkeypatch):
    path = tmp_path / ".env"
    monkeypatch.setenv("KEYLM_ENV_FILE", str(path))
    for name in SIGNING_KEYS:
        monkeypatch.delenv(name, raising=False)
    envfile.ensure_env_file()
    before = dotenv_values(path)

    envfile.rotate_service_keys(path)
    once = dotenv_values(path)
    envfile.rotate_service_keys(path)
    twice = dotenv_values(path)

    for name in SIGNING_KEYS:
        service = name.removesuffix("_SIGNING_KEY")
        old, new = before[name], once[name]
        assert new != old
        assert once[f"{service}_PUBLIC_KEYS"].split(",") == [public_of(new), public_of(old)]
        # The next rotation drops the oldest: the overlap is one rotation long.
        assert twice[f"{service}_PUBLIC_KEYS"].split(",") == [public_of(twice[name]), public_of(new)]
    assert once["APP_AUTH_SECRET"] == before["APP_AUTH_SECRET"]
    assert oct(path.stat().st_mode & 0o777) == "0o600"


def public_of(private: str) -> str:
    return public_key_text(parse_private_key(private))
