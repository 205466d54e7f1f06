"""The provider simulator: every registered provider's wire format on one loopback app."""

from __future__ import annotations

import os

from flask import Flask, Response, jsonify
from werkzeug.exceptions import HTTPException

from shared.providers.registry import SPECS, load_factory
from simulator import control
from simulator.state import SimState
from simulator.wire import CloseDelimitedResponses

# Where each provider's API lives on the simulator (the registry declares it).
BASE_PATHS = {spec.id: spec.simulator_path for spec in SPECS.values()}


def create_app() -> Flask:
    """Build the simulator app (gunicorn: 'simulator.app:create_app()', one gevent worker)."""
    app = Flask(__name__)
    app.json.sort_keys = False
    app.extensions["sim"] = SimState()
    for spec in SPECS.values():
        make_blueprint = load_factory(spec.simulator_blueprint)
        app.register_blueprint(make_blueprint(spec.id), url_prefix=spec.simulator_path)
    app.register_blueprint(control.blueprint, url_prefix="/_sim")
    app.wsgi_app = CloseDelimitedResponses(app.wsgi_app)
    # The runner that started this process set KEYLM_INSTANCE_ID; its health wait checks it.
    instance = os.environ.get("KEYLM_INSTANCE_ID")

    @app.get("/healthz")
    def healthz() -> Response:
        return jsonify(status="ok", service="simulator", instance=instance)

    @app.errorhandler(HTTPException)
    def http_error(exc: HTTPException) -> tuple[Response, int]:
        return jsonify(error={"code": exc.code, "message": exc.description}), exc.code or 500

    return app
