"""One Redis client per process for the services' own small uses (replay guard, readiness)."""

from __future__ import annotations

import redis

from shared.config import Settings

_CLIENTS: dict[str, redis.Redis] = {}


def redis_client(settings: Settings) -> redis.Redis | None:
    """The Redis named by REDIS_URL with the configured timeouts, or None without a real Redis."""
    if not settings.uses_redis:
        return None
    client = _CLIENTS.get(settings.redis_url)
    if client is None:
        client = redis.Redis.from_url(
            settings.redis_url,
            socket_connect_timeout=settings.redis_connect_timeout,
            socket_timeout=settings.redis_socket_timeout,
        )
        _CLIENTS[settings.redis_url] = client
    return client
