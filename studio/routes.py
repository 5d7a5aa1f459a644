"""Studio's routes: the job API (v1) and the health checks.

    POST   /v1/jobs                multipart: content, style (one or more), params (JSON)  -> 202 job
    GET    /v1/jobs/{id}           state, iteration, last losses, preview/result image ids, error
    GET    /v1/jobs/{id}/events    Server-Sent Events; Last-Event-ID resumes
    DELETE /v1/jobs/{id}           cancel                                                  -> 202 job
    GET    /v1/images/{id}         the image bytes
    GET    /health/live            the process is up
    GET    /health/ready           a worker is up with its model loaded (503 and the reason otherwise)

Every /v1 call carries `Authorization: Bearer <token>` (compared in constant time) when a token is
configured. Each route takes the running Studio as `StudioDep`.
"""

from __future__ import annotations

import hmac
from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import FileResponse, JSONResponse, StreamingResponse
from starlette.datastructures import UploadFile

from httpapi.errors import BadRequest
from httpapi.forms import file_part
from httpapi.images import image_response
from studio.state import StudioDep


class Unauthorized(Exception):
    """The call lacks Studio's bearer token (401)."""


def require_token(request: Request, studio: StudioDep) -> None:
    token = studio.settings.token_value()
    if token is None:
        return
    scheme, _, given = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not hmac.compare_digest(given.strip().encode(), token.encode()):
        raise Unauthorized()


async def unauthorized(request: Request, exc: Exception) -> JSONResponse:
    return JSONResponse(
        {"detail": "a valid bearer token is needed"}, status_code=401, headers={"WWW-Authenticate": "Bearer"}
    )


v1 = APIRouter(prefix="/v1", dependencies=[Depends(require_token)])
health = APIRouter(prefix="/health")


@v1.post("/jobs", status_code=202)
async def create_job(request: Request, studio: StudioDep) -> JSONResponse:
    async with request.form(max_files=16, max_fields=16) as form:
        content = await file_part(form.getlist("content"), "content")
        styles = [await file_part([s], "style") for s in form.getlist("style")]
        if not styles:
            raise BadRequest("style: missing part (at least one style image is needed)")
        params = form.get("params")
        if isinstance(params, UploadFile):
            params = (await params.read()).decode("utf-8", errors="replace")
    record, _created = studio.jobs.create(
        content, styles, params, idempotency_key=request.headers.get("idempotency-key")
    )
    studio.supervisor.submit(record.id)
    return JSONResponse(studio.jobs.describe(record.id), status_code=202)


@v1.get("/jobs/{job_id}")
async def get_job(job_id: str, studio: StudioDep) -> dict[str, Any]:
    return studio.jobs.describe(job_id)


@v1.get("/jobs/{job_id}/events")
async def job_events(job_id: str, request: Request, studio: StudioDep) -> StreamingResponse:
    studio.jobs.catalog.get(job_id)  # 404 before the stream starts
    raw = request.headers.get("last-event-id", "").strip()
    try:
        after = int(raw) if raw else -1
    except ValueError:
        raise BadRequest("Last-Event-ID: must be a whole number") from None
    return StreamingResponse(
        studio.events.stream(job_id, after=after, keepalive_s=studio.settings.keepalive_s),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )


@v1.delete("/jobs/{job_id}", status_code=202)
async def cancel_job(job_id: str, studio: StudioDep) -> JSONResponse:
    studio.jobs.cancel(job_id)
    return JSONResponse(studio.jobs.describe(job_id), status_code=202)


@v1.get("/images/{image_id}")
async def get_image(image_id: str, studio: StudioDep) -> FileResponse:
    return image_response(studio.images, image_id, cache_control="private, max-age=31536000, immutable")


@health.get("/live")
async def live() -> dict[str, str]:
    return {"status": "live"}


@health.get("/ready")
async def ready(studio: StudioDep) -> JSONResponse:
    supervisor = studio.supervisor
    if supervisor.ready:
        return JSONResponse({"status": "ready"})
    return JSONResponse({"status": "not ready", "reason": supervisor.not_ready_reason}, status_code=503)


__all__ = ["Unauthorized", "health", "unauthorized", "v1"]
