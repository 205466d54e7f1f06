"""Model catalogs: per key, from the provider, cached for 24 hours, served stale when a refresh fails."""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError

from chat_service.errors import api_error_for
from chat_service.models import ProviderModelCache
from chat_service.upstream import ResolvedKey, Upstream
from shared.db import db, isoformat, utcnow
from shared.providers import AuthFailed, PermissionDenied, ProviderError

logger = logging.getLogger(__name__)

CACHE_TTL = timedelta(hours=24)


def _model_list(key: ResolvedKey, cache: ProviderModelCache, stale: bool) -> dict[str, Any]:
    return {
        "provider": key.provider,
        "keyId": key.id,
        "models": cache.models,
        "fetchedAt": isoformat(cache.fetched_at),
        "expiresAt": isoformat(cache.expires_at),
        "stale": stale,
    }


def get_model_list(
    upstream: Upstream, user_id: str, provider: str, key_id: str | None, refresh: bool
) -> dict[str, Any]:
    """The ModelList of docs/api.md for one of the user's active keys (409 key_not_active otherwise)."""
    return load_catalog(upstream, user_id, upstream.resolve_key(user_id, provider, key_id), refresh)


def load_catalog(upstream: Upstream, user_id: str, key: ResolvedKey, refresh: bool) -> dict[str, Any]:
    """The cached list while fresh, else a fetch; a failed fetch serves the cache marked stale."""
    cache = db.session.get(ProviderModelCache, key.id)
    if cache is not None and cache.user_id != user_id:
        cache = None  # never reachable (key ids are the user's), but never serve across users
    if cache is not None and not refresh and cache.expires_at > utcnow():
        result = _model_list(key, cache, stale=False)
        db.session.rollback()
        return result
    try:
        models = [m.to_dict() for m in upstream.adapter(key.provider).list_models(key.api_key)]
    except ProviderError as exc:
        exc.scrub(key.api_key)
        if isinstance(exc, AuthFailed):
            rejected = not isinstance(exc, PermissionDenied)
            upstream.report_key_failure(user_id, key.id, exc.code, mark_invalid=rejected)
        if cache is None:
            logger.warning("model list failed with nothing cached: %s", exc.code)
            raise api_error_for(exc) from None
        logger.warning("model list refresh failed; serving the cached list as stale: %s", exc.code)
        result = _model_list(key, cache, stale=True)
        db.session.rollback()
        return result
    return _store(user_id, key, models)


def _store(user_id: str, key: ResolvedKey, models: list[dict[str, Any]]) -> dict[str, Any]:
    now = utcnow()
    values = {
        "user_id": user_id,
        "provider": key.provider,
        "models": sorted(models, key=lambda m: m["id"]),
        "fetched_at": now,
        "expires_at": now + CACHE_TTL,
    }
    update = sa.update(ProviderModelCache).where(ProviderModelCache.key_id == key.id).values(**values)
    if not db.session.execute(update).rowcount:
        try:
            db.session.add(ProviderModelCache(key_id=key.id, **values))
            db.session.flush()
        except IntegrityError:  # a concurrent fetch inserted it first: overwrite theirs
            db.session.rollback()
            db.session.execute(update)
    db.session.commit()
    return _model_list(key, db.session.get(ProviderModelCache, key.id), stale=False)


def catalog_has_model(upstream: Upstream, user_id: str, key: ResolvedKey, model: str) -> bool:
    """Is `model` in this key's catalog (cached, or fetched now)?"""
    return any(m["id"] == model for m in load_catalog(upstream, user_id, key, refresh=False)["models"])
