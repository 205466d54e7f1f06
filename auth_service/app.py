"""auth_service: users, passwords, sessions, password reset. `gunicorn 'auth_service.app:create_app()'`."""

from auth_service.api import bp
from auth_service.models import SCHEMA
from shared.app import create_service_app
from shared.config import Settings


def create_app(settings: Settings | None = None):
    return create_service_app("auth", settings, blueprints=[bp], schema=SCHEMA)
