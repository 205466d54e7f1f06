"""quota_service. `gunicorn 'quota_service.app:create_app()'`."""

from shared.app import create_service_app
from shared.config import Settings


def create_app(settings: Settings | None = None):
    return create_service_app("quota", settings)
