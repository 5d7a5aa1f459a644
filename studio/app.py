"""Studio's HTTP API (v1) and health checks; the lifespan starts and stops the supervisor.

    POST   /v1/jobs                multipart: content, style (one or more), params (JSON)  -> 202 job
    GET    /v1/jobs/{id}           state, iteration, last losses, preview/result image ids, error
    GET    /v1/jobs/{id}/events    Server-Sent Events; Last-Event-ID resumes
    DELETE /v1/jobs/{id}           cancel                                                  -> 202 job
    GET    /v1/images/{id}         the image bytes
    GET    /health/live            the process is up
    GET    /health/ready           a worker is up with its model loaded (503 and the reason otherwise)

Every /v1 call carries `Authorization: Bearer <token>` (compared in constant time) when a token is
configured. Errors are mapped to statuses in one place, `_ERRORS`.
"""

from __future__ import annotations

import hmac
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.responses import FileResponse, JSONResponse, StreamingResponse
from starlette.datastructures import UploadFile
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from painting.catalog import Catalog
from painting.errors import ImageTooLarge, InvalidImage, NotFound
from painting.images import ImageStore
from studio.errors import BadRequest, BodyTooLarge
from studio.jobs import Jobs
from studio.settings import StudioSettings
from studio.supervisor import Supervisor

log = logging.getLogger("studio.app")

_ERRORS: list[tuple[type[Exception], int]] = [
    (NotFound, 404),
    (ImageTooLarge, 413),
    (BodyTooLarge, 413),
    (InvalidImage, 415),
    (BadRequest, 422),
]


class _Unauthorized(Exception):
    pass


def create_app(settings: StudioSettings | None = None) -> FastAPI:
    """The Studio app. Its lifespan opens the store, re-queues unfinished jobs and starts the workers."""
    settings = StudioSettings() if settings is None else settings

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        url = None if settings.database_url is None else settings.database_url.get_secret_value()
        catalog = Catalog.open(url, settings.data_dir, scope="studio")
        images = ImageStore(
            settings.data_dir / "images", max_bytes=settings.max_image_bytes, max_pixels=settings.max_image_pixels
        )
        jobs = Jobs(catalog, images, max_styles=settings.max_styles, max_size=settings.max_size)
        supervisor = Supervisor(
            settings.worker_command,
            handler=jobs,
            workers=settings.workers,
            max_restarts=settings.max_restarts,
            restart_window_s=settings.restart_window_s,
            ready_timeout_s=settings.ready_timeout_s,
            ping_interval_s=settings.ping_interval_s,
            ping_timeout_s=settings.ping_timeout_s,
            shutdown_timeout_s=settings.shutdown_timeout_s,
        )
        jobs.cancel_running = supervisor.cancel
        app.state.jobs, app.state.supervisor = jobs, supervisor
        for job_id in jobs.requeue_unfinished():
            supervisor.submit(job_id)
        await supervisor.start()
        try:
            yield
        finally:
            await supervisor.stop()
            catalog.close()

    app = FastAPI(
        title="Deep Painting Studio", version="1", lifespan=lifespan, docs_url=None, redoc_url=None, openapi_url=None
    )
    app.add_middleware(_BodyLimit, max_bytes=settings.max_body_bytes)
    token = settings.token_value()

    def error_response(status: int):
        async def handler(request: Request, exc: Exception) -> JSONResponse:
            return JSONResponse({"detail": str(exc)}, status_code=status)

        return handler

    for exc_class, status in _ERRORS:
        app.add_exception_handler(exc_class, error_response(status))

    async def unauthorized(request: Request, exc: Exception) -> JSONResponse:
        return JSONResponse(
            {"detail": "a valid bearer token is needed"}, status_code=401, headers={"WWW-Authenticate": "Bearer"}
        )

    app.add_exception_handler(_Unauthorized, unauthorized)

    def require_token(request: Request) -> None:
        if token is None:
            return
        scheme, _, given = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(given.strip().encode(), token.encode()):
            raise _Unauthorized()

    v1 = APIRouter(prefix="/v1", dependencies=[Depends(require_token)])

    @v1.post("/jobs", status_code=202)
    async def create_job(request: Request) -> JSONResponse:
        jobs: Jobs = request.app.state.jobs
        async with request.form(max_files=16, max_fields=16) as form:
            content = await _file_part(form.getlist("content"), "content", single=True)
            styles = [await _file_part([s], "style", single=True) for s in form.getlist("style")]
            if not styles:
                raise BadRequest("style: missing part (at least one style image is needed)")
            params = form.get("params")
            if isinstance(params, UploadFile):
                params = (await params.read()).decode("utf-8", errors="replace")
        record, _created = jobs.create(
            content[0], [s[0] for s in styles], params, idempotency_key=request.headers.get("idempotency-key")
        )
        supervisor: Supervisor = request.app.state.supervisor
        supervisor.submit(record.id)
        return JSONResponse(jobs.describe(record.id), status_code=202)

    @v1.get("/jobs/{job_id}")
    async def get_job(job_id: str, request: Request) -> JSONResponse:
        return JSONResponse(request.app.state.jobs.describe(job_id))

    @v1.get("/jobs/{job_id}/events")
    async def job_events(job_id: str, request: Request) -> StreamingResponse:
        jobs: Jobs = request.app.state.jobs
        jobs.catalog.get(job_id)  # 404 before the stream starts
        raw = request.headers.get("last-event-id", "").strip()
        try:
            after = int(raw) if raw else -1
        except ValueError:
            raise BadRequest("Last-Event-ID: must be a whole number") from None
        return StreamingResponse(
            jobs.events(job_id, after=after, keepalive_s=settings.keepalive_s),
            media_type="text/event-stream",
            headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
        )

    @v1.delete("/jobs/{job_id}", status_code=202)
    async def cancel_job(job_id: str, request: Request) -> JSONResponse:
        jobs: Jobs = request.app.state.jobs
        jobs.cancel(job_id)
        return JSONResponse(jobs.describe(job_id), status_code=202)

    @v1.get("/images/{image_id}")
    async def get_image(image_id: str, request: Request) -> FileResponse:
        images: ImageStore = request.app.state.jobs.images
        ref = images.ref(image_id)
        return FileResponse(
            images.path(image_id),
            media_type=ref.media_type,
            headers={"Cache-Control": "private, max-age=31536000, immutable"},
        )

    app.include_router(v1)

    @app.get("/health/live")
    async def live() -> dict[str, str]:
        return {"status": "live"}

    @app.get("/health/ready")
    async def ready(request: Request) -> JSONResponse:
        supervisor: Supervisor = request.app.state.supervisor
        if supervisor.ready:
            return JSONResponse({"status": "ready"})
        return JSONResponse({"status": "not ready", "reason": supervisor.not_ready_reason}, status_code=503)

    return app


async def _file_part(parts: list, name: str, *, single: bool) -> list[bytes]:
    if not parts:
        raise BadRequest(f"{name}: missing part")
    if single and len(parts) > 1:
        raise BadRequest(f"{name}: give exactly one")
    out = []
    for part in parts:
        if not isinstance(part, UploadFile):
            raise BadRequest(f"{name}: must be a file part")
        out.append(await part.read())
    return out


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
