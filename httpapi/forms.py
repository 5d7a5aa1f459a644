"""Reading multipart forms the same way in both services.

    async with read_form(request, max_files=10, max_fields=8, too_many_files="style: at most 8 style images") as form:
        content = await file_part(form.getlist("content"), "content")

Starlette refuses a form over its caps, or a malformed one, with a 400 and two sentences of its own;
here that is a BadRequest (422) with one sentence, so every refusal has one status and one shape.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from starlette.datastructures import FormData, UploadFile
from starlette.exceptions import HTTPException
from starlette.requests import Request

from httpapi.errors import BadRequest


@asynccontextmanager
async def read_form(
    request: Request, *, max_files: int, max_fields: int, too_many_files: str
) -> AsyncIterator[FormData]:
    """The request's form, closed on the way out; BadRequest for one over a cap or malformed.

    `too_many_files` is the refusal for more than `max_files` file parts, in the caller's words (the
    file parts are images, so it names them). A body over the byte cap is still BodyTooLarge (413).
    """
    try:
        form = await request.form(max_files=max_files, max_fields=max_fields)
    except HTTPException as exc:  # Starlette's MultiPartException, raised as a 400 inside an app
        raise BadRequest(_form_refusal(str(exc.detail), too_many_files, max_fields)) from None
    try:
        yield form
    finally:
        await form.close()


def _form_refusal(detail: str, too_many_files: str, max_fields: int) -> str:
    if detail.startswith("Too many files"):
        return too_many_files
    if detail.startswith("Too many fields"):
        return f"body: at most {max_fields} form fields besides the files"
    return f"body: {detail.rstrip('.')}"


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


def painting_form(
    params_schema: dict[str, Any], *, max_styles: int, styles: str, extra: dict[str, Any] | None = None
) -> dict[str, Any]:
    """The OpenAPI `requestBody` (for a route's `openapi_extra`) of the multipart form both services
    take: `content` (one image file), `style` (1 to `max_styles` image files), `params` (JSON), and
    the optional parts one service takes besides (`extra`: name -> its schema).

    The routes read the form by hand (`read_form`), so FastAPI cannot describe it; this does.
    """
    image = {"type": "string", "format": "binary"}
    return {
        "requestBody": {
            "required": True,
            "content": {
                "multipart/form-data": {
                    "schema": {
                        "type": "object",
                        "required": ["content", "style"],
                        "properties": {
                            "content": {**image, "description": "The photo: PNG, JPEG or WEBP."},
                            "style": {
                                "type": "array",
                                "items": image,
                                "minItems": 1,
                                "maxItems": max_styles,
                                "description": styles,
                            },
                            "params": {**params_schema, "description": "The parameters, as JSON; defaults if absent."},
                            **(extra or {}),
                        },
                    },
                    "encoding": {"params": {"contentType": "application/json"}},
                }
            },
        }
    }


__all__ = ["file_part", "painting_form", "read_form"]
