"""Gallery's routes: the browser API under /api, the WebSocket /ws and the health checks.

    POST   /api/paintings              multipart: content, style (one or more), params (JSON) -> 201
    GET    /api/paintings?limit=&offset=   newest first -> {items, total} (limit 1-500, offset 0-10**9)
    GET    /api/paintings/{id}         the painting with its loss curve (`progress`)
    POST   /api/paintings/{id}/cancel  -> the painting
    POST   /api/paintings/{id}/weights JSON {content_weight?, style_weight?, tv_weight?}: new loss weights
                                       while it is queued or paints -> 202 the painting (409 once it ended)
    POST   /api/paintings/{id}/remix   JSON {params} -> 201 a new painting with the same images
    DELETE /api/paintings/{id}         -> 204
    GET    /api/images/{id}            image bytes, cached for good (ids are content hashes)
    GET    /api/params/schema          the parameter JSON schema the form is built from
    POST   /api/estimate               JSON {params, width, height, styles}: Studio's estimate of its seconds
                                       and peak memory (`known` false, with a reason, while Studio is away)
    /api/trainings...                  training a model: see gallery.training_routes
    WS     /ws                         painting and training events (see gallery.hub)
    GET    /health/live, /health/ready
    GET    /metrics                    Prometheus metrics (with the operator token when one is set)

Each route takes the running Gallery as `GalleryDep`; errors become statuses in `httpapi.errors`.
A request Gallery cannot paint is refused here, before anything is stored: bad params, a photo whose
painting would be too narrow or too wide at the size asked (`painting.params.painting_shape`, on the
photo as shown, EXIF orientation applied), too many parts. Every refusal is `{"detail": str}`, and
each route's `responses=` says which ones it gives, so /openapi.json tells the truth about them.
The multipart body is read by hand (the caps on files and fields stay ours); `openapi_extra`
describes it.
"""

from __future__ import annotations

import json
from typing import Any

from fastapi import APIRouter, Query, Request, WebSocket
from fastapi.responses import JSONResponse, Response, StreamingResponse
from starlette.datastructures import UploadFile

from gallery import views
from gallery.errors import StudioRejected, StudioUnavailable
from gallery.owners import Visitor, VisitorDep
from gallery.state import GalleryDep, GalleryState
from httpapi.errors import BadRequest, Forbidden, refusals
from httpapi.forms import file_part, painting_form, read_form
from httpapi.images import IMAGE_RESPONSE, image_response
from painting.catalog import MAX_PAGE
from painting.errors import NotFound
from painting.estimate import EstimateRequest
from painting.images import check_image_id, upright_size
from painting.params import (
    BUILTIN_STYLES,
    ENGINE_FIELDS,
    MAX_STYLES,
    LossWeights,
    Params,
    check_inputs,
    limited_schema,
    model_kind,
    painting_shape,
    parse_params,
)
from painting.records import PaintingRecord
from painting.training_catalog import MAX_TRAININGS_PAGE

IMMUTABLE = "public, max-age=31536000, immutable"
MAX_OFFSET = 10**9  # far past any gallery; SQLite's integers end at 2**63 - 1

PAINTING_FORM = painting_form(
    Params.model_json_schema(),
    max_styles=MAX_STYLES,
    styles="One or more style images (at most GALLERY_MAX_STYLES, 8 by default).",
)
REMIX_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {
                "schema": {
                    "type": "object",
                    "properties": {"params": {**Params.model_json_schema(), "description": "The new parameters."}},
                }
            }
        },
    }
}

api = APIRouter(prefix="/api")
health = APIRouter(prefix="/health", include_in_schema=False)
websocket = APIRouter()
metrics_router = APIRouter(include_in_schema=False)


@api.post("/paintings", status_code=201, responses=refusals(413, 415, 422, 429), openapi_extra=PAINTING_FORM)
async def create_painting(request: Request, gallery: GalleryDep, visitor: VisitorDep) -> JSONResponse:
    max_styles = gallery.settings.max_styles
    too_many = f"style: at most {max_styles} style images"
    async with read_form(request, max_files=max_styles + 2, max_fields=8, too_many_files=too_many) as form:
        params = form.get("params")
        if isinstance(params, UploadFile):
            raise BadRequest("params: must be a text field with JSON, not a file")
        contents = form.getlist("content")  # none only for a latent generator model: checked below
        content = await file_part(contents, "content") if contents else None
        style_parts = form.getlist("style")
        if len(style_parts) > max_styles:
            raise BadRequest(too_many)
        styles = [await file_part([s], "style") for s in style_parts]
    parsed = _parse(gallery, params)
    try:
        kind = await _model_kind(gallery, parsed)
        check_inputs(parsed, content=content is not None, styles=len(styles), model_kind=kind)
    except ValueError as exc:
        raise BadRequest(str(exc)) from None
    if content is not None:
        _check_shape(upright_size(content), parsed.size)
    _admit(gallery, visitor, request)
    content_ref, style_refs = gallery.images.put_inputs(content, styles)
    content_id = content_ref.id if content_ref is not None else None
    return _created(gallery, visitor, request, parsed, content_id, [r.id for r in style_refs])


@api.get("/models")
async def list_models(gallery: GalleryDep) -> dict[str, Any]:
    """The generator models Studio serves (engine `model`), each usable (`ok`) or with its `problem`.
    `known` is false, with a `reason`, while Studio is away or still starting."""
    try:
        found = await gallery.pool.front().models()
    except (StudioUnavailable, StudioRejected) as exc:
        return {"known": False, "models": [], "reason": str(exc)}
    return {"known": bool(found.get("known")), "models": list(found.get("models") or [])}


@api.post("/estimate", responses=refusals(422))
async def estimate(body: EstimateRequest, gallery: GalleryDep) -> dict[str, Any]:
    """How long Studio would take to paint this and how much memory it needs (`painting.estimate`),
    before Paint: {known, seconds (null with a reason until Studio has timed its worker), peak_bytes,
    budget_bytes, fits, largest_size, passes}. Params this Gallery refuses are refused here too (422);
    `known` is false, with a reason, while Studio is away. Nothing is stored."""
    parsed = _parse(gallery, body.params)
    if body.width is not None and body.height is not None:
        _check_shape((body.width, body.height), parsed.size)
    forwarded = {**body.model_dump(), "params": parsed.model_dump(mode="json")}
    try:
        found = await gallery.pool.front().estimate(forwarded)
    except (StudioUnavailable, StudioRejected) as exc:  # away, or a Studio without estimates
        return {"known": False, "reason": str(exc)}
    return {**found, "known": True}


@api.get("/paintings", responses=refusals(422))
async def list_paintings(
    gallery: GalleryDep,
    visitor: VisitorDep,
    limit: int = Query(20, ge=1, le=MAX_PAGE, description="How many paintings, newest first."),
    offset: int = Query(0, ge=0, le=MAX_OFFSET, description="How many of the newest to skip."),
) -> dict[str, Any]:
    catalog = gallery.catalog
    if visitor.private and not visitor.operator and visitor.owner is None:
        return {"items": [], "total": 0, "limit": limit, "offset": offset}  # nothing of its own yet
    owner = visitor.owner if visitor.private and not visitor.operator else None
    records = catalog.newest(limit=limit, offset=offset, owner=owner)
    return {
        "items": [views.painting_json(r, mine=visitor.may_change(r)) for r in records],
        "total": catalog.count(owner=owner),
        "limit": limit,
        "offset": offset,
    }


@api.get("/paintings/{painting_id}", responses=refusals(404, 422))
async def get_painting(painting_id: str, gallery: GalleryDep, visitor: VisitorDep) -> dict[str, Any]:
    record = _visible(gallery, visitor, painting_id)
    return views.painting_json(record, gallery.catalog.progress(painting_id), mine=visitor.may_change(record))


@api.post("/paintings/{painting_id}/cancel", responses=refusals(403, 404, 422))
async def cancel_painting(painting_id: str, gallery: GalleryDep, visitor: VisitorDep) -> dict[str, Any]:
    _changeable(gallery, visitor, painting_id, "cancel")
    gallery.dispatcher.cancel(painting_id)
    record = gallery.catalog.get(painting_id)
    return views.painting_json(record, gallery.catalog.progress(painting_id), mine=True)


@api.post("/paintings/{painting_id}/weights", status_code=202, responses=refusals(403, 404, 409, 422))
async def change_weights(
    painting_id: str, weights: LossWeights, gallery: GalleryDep, visitor: VisitorDep
) -> JSONResponse:
    """New loss weights for a Gatys painting that is queued or paints: it paints with them from its
    next iteration on, a resume too. Its `weight_changes` keep the history (each change's `iteration`
    null until the worker has painted with it). 409 once the painting has ended: nothing changes."""
    _changeable(gallery, visitor, painting_id, "change")
    try:
        record = gallery.dispatcher.change_weights(painting_id, weights.changes())
    except NotFound:
        raise
    except ValueError as exc:
        raise BadRequest(str(exc)) from None
    body = views.painting_json(record, gallery.catalog.progress(painting_id), mine=True)
    return JSONResponse(body, status_code=202)


@api.post(
    "/paintings/{painting_id}/remix",
    status_code=201,
    responses=refusals(403, 404, 413, 415, 422, 429),
    openapi_extra=REMIX_BODY,
)
async def remix_painting(painting_id: str, request: Request, gallery: GalleryDep, visitor: VisitorDep) -> JSONResponse:
    original = _changeable(gallery, visitor, painting_id, "remix")
    try:
        body = await request.json()
    except (ValueError, RecursionError):  # RecursionError: nested deeper than Python's json decoder goes
        raise BadRequest('body: must be JSON like {"params": {...}}') from None
    if not isinstance(body, dict):
        raise BadRequest('body: must be a JSON object like {"params": {...}}')
    parsed = _parse(gallery, body.get("params"))
    try:  # the remix paints the original's images: they must be what the new parameters take
        kind = await _model_kind(gallery, parsed)
        check_inputs(parsed, content=original.content_image is not None, styles=len(original.styles), model_kind=kind)
    except ValueError as exc:
        raise BadRequest(f"{exc} (a remix paints the original's images: make a new painting for others)") from None
    if original.content_image is not None:
        _check_shape(gallery.images.ref(original.content_image).upright, parsed.size)
    _admit(gallery, visitor, request)
    return _created(gallery, visitor, request, parsed, original.content_image, list(original.style_images))


@api.delete("/paintings/{painting_id}", status_code=204, responses=refusals(403, 404, 422))
async def delete_painting(painting_id: str, gallery: GalleryDep, visitor: VisitorDep) -> Response:
    _changeable(gallery, visitor, painting_id, "delete")
    gallery.dispatcher.delete(painting_id)
    return Response(status_code=204)


@api.get("/images/{image_id}", response_class=StreamingResponse, responses={**IMAGE_RESPONSE, **refusals(404, 422)})
async def get_image(image_id: str, gallery: GalleryDep, visitor: VisitorDep) -> StreamingResponse:
    if visitor.private and not visitor.operator:
        check_image_id(image_id)
        if visitor.owner is None or not _owner_has_image(gallery, visitor.owner, image_id):
            raise NotFound("No image with that id.")
    # A private gallery's images are the browser's own: no shared cache may keep them.
    cache = IMMUTABLE.replace("public", "private") if visitor.private else IMMUTABLE
    return image_response(gallery.images, image_id, cache_control=cache)


@api.get("/params/schema")
async def params_schema(gallery: GalleryDep) -> dict[str, Any]:
    """The parameters' schema with this Gallery's own caps (size, iterations): the form never offers more."""
    return limited_schema(max_size=gallery.settings.max_size, max_iterations=gallery.settings.max_iterations)


@websocket.websocket("/ws")
async def events(socket: WebSocket, gallery: GalleryDep, visitor: VisitorDep) -> None:
    if visitor.private and not visitor.operator:
        await gallery.hub.serve(socket, lambda owner: owner is not None and owner == visitor.owner)
    else:
        await gallery.hub.serve(socket)


@metrics_router.get("/metrics")
async def metrics(gallery: GalleryDep, visitor: VisitorDep) -> Response:
    """Prometheus metrics (text format). With an operator token set, only for a scraper that sends it."""
    if gallery.settings.operator_token_value() is not None and not visitor.operator:
        raise Forbidden("the metrics need the operator token (Authorization: Bearer ...)")
    return gallery.metrics.response()


@health.get("/live")
async def live() -> dict[str, str]:
    return {"status": "live"}


@health.get("/ready")
async def ready(gallery: GalleryDep) -> JSONResponse:
    """Ready to take paintings: its catalog and image store take writes (see GalleryState.readiness)."""
    reason = gallery.readiness()
    if reason is not None:
        return JSONResponse({"status": "not ready", "reason": reason}, status_code=503)
    return JSONResponse({"status": "ready"})


@api.get("/styles")
async def list_builtin_styles(gallery: GalleryDep) -> dict[str, Any]:
    """The fast engine's ready-made styles (params.builtin_styles: one weight each): how many, and a
    strip of their thumbnails at `sheet` (`tile` = [width, height] each, left to right). `known` is
    false, with a `reason`, while Studio is away or has no fast engine ready."""
    try:
        described, sheet = await gallery.pool.front().builtin_styles()
    except (StudioUnavailable, StudioRejected) as exc:
        return {"known": False, "count": BUILTIN_STYLES, "tile": None, "sheet": None, "reason": str(exc)}
    if sheet is None:
        return {**described, "sheet": None, "reason": "Studio has no fast engine ready yet"}
    return {**described, "sheet": "/api/styles/sheet.png"}


@api.get("/styles/sheet.png", responses={**IMAGE_RESPONSE, **refusals(404)})
async def builtin_styles_sheet(gallery: GalleryDep) -> Response:
    try:
        _, sheet = await gallery.pool.front().builtin_styles()
    except (StudioUnavailable, StudioRejected):
        sheet = None
    if sheet is None:
        raise NotFound("The built-in styles are not known yet (Studio is away or starting).")
    return Response(sheet, media_type="image/png", headers={"Cache-Control": "public, max-age=3600"})


def _parse(gallery: GalleryState, params: Any) -> Params:
    """The painting's parameters, checked against this Gallery's caps; BadRequest naming the field
    otherwise. (Whether they fit the images is `check_inputs`'.)"""
    if not isinstance(params, dict | str | None):
        params = json.dumps(params)  # a list or number: let the parser say what is wrong
    try:
        parsed = parse_params(params)
    except ValueError as exc:
        raise BadRequest(f"params: {exc}") from None
    settings = gallery.settings
    # A value left out takes its default, lowered to this Gallery's cap; one asked for is checked.
    lowered = {
        name: cap
        for name, cap in (("size", settings.max_size), ("iterations", settings.max_iterations))
        if name not in parsed.model_fields_set and getattr(parsed, name) > cap and name in ENGINE_FIELDS[parsed.engine]
    }
    parsed = parsed.model_copy(update=lowered) if lowered else parsed
    if parsed.size > settings.max_size:
        raise BadRequest(f"params: size: this Gallery paints at most {settings.max_size} px high (asked {parsed.size})")
    if parsed.steps > settings.max_iterations:
        raise BadRequest(
            f"params: iterations: this Gallery runs at most {settings.max_iterations} (asked {parsed.iterations})"
        )
    return parsed


async def _model_kind(gallery: GalleryState, params: Params) -> str | None:
    """The kind of the model a painting asks for, from Studio's list (`painting.params.model_kind`);
    ValueError for one Studio lacks or cannot use. None while Studio cannot say (away, starting): the
    painting is taken, and Studio checks it when it arrives."""
    if params.engine != "model":
        return None
    try:
        found = await gallery.pool.front().models()
    except (StudioUnavailable, StudioRejected):
        return None
    models = [m for m in found.get("models") or [] if isinstance(m, dict)] if found.get("known") else None
    return model_kind(params, models)


def _owner_has_image(gallery: GalleryState, owner: str, image_id: str) -> bool:
    """Whether one of `owner`'s paintings, or the latest sample of one of its trainings, is this image."""
    if gallery.catalog.owner_has_image(owner, image_id):
        return True
    return any(
        r.owner == owner and r.sample_image == image_id
        for r in gallery.catalog.newest_trainings(limit=MAX_TRAININGS_PAGE)
    )


def _visible(gallery: GalleryState, visitor: Visitor, painting_id: str) -> PaintingRecord:
    """The painting, if this visitor may see it; NotFound otherwise (a private one is not there for others)."""
    record = gallery.catalog.get(painting_id)
    if not visitor.may_see(record):
        raise NotFound("No painting with that id.")
    return record


def _changeable(gallery: GalleryState, visitor: Visitor, painting_id: str, action: str) -> PaintingRecord:
    """The painting, if this visitor may `action` it; else Forbidden (NotFound where it may not even see it)."""
    record = _visible(gallery, visitor, painting_id)
    if not visitor.may_change(record):
        raise Forbidden(f"Only the browser that made this painting can {action} it.")
    return record


def _admit(gallery: GalleryState, visitor: Visitor, request: Request) -> None:
    """The caps on how much one browser, one address and everyone may have painted at once (429)."""
    if not visitor.operator:
        gallery.limits.admit(visitor.owner, request.client.host if request.client else None)


def _check_shape(upright: tuple[int, int] | None, size: int) -> None:
    """BadRequest (422) when the photo, `upright` (width, height) as shown, cannot be painted `size` px tall.

    None (a header that cannot be read) passes: storing the image then refuses it and says why.
    """
    if upright is None:
        return
    try:
        painting_shape(*upright, size)
    except ValueError as exc:
        raise BadRequest(f"content: {exc}") from None


def _created(
    gallery: GalleryState,
    visitor: Visitor,
    request: Request,
    params: Params,
    content_id: str | None,
    style_ids: list[str],
) -> JSONResponse:
    owner = visitor.claim()
    record = gallery.catalog.create(params=params, content_image=content_id, style_images=style_ids, owner=owner)
    event = {"type": "painting.created", "id": record.id, "painting": views.painting_json(record)}
    gallery.dispatcher.publish(event, record.owner)  # to every Gallery process's pages
    gallery.dispatcher.kick(record.id)
    response = JSONResponse(
        views.painting_json(record, [], mine=True), status_code=201, headers={"Location": f"/api/paintings/{record.id}"}
    )
    visitor.remember(response, secure=request.url.scheme == "https")
    return response


__all__ = ["api", "health", "metrics_router", "websocket"]
