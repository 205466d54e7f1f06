"""auth_service's own errors (all in the shared envelope)."""

from shared.errors import APIError


class EmailTaken(APIError):
    status, code, message = 409, "email_taken", "An account with that email already exists."


class InvalidCredentials(APIError):
    status, code, message = 401, "invalid_credentials", "Wrong email or password."


class InvalidResetToken(APIError):
    status, code, message = 400, "invalid_token", "This reset link is invalid or has expired."


class InvalidVerificationToken(APIError):
    status, code, message = 400, "invalid_token", "This confirmation link is invalid, used or expired."
