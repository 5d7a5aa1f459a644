"""Gallery's HTTP API for the page, the WebSocket `/ws`, and the page itself at `/`.

    POST   /api/paintings              multipart: content, style (one or more), params (JSON) -> 201
    GET    /api/paintings?limit=&offset=   newest first -> {items, total}
    GET    /api/paintings/{id}         the painting with its loss curve (`progress`)
    POST   /api/paintings/{id}/cancel  -> the painting
    POST   /api/paintings/{id}/remix   JSON {params} -> 201 a new painting with the same images
    DELETE /api/paintings/{id}         -> 204
    GET    /api/images/{id}            image bytes, cached for good (ids are content hashes)
    GET    /api/params/schema          the parameter JSON schema the form is built from
    WS     /ws                         painting events (see gallery.hub)

The lifespan opens the store and catalog and starts the dispatcher. Errors are mapped to statuses
in one place, `_ERRORS`.
"""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
from fastapi import APIRouter, FastAPI, Query, Request, WebSocket
from fastapi.responses import FileResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.datastructures import UploadFile
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from gallery import views
from gallery.dispatcher import Dispatcher
from gallery.errors import BadRequest, BodyTooLarge
from gallery.hub import Hub
from gallery.settings import GallerySettings
from gallery.studio_client import StudioClient
from painting.catalog import MAX_PAGE, Catalog, Status
from painting.errors import ImageRejected, ImageTooLarge, InvalidImage, NotFound
from painting.images import ImageStore
from painting.params import Params, parse_params

log = logging.getLogger("gallery.app")

_ERRORS: list[tuple[type[Exception], int]] = [
    (NotFound, 404),
    (ImageTooLarge, 413),
    (BodyTooLarge, 413),
    (InvalidImage, 415),
    (BadRequest, 422),
]
IMMUTABLE = "public, max-age=31536000, immutable"


def create_app(
    settings: GallerySettings | None = None, *, studio_transport: httpx.AsyncBaseTransport | None = None
) -> FastAPI:
    """The Gallery app. `studio_transport` replaces the network under the Studio client (tests)."""
    settings = GallerySettings() if settings is None else settings
    hub = Hub(settings.allowed_origins)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        url = None if settings.database_url is None else settings.database_url.get_secret_value()
        catalog = Catalog.open(url, settings.data_dir, scope="gallery")
        images = ImageStore(
            settings.data_dir / "images", max_bytes=settings.max_image_bytes, max_pixels=settings.max_image_pixels
        )
        studio = StudioClient(
            settings.studio_url,
            token=settings.studio_token_value(),
            transport=studio_transport,
            connect_timeout_s=settings.studio_connect_timeout_s,
            timeout_s=settings.studio_timeout_s,
            stream_timeout_s=settings.studio_stream_timeout_s,
        )
        dispatcher = Dispatcher(
            catalog,
            images,
            studio,
            hub.publish,
            retry_initial_s=settings.retry_initial_s,
            retry_max_s=settings.retry_max_s,
        )
        app.state.catalog, app.state.images, app.state.dispatcher = catalog, images, dispatcher
        dispatcher.start()
        try:
            yield
        finally:
            hub.close_all()
            await dispatcher.stop()
            await studio.aclose()
            catalog.close()

    app = FastAPI(title="Deep Painting Gallery", version="1", lifespan=lifespan, docs_url="/docs")
    app.add_middleware(_BodyLimit, max_bytes=settings.max_body_bytes)
    app.state.hub = hub

    def error_response(status: int):
        async def handler(request: Request, exc: Exception) -> JSONResponse:
            return JSONResponse({"detail": str(exc)}, status_code=status)

        return handler

    for exc_class, status in _ERRORS:
        app.add_exception_handler(exc_class, error_response(status))

    api = APIRouter(prefix="/api")

    @api.post("/paintings", status_code=201)
    async def create_painting(request: Request) -> JSONResponse:
        async with request.form(max_files=settings.max_styles + 2, max_fields=8) as form:
            params = _params(form.get("params"))
            if isinstance(params, UploadFile):  # pragma: no cover - handled in _params
                raise BadRequest("params: must be JSON text")
            content = await _file_part(form.getlist("content"), "content")
            style_parts = form.getlist("style")
            if not style_parts:
                raise BadRequest("style: missing part (at least one style image is needed)")
            if len(style_parts) > settings.max_styles:
                raise BadRequest(f"style: at most {settings.max_styles} style images")
            styles = [await _file_part([s], "style") for s in style_parts]
        parsed = await _parse(params, len(styles))
        images: ImageStore = request.app.state.images
        for what, data in [("content", content), *(("style", s) for s in styles)]:
            try:
                images.inspect(data)
            except ImageRejected as exc:
                raise type(exc)(f"{what}: {exc}") from None
        content_id = images.put(content).id
        style_ids = [images.put(s).id for s in styles]
        return _created(request, parsed, content_id, style_ids)

    @api.get("/paintings")
    async def list_paintings(
        request: Request, limit: int = Query(20, ge=1, le=MAX_PAGE), offset: int = Query(0, ge=0)
    ) -> dict[str, Any]:
        catalog: Catalog = request.app.state.catalog
        return {
            "items": [views.painting_json(r) for r in catalog.newest(limit=limit, offset=offset)],
            "total": catalog.count(),
            "limit": limit,
            "offset": offset,
        }

    @api.get("/paintings/{painting_id}")
    async def get_painting(painting_id: str, request: Request) -> dict[str, Any]:
        catalog: Catalog = request.app.state.catalog
        record = catalog.get(painting_id)
        return views.painting_json(record, catalog.progress(painting_id))

    @api.post("/paintings/{painting_id}/cancel")
    async def cancel_painting(painting_id: str, request: Request) -> dict[str, Any]:
        catalog: Catalog = request.app.state.catalog
        if catalog.transition(painting_id, Status.CANCELLED):
            record = catalog.get(painting_id)
            request.app.state.dispatcher.forward_cancel(record.remote_id)
            hub.publish(views.event("cancelled", painting_id))
        return views.painting_json(catalog.get(painting_id), catalog.progress(painting_id))

    @api.post("/paintings/{painting_id}/remix", status_code=201)
    async def remix_painting(painting_id: str, request: Request) -> JSONResponse:
        catalog: Catalog = request.app.state.catalog
        original = catalog.get(painting_id)
        try:
            body = await request.json()
        except ValueError:
            raise BadRequest('body: must be JSON like {"params": {...}}') from None
        if not isinstance(body, dict):
            raise BadRequest('body: must be a JSON object like {"params": {...}}')
        parsed = await _parse(body.get("params"), len(original.styles))
        return _created(request, parsed, original.content_image, list(original.style_images))

    @api.delete("/paintings/{painting_id}", status_code=204)
    async def delete_painting(painting_id: str, request: Request) -> Response:
        catalog: Catalog = request.app.state.catalog
        record = catalog.get(painting_id)
        catalog.delete(painting_id)
        if not record.finished:
            request.app.state.dispatcher.forward_cancel(record.remote_id)
        hub.publish(views.event("deleted", painting_id))
        return Response(status_code=204)

    @api.get("/images/{image_id}")
    async def get_image(image_id: str, request: Request) -> FileResponse:
        images: ImageStore = request.app.state.images
        ref = images.ref(image_id)
        return FileResponse(
            images.path(image_id),
            media_type=ref.media_type,
            headers={"Cache-Control": IMMUTABLE, "X-Content-Type-Options": "nosniff"},
        )

    @api.get("/params/schema")
    async def params_schema() -> dict[str, Any]:
        return Params.model_json_schema()

    app.include_router(api)

    @app.websocket("/ws")
    async def events(websocket: WebSocket) -> None:
        await hub.serve(websocket)

    @app.get("/health/live", include_in_schema=False)
    async def live() -> dict[str, str]:
        return {"status": "live"}

    @app.get("/health/ready", include_in_schema=False)
    async def ready(request: Request) -> JSONResponse:
        """Ready to take paintings: the catalog answers. Studio's state is not part of it, because a
        painting made while Studio is away waits for it rather than failing."""
        try:
            request.app.state.catalog.count()
        except Exception as exc:  # any database failure means not ready; say which
            return JSONResponse({"status": "not ready", "reason": f"catalog: {type(exc).__name__}"}, status_code=503)
        return JSONResponse({"status": "ready"})

    if settings.frontend_dir.is_dir():
        app.mount("/", StaticFiles(directory=settings.frontend_dir, html=True), name="frontend")
    else:
        log.warning(
            "no page to serve: %s is not a folder (set GALLERY_FRONTEND_DIR); the API works", settings.frontend_dir
        )

    def _created(request: Request, params: Params, content_id: str, style_ids: list[str]) -> JSONResponse:
        catalog: Catalog = request.app.state.catalog
        record = catalog.create(params=params, content_image=content_id, style_images=style_ids)
        body = views.painting_json(record, [])
        hub.publish({"type": "painting.created", "id": record.id, "painting": views.painting_json(record)})
        request.app.state.dispatcher.kick(record.id)
        return JSONResponse(body, status_code=201, headers={"Location": f"/api/paintings/{record.id}"})

    return app


def _params(value: Any) -> Any:
    if isinstance(value, UploadFile):
        raise BadRequest("params: must be a text field with JSON, not a file")
    return value


async def _parse(params: Any, style_count: int) -> Params:
    if not isinstance(params, dict | str | None):
        params = json.dumps(params)  # a list or number: let the parser say what is wrong
    try:
        parsed = parse_params(params)
        parsed.blend_for(style_count)
    except ValueError as exc:
        raise BadRequest(f"params: {exc}") from None
    return parsed


async def _file_part(parts: list, name: str) -> bytes:
    if not parts:
        raise BadRequest(f"{name}: missing part")
    if len(parts) > 1:
        raise BadRequest(f"{name}: give exactly one")
    part = parts[0]
    if not isinstance(part, UploadFile):
        raise BadRequest(f"{name}: must be a file part")
    return await part.read()


class _BodyLimit:
    """413 for a body over the cap: from Content-Length before reading any of it, else while it streams."""

    def __init__(self, app: ASGIApp, *, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        length = dict(scope["headers"]).get(b"content-length")
        if length is not None and length.isdigit() and int(length) > self.max_bytes:
            response = JSONResponse(
                {"detail": f"the request body is over {self.max_bytes} bytes"},
                status_code=413,
                headers={"Connection": "close"},
            )
            await response(scope, receive, send)
            return
        seen = 0

        async def limited() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_bytes:
                    raise BodyTooLarge(f"the request body is over {self.max_bytes} bytes")
            return message

        await self.app(scope, limited, send)


__all__ = ["create_app"]
