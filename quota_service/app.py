"""quota_service: daily free-request counters for KeyLM Free. `gunicorn 'quota_service.app:create_app()'`."""

from quota_service.api import bp
from quota_service.models import SCHEMA
from shared.app import create_service_app
from shared.config import Settings


def create_app(settings: Settings | None = None):
    return create_service_app("quota", settings, blueprints=[bp], schema=SCHEMA, accepts=("gateway", "chat"))
