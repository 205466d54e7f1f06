"""auth_service: users, passwords, sessions, password reset. `gunicorn 'auth_service.app:create_app()'`."""

from auth_service.api import bp
from auth_service.jobs import init_jobs
from auth_service.models import SCHEMA
from auth_service.services import dummy_hash, run_job
from shared.app import create_service_app
from shared.config import Settings, load_settings
from shared.tokens import session_codec


def create_app(settings: Settings | None = None):
    settings = settings or load_settings()
    app = create_service_app("auth", settings, blueprints=[bp], schema=SCHEMA, accepts=("gateway", "chat"))
    session_codec(settings, signing=True)  # fails at start, naming AUTH_SIGNING_KEY, when unset
    init_jobs(app, settings, lambda app, job: run_job(settings, job))
    dummy_hash(settings.bcrypt_rounds, settings.password_pepper)  # the unknown-email check, made now
    return app
