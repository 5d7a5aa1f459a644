"""Gallery's routes: the browser API under /api, the WebSocket /ws and the health checks.

    POST   /api/paintings              multipart: content, style (one or more), params (JSON) -> 201
    GET    /api/paintings?limit=&offset=   newest first -> {items, total}
    GET    /api/paintings/{id}         the painting with its loss curve (`progress`)
    POST   /api/paintings/{id}/cancel  -> the painting
    POST   /api/paintings/{id}/remix   JSON {params} -> 201 a new painting with the same images
    DELETE /api/paintings/{id}         -> 204
    GET    /api/images/{id}            image bytes, cached for good (ids are content hashes)
    GET    /api/params/schema          the parameter JSON schema the form is built from
    WS     /ws                         painting events (see gallery.hub)
    GET    /health/live, /health/ready

Each route takes the running Gallery as `GalleryDep`; errors become statuses in `httpapi.errors`.
"""

from __future__ import annotations

import json
from typing import Any

from fastapi import APIRouter, Query, Request, WebSocket
from fastapi.responses import FileResponse, JSONResponse, Response
from starlette.datastructures import UploadFile

from gallery import views
from gallery.state import GalleryDep, GalleryState
from httpapi.errors import BadRequest
from httpapi.forms import file_part
from httpapi.images import image_response
from painting.catalog import MAX_PAGE
from painting.params import Params, parse_params
from painting.records import Status

IMMUTABLE = "public, max-age=31536000, immutable"

api = APIRouter(prefix="/api")
health = APIRouter(prefix="/health", include_in_schema=False)
websocket = APIRouter()


@api.post("/paintings", status_code=201)
async def create_painting(request: Request, gallery: GalleryDep) -> JSONResponse:
    max_styles = gallery.settings.max_styles
    async with request.form(max_files=max_styles + 2, max_fields=8) as form:
        params = form.get("params")
        if isinstance(params, UploadFile):
            raise BadRequest("params: must be a text field with JSON, not a file")
        content = await file_part(form.getlist("content"), "content")
        style_parts = form.getlist("style")
        if not style_parts:
            raise BadRequest("style: missing part (at least one style image is needed)")
        if len(style_parts) > max_styles:
            raise BadRequest(f"style: at most {max_styles} style images")
        styles = [await file_part([s], "style") for s in style_parts]
    parsed = _parse(params, len(styles))
    content_ref, *style_refs = gallery.images.put_all([("content", content), *(("style", s) for s in styles)])
    return _created(gallery, parsed, content_ref.id, [s.id for s in style_refs])


@api.get("/paintings")
async def list_paintings(
    gallery: GalleryDep, limit: int = Query(20, ge=1, le=MAX_PAGE), offset: int = Query(0, ge=0)
) -> dict[str, Any]:
    catalog = gallery.catalog
    return {
        "items": [views.painting_json(r) for r in catalog.newest(limit=limit, offset=offset)],
        "total": catalog.count(),
        "limit": limit,
        "offset": offset,
    }


@api.get("/paintings/{painting_id}")
async def get_painting(painting_id: str, gallery: GalleryDep) -> dict[str, Any]:
    record = gallery.catalog.get(painting_id)
    return views.painting_json(record, gallery.catalog.progress(painting_id))


@api.post("/paintings/{painting_id}/cancel")
async def cancel_painting(painting_id: str, gallery: GalleryDep) -> dict[str, Any]:
    catalog = gallery.catalog
    if catalog.transition(painting_id, Status.CANCELLED):
        record = catalog.get(painting_id)
        gallery.dispatcher.forward_cancel(record.remote_id)
        gallery.hub.publish(views.event("cancelled", painting_id))
    return views.painting_json(catalog.get(painting_id), catalog.progress(painting_id))


@api.post("/paintings/{painting_id}/remix", status_code=201)
async def remix_painting(painting_id: str, request: Request, gallery: GalleryDep) -> JSONResponse:
    original = gallery.catalog.get(painting_id)
    try:
        body = await request.json()
    except ValueError:
        raise BadRequest('body: must be JSON like {"params": {...}}') from None
    if not isinstance(body, dict):
        raise BadRequest('body: must be a JSON object like {"params": {...}}')
    parsed = _parse(body.get("params"), len(original.styles))
    return _created(gallery, parsed, original.content_image, list(original.style_images))


@api.delete("/paintings/{painting_id}", status_code=204)
async def delete_painting(painting_id: str, gallery: GalleryDep) -> Response:
    record = gallery.catalog.get(painting_id)
    gallery.catalog.delete(painting_id)
    if not record.finished:
        gallery.dispatcher.forward_cancel(record.remote_id)
    gallery.hub.publish(views.event("deleted", painting_id))
    return Response(status_code=204)


@api.get("/images/{image_id}")
async def get_image(image_id: str, gallery: GalleryDep) -> FileResponse:
    return image_response(gallery.images, image_id, cache_control=IMMUTABLE)


@api.get("/params/schema")
async def params_schema() -> dict[str, Any]:
    return Params.model_json_schema()


@websocket.websocket("/ws")
async def events(socket: WebSocket, gallery: GalleryDep) -> None:
    await gallery.hub.serve(socket)


@health.get("/live")
async def live() -> dict[str, str]:
    return {"status": "live"}


@health.get("/ready")
async def ready(gallery: GalleryDep) -> JSONResponse:
    """Ready to take paintings: the catalog answers. Studio's state is not part of it, because a
    painting made while Studio is away waits for it rather than failing."""
    try:
        gallery.catalog.count()
    except Exception as exc:  # any database failure means not ready; say which
        return JSONResponse({"status": "not ready", "reason": f"catalog: {type(exc).__name__}"}, status_code=503)
    return JSONResponse({"status": "ready"})


def _parse(params: Any, style_count: int) -> Params:
    if not isinstance(params, dict | str | None):
        params = json.dumps(params)  # a list or number: let the parser say what is wrong
    try:
        parsed = parse_params(params)
        parsed.blend_for(style_count)
    except ValueError as exc:
        raise BadRequest(f"params: {exc}") from None
    return parsed


def _created(gallery: GalleryState, params: Params, content_id: str, style_ids: list[str]) -> JSONResponse:
    record = gallery.catalog.create(params=params, content_image=content_id, style_images=style_ids)
    gallery.hub.publish({"type": "painting.created", "id": record.id, "painting": views.painting_json(record)})
    gallery.dispatcher.kick(record.id)
    return JSONResponse(
        views.painting_json(record, []), status_code=201, headers={"Location": f"/api/paintings/{record.id}"}
    )


__all__ = ["api", "health", "websocket"]
