"""A worker that was told to stop: its open streams get DRAIN_SECONDS more, then end themselves."""

from __future__ import annotations

import time


class Drain:
    """Set by the gunicorn worker's SIGTERM handler (runner/gunicorn_conf.py); streams poll it."""

    def __init__(self) -> None:
        self.deadline: float | None = None

    def begin(self, seconds: float) -> None:
        if self.deadline is None:
            self.deadline = time.monotonic() + seconds

    @property
    def due(self) -> bool:
        """True once the drain time is over: a stream still open must end now."""
        return self.deadline is not None and time.monotonic() >= self.deadline


DRAIN = Drain()
