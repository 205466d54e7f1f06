"""quota_service HTTP API: the free-usage snapshot (through the gateway) and chat_service's reservations."""

from flask import Blueprint

from quota_service import services
from quota_service.schemas import FreeUsageSchema, ReleaseSchema, ReserveSchema, SettleSchema
from shared.web import current_caller, current_user_id, get_settings, load_json

bp = Blueprint("quota", __name__)

usage_schema = FreeUsageSchema()


@bp.get("/api/usage/free")
def free_usage():
    settings = get_settings()
    usage = services.free_usage_snapshot(settings, current_user_id(), services.clock(settings))
    return usage_schema.dump(usage)


@bp.post("/internal/free/reserve")
def reserve_free_request():
    """For chat_service: take one free request and its estimated tokens for the credential's user
    (429 free_quota_exhausted)."""
    current_caller().require_service("chat")
    settings, user_id = get_settings(), current_user_id()
    data = load_json(ReserveSchema())
    now = services.clock(settings)
    reservation_id = services.reserve_free_request(settings, user_id, now, data["estimatedTokens"])
    usage = services.free_usage_snapshot(settings, user_id, now)
    return {"reservationId": reservation_id, "usage": usage_schema.dump(usage)}


@bp.post("/internal/free/settle")
def settle_free_request():
    """For chat_service: charge what a reply really cost in place of its estimate (once); 404 if it
    is not this user's reservation."""
    current_caller().require_service("chat")
    settings, user_id = get_settings(), current_user_id()
    data = load_json(SettleSchema())
    settled = services.settle_free_request(settings, data["reservationId"], user_id, data["usedTokens"])
    usage = services.free_usage_snapshot(settings, user_id, services.clock(settings))
    return {"settled": settled, "usage": usage_schema.dump(usage)}


@bp.post("/internal/free/release")
def release_free_request():
    """For chat_service: give a reservation back (once); 404 if it is not this user's."""
    current_caller().require_service("chat")
    settings, user_id = get_settings(), current_user_id()
    data = load_json(ReleaseSchema())
    now = services.clock(settings)
    released = services.release_free_request(settings, data["reservationId"], user_id, now=now)
    usage = services.free_usage_snapshot(settings, user_id, now)
    return {"released": released, "usage": usage_schema.dump(usage)}
