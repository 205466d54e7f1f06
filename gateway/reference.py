"""The API reference: the committed OpenAPI document (docs/openapi.json, written by
`python -m runner openapi`) and a page that renders it (Swagger UI, vendored from npm)."""

from __future__ import annotations

from functools import cache

from flask import Blueprint, Response, send_from_directory

from gateway.web import STATIC_DIR
from shared.config import REPO_ROOT

DOCUMENT_PATH = REPO_ROOT / "docs" / "openapi.json"

bp = Blueprint("reference", __name__)


@cache
def openapi_document() -> bytes:
    """The file as committed (the gateway never rebuilds it: it imports no service)."""
    return DOCUMENT_PATH.read_bytes()


@bp.get("/api/openapi.json")
def openapi_json():
    return Response(openapi_document(), mimetype="application/json")


@bp.get("/api/docs")
def api_reference():
    """The page runs under the app's own strict CSP: Swagger UI needs no inline script or style
    (it sets styles through the DOM, which `style-src 'self'` allows)."""
    response = send_from_directory(STATIC_DIR, "api-docs.html")
    response.headers["Cache-Control"] = "no-cache"
    return response
