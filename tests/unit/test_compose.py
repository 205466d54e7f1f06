"""docker-compose.yml: valid for Compose, the edge is the only published port, health by /readyz,
and the edge's nginx configuration says what the deployment relies on."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from tests.conftest import REPO_ROOT, unavailable

COMPOSE = REPO_ROOT / "docker-compose.yml"
COMPOSE_HTTPS = REPO_ROOT / "docker-compose.https.yml"
SERVICES = ("auth", "keys", "chat", "quota", "gateway")
DATABASE_SERVICES = ("auth", "keys", "chat", "quota")
BASE_ENV = "APP_BASE_URL=http://localhost:8000\n" + "".join(
    f"{name.upper()}_DB_PASSWORD=pw-{name}\n" for name in DATABASE_SERVICES
)


def compose_config(tmp_path: Path, env: str, *files: Path, quiet: bool = False) -> str:
    """`docker-compose config` of `files`, with a project directory holding only `.env`."""
    binary = shutil.which("docker-compose")
    if binary is None:
        unavailable("docker-compose is not installed (make system-deps)")
    (tmp_path / ".env").write_text(env)
    command = [binary, "--project-directory", str(tmp_path)]
    for file in files:
        command += ["-f", str(file)]
    command += ["config", "-q"] if quiet else ["config"]
    result = subprocess.run(command, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    return result.stdout


@pytest.fixture
def rendered(tmp_path) -> dict:
    return yaml.safe_load(compose_config(tmp_path, BASE_ENV, COMPOSE))


def test_compose_file_is_valid(tmp_path):
    compose_config(tmp_path, BASE_ENV, COMPOSE, quiet=True)


def test_https_overlay_is_valid_and_publishes_80_and_443_on_the_edge_only(tmp_path):
    env = BASE_ENV.replace("http://localhost:8000", "https://keylm.example.com")
    env += "KEYLM_DOMAIN=keylm.example.com\n"
    config = yaml.safe_load(compose_config(tmp_path, env, COMPOSE, COMPOSE_HTTPS))
    published = {name for name, service in config["services"].items() if service.get("ports")}
    assert published == {"edge"}
    targets = {
        int(port["target"]) if isinstance(port, dict) else int(str(port).rsplit(":", 1)[1])
        for port in config["services"]["edge"]["ports"]
    }
    assert {80, 443} <= targets
    assert config["services"]["edge"]["environment"]["KEYLM_DOMAIN"] == "keylm.example.com"


def test_only_the_edge_publishes_a_port(rendered):
    published = {name for name, service in rendered["services"].items() if service.get("ports")}
    assert published == {"edge"}


def test_services_report_health_by_readiness(rendered):
    for name in SERVICES:
        check = " ".join(rendered["services"][name]["healthcheck"]["test"])
        assert "/readyz" in check, name


def test_gateway_trusts_exactly_the_edge(rendered):
    assert str(rendered["services"]["gateway"]["environment"]["TRUSTED_PROXY_HOPS"]) == "1"
    assert rendered["services"]["edge"]["depends_on"]["gateway"]["condition"] == "service_healthy"


def test_edge_configuration_sets_timeouts_limits_and_unbuffered_streams():
    main = (REPO_ROOT / "edge" / "keylm.conf.template").read_text()
    site = (REPO_ROOT / "edge" / "keylm-site.conf.template").read_text()
    for directive in ("client_header_timeout", "client_body_timeout", "limit_conn_zone", "limit_conn "):
        assert directive in main, directive
    for directive in (
        "proxy_buffering off;",
        "proxy_set_header X-Forwarded-For $remote_addr;",
        "proxy_set_header X-Forwarded-Proto $scheme;",
        "location = /metrics { return 404; }",
    ):
        assert directive in site, directive


def test_each_service_connects_as_its_own_role_and_only_migrate_as_the_owner(rendered):
    services = rendered["services"]
    for name in DATABASE_SERVICES:
        env = services[name]["environment"]
        assert env[f"{name.upper()}_DATABASE_URL"].startswith(f"postgresql://keylm_{name}:pw-{name}@")
        assert "DATABASE_URL" not in env, name
    assert services["migrate"]["environment"]["DATABASE_URL"].startswith("postgresql://keylm:")
    assert "DATABASE_URL" not in services["gateway"]["environment"]
    mounts = " ".join(str(v) for v in services["postgres"]["volumes"])
    assert "/docker-entrypoint-initdb.d/10-keylm-roles.sh" in mounts
