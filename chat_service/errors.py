"""chat_service's own errors (all in the shared envelope)."""

from shared.errors import APIError


class RequestInProgress(APIError):
    status, code, retryable = 409, "request_in_progress", True
    message = "This message is still being answered; wait for it or send a new clientRequestId."


class UpstreamUnavailable(APIError):
    status, code, retryable = 503, "upstream_unavailable", True
    message = "The provider could not be reached; try again shortly."


class IdempotencyMismatch(APIError):
    status, code, retryable = 409, "idempotency_mismatch", False
    message = "This clientRequestId was already used for a different message; send a new clientRequestId."
