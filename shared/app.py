"""The one app factory every KeyLM service is built with."""

from __future__ import annotations

import io
import logging
import re
import time
import uuid
from collections.abc import Callable, Iterable

import redis
import requests
from flask import Blueprint, Flask, g, jsonify, request

from shared.config import Settings, load_settings, secret_values
from shared.db import check_database, init_database
from shared.errors import NotFound, PayloadTooLarge, register_error_handlers
from shared.http import pooled_session
from shared.internal_auth import HEADER as CREDENTIAL_HEADER
from shared.internal_auth import InternalCredentials, ReplayGuard, canonical_target
from shared.logging import configure_logging
from shared.metrics import init_metrics
from shared.redis_store import redis_client

logger = logging.getLogger("keylm.request")

_SANE_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:\-]{1,128}$")
# Paths any caller may reach on a service port: liveness and readiness, which hold no user data.
# (Metrics are on METRICS_PORT, not on the service's port.)
OPEN_PATHS = ("/healthz", "/readyz")
# How long /readyz waits for a dependency's /healthz.
READY_TIMEOUT = (1.0, 2.0)


def create_service_app(
    name: str,
    settings: Settings | None = None,
    *,
    blueprints: Iterable[Blueprint] = (),
    schema: str | None = None,
    public: bool = False,
    health_check: Callable[[], dict[str, str]] | None = None,
    dependencies: Iterable[str] = (),
    accepts: Iterable[str] = (),
) -> Flask:
    """Build a service: config, logging, errors, request ids, internal auth, database, health.

    `public` is for the gateway only: it has no internal credential to check, its callers are browsers.
    `dependencies`: the services this one calls; /readyz answers 503 while one of them is not alive.
    `accepts`: the services whose signed credentials this one accepts (by their public keys).
    """
    settings = (settings or load_settings(service=name)).for_service(name)
    app = Flask(name)
    app.config["MAX_CONTENT_LENGTH"] = settings.max_body_bytes
    app.extensions["keylm.settings"] = settings
    app.extensions["keylm.service"] = name
    app.json.sort_keys = False

    configure_logging(name, settings.log_level, secret_values(settings))
    register_error_handlers(app)
    _register_request_id(app)
    _register_streamed_body_limit(app, settings.max_body_bytes)
    if not public:
        credentials = InternalCredentials(
            name,
            trusted=settings.trusted_keys(accepts),
            replay_guard=ReplayGuard(redis_client(settings)),
        )
        _register_internal_auth(app, credentials)
    _register_nul_path_guard(app)
    if schema:
        init_database(app, settings, schema)
    init_metrics(app, name)
    _register_health(app, name, settings.instance_id, schema is not None, health_check)
    _register_readiness(app, name, settings, schema is not None, tuple(dependencies))
    for blueprint in blueprints:
        app.register_blueprint(blueprint)
    return app


def _register_request_id(app: Flask) -> None:
    @app.before_request
    def assign_request_id():
        incoming = request.headers.get("X-Request-Id", "")
        # fullmatch: `$` alone would let a trailing newline through into the response header.
        g.request_id = incoming if _SANE_REQUEST_ID.fullmatch(incoming) else uuid.uuid4().hex
        g.started_at = time.perf_counter()

    @app.after_request
    def log_and_tag(response):
        response.headers["X-Request-Id"] = g.get("request_id", "")
        if request.path not in OPEN_PATHS:
            logger.info(
                "request",
                extra={
                    "method": request.method,
                    "path": request.path,  # never the query string: it may hold a token
                    "status": response.status_code,
                    "duration_ms": round((time.perf_counter() - g.get("started_at", 0)) * 1000, 1),
                    "client_ip": request.remote_addr,
                },
            )
        return response


def _register_streamed_body_limit(app: Flask, max_bytes: int) -> None:
    @app.before_request
    def refuse_oversized_streamed_body():
        """A chunked body declares no length: werkzeug would stop reading at MAX_CONTENT_LENGTH and
        hand on the truncated bytes (a confusing 400 invalid_json). Read it here, one byte past the
        limit, and answer 413 like a declared one; otherwise keep it as if its length was declared."""
        environ = request.environ
        chunked = "chunked" in environ.get("HTTP_TRANSFER_ENCODING", "").lower()
        if not chunked or request.content_length is not None or "wsgi.input_terminated" not in environ:
            return
        body = environ["wsgi.input"].read(max_bytes + 1)
        if len(body) > max_bytes:
            raise PayloadTooLarge()
        environ["wsgi.input"] = io.BytesIO(body)
        environ["CONTENT_LENGTH"] = str(len(body))
        environ.pop("HTTP_TRANSFER_ENCODING", None)


def _register_internal_auth(app: Flask, credentials: InternalCredentials) -> None:
    @app.before_request
    def require_internal_credential():
        if request.path in OPEN_PATHS:
            return
        g.caller = credentials.verify(
            request.headers.get(CREDENTIAL_HEADER),
            method=request.method,
            target=canonical_target(request.path, request.query_string.decode("latin-1"), decoded=True),
            body=request.get_data(cache=True),
        )


def _register_nul_path_guard(app: Flask) -> None:
    @app.before_request
    def refuse_nul_in_path():
        # No id holds a NUL (and Postgres text cannot): such a path names nothing; a 404, not a 500.
        if "\x00" in request.path:
            raise NotFound()


def _database_status() -> str:
    """ "ok" or "down": any failure means not healthy (or not ready), never a 500."""
    try:
        check_database()
    except Exception as exc:
        logger.warning("database check failed: %s", type(exc).__name__)
        return "down"
    return "ok"


def _register_health(
    app: Flask,
    name: str,
    instance: str | None,
    has_db: bool,
    health_check: Callable[[], dict[str, str]] | None,
) -> None:
    @app.get("/healthz")
    def healthz():
        checks: dict[str, str] = {"database": _database_status()} if has_db else {}
        if health_check:
            checks.update(health_check())
        healthy = all(value == "ok" for value in checks.values())
        body = {"status": "ok" if healthy else "degraded", "service": name, "checks": checks}
        if instance:
            body["instance"] = instance
        return jsonify(body), 200 if healthy else 503


def _register_readiness(
    app: Flask, name: str, settings: Settings, has_db: bool, dependencies: tuple[str, ...]
) -> None:
    """/readyz: may this process take traffic now? Its database, its Redis (when configured) and
    the services it calls all answer. A rolling restart waits for it before stopping the next one."""
    session = pooled_session(internal=True)

    def dependency_status(service: str) -> str:
        try:
            response = session.get(settings.service_urls[service] + "/healthz", timeout=READY_TIMEOUT)
        except requests.RequestException:
            return "down"
        return "ok" if response.status_code == 200 else "degraded"

    @app.get("/readyz")
    def readyz():
        checks: dict[str, str] = {"database": _database_status()} if has_db else {}
        client = redis_client(settings)
        if client is not None:
            try:
                client.ping()
                checks["redis"] = "ok"
            except redis.RedisError as exc:
                logger.warning("readiness: redis failed: %s", type(exc).__name__)
                checks["redis"] = "down"
        for service in dependencies:
            checks[service] = dependency_status(service)
        ready = all(value == "ok" for value in checks.values())
        body = {"status": "ready" if ready else "not_ready", "service": name, "checks": checks}
        return jsonify(body), 200 if ready else 503
