"""chat_service HTTP API: model catalogs, threads and the message stream (reached via the gateway)."""

from flask import Blueprint, Response, current_app, request, stream_with_context

from chat_service import catalog, streaming, threads
from chat_service.schemas import (
    CreateThreadSchema,
    ListThreadsSchema,
    ModelListQuerySchema,
    RefreshModelsSchema,
    SendMessageSchema,
    UpdateThreadSchema,
    message_schema,
    thread_schema,
)
from chat_service.upstream import Upstream
from shared.errors import NotFound
from shared.providers import PROVIDERS
from shared.sse import SSE_HEADERS
from shared.web import current_user_id, load_json

bp = Blueprint("chat", __name__)


def _upstream() -> Upstream:
    return current_app.extensions["keylm.upstream"]


def _known_provider(provider: str) -> str:
    if provider not in PROVIDERS:
        raise NotFound(f"Unknown provider {provider!r}.")
    return provider


@bp.get("/api/providers/<provider>/models")
def list_models(provider: str):
    query = ModelListQuerySchema().load(request.args.to_dict())
    return catalog.get_model_list(
        _upstream(), current_user_id(), _known_provider(provider), query["keyId"], query["refresh"]
    )


@bp.post("/api/providers/<provider>/models/refresh")
def refresh_models(provider: str):
    data = load_json(RefreshModelsSchema())
    return catalog.get_model_list(
        _upstream(), current_user_id(), _known_provider(provider), data["keyId"], refresh=True
    )


@bp.post("/api/threads")
def create_thread():
    thread = threads.create_thread(_upstream(), current_user_id(), load_json(CreateThreadSchema()))
    return {"thread": thread_schema.dump(thread)}, 201


@bp.get("/api/threads")
def list_threads():
    query = ListThreadsSchema().load(request.args.to_dict())
    page, next_cursor = threads.list_threads(current_user_id(), query["limit"], query["cursor"])
    return {"threads": thread_schema.dump(page, many=True), "nextCursor": next_cursor}


@bp.get("/api/threads/<thread_id>")
def get_thread(thread_id: str):
    thread, messages = threads.read_thread(current_user_id(), thread_id, _upstream())
    return {"thread": thread_schema.dump(thread), "messages": message_schema.dump(messages, many=True)}


@bp.patch("/api/threads/<thread_id>")
def rename_thread(thread_id: str):
    data = load_json(UpdateThreadSchema())
    return {"thread": thread_schema.dump(threads.rename_thread(current_user_id(), thread_id, data["title"]))}


@bp.delete("/api/threads/<thread_id>")
def delete_thread(thread_id: str):
    threads.delete_thread(current_user_id(), thread_id)
    return "", 204


@bp.post("/api/threads/<thread_id>/messages")
def send_message(thread_id: str):
    data = load_json(SendMessageSchema())
    events = streaming.start_send(
        _upstream(), current_user_id(), thread_id, data["content"], data["clientRequestId"]
    )
    return Response(stream_with_context(events), mimetype="text/event-stream", headers=SSE_HEADERS)
