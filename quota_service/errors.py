"""quota_service's own errors (all in the shared envelope)."""

from __future__ import annotations

from datetime import datetime

from shared.db import isoformat
from shared.errors import APIError


class FreeQuotaExhausted(APIError):
    """429: the user's or the global free bucket, or the user's token budget, is used up for today;
    `details` say which (`user`, `global`, `tokens`) and when it resets."""

    status, code, retryable = 429, "free_quota_exhausted", True
    message = "Daily free requests used up; resets at 00:00 UTC."

    def __init__(self, bucket: str, resets_at: datetime):
        message = "Daily free tokens used up; resets at 00:00 UTC." if bucket == "tokens" else None
        super().__init__(message, details={"resetsAt": isoformat(resets_at), "bucket": bucket})
        self.bucket = bucket
