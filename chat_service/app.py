"""chat_service: model catalogs, threads, messages, streaming. `gunicorn 'chat_service.app:create_app()'`."""

from chat_service.api import bp
from chat_service.models import SCHEMA
from chat_service.outbox import init_outbox
from chat_service.upstream import Upstream
from shared.app import create_service_app
from shared.config import Settings, load_settings
from shared.http import ServiceClient


def create_app(settings: Settings | None = None):
    settings = settings or load_settings(service="chat")
    app = create_service_app(
        "chat",
        settings,
        blueprints=[bp],
        schema=SCHEMA,
        dependencies=("auth", "keys", "quota"),
        accepts=("gateway",),
    )
    upstream = Upstream(settings, ServiceClient(settings, caller="chat"))
    app.extensions["keylm.upstream"] = upstream
    init_outbox(app, upstream)
    return app
