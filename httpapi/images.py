"""Serving a stored image the same way from both services."""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import IO, Any

from starlette.responses import StreamingResponse

from painting.errors import NotFound
from painting.images import ImageStore

# The 200 of a route that answers with `image_response`, for its `responses=`.
IMAGE_RESPONSE: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "The image's bytes, as stored.",
        "content": {
            t: {"schema": {"type": "string", "format": "binary"}} for t in ("image/png", "image/jpeg", "image/webp")
        },
    }
}
CHUNK = 256 * 1024


def image_response(store: ImageStore, image_id: str, *, cache_control: str) -> StreamingResponse:
    """The stored image's bytes with its media type; NotFound (404) for an unknown or malformed id.

    The file is opened before the answer starts, so a collection that removes it meanwhile (a
    deleted painting's images, an old preview) can no longer cut the answer short: what is open is
    read to the end, and what is gone is a 404. Ids are content hashes, so the bytes behind one never
    change: callers cache for good.
    """
    try:
        file = open(store.path(image_id), "rb")  # noqa: SIM115 - closed by the body's generator
    except FileNotFoundError:
        raise NotFound("No image with that id.") from None
    size = os.fstat(file.fileno()).st_size
    head = file.read(16)
    file.seek(0)
    return StreamingResponse(
        _read(file),
        media_type=_media_type(head),
        headers={"Cache-Control": cache_control, "X-Content-Type-Options": "nosniff", "Content-Length": str(size)},
    )


def _read(file: IO[bytes]) -> Iterator[bytes]:
    with file:
        while block := file.read(CHUNK):
            yield block


def _media_type(head: bytes) -> str:
    """The stored formats (painting.images keeps PNG, JPEG and WEBP only), by their first bytes."""
    if head.startswith(b"\x89PNG"):
        return "image/png"
    if head.startswith(b"\xff\xd8"):
        return "image/jpeg"
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "image/webp"
    return "application/octet-stream"


__all__ = ["IMAGE_RESPONSE", "image_response"]
