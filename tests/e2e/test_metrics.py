"""Metrics of every service on its own METRICS_PORT (never the public port), in Prometheus text
format, with the product's own series."""

from __future__ import annotations

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

from tests.e2e.sse import read_events, send

pytestmark = pytest.mark.e2e


def scrape(url: str) -> dict[str, list]:
    response = requests.get(url, timeout=5)
    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith("text/plain")
    return {family.name: family.samples for family in text_string_to_metric_families(response.text)}


@pytest.mark.parametrize("service", ["gateway", "auth", "keys", "chat", "quota"])
def test_every_service_exposes_request_counts_and_latency_by_route(suite, signed_in, service):
    signed_in.get("/api/threads")
    families = scrape(suite.metrics_url(service))
    assert "keylm_http_requests" in families
    assert "keylm_http_request_duration_seconds" in families
    labels = [s.labels for s in families["keylm_http_requests"] if s.name.endswith("_total")]
    assert all({"service", "method", "route", "status"} <= set(label) for label in labels)


def test_chat_and_quota_report_streams_upstream_and_quota_decisions(suite, signed_in):
    thread = signed_in.post("/api/threads", json={"mode": "free"}).json()["thread"]
    assert read_events(send(signed_in, thread["id"], "Hi [[sim:tokens=3]]"))[-1].name == "done"
    read_events(send(signed_in, thread["id"], "Hi [[sim:fail_before]]"))

    chat = scrape(suite.metrics_url("chat"))
    assert "keylm_open_streams" in chat
    assert any(s.labels.get("provider") == "groq" for s in chat["keylm_upstream_first_token_seconds"])
    assert any(s.labels.get("provider") == "groq" for s in chat["keylm_upstream_errors"])

    quota = scrape(suite.metrics_url("quota"))
    outcomes = {s.labels["outcome"] for s in quota["keylm_quota_decisions"] if s.name.endswith("_total")}
    assert "granted" in outcomes


@pytest.mark.parametrize("service", ["gateway", "auth", "keys", "chat", "quota"])
def test_no_service_serves_metrics_on_its_public_port(suite, service):
    response = requests.get(suite.url(service) + "/metrics", timeout=5)

    assert response.status_code in (401, 404)
    assert "keylm_http_requests" not in response.text


def test_made_up_methods_are_counted_as_other(suite, client):
    methods = [f"FOO{i}" for i in range(30)]
    for method in methods:
        client.request(method, "/api/threads")

    families = scrape(suite.metrics_url("gateway"))

    seen = {s.labels["method"] for s in families["keylm_http_requests"] if s.name.endswith("_total")}
    assert "OTHER" in seen
    assert not seen & set(methods)
    assert seen <= {"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "OTHER"}
