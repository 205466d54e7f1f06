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


class EmailNotVerified(APIError):
    status, code, retryable = 403, "email_not_verified", False
    message = "Confirm your email to use KeyLM Free: open the link we mailed you, or ask for a new one."
