"""The gateway: the only public entry point. `gunicorn 'gateway.app:create_app()'`."""

from werkzeug.middleware.proxy_fix import ProxyFix

from gateway import api, reference, web
from gateway.limits import init_limits
from gateway.security import init_security
from shared.app import create_service_app
from shared.config import Settings, load_settings
from shared.http import ServiceClient
from shared.tokens import session_codec


def create_app(settings: Settings | None = None):
    settings = settings or load_settings(service="gateway")
    app = create_service_app(
        "gateway",
        settings,
        blueprints=[api.bp, reference.bp, web.bp],
        public=True,
        dependencies=("auth", "keys", "chat", "quota"),
    )
    app.extensions["keylm.client"] = ServiceClient(settings, caller="gateway")
    session_codec(settings)  # fails at start, naming AUTH_PUBLIC_KEYS, when auth's key is unknown
    if settings.trusted_proxy_hops:
        # Behind N reverse proxies the socket address is the last proxy's: take the client's address
        # (and scheme) from the N right-most X-Forwarded-For/-Proto entries, which those proxies
        # wrote. Any entry further left came from the client and is ignored. With 0 (the default),
        # the headers are not read at all, so a client cannot choose its own rate-limit bucket.
        hops = settings.trusted_proxy_hops
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=hops, x_proto=hops)
    init_security(app, settings)
    init_limits(app, settings)
    return app
