"""runner.envfile: .env gets fresh secrets, and a .env from before PASSWORD_PEPPER gets one added."""

from __future__ import annotations

from dotenv import dotenv_values

from runner import envfile


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
