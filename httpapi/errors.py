"""The errors a request can earn, and the one place they become HTTP statuses.

    RequestError                 a request refused for what it is, not for a fault of ours
    ├── BadRequest               missing part, bad params, a field out of range (422)
    └── BodyTooLarge             the body is over the cap (413); raised while it streams in

`add_error_handlers(app)` maps these and `painting.errors` alike, for both services:
NotFound -> 404, ImageTooLarge and BodyTooLarge -> 413, InvalidImage -> 415, BadRequest -> 422,
each answered as `{"detail": "<message for a person>"}`.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from painting.errors import ImageTooLarge, InvalidImage, NotFound


class RequestError(Exception):
    """A request refused for what it is; the message names the part or field, fit for a person."""


class BadRequest(RequestError):
    """A request that cannot be taken as it is (422)."""


class BodyTooLarge(RequestError):
    """The request body is larger than the configured cap (413)."""


STATUSES: tuple[tuple[type[Exception], int], ...] = (
    (NotFound, 404),
    (ImageTooLarge, 413),
    (BodyTooLarge, 413),
    (InvalidImage, 415),
    (BadRequest, 422),
)


def error_json(status: int, detail: str) -> JSONResponse:
    return JSONResponse({"detail": detail}, status_code=status)


def add_error_handlers(app: FastAPI, statuses: Sequence[tuple[type[Exception], int]] = STATUSES) -> None:
    """Answer each exception class with its status and `{"detail": str(exc)}`."""

    def handler_for(status: int) -> Callable[[Request, Exception], Awaitable[JSONResponse]]:
        async def handle(request: Request, exc: Exception) -> JSONResponse:
            return error_json(status, str(exc))

        return handle

    for exc_class, status in statuses:
        app.add_exception_handler(exc_class, handler_for(status))


__all__ = ["STATUSES", "BadRequest", "BodyTooLarge", "RequestError", "add_error_handlers", "error_json"]
