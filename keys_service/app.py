"""keys_service: the provider-key vault. `gunicorn 'keys_service.app:create_app()'`."""

from keys_service.api import bp
from keys_service.models import SCHEMA
from shared.app import create_service_app
from shared.config import Settings


def create_app(settings: Settings | None = None):
    return create_service_app("keys", settings, blueprints=[bp], schema=SCHEMA, accepts=("gateway", "chat"))
