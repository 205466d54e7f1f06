"""keys_service's own errors (all in the shared envelope)."""

from shared.errors import APIError, UpstreamUnavailable


class KeyInvalid(APIError):
    status, code, message = 400, "key_invalid", "The provider rejected this API key."


class KeyNotActive(APIError):
    status, code = 409, "key_not_active"
    message = "There is no active key for this provider; add a key or re-validate one."


class KeyCheckUnavailable(UpstreamUnavailable):
    message = "The provider could not be reached to check the key; try again shortly."


class KeyUnreadable(APIError):
    """A stored key could not be decrypted: a 500 that says nothing about why."""

    status, code, retryable = 500, "internal_error", True  # docs/api.md: every 500 is retryable
