"""Gallery's training routes, under /api beside the paintings' (gallery.routes):

    POST   /api/trainings              multipart: params (JSON, with `kind`) and the kind's collections,
                                       each ONE archive (zip, tar, tar.gz/bz2/xz) or MANY images:
                                       `photos` and `paintings` (cyclegan) or `images` (dcgan) -> 201
    GET    /api/trainings?limit=       newest first -> {items} (in a private gallery: the visitor's)
    GET    /api/trainings/{id}         the training with its loss curves (`progress`)
    POST   /api/trainings/{id}/cancel  -> the training (it keeps its last checkpoint at Studio)
    DELETE /api/trainings/{id}         -> 204; a model a finished training made stays on Studio
    GET    /api/training-schema        the TrainingParams JSON schema with Gallery's caps, for the form

What Gallery can check itself is checked here, before anything is stored, so the page gets the
refusal without a round trip to Studio: the params (Gallery's caps on steps and image size too), and
every collection (`gallery.training_sets.check_collections`: archives unpacked safely, every image
read, too few or unreadable ones counted: 422; over the file or byte caps: 413). Then the images are
kept on disk until Studio has them, the training is stored `queued` for the browser that sent it
(the same owner cookie as its paintings, gallery.owners) and the follower (gallery.trainings) takes
it to Studio, which may still refuse it (a CPU Studio, by default): the training then fails with
Studio's words. Cancel and delete: the browser that made it, or the operator token.

The upload's body cap is `max_training_body_bytes` (httpapi.body.BodyLimit, by route), not `max_body_bytes`;
it must still arrive within `body_timeout_s`.
"""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse, Response
from starlette.datastructures import UploadFile

from gallery import views
from gallery.owners import Visitor, VisitorDep
from gallery.settings import GallerySettings
from gallery.state import GalleryDep, GalleryState
from gallery.training_sets import CollectionCaps, check_collections
from httpapi.errors import BadRequest, Forbidden, TooManyRequests, refusals
from httpapi.forms import read_form
from painting.errors import NotFound
from painting.records import TrainingRecord, new_painting_id
from painting.training import (
    KINDS,
    MIN_IMAGES,
    TrainingParams,
    collections_for,
    limited_training_schema,
    parse_training_params,
)
from painting.training_catalog import MAX_TRAININGS_PAGE

UPLOAD_PATH = "/api/trainings"
ALL_COLLECTIONS = ("photos", "paintings", "images")
MAX_COLLECTIONS = 2  # a cyclegan's photos and paintings

_FILES = {"type": "array", "items": {"type": "string", "format": "binary"}}
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
                            "description": "The training parameters, as JSON, with `kind`; defaults if absent.",
                        },
                        "photos": {**_FILES, "description": "cyclegan: the photos, one archive or many images."},
                        "paintings": {**_FILES, "description": "cyclegan: the paintings, one archive or many images."},
                        "images": {**_FILES, "description": "dcgan: the images, one archive or many images."},
                    },
                },
                "encoding": {"params": {"contentType": "application/json"}},
            }
        },
    }
}

api = APIRouter(prefix="/api")


@api.post("/trainings", status_code=201, responses=refusals(413, 422, 429), openapi_extra=TRAINING_FORM)
async def create_training(request: Request, gallery: GalleryDep, visitor: VisitorDep) -> JSONResponse:
    """Train a cyclegan or a dcgan on the collections uploaded; see the module docstring."""
    settings = gallery.settings
    most = settings.max_training_files * MAX_COLLECTIONS
    too_many = f"body: at most {settings.max_training_files} image files per collection"
    async with read_form(request, max_files=most, max_fields=4, too_many_files=too_many) as form:
        params = form.get("params")
        if isinstance(params, UploadFile):
            raise BadRequest("params: must be a text field with JSON, not a file")
        parsed = _parse(settings, params)
        stray = sorted(set(form.keys()) - {"params", *ALL_COLLECTIONS})
        if stray:
            raise BadRequest(f"{stray[0]}: not a part of a training (params, {', '.join(ALL_COLLECTIONS)})")
        _admit(gallery, visitor)
        caps = CollectionCaps(
            max_files=settings.max_training_files,
            max_bytes=settings.max_training_body_bytes,
            max_image_bytes=settings.max_image_bytes,
            max_image_pixels=settings.max_image_pixels,
        )
        # One upload at a time is read into memory and checked (a large one holds its bytes twice
        # while its archives are unpacked); the others wait, their bodies spooled to disk.
        async with gallery.trainings.checking:
            uploads: dict[str, list[tuple[str, bytes]]] = {}
            for name in ALL_COLLECTIONS:
                parts = form.getlist(name)
                if not parts:
                    continue
                if not all(isinstance(p, UploadFile) for p in parts):
                    raise BadRequest(f"{name}: must be file parts (an archive or images)")
                uploads[name] = [
                    (p.filename or f"{number}", await p.read())
                    for number, p in enumerate(parts, start=1)
                    if isinstance(p, UploadFile)
                ]
            images = await asyncio.to_thread(check_collections, parsed.kind, uploads, caps)
            del uploads
    training_id = new_painting_id()
    record = await gallery.trainings.create(training_id, parsed.resolved(training_id), images, visitor.claim())
    response = JSONResponse(
        views.training_json(record, [], mine=True), status_code=201, headers={"Location": f"/api/trainings/{record.id}"}
    )
    visitor.remember(response, secure=request.url.scheme == "https")
    return response


@api.get("/trainings", responses=refusals(422))
async def list_trainings(
    gallery: GalleryDep,
    visitor: VisitorDep,
    limit: int = Query(50, ge=1, le=MAX_TRAININGS_PAGE, description="How many trainings, newest first."),
) -> dict[str, Any]:
    """The newest trainings (without their curves); in a private gallery, only the visitor's."""
    if visitor.private and not visitor.operator:
        if visitor.owner is None:
            return {"items": []}
        records = [r for r in gallery.catalog.newest_trainings(limit=MAX_TRAININGS_PAGE) if r.owner == visitor.owner]
    else:
        records = gallery.catalog.newest_trainings(limit=limit)
    return {"items": [views.training_json(r, mine=visitor.may_change(r)) for r in records[:limit]]}


@api.get("/trainings/{training_id}", responses=refusals(404, 422))
async def get_training(training_id: str, gallery: GalleryDep, visitor: VisitorDep) -> dict[str, Any]:
    """The training with its loss curves (`progress`, step by step)."""
    record = _visible(gallery, visitor, training_id)
    return views.training_json(record, gallery.catalog.training_progress(training_id), mine=visitor.may_change(record))


@api.post("/trainings/{training_id}/cancel", responses=refusals(403, 404, 422))
async def cancel_training(training_id: str, gallery: GalleryDep, visitor: VisitorDep) -> dict[str, Any]:
    """Stop the training (here at once; at Studio as soon as it answers): its last checkpoint stays
    there, and no model is made. One that has ended stays as it is."""
    _changeable(gallery, visitor, training_id, "cancel")
    gallery.trainings.cancel(training_id)
    record = gallery.catalog.get_training(training_id)
    return views.training_json(record, gallery.catalog.training_progress(training_id), mine=True)


@api.delete("/trainings/{training_id}", status_code=204, responses=refusals(403, 404, 422))
async def delete_training(training_id: str, gallery: GalleryDep, visitor: VisitorDep) -> Response:
    """Delete the training: its record, curves and images here, and the training at Studio (stopped
    if it runs). The model a finished training made is NOT deleted: it stays in Studio's models
    folder, for anyone to paint with, until an operator removes it there."""
    _changeable(gallery, visitor, training_id, "delete")
    gallery.trainings.delete(training_id)
    return Response(status_code=204)


@api.get("/training-schema")
async def training_schema(gallery: GalleryDep) -> dict[str, Any]:
    """The training parameters' JSON schema with this Gallery's caps on steps and image size, for the
    form (`x-kinds`: the kinds that read a field), and what each kind is trained on
    (`x-collections`: its collections and the fewest images each needs; `x-max-files`: the most
    files in one collection; `x-max-bytes`: the largest upload)."""
    settings = gallery.settings
    schema = limited_training_schema(
        max_steps=settings.max_training_steps, max_image_size=settings.max_training_image_size
    )
    schema["x-collections"] = {
        kind: [{"name": name, "min_images": MIN_IMAGES[kind]} for name in collections_for(kind)] for kind in KINDS
    }
    schema["x-max-files"] = settings.max_training_files
    schema["x-max-bytes"] = settings.max_training_body_bytes
    return schema


def _parse(settings: GallerySettings, raw: str | None) -> TrainingParams:
    """The params, within this Gallery's caps; BadRequest (422) naming each bad field."""
    try:
        parsed = parse_training_params(raw)
    except ValueError as exc:
        raise BadRequest(f"params: {exc}") from None
    if parsed.steps > settings.max_training_steps:
        raise BadRequest(f"params: steps: at most {settings.max_training_steps} in this Gallery")
    size = parsed.resolved().image_size
    if size is not None and size > settings.max_training_image_size:
        raise BadRequest(f"params: image_size: at most {settings.max_training_image_size} in this Gallery")
    return parsed


def _admit(gallery: GalleryState, visitor: Visitor) -> None:
    """The cap on trainings queued or running in all (429); an operator is not counted against it."""
    if visitor.operator:
        return
    cap = gallery.settings.max_unfinished_trainings
    unfinished = len(gallery.catalog.unfinished_trainings())
    if unfinished >= cap:
        raise TooManyRequests(
            f"Gallery has {unfinished} trainings waiting or under way, as many as it takes: try again when one ends.",
            retry_after_s=300,
        )


def _visible(gallery: GalleryState, visitor: Visitor, training_id: str) -> TrainingRecord:
    """The training, if this visitor may see it; NotFound otherwise (a private one is not there for others)."""
    record = gallery.catalog.get_training(training_id)
    if not visitor.may_see(record):
        raise NotFound("No training with that id.")
    return record


def _changeable(gallery: GalleryState, visitor: Visitor, training_id: str, action: str) -> TrainingRecord:
    """The training, if this visitor may `action` it; else Forbidden (NotFound where it may not even see it)."""
    record = _visible(gallery, visitor, training_id)
    if not visitor.may_change(record):
        raise Forbidden(f"Only the browser that started this training can {action} it.")
    return record


__all__ = ["UPLOAD_PATH", "api"]
