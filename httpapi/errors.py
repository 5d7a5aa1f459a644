"""The errors a request can earn, and the one place they become HTTP statuses.

    RequestError                 a request refused for what it is, not for a fault of ours
    ├── BadRequest               missing part, bad params, a field out of range (422)
    ├── BodyTooLarge             the body is over the cap (413); raised while it streams in
    ├── Forbidden                the caller may not do that to this thing (403)
    └── TooManyRequests          over a rate or queue limit: try again after `retry_after_s` (429)

`add_error_handlers(app)` maps these and `painting.errors` alike, for both services:
NotFound -> 404, Forbidden -> 403, ImageTooLarge and BodyTooLarge -> 413, InvalidImage -> 415,
BadRequest -> 422, PaintingFinished -> 409 (a change that comes after the painting ended),
TooManyRequests -> 429 (with Retry-After),
StorageUnavailable -> 503 (the disk or database is at fault, not the request; nothing was stored),
each answered as `{"detail": "<message for a person>"}`. The framework's own refusals get the same
shape: a parameter FastAPI refuses (RequestValidationError) is 422 with one sentence naming it, and
Starlette's HTTPException keeps its status (404, 405, ...) except 400, which it raises for a
malformed multipart body, and which is 422 here like every other malformed request.

`ErrorBody` is that body as a model and `refusals(404, 422)` the `responses=` of a route that can
answer them, so both OpenAPI documents say what a refusal looks like.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel
from starlette.exceptions import HTTPException
from starlette.formparsers import MultiPartException

from painting.errors import (
    ArchiveRejected,
    ArchiveTooLarge,
    ImageTooLarge,
    InvalidImage,
    NotFound,
    PaintingFinished,
    StorageUnavailable,
)


class RequestError(Exception):
    """A request refused for what it is; the message names the part or field, fit for a person."""


class BadRequest(RequestError):
    """A request that cannot be taken as it is (422)."""


class BodyTooLarge(RequestError):
    """The request body is larger than the configured cap (413)."""


class Forbidden(RequestError):
    """The caller may not do this (403): e.g. cancel or delete a painting another browser made."""


class TooManyRequests(RequestError):
    """Over a limit that time lifts (429); answered with Retry-After."""

    def __init__(self, message: str, *, retry_after_s: int) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


STATUSES: tuple[tuple[type[Exception], int], ...] = (
    (NotFound, 404),
    (ImageTooLarge, 413),
    (ArchiveTooLarge, 413),
    (ArchiveRejected, 422),
    (BodyTooLarge, 413),
    (InvalidImage, 415),
    (BadRequest, 422),
    (Forbidden, 403),
    (PaintingFinished, 409),
    (StorageUnavailable, 503),
)


class ErrorBody(BaseModel):
    """The body of every refusal: one sentence for a person, naming the part or field at fault."""

    detail: str


REFUSALS: dict[int, str] = {
    401: "No valid bearer token.",
    403: "Not allowed: only the browser that made a painting (or an operator) may change it.",
    404: "Nothing has that id.",
    409: "The painting has ended: the change comes too late, and nothing was changed.",
    413: "The body or an image is over its cap.",
    415: "An image is not a PNG, JPEG, WEBP or HEIC we can decode.",
    422: "The request is malformed or over a limit: a missing part, bad params, a value out of range.",
    429: "Too many paintings at once, from this browser or in all: try again after Retry-After seconds.",
}


def refusals(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """The `responses=` of a route that may answer these refusals, each an `ErrorBody`."""
    return {status: {"model": ErrorBody, "description": REFUSALS[status]} for status in statuses}


def error_json(status: int, detail: str, headers: Mapping[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"detail": detail}, status_code=status, headers=headers)


def describe_request_errors(errors: Sequence[Any]) -> str:
    """FastAPI's validation errors as one line, e.g. "offset: Input should be less than or equal to 1000000000"."""
    parts = []
    for err in errors:
        loc = [str(p) for p in err.get("loc", ())]
        if loc[:1] in (["query"], ["path"], ["header"], ["cookie"], ["body"]) and len(loc) > 1:
            loc = loc[1:]  # "offset", not "query.offset": the name the caller used
        parts.append(f"{'.'.join(loc) or 'request'}: {err.get('msg', 'is not valid')}")
    return "; ".join(parts) or "the request is not valid"


async def _validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    return error_json(422, describe_request_errors(exc.errors()))


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    status = 422 if exc.status_code == 400 else exc.status_code
    if status < 200 or status in (204, 205, 304):  # no body allowed
        return Response(status_code=status, headers=exc.headers)
    return error_json(status, str(exc.detail), exc.headers)


async def _too_many(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, TooManyRequests)
    return error_json(429, str(exc), {"Retry-After": str(exc.retry_after_s)})


async def _multipart_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, MultiPartException)
    return error_json(422, f"body: {exc.message.rstrip('.')}")


def add_error_handlers(app: FastAPI, statuses: Sequence[tuple[type[Exception], int]] = STATUSES) -> None:
    """Answer each exception class with its status and `{"detail": str(exc)}`, and the framework's
    own refusals (RequestValidationError, HTTPException, MultiPartException) in the same shape."""

    def handler_for(status: int) -> Callable[[Request, Exception], Awaitable[JSONResponse]]:
        async def handle(request: Request, exc: Exception) -> JSONResponse:
            return error_json(status, str(exc))

        return handle

    for exc_class, status in statuses:
        app.add_exception_handler(exc_class, handler_for(status))
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(HTTPException, _http_error)
    app.add_exception_handler(MultiPartException, _multipart_error)
    app.add_exception_handler(TooManyRequests, _too_many)


__all__ = [
    "REFUSALS",
    "STATUSES",
    "BadRequest",
    "BodyTooLarge",
    "ErrorBody",
    "Forbidden",
    "RequestError",
    "TooManyRequests",
    "add_error_handlers",
    "describe_request_errors",
    "error_json",
    "refusals",
]
