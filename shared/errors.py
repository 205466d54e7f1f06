"""One error type for the whole suite and the one JSON envelope every error is answered with."""

from __future__ import annotations

import logging
from typing import Any

from flask import Flask, Response, jsonify
from marshmallow import ValidationError
from sqlalchemy.exc import OperationalError
from werkzeug.exceptions import HTTPException

logger = logging.getLogger(__name__)


class APIError(Exception):
    """An error a client may see. Raise it (or a subclass) from anywhere; the envelope follows."""

    status = 500
    code = "internal_error"
    message = "Something went wrong on our side."
    retryable = False

    def __init__(
        self,
        message: str | None = None,
        *,
        code: str | None = None,
        status: int | None = None,
        retryable: bool | None = None,
        details: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
    ):
        self.message = message or self.message
        self.code = code or self.code
        self.status = status or self.status
        self.retryable = self.retryable if retryable is None else retryable
        self.details = details
        self.headers = headers or {}
        super().__init__(self.message)

    def to_dict(self) -> dict[str, Any]:
        return error_body(self.code, self.message, self.retryable, self.details)


class BadRequest(APIError):
    status, code, message = 400, "bad_request", "The request could not be understood."


class InvalidJSON(APIError):
    status, code, message = 400, "invalid_json", "The request body must be a JSON object."


class ValidationFailed(APIError):
    status, code, message = 400, "validation_error", "Some fields are invalid."

    def __init__(self, fields: dict[str, Any], message: str | None = None):
        super().__init__(message, details={"fields": fields})


class Unauthenticated(APIError):
    status, code, message = 401, "unauthenticated", "Sign in to continue."


class Forbidden(APIError):
    status, code, message = 403, "forbidden", "You are not allowed to do that."


class NotFound(APIError):
    status, code, message = 404, "not_found", "Not found."


class Conflict(APIError):
    status, code, message = 409, "conflict", "The request conflicts with the current state."


class PayloadTooLarge(APIError):
    status, code, message = 413, "request_too_large", "The request body is too large."


class RateLimited(APIError):
    status, code, message, retryable = 429, "rate_limited", "Too many requests; slow down.", True


class UpstreamUnavailable(APIError):
    """A provider could not be reached (connect error, timeout): keys and chat both say so."""

    status, code, retryable = 503, "upstream_unavailable", True
    message = "The provider could not be reached; try again shortly."


class ServiceUnavailable(APIError):
    status, code, retryable = 503, "service_unavailable", True
    message = "A KeyLM service is unavailable; try again shortly."


def error_body(
    code: str, message: str, retryable: bool, details: dict[str, Any] | None = None
) -> dict[str, Any]:
    """The envelope of docs/api.md: {"error": {code, message, retryable, details?}}."""
    error: dict[str, Any] = {"code": code, "message": message, "retryable": retryable}
    if details:
        error["details"] = details
    return {"error": error}


# werkzeug's HTTP errors (routing, body size, method) mapped to the envelope's codes.
_HTTP_CODES = {
    400: ("bad_request", "The request could not be understood.", False),
    401: ("unauthenticated", "Sign in to continue.", False),
    403: ("forbidden", "You are not allowed to do that.", False),
    404: ("not_found", "Not found.", False),
    405: ("method_not_allowed", "That method is not allowed here.", False),
    413: ("request_too_large", "The request body is too large.", False),
    415: ("unsupported_media_type", "Send the body as application/json.", False),
    429: ("rate_limited", "Too many requests; slow down.", True),
}


def _envelope(status: int, body: dict[str, Any], headers: dict[str, str] | None = None) -> Response:
    response = jsonify(body)
    response.status_code = status
    for name, value in (headers or {}).items():
        response.headers[name] = value
    return response


def handle_api_error(error: APIError) -> Response:
    return _envelope(error.status, error.to_dict(), error.headers)


def handle_http_exception(error: HTTPException) -> Response:
    status = error.code or 500
    code, message, retryable = _HTTP_CODES.get(status, ("http_error", error.name, status >= 500))
    headers = {}
    if status == 405 and getattr(error, "valid_methods", None):
        headers["Allow"] = ", ".join(error.valid_methods)
    if status == 429:
        retry_after = getattr(error, "retry_after", None)
        if retry_after:
            headers["Retry-After"] = str(retry_after)
    return _envelope(status, error_body(code, message, retryable), headers)


def handle_validation_error(error: ValidationError) -> Response:
    messages = error.messages if isinstance(error.messages, dict) else {"_schema": error.messages}
    return handle_api_error(ValidationFailed(messages))


def handle_database_unavailable(error: OperationalError) -> Response:
    # The database went away (restart, too many clients, a locked SQLite file): retry later.
    logger.warning("database unavailable: %s", type(error.orig).__name__ if error.orig else "unknown")
    return handle_api_error(ServiceUnavailable("The database is unavailable; try again shortly."))


def handle_unexpected_error(error: Exception) -> Response:
    logger.exception("unhandled error")
    return _envelope(500, error_body("internal_error", APIError.message, True))


def register_error_handlers(app: Flask) -> None:
    """Map every error a Flask app can raise to the envelope."""
    app.register_error_handler(APIError, handle_api_error)
    app.register_error_handler(HTTPException, handle_http_exception)
    app.register_error_handler(ValidationError, handle_validation_error)
    app.register_error_handler(OperationalError, handle_database_unavailable)
    app.register_error_handler(Exception, handle_unexpected_error)
