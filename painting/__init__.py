"""painting: the storage library both services use, and the shared painting parameters.

Public face: `Params` (painting.params); `ImageStore` / `ImageRef` (painting.images); `Catalog`,
its records and `Status` (painting.catalog); `fsck` and `gc` (painting.fsck); the errors
(painting.errors). Everything else is private to the package.

Names are imported on first use: Pycasso needs only `Params`, and importing SQLAlchemy and Alembic
for it would cost every `paint` run most of a second.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from painting.params import Params

if TYPE_CHECKING:
    from painting.catalog import (
        FINISHED,
        UNFINISHED,
        Catalog,
        ImageReference,
        PaintingRecord,
        ProgressPoint,
        Status,
        StyleImage,
        check_painting_id,
        new_painting_id,
    )
    from painting.errors import (
        CatalogError,
        CorruptRecord,
        ImageRejected,
        ImageTooLarge,
        InvalidId,
        InvalidImage,
        NotFound,
        PaintingError,
    )
    from painting.fsck import FsckReport, GcReport, Problem, fsck, gc
    from painting.images import ImageRef, ImageStore, check_image_id

_LAZY: dict[str, str] = {
    **dict.fromkeys(
        [
            "FINISHED",
            "UNFINISHED",
            "Catalog",
            "ImageReference",
            "PaintingRecord",
            "ProgressPoint",
            "Status",
            "StyleImage",
            "check_painting_id",
            "new_painting_id",
        ],
        "painting.catalog",
    ),
    **dict.fromkeys(
        [
            "CatalogError",
            "CorruptRecord",
            "ImageRejected",
            "ImageTooLarge",
            "InvalidId",
            "InvalidImage",
            "NotFound",
            "PaintingError",
        ],
        "painting.errors",
    ),
    **dict.fromkeys(["FsckReport", "GcReport", "Problem", "fsck", "gc"], "painting.fsck"),
    **dict.fromkeys(["ImageRef", "ImageStore", "check_image_id"], "painting.images"),
}

__all__ = [
    "Catalog",
    "CatalogError",
    "CorruptRecord",
    "FINISHED",
    "FsckReport",
    "GcReport",
    "ImageRef",
    "ImageReference",
    "ImageRejected",
    "ImageStore",
    "ImageTooLarge",
    "InvalidId",
    "InvalidImage",
    "NotFound",
    "PaintingError",
    "PaintingRecord",
    "Params",
    "Problem",
    "ProgressPoint",
    "Status",
    "StyleImage",
    "UNFINISHED",
    "check_image_id",
    "check_painting_id",
    "fsck",
    "gc",
    "new_painting_id",
]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'painting' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_LAZY})
