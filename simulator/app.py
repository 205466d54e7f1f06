"""The provider simulator: OpenAI, Anthropic, Gemini and Groq wire formats on one loopback app."""

from __future__ import annotations

import os

from flask import Flask, Response, jsonify
from werkzeug.exceptions import HTTPException

from simulator import anthropic_api, control, gemini_api, openai_api
from simulator.state import SimState
from simulator.wire import CloseDelimitedResponses

BASE_PATHS = {
    "openai": "/openai/v1",
    "anthropic": "/anthropic/v1",
    "gemini": "/gemini/v1beta",
    "groq": "/groq/openai/v1",
}


def create_app() -> Flask:
    """Build the simulator app (gunicorn: 'simulator.app:create_app()', one gevent worker)."""
    app = Flask(__name__)
    app.json.sort_keys = False
    app.extensions["sim"] = SimState()
    app.register_blueprint(openai_api.make_blueprint("openai"), url_prefix=BASE_PATHS["openai"])
    app.register_blueprint(openai_api.make_blueprint("groq"), url_prefix=BASE_PATHS["groq"])
    app.register_blueprint(anthropic_api.blueprint, url_prefix=BASE_PATHS["anthropic"])
    app.register_blueprint(gemini_api.blueprint, url_prefix=BASE_PATHS["gemini"])
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
