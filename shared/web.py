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
    try:
        data = request.get_json(silent=True)
    except RecursionError:  # absurdly nested: json raises this, not a ValueError
        raise InvalidJSON() from None
    if data is None:
        if not request.get_data(cache=True):
            data = {}
        else:
            raise InvalidJSON()
    if not isinstance(data, dict):
        raise InvalidJSON()
    if _has_unstorable_text(data):
        raise InvalidJSON("Text in the request body must be valid Unicode without NUL characters.")
    return schema.load(data)


def _has_unstorable_text(data: Any) -> bool:
    """True if any key or string holds a lone surrogate (cannot be UTF-8 encoded) or a NUL
    (Postgres text cannot store it): both would otherwise fail deep inside a service as a 500."""
    pending = [data]
    while pending:
        value = pending.pop()
        if isinstance(value, dict):
            pending.extend(value.keys())
            pending.extend(value.values())
        elif isinstance(value, list):
            pending.extend(value)
        elif isinstance(value, str):
            if "\x00" in value:
                return True
            try:
                value.encode("utf-8")
            except UnicodeEncodeError:
                return True
    return False
