"""Background jobs of auth_service (mail), outside the request: on Redis when REDIS_URL is set (any
auth process may run a job, pending jobs survive a restart), in process memory otherwise.

A request only enqueues, so a reset request for a known email answers exactly like one for an
unknown email (same body, status and work), and an unreachable SMTP server is retried with backoff
instead of failing the request.
"""

from __future__ import annotations

import heapq
import itertools
import json
import logging
import threading
import time
from collections.abc import Callable
from typing import Any

import redis
from flask import Flask

from shared.config import Settings

logger = logging.getLogger(__name__)

Job = dict[str, Any]
Handler = Callable[[Job], None]
# How long a worker waits for a job before looking at retries due again (seconds).
POLL_SECONDS = 1.0


class JobQueue:
    """Runs each job with `handler` in a worker of this process; a failing job is retried
    MAIL_MAX_ATTEMPTS times in all, MAIL_RETRY_SECONDS * 2^n apart, then dropped with a log line."""

    def __init__(self, settings: Settings, handler: Handler):
        self.settings = settings
        self.handler = handler
        self._started = False
        self._start_lock = threading.Lock()

    def enqueue(self, job: Job) -> None:
        self.start()
        self._push({"job": job, "attempt": 1})

    def start(self) -> None:
        """Start this process's worker once (lazily: `flask db upgrade` builds the app too)."""
        if self._started:
            return
        with self._start_lock:
            if not self._started:
                threading.Thread(target=self._work, name="keylm-jobs", daemon=True).start()
                self._started = True

    def _work(self) -> None:
        store_was_up = True
        while True:
            try:
                entry = self._pop(POLL_SECONDS)
            except Exception as exc:  # the store is away: wait, never die
                if store_was_up:  # once per outage, not once a second
                    logger.warning("job queue unavailable: %s", type(exc).__name__)
                store_was_up = False
                time.sleep(POLL_SECONDS)
                continue
            if not store_was_up:
                logger.info("job queue available again")
                store_was_up = True
            if entry is not None:
                self._run(entry)

    def _run(self, entry: dict[str, Any]) -> None:
        job, attempt = entry["job"], entry["attempt"]
        try:
            self.handler(job)
        except Exception as exc:
            if attempt >= self.settings.mail_max_attempts:
                logger.error(
                    "job failed for good",
                    extra={"job": job.get("kind"), "attempts": attempt, "error": type(exc).__name__},
                )
            else:
                delay = self.settings.mail_retry_seconds * 2 ** (attempt - 1)
                logger.warning(
                    "job failed; retrying",
                    extra={
                        "job": job.get("kind"),
                        "attempt": attempt,
                        "retry_in": delay,
                        "error": type(exc).__name__,
                    },
                )
                try:
                    self._push({"job": job, "attempt": attempt + 1}, delay=delay)
                except Exception as store_exc:
                    logger.error("job lost: queue unavailable (%s)", type(store_exc).__name__)
        finally:
            self._done()

    # Subclasses: the storage.
    def _push(self, entry: dict[str, Any], delay: float = 0.0) -> None:
        raise NotImplementedError

    def _pop(self, timeout: float) -> dict[str, Any] | None:
        raise NotImplementedError

    def _done(self) -> None:
        pass

    def wait_idle(self, timeout: float) -> bool:
        """True once nothing is pending or running here (tests; shutdown); False after `timeout`."""
        raise NotImplementedError


class LocalJobQueue(JobQueue):
    """In this process's memory: jobs pending when the process stops are lost (use Redis for more)."""

    def __init__(self, settings: Settings, handler: Handler):
        super().__init__(settings, handler)
        self._due: list[tuple[float, int, dict[str, Any]]] = []
        self._order = itertools.count()
        self._unfinished = 0
        self._changed = threading.Condition()

    def _push(self, entry: dict[str, Any], delay: float = 0.0) -> None:
        with self._changed:
            heapq.heappush(self._due, (time.monotonic() + delay, next(self._order), entry))
            self._unfinished += 1
            self._changed.notify_all()

    def _pop(self, timeout: float) -> dict[str, Any] | None:
        with self._changed:
            deadline = time.monotonic() + timeout
            while True:
                now = time.monotonic()
                if self._due and self._due[0][0] <= now:
                    return heapq.heappop(self._due)[2]
                wait = min(deadline, self._due[0][0] if self._due else deadline) - now
                if wait <= 0:
                    return None
                self._changed.wait(wait)

    def _done(self) -> None:
        with self._changed:
            self._unfinished -= 1
            self._changed.notify_all()

    def wait_idle(self, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        with self._changed:
            while self._unfinished:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._changed.wait(remaining)
        return True


class RedisJobQueue(JobQueue):
    """A Redis list of ready jobs and a sorted set of retries by due time, shared by every process.

    While Redis is unreachable (or too slow: REDIS_*_TIMEOUT_SECONDS), jobs go to this process's
    memory instead, so a request never fails or waits for it.
    """

    def __init__(self, settings: Settings, handler: Handler):
        super().__init__(settings, handler)
        assert settings.redis_url
        timeouts = {"socket_connect_timeout": settings.redis_connect_timeout}
        self.redis = redis.Redis.from_url(
            settings.redis_url, socket_timeout=settings.redis_socket_timeout, **timeouts
        )
        # BRPOP blocks up to POLL_SECONDS: its socket must wait a little longer than that.
        self.blocking = redis.Redis.from_url(
            settings.redis_url, socket_timeout=POLL_SECONDS + settings.redis_socket_timeout, **timeouts
        )
        self.fallback = LocalJobQueue(settings, handler)
        prefix = f"{settings.rate_limit_key_prefix}:auth-jobs"
        self.ready, self.delayed = f"{prefix}:ready", f"{prefix}:delayed"

    def _push(self, entry: dict[str, Any], delay: float = 0.0) -> None:
        try:
            if delay <= 0:
                self.redis.lpush(self.ready, json.dumps(entry))
            else:
                member = json.dumps({**entry, "id": time.time_ns()})
                self.redis.zadd(self.delayed, {member: time.time() + delay})
        except redis.RedisError as exc:
            logger.warning("job queue on Redis unavailable (%s): queued in memory", type(exc).__name__)
            self.fallback.start()
            self.fallback._push(entry, delay)

    def _pop(self, timeout: float) -> dict[str, Any] | None:
        for payload in self.redis.zrangebyscore(self.delayed, 0, time.time(), start=0, num=10):
            # Whoever removes it owns it: two processes never both move one retry.
            if self.redis.zrem(self.delayed, payload):
                entry = json.loads(payload)
                entry.pop("id", None)
                self.redis.lpush(self.ready, json.dumps(entry))
        popped = self.blocking.brpop([self.ready], timeout=timeout)
        return json.loads(popped[1]) if popped else None

    def wait_idle(self, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        if not self.fallback.wait_idle(timeout):
            return False
        while self.redis.llen(self.ready) or self.redis.zcard(self.delayed):
            if time.monotonic() > deadline:
                return False
            time.sleep(0.05)
        return True


def init_jobs(app: Flask, settings: Settings, handler: Callable[[Flask, Job], None]) -> JobQueue:
    """The queue of this app; each job runs inside an app context (the database session)."""

    def run_in_app(job: Job) -> None:
        with app.app_context():
            handler(app, job)

    queue_class = RedisJobQueue if settings.uses_redis else LocalJobQueue
    queue = queue_class(settings, run_in_app)
    app.extensions["keylm.jobs"] = queue

    @app.before_request
    def start_job_worker():
        queue.start()  # pending jobs (Redis) start moving with this process's first request

    return queue
