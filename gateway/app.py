"""The gateway: the only public entry point. `gunicorn 'gateway.app:create_app()'`."""

from gateway import api, reference, web
from gateway.limits import init_limits
from gateway.security import init_security
from shared.app import create_service_app
from shared.config import Settings, load_settings
from shared.http import ServiceClient


def create_app(settings: Settings | None = None):
    settings = settings or load_settings(service="gateway")
    app = create_service_app("gateway", settings, blueprints=[api.bp, reference.bp, web.bp], public=True)
    app.extensions["keylm.client"] = ServiceClient(settings, caller="gateway")
    init_security(app)
    init_limits(app, settings)
    return app
