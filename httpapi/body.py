"""The request-body cap, as ASGI middleware: a body over it never reaches a route whole."""

from __future__ import annotations

from collections.abc import Mapping

from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from httpapi.errors import BodyTooLarge

DEFAULT_MAX_BODY_BYTES = 64 * 1024 * 1024  # a content image and eight styles at the image cap fit


class BodyLimit:
    """413 for a body over `max_bytes`: from Content-Length before reading any of it, else while it streams.

    `larger` gives a few routes a cap of their own, by (method, path): a training's collections may
    come to more than a painting's images, and no other body needs that much."""

    def __init__(self, app: ASGIApp, *, max_bytes: int, larger: Mapping[tuple[str, str], int] | None = None) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.larger = {(method.upper(), path.rstrip("/")): cap for (method, path), cap in (larger or {}).items()}

    def cap(self, scope: Scope) -> int:
        """The cap of this request's route."""
        return self.larger.get((scope.get("method", ""), scope.get("path", "").rstrip("/")), self.max_bytes)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        max_bytes = self.cap(scope)
        too_large = f"the request body is over {max_bytes} bytes"
        length = dict(scope["headers"]).get(b"content-length")
        if length is not None and length.isdigit() and int(length) > max_bytes:
            response = JSONResponse({"detail": too_large}, status_code=413, headers={"Connection": "close"})
            await response(scope, receive, send)
            return
        seen = 0

        async def limited() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > max_bytes:
                    raise BodyTooLarge(too_large)
            return message

        await self.app(scope, limited, send)


__all__ = ["DEFAULT_MAX_BODY_BYTES", "BodyLimit"]
