"""The web client: static files served by the gateway (index.html for every client-side page)."""

from pathlib import Path

from flask import Blueprint, send_from_directory

STATIC_DIR = Path(__file__).resolve().parent / "static"

bp = Blueprint("web", __name__, static_folder=str(STATIC_DIR), static_url_path="/static")


@bp.get("/")
@bp.get("/reset")
@bp.get("/verify-email")
def index():
    response = send_from_directory(STATIC_DIR, "index.html")
    response.headers["Cache-Control"] = "no-cache"
    return response
