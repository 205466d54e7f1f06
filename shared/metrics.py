"""Prometheus metrics: every service exposes /metrics; the counters below are shared names."""

from __future__ import annotations

import time

from flask import Flask, Response, g, request
from prometheus_client import CONTENT_TYPE_LATEST, Counter, Gauge, Histogram, generate_latest

REQUESTS = Counter(
    "keylm_http_requests_total", "HTTP requests handled", ["service", "method", "route", "status"]
)
LATENCY = Histogram(
    "keylm_http_request_duration_seconds", "Time to the response headers", ["service", "route"]
)
OPEN_STREAMS = Gauge("keylm_open_streams", "SSE streams currently open", ["service"])
UPSTREAM_LATENCY = Histogram(
    "keylm_upstream_first_token_seconds", "Provider time to first token", ["provider"]
)
UPSTREAM_ERRORS = Counter("keylm_upstream_errors_total", "Provider errors", ["provider", "code"])
QUOTA_DECISIONS = Counter("keylm_quota_decisions_total", "Free request reservations", ["outcome"])
LIMITS_ON_FALLBACK = Gauge(
    "keylm_rate_limits_in_memory_fallback",
    "1 while rate limits are counted in process memory because Redis is unreachable",
    ["service"],
)
LIMITS_FALLBACK = Counter(
    "keylm_rate_limit_fallback_requests_total",
    "Requests whose rate limits were counted in process memory because Redis was unreachable",
    ["service"],
)


def init_metrics(app: Flask, service: str) -> None:
    """Count and time every request by route template (not raw path: ids would explode labels)."""

    @app.before_request
    def start_timer():
        g.metrics_started = time.perf_counter()

    @app.after_request
    def record(response):
        route = request.url_rule.rule if request.url_rule else "unmatched"
        if route != "/metrics":
            REQUESTS.labels(service, request.method, route, str(response.status_code)).inc()
            LATENCY.labels(service, route).observe(
                time.perf_counter() - g.get("metrics_started", time.perf_counter())
            )
        return response

    @app.get("/metrics")
    def metrics():
        return Response(generate_latest(), mimetype=CONTENT_TYPE_LATEST)
