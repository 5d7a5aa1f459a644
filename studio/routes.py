"""Studio's routes: the job API (v1) and the health checks.

    POST   /v1/jobs                multipart: content, style (one or more), params (JSON); to resume a
                                   gatys painting elsewhere, init (the image) + start_iteration -> 202 job
    GET    /v1/jobs/{id}           state, iteration, last losses, preview/result image ids, error
    GET    /v1/jobs/{id}/events    Server-Sent Events; Last-Event-ID resumes
    POST   /v1/jobs/{id}/cancel    stop it (it stays, cancelled)                           -> 202 job
    POST   /v1/jobs/{id}/weights   JSON {content_weight?, style_weight?, tv_weight?}: new loss weights
                                   from its next iteration on (409 once it ended)          -> 202 job
    DELETE /v1/jobs/{id}           stop it if it runs, delete it and its images            -> 204
    GET    /v1/images/{id}         the image bytes
    POST   /v1/trainings           multipart: params (TrainingParams JSON, its `kind` inside) and, per
                                   collection of the kind (photos and paintings, or images), ONE archive
                                   (zip or tar) or MANY image files -> 202 training
    GET    /v1/trainings           the newest trainings first (?limit=)
    GET    /v1/trainings/{id}      state, step of steps, last losses, seconds a step, checkpoint and
                                   sample image, the model (its name, whether it is served yet), counts
    GET    /v1/trainings/{id}/events  Server-Sent Events (progress, then done/failed/cancelled);
                                   Last-Event-ID resumes
    POST   /v1/trainings/{id}/cancel  stop it, keeping its checkpoint                      -> 202 training
    DELETE /v1/trainings/{id}      stop it if it runs, delete it and its folder (its model stays) -> 204
    POST   /v1/estimate            JSON {params, width, height, styles}: seconds (null until a worker has
                                   timed itself), peak memory, the budget, the largest size that fits
    GET    /v1/status              capacity and load: its workers (device, job, timing), workers_ready,
                                   running and queued, ready and reason, engines, models, the memory
                                   budget, largest_size and iteration_seconds_512 (for a dispatcher)
    GET    /v1/metrics             Prometheus metrics: jobs, queue, workers, restarts, faults, latency
    GET    /health/live            the process is up
    GET    /health/ready           storage takes writes and a worker is up with its model loaded (503 and
                                   the reason otherwise)

    GET    /v1/openapi.json        this API's OpenAPI document (behind the token, like all of /v1)

Every /v1 call carries `Authorization: Bearer <token>` (compared in constant time) when a token is
configured. Each route takes the running Studio as `StudioDep`. A job Studio cannot paint is refused
before anything is stored, each refusal `{"detail": str}` as the routes' `responses=` document.
"""

from __future__ import annotations

import asyncio
import hmac
import re
import struct
from typing import Any

from fastapi import APIRouter, Depends, Header, Query, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse
from starlette.datastructures import UploadFile

from httpapi.errors import BadRequest, refusals
from httpapi.forms import file_part, painting_form, read_form
from httpapi.images import IMAGE_RESPONSE, image_response
from painting.errors import NotFound
from painting.estimate import EstimateRequest
from painting.params import BUILTIN_STYLES, MAX_STYLES, LossWeights, Params, parse_params
from painting.training import KINDS, TrainingParams, collections_for
from studio.state import StudioDep

WHOLE_NUMBER = re.compile(r"[+-]?[0-9]{1,9}")
# One Server-Sent Event of a job's stream (keep-alive comments are not events).
SSE_EVENT: dict[str, Any] = {
    "type": "object",
    "required": ["id", "event", "data"],
    "properties": {
        "id": {"type": "string", "pattern": "^[0-9]+$", "description": "Send it back as Last-Event-ID to resume."},
        "event": {"enum": ["progress", "done", "failed", "cancelled"]},
        "data": {"type": "string", "contentMediaType": "application/json", "description": "The event, as JSON."},
    },
}
# One Server-Sent Event of a training's stream.
TRAINING_SSE_EVENT: dict[str, Any] = {
    **SSE_EVENT,
    "properties": {
        **SSE_EVENT["properties"],
        "id": {
            "type": "string",
            "pattern": "^[0-9]+$",
            "description": "The step (an ending: the last step + 1); send it back as Last-Event-ID to resume.",
        },
    },
}
TRAINING_COLLECTIONS = sorted({name for kind in KINDS for name in collections_for(kind)})
_IMAGES = {"type": "array", "items": {"type": "string", "format": "binary"}, "minItems": 1}
TRAINING_FORM: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "properties": {
                        "params": {
                            **TrainingParams.model_json_schema(),
                            "description": "The training's parameters as JSON, `kind` among them (cyclegan when "
                            "absent); defaults for the rest.",
                        },
                        "photos": {
                            **_IMAGES,
                            "description": "cyclegan: the photos, as ONE archive (zip, tar, tar.gz/bz2/xz) or "
                            "as the image files (PNG, JPEG, WEBP).",
                        },
                        "paintings": {**_IMAGES, "description": "cyclegan: the paintings, like photos."},
                        "images": {**_IMAGES, "description": "dcgan: the images to learn from, like photos."},
                    },
                },
                "encoding": {"params": {"contentType": "application/json"}},
            }
        },
    }
}
JOB_FORM = painting_form(
    Params.model_json_schema(),
    max_styles=MAX_STYLES,
    styles="One or more style images (at most STUDIO_MAX_STYLES, 8 by default).",
    extra={
        "init": {
            "type": "string",
            "format": "binary",
            "description": "Resume a gatys painting from this image (the latest preview of a run elsewhere): "
            "PNG, JPEG or WEBP, checked like the photo; only with start_iteration.",
        },
        "start_iteration": {
            "type": "integer",
            "minimum": 0,
            "description": "The iteration the init image shows: the job starts there (0 up to, not including, "
            "its iterations, coarse passes' included); only with init.",
        },
    },
)


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


v1 = APIRouter(prefix="/v1", dependencies=[Depends(require_token)], responses=refusals(401))
health = APIRouter(prefix="/health")


@v1.post("/jobs", status_code=202, responses=refusals(413, 415, 422), openapi_extra=JOB_FORM)
async def create_job(
    request: Request,
    studio: StudioDep,
    idempotency_key: str | None = Header(
        None, alias="Idempotency-Key", description="1 to 200 characters; a key used before returns that job."
    ),
) -> JSONResponse:
    """Check and store a job, then queue it. A job may resume a gatys painting from an image (Gallery
    moves a painting whose Studio is gone): `init`, the image, and `start_iteration`, the iteration it
    shows; the job then starts there. Either both or neither; refused (422, nothing stored) for another
    engine or an iteration outside [0, its iterations)."""
    max_styles = studio.settings.max_styles
    too_many = f"style: at most {max_styles} style images"
    async with read_form(request, max_files=max_styles + 2, max_fields=16, too_many_files=too_many) as form:
        contents = form.getlist("content")  # none only for a latent model's job: Jobs.create checks
        content = await file_part(contents, "content") if contents else None
        styles = [await file_part([s], "style") for s in form.getlist("style")]
        inits = form.getlist("init")
        init = await file_part(inits, "init") if inits else None
        start_iteration = _whole_number(form.getlist("start_iteration"), "start_iteration")
        params = form.get("params")
        if isinstance(params, UploadFile):
            params = (await params.read()).decode("utf-8", errors="replace")
    record, _created = studio.jobs.create(
        content, styles, params, idempotency_key=idempotency_key, init=init, start_iteration=start_iteration
    )
    studio.supervisor.submit(record.id)
    return JSONResponse(studio.jobs.describe(record.id), status_code=202)


def _whole_number(parts: list[UploadFile | str], name: str) -> int | None:
    """The optional form field `name` as an int (None when absent); BadRequest unless it is one
    field of decimal digits, signed or not."""
    if not parts:
        return None
    if len(parts) > 1:
        raise BadRequest(f"{name}: give exactly one")
    text = parts[0].strip() if isinstance(parts[0], str) else ""
    if not WHOLE_NUMBER.fullmatch(text):
        got = f", got {text[:20]!r}" if text else ""
        raise BadRequest(f"{name}: must be a whole number{got}")
    return int(text)


@v1.get("/jobs/{job_id}", responses=refusals(404, 422))
async def get_job(job_id: str, studio: StudioDep) -> dict[str, Any]:
    return studio.jobs.describe(job_id)


@v1.get(
    "/jobs/{job_id}/events",
    response_class=StreamingResponse,
    responses={
        200: {
            "description": "Server-Sent Events: progress, then done, failed or cancelled.",
            "content": {"text/event-stream": {"schema": SSE_EVENT}},
        },
        **refusals(404, 422),
    },
)
async def job_events(
    job_id: str,
    studio: StudioDep,
    last_event_id: str | None = Header(
        None, alias="Last-Event-ID", description="The id of the last event seen: the stream resumes after it."
    ),
) -> StreamingResponse:
    studio.jobs.catalog.get(job_id)  # 404 before the stream starts
    raw = (last_event_id or "").strip()
    try:
        after = int(raw) if raw else -1
    except ValueError:
        raise BadRequest("Last-Event-ID: must be a whole number") from None
    return StreamingResponse(
        studio.events.stream(job_id, after=after, keepalive_s=studio.settings.keepalive_s),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )


@v1.post("/jobs/{job_id}/cancel", status_code=202, responses=refusals(404, 422))
async def cancel_job(job_id: str, studio: StudioDep) -> JSONResponse:
    studio.jobs.cancel(job_id)
    return JSONResponse(studio.jobs.describe(job_id), status_code=202)


@v1.post("/jobs/{job_id}/weights", status_code=202, responses=refusals(404, 409, 422))
async def change_weights(job_id: str, weights: LossWeights, studio: StudioDep) -> JSONResponse:
    """New loss weights for a Gatys job: a queued job starts with them, a running one takes them at its
    next iteration. Its params keep them (a resume after a crash paints with them) and its
    `weight_changes` the history, each change with the iteration it took effect at once known."""
    studio.jobs.change_weights(job_id, weights.changes())
    return JSONResponse(studio.jobs.describe(job_id), status_code=202)


@v1.delete("/jobs/{job_id}", status_code=204, response_class=Response, responses=refusals(404, 422))
async def forget_job(job_id: str, studio: StudioDep) -> Response:
    """Gallery deleted the painting: Studio keeps nothing of it (the record, the photo, styles, result)."""
    studio.jobs.forget(job_id)
    return Response(status_code=204)


@v1.get("/images/{image_id}", response_class=StreamingResponse, responses={**IMAGE_RESPONSE, **refusals(404, 422)})
async def get_image(image_id: str, studio: StudioDep) -> StreamingResponse:
    return image_response(studio.images, image_id, cache_control="private, max-age=31536000, immutable")


@v1.post("/trainings", status_code=202, responses=refusals(413, 422), openapi_extra=TRAINING_FORM)
async def create_training(
    request: Request,
    studio: StudioDep,
    idempotency_key: str | None = Header(
        None, alias="Idempotency-Key", description="1 to 200 characters; a key used before returns that training."
    ),
) -> JSONResponse:
    """Check and store a training, then queue it: a CycleGAN (from `photos` and `paintings`) or a
    DCGAN (from `images`), trained by a worker into the models folder, where it is served as
    engine `model` under its name once done.

    Each collection is one archive or many image files; every image must pass the image rule, and a
    collection needs MIN_IMAGES of them (4 per cyclegan collection, 16 for a dcgan). Refused (422,
    nothing stored): bad params, no models folder (STUDIO_MODELS_DIR), a Studio whose workers have no
    GPU unless STUDIO_ALLOW_CPU_TRAINING is on (the refusal says what a step would take here), a model
    name in use, an unsafe or damaged archive, unreadable images or too few; 413: over the caps on
    files or bytes (STUDIO_MAX_TRAINING_FILES, STUDIO_MAX_TRAINING_BYTES a collection)."""
    settings = studio.settings
    too_many = f"at most {settings.max_training_files} files a collection"
    uploads: dict[str, list[tuple[str, bytes]]] = {}
    params: str | bytes | None = None
    max_files = 2 * settings.max_training_files + 1
    async with read_form(request, max_files=max_files, max_fields=8, too_many_files=too_many) as form:
        for name, value in form.multi_items():
            if name == "params":
                if params is not None:
                    raise BadRequest("params: give exactly one")
                params = await value.read() if isinstance(value, UploadFile) else value
            elif isinstance(value, UploadFile):
                files = uploads.setdefault(name, [])
                files.append((value.filename or f"{name} {len(files) + 1}", await value.read()))
            elif name in TRAINING_COLLECTIONS:
                raise BadRequest(f"{name}: must be file parts (an archive or images), not text")
    create = studio.trainings.create  # in a thread: unpacking and checking thousands of images takes a while
    record, _created = await asyncio.to_thread(create, params, uploads, idempotency_key=idempotency_key)
    if not record.finished:
        studio.supervisor.submit(record.id)
    return JSONResponse(studio.trainings.describe(record.id), status_code=202)


@v1.get("/trainings", responses=refusals(422))
async def list_trainings(
    studio: StudioDep, limit: int = Query(100, ge=1, le=500, description="How many, at most.")
) -> dict[str, Any]:
    """The trainings, newest first, each as GET /v1/trainings/{id} shows it."""
    return {"trainings": studio.trainings.newest(limit)}


@v1.get("/trainings/{training_id}", responses=refusals(404, 422))
async def get_training(training_id: str, studio: StudioDep) -> dict[str, Any]:
    """A training: `state`, `step` of `steps`, the last `losses` by network, `seconds_per_step` and
    `remaining_s`, `checkpoint_step` (where a resume starts), `sample_image` (the latest sample; the
    last one once done), `model` ({name, ready: whether the workers serve it}), `counts` (images per
    collection), `error`, `attempts` (runs; a worker's death adds one, the third fails it)."""
    return studio.trainings.describe(training_id)


@v1.get(
    "/trainings/{training_id}/events",
    response_class=StreamingResponse,
    responses={
        200: {
            "description": "Server-Sent Events: progress (step, steps, losses, seconds_per_step, checkpoint_step, "
            "sample_image), then done {model, sample_image}, failed {error} or cancelled.",
            "content": {"text/event-stream": {"schema": TRAINING_SSE_EVENT}},
        },
        **refusals(404, 422),
    },
)
async def training_events(
    training_id: str,
    studio: StudioDep,
    last_event_id: str | None = Header(
        None, alias="Last-Event-ID", description="The id of the last event seen: the stream resumes after it."
    ),
) -> StreamingResponse:
    studio.trainings.catalog.get_training(training_id)  # 404 before the stream starts
    raw = (last_event_id or "").strip()
    try:
        after = int(raw) if raw else -1
    except ValueError:
        raise BadRequest("Last-Event-ID: must be a whole number") from None
    return StreamingResponse(
        studio.trainings.events.stream(training_id, after=after, keepalive_s=studio.settings.keepalive_s),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )


@v1.post("/trainings/{training_id}/cancel", status_code=202, responses=refusals(404, 422))
async def cancel_training(training_id: str, studio: StudioDep) -> JSONResponse:
    """Stop a training: a queued one at once, a running one after its worker has saved a checkpoint
    (kept in its folder). It stays, cancelled."""
    studio.trainings.cancel(training_id)
    return JSONResponse(studio.trainings.describe(training_id), status_code=202)


@v1.delete("/trainings/{training_id}", status_code=204, response_class=Response, responses=refusals(404, 422))
async def forget_training(training_id: str, studio: StudioDep) -> Response:
    """Stop the training if it runs, then delete its record and its folder (images and checkpoints);
    its sample images go with the next collection. The model it made, if it finished, stays in the
    models folder and is still served: remove its files there to retire it."""
    record = studio.trainings.forget(training_id)
    await asyncio.to_thread(studio.trainings.remove_files, record)
    return Response(status_code=204)


@v1.get("/status")
async def status(studio: StudioDep) -> dict[str, Any]:
    """Capacity and load, for whoever sends this Studio work (Gallery picks the Studio of a pool that
    can paint a painting and start it soonest):

    - `workers`: each worker (ready, its device and backend, the memory it holds, its timing, the job
      it paints); `workers_ready`: how many are ready; `running`, `queued`: jobs painting and waiting;
      `ready`, `reason`: whether Studio takes work, and why not.
    - `engines`: each engine a worker has: "ready" when one has it ready, else why not ({} until a
      worker has said); `models`: the names of the generator models a job can use (null until then).
    - `memory_budget_bytes`: the most memory one painting may need; `largest_size`: the largest
      params.size of a default gatys painting of a 1600×1200 photo with one style that fits it (null:
      none); `iteration_seconds_512`: seconds of one gatys iteration of a painting 512 px tall and
      683 px wide (size 512 of a 4:3 landscape photo), by the slowest worker's timing (null until a
      worker has timed itself).
    """
    return {**studio.supervisor.status(), **studio.estimator.capacity()}


@v1.post("/estimate", responses=refusals(422))
async def estimate(body: EstimateRequest, studio: StudioDep) -> dict[str, Any]:
    """How long a painting would take here and how much memory it needs at its peak (the worker's own
    included), before it is sent: `seconds` is null, with a `reason`, until a worker has timed itself
    (seconds after it starts); `fits` says whether the memory budget takes it, `largest_size` the
    largest params.size that fits (null: none). Nothing is stored."""
    try:
        params = parse_params(body.params)
    except ValueError as exc:
        raise BadRequest(f"params: {exc}") from None
    try:
        return studio.estimator.describe(params, body.width, body.height, styles=body.styles)
    except ValueError as exc:
        raise BadRequest(f"content: {exc}") from None


@v1.get("/models")
async def models(studio: StudioDep) -> dict[str, Any]:
    """The generator models this Studio serves (engine `model`): every file in its models folder,
    each usable (`ok`) or with the `problem` that keeps it out; `known` is false until a worker has
    started and looked."""
    found = studio.supervisor.models()
    return {"known": found is not None, "models": found or []}


@v1.get("/styles")
async def builtin_styles(studio: StudioDep) -> dict[str, Any]:
    """The fast engine's built-in styles (params.builtin_styles): how many, and the strip of their
    thumbnails (`sheet`, a PNG `tile` wide each, left to right); `known` is false until a worker with
    the fast engine is ready."""
    sheet = studio.supervisor.builtin_sheet()
    if sheet is None:
        return {"known": False, "count": BUILTIN_STYLES, "tile": None, "sheet": None}
    width, height = struct.unpack(">II", sheet[16:24])  # the PNG's IHDR
    return {
        "known": True,
        "count": BUILTIN_STYLES,
        "tile": [width // BUILTIN_STYLES, height],
        "sheet": "/v1/styles/sheet.png",
    }


@v1.get("/styles/sheet.png", responses={**IMAGE_RESPONSE, **refusals(404)})
async def builtin_sheet(studio: StudioDep) -> Response:
    sheet = studio.supervisor.builtin_sheet()
    if sheet is None:
        raise NotFound("No worker with the fast engine is ready yet.")
    return Response(sheet, media_type="image/png", headers={"Cache-Control": "private, max-age=3600"})


@v1.get("/metrics", include_in_schema=False)
async def metrics(studio: StudioDep) -> Response:
    """Prometheus metrics (text format); behind the token like the rest of /v1 (a scraper sends it)."""
    return studio.metrics.response()


@v1.get("/openapi.json", include_in_schema=False)
async def openapi_document(request: Request) -> JSONResponse:
    """This API's OpenAPI document. Behind the token like the rest of /v1: Studio's only client is
    Gallery (and its operator), and an unauthorised caller learns nothing but the health checks."""
    return JSONResponse(request.app.openapi())


@health.get("/live")
async def live() -> dict[str, str]:
    return {"status": "live"}


@health.get("/ready", responses={503: {"description": "Not ready: {status, reason}, the reason for a person."}})
async def ready(studio: StudioDep) -> JSONResponse:
    reason = studio.readiness()
    if reason is not None:
        return JSONResponse({"status": "not ready", "reason": reason}, status_code=503)
    return JSONResponse({"status": "ready"})


__all__ = ["Unauthorized", "health", "unauthorized", "v1"]
