"""Serving a stored image the same way from both services."""

from __future__ import annotations

from fastapi.responses import FileResponse

from painting.images import ImageStore


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


__all__ = ["image_response"]
