"""The errors of the storage library, in one place.

    PaintingError                    every error raised on purpose by `painting`
    ├── NotFound (LookupError)       no image or painting with that id
    │   └── InvalidId (ValueError)   the id cannot name anything (bad length, not hex, a path, ...)
    ├── ImageRejected (ValueError)   an image refused on the way in; never stored
    │   ├── InvalidImage             not a PNG/JPEG/WEBP we can decode: text, truncated, empty, ...
    │   └── ImageTooLarge            over the byte cap or the pixel cap (decompression bombs too)
    ├── ArchiveRejected (ValueError) an uploaded collection of images (an archive or many files) refused
    │   └── ArchiveTooLarge          more files or more uncompressed bytes than the caps allow
    ├── PaintingFinished             the painting has ended: what would change its run cannot
    ├── CatalogError                 the database cannot be used: schema too new or not migrated,
    │   └── CorruptRecord            a stored record no longer validates (e.g. its parameters)
    └── StorageUnavailable           the disk or the database refused an operation that should work:
                                     full, read-only, unreachable. Nothing was half-done; try again

Messages are written to be shown to a person as they are: they say what was wrong and, where it
helps, what the limit is. They never contain a filesystem path built from user input.
HTTP handlers map them in one place: NotFound -> 404, ImageTooLarge -> 413, InvalidImage -> 415/422,
ArchiveTooLarge -> 413, ArchiveRejected -> 422, PaintingFinished -> 409, StorageUnavailable -> 503.
`InvalidId` is a `NotFound` on purpose: a malformed id names nothing, and answering 404 for it
tells a caller no more than it needs.
"""

from __future__ import annotations


class PaintingError(Exception):
    """Base class of every error the storage library raises on purpose."""


class NotFound(PaintingError, LookupError):
    """No image or painting has this id."""


class InvalidId(NotFound, ValueError):
    """The id is malformed, so it cannot name an image or a painting (and never becomes a path)."""


class ImageRejected(PaintingError, ValueError):
    """An image was refused on the way in; nothing was stored."""


class InvalidImage(ImageRejected):
    """The bytes are not an image we accept (PNG, JPEG, WEBP), or the image is damaged."""


class ImageTooLarge(ImageRejected):
    """The image is over the byte cap or the pixel cap."""


class ArchiveRejected(PaintingError, ValueError):
    """An uploaded collection of images cannot be used as it is; nothing of it was kept (422)."""


class ArchiveTooLarge(ArchiveRejected):
    """The collection holds more files, or more uncompressed bytes, than the caps allow (413)."""


class PaintingFinished(PaintingError):
    """The painting is done, failed or cancelled: a change to its run (e.g. its loss weights) comes too late."""


class CatalogError(PaintingError):
    """The painting database cannot be used as it is."""


class CorruptRecord(CatalogError):
    """A stored record does not validate any more."""


class StorageUnavailable(PaintingError):
    """The image store or the database cannot be written (or reached) right now: a fault of the
    machine, not of the request. The operation did nothing; the same call can work later."""


__all__ = [
    "ArchiveRejected",
    "ArchiveTooLarge",
    "CatalogError",
    "CorruptRecord",
    "ImageRejected",
    "ImageTooLarge",
    "InvalidId",
    "InvalidImage",
    "NotFound",
    "PaintingError",
    "PaintingFinished",
    "StorageUnavailable",
]
