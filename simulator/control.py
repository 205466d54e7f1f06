"""`/_sim/` control endpoints: runtime failures, the request log and counters (loopback only)."""

from __future__ import annotations

from flask import Blueprint, Response, abort, jsonify, request

from shared.providers.registry import PROVIDERS
from simulator.wire import state

blueprint = Blueprint("sim_control", __name__)


@blueprint.post("/keys/revoke")
def revoke_key() -> Response:
    """Make one key answer as invalid from now on."""
    key = (request.get_json(silent=True) or {}).get("key")
    if not isinstance(key, str) or not key:
        abort(400, 'body must be {"key": "..."}')
    state().revoke(key)
    return jsonify(revoked=True)


@blueprint.post("/providers/<provider>/down")
def set_down(provider: str) -> Response:
    """Make every endpoint of one provider answer 503 (or bring it back)."""
    if provider not in PROVIDERS:
        abort(404, f"unknown provider {provider}")
    down = bool((request.get_json(silent=True) or {}).get("down", True))
    if down:
        state().down.add(provider)
    else:
        state().down.discard(provider)
    return jsonify(provider=provider, down=down)


@blueprint.post("/reset")
def reset() -> Response:
    """Clear revocations, outages, the request log and the counters."""
    state().reset()
    return jsonify(reset=True)


@blueprint.get("/requests")
def list_requests() -> Response:
    """Recent requests, oldest first; `?provider=` filters."""
    provider = request.args.get("provider")
    records = [r.to_dict() for r in state().records if provider in (None, r.provider)]
    return jsonify(requests=records)


@blueprint.get("/streams/<stream_id>")
def get_stream(stream_id: str) -> Response:
    """One stream's record: tokens sent and its state."""
    record = state().streams.get(stream_id)
    if record is None:
        abort(404, f"unknown stream {stream_id}")
    return jsonify(record.to_dict())


@blueprint.get("/stats")
def stats() -> Response:
    """Counters: chat and model-list calls per provider, streams by state."""
    return jsonify(state().stats())
