"""Health through the gateway, and what a client sees when one internal service is down."""

from __future__ import annotations

import pytest
import requests

from runner.suite import Suite
from tests.e2e.conftest import Browserless, launch_suite

pytestmark = pytest.mark.e2e

SERVICES = ("auth", "keys", "chat", "quota")


def test_healthz_reports_every_service_ok(client):
    response = client.get("/api/healthz")

    assert response.status_code == 200
    assert response.json() == {
        "status": "ok",
        "services": dict.fromkeys(SERVICES, "ok"),
        "rateLimits": "ok",
    }


@pytest.mark.parametrize("service", ["gateway", *SERVICES])
def test_each_service_answers_its_own_healthz(suite, service):
    response = requests.get(suite.url(service) + "/healthz", timeout=10)

    assert response.status_code == 200
    assert response.json()["status"] == "ok"
    assert response.json()["service"] == service


@pytest.fixture(scope="module")
def quota_down(request, tmp_path_factory) -> Suite:
    """A suite of our own (never the shared one) whose quota service has been stopped."""
    suite = launch_suite(tmp_path_factory, request, "sqlite", "quota-down")
    suite.stop("quota")
    return suite


@pytest.fixture
def signed_in_without_quota(quota_down) -> Browserless:
    client = Browserless(quota_down)
    client.register()
    return client


def test_healthz_is_503_with_the_stopped_service_marked_down(quota_down):
    client = Browserless(quota_down)

    response = client.get("/api/healthz")

    assert response.status_code == 503
    assert response.json() == {
        "status": "degraded",
        "services": {"auth": "ok", "keys": "ok", "chat": "ok", "quota": "down"},
        "rateLimits": "ok",
    }
    assert response.headers["X-Request-Id"]


def test_route_of_a_stopped_service_is_503_service_unavailable(signed_in_without_quota):
    response = signed_in_without_quota.get("/api/usage/free")

    assert response.status_code == 503
    assert response.headers["Content-Type"].startswith("application/json")
    error = response.json()["error"]
    assert error["code"] == "service_unavailable"
    assert error["retryable"] is True
    assert "quota" in error["message"]
    assert set(response.json()) == {"error"}
    assert response.headers["X-Request-Id"]
    assert response.headers["X-Content-Type-Options"] == "nosniff"


def test_other_services_keep_working_while_one_is_down(signed_in_without_quota):
    response = signed_in_without_quota.get("/api/auth/me")

    assert response.status_code == 200
    assert response.json()["user"]["email"]


def test_gateway_logs_no_traceback_for_a_stopped_service(quota_down, signed_in_without_quota):
    signed_in_without_quota.get("/api/usage/free")

    log = quota_down.log_path("gateway").read_text()
    assert "quota service unreachable" in log
    assert "Traceback" not in log
