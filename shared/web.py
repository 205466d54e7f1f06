"""Helpers for thin views: the current settings and caller, and loading a JSON body via a schema."""

from __future__ import annotations

from typing import Any

from flask import current_app, g, request
from marshmallow import Schema

from shared.config import Settings
from shared.errors import InvalidJSON
from shared.internal_auth import Caller


def get_settings() -> Settings:
    return current_app.extensions["keylm.settings"]


def current_caller() -> Caller:
    """The verified caller of this request (set by the factory's internal-auth check)."""
    return g.caller


def current_user_id() -> str:
    return current_caller().require_user()


def load_json(schema: Schema) -> dict[str, Any]:
    """Parse the body as a JSON object and load it through `schema` (errors become the envelope)."""
    data = request.get_json(silent=True)
    if data is None:
        if not request.get_data(cache=True):
            data = {}
        else:
            raise InvalidJSON()
    if not isinstance(data, dict):
        raise InvalidJSON()
    return schema.load(data)
