"""Prometheus metrics, by route, served on a port of their own (METRICS_PORT), never the public one.

gunicorn's master serves them (runner/gunicorn_conf.py) from prometheus_client's multiprocess
directory, so the numbers are the sum over every worker of the service.
"""

from __future__ import annotations

import time

from flask import Flask, g, request
from prometheus_client import Counter, Gauge, Histogram

# Anything else (a client may send any token as a method) is counted as OTHER: one label value,
# however many made-up methods arrive, so nobody can grow the series without bound.
KNOWN_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})

REQUESTS = Counter(
    "keylm_http_requests_total", "HTTP requests handled", ["service", "method", "route", "status"]
)
LATENCY = Histogram(
    "keylm_http_request_duration_seconds", "Time to the response headers", ["service", "route"]
)
OPEN_STREAMS = Gauge(
    "keylm_open_streams", "SSE streams currently open", ["service"], multiprocess_mode="livesum"
)
UPSTREAM_LATENCY = Histogram(
    "keylm_upstream_first_token_seconds", "Provider time to first token", ["provider"]
)
UPSTREAM_ERRORS = Counter("keylm_upstream_errors_total", "Provider errors", ["provider", "code"])
QUOTA_DECISIONS = Counter("keylm_quota_decisions_total", "Free request reservations", ["outcome"])
LIMITS_ON_FALLBACK = Gauge(
    "keylm_rate_limits_in_memory_fallback",
    "1 while rate limits are counted in process memory because Redis is unreachable",
    ["service"],
    multiprocess_mode="livemax",
)
LIMITS_FALLBACK = Counter(
    "keylm_rate_limit_fallback_requests_total",
    "Requests whose rate limits were counted in process memory because Redis was unreachable",
    ["service"],
)


def method_label(method: str) -> str:
    return method if method in KNOWN_METHODS else "OTHER"


def init_metrics(app: Flask, service: str) -> None:
    """Count and time every request by route template (not raw path: ids would explode labels)."""

    @app.before_request
    def start_timer():
        g.metrics_started = time.perf_counter()

    @app.after_request
    def record(response):
        route = request.url_rule.rule if request.url_rule else "unmatched"
        REQUESTS.labels(service, method_label(request.method), route, str(response.status_code)).inc()
        LATENCY.labels(service, route).observe(
            time.perf_counter() - g.get("metrics_started", time.perf_counter())
        )
        return response
