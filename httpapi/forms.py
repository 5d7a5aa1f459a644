"""Reading multipart forms the same way in both services."""

from __future__ import annotations

from starlette.datastructures import UploadFile

from httpapi.errors import BadRequest


async def file_part(parts: list[UploadFile | str], name: str) -> bytes:
    """The bytes of the one file given as form field `name`; BadRequest when missing, repeated or text."""
    if not parts:
        raise BadRequest(f"{name}: missing part")
    if len(parts) > 1:
        raise BadRequest(f"{name}: give exactly one")
    part = parts[0]
    if not isinstance(part, UploadFile):
        raise BadRequest(f"{name}: must be a file part")
    return await part.read()


__all__ = ["file_part"]
