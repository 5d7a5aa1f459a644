"""Serving a stored image the same way from both services."""

from __future__ import annotations

from typing import Any

from fastapi.responses import FileResponse

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


def image_response(store: ImageStore, image_id: str, *, cache_control: str) -> FileResponse:
    """The stored image's file with its media type; NotFound (404) for an unknown or malformed id.

    Ids are content hashes, so the bytes behind one never change: callers cache for good.
    """
    ref = store.ref(image_id)
    return FileResponse(
        store.path(image_id),
        media_type=ref.media_type,
        headers={"Cache-Control": cache_control, "X-Content-Type-Options": "nosniff"},
    )


__all__ = ["IMAGE_RESPONSE", "image_response"]
