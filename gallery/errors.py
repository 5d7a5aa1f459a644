"""Gallery's errors about Studio, in one place.

    GalleryError                 every error Gallery raises on purpose about Studio
    └── StudioError              a call to Studio did not work
        ├── StudioUnavailable    unreachable, timed out, reset, 5xx: retry later (painting waits)
        │   └── StudioUnauthorized  Studio refused Gallery's token (401/403): a configuration fault,
        │                           so the painting waits for the operator instead of failing
        ├── StudioRejected       Studio refused the request (4xx other than 404): do not retry
        │   └── StudioImageGone  Studio no longer has an image (404): a preview it replaced and collected
        └── StudioJobGone        Studio does not know the job (404): send the painting again

A refused request (BadRequest, BodyTooLarge) is `httpapi.errors`', storage errors are
`painting.errors`'; `httpapi.errors.add_error_handlers` maps both families to HTTP statuses.
"""

from __future__ import annotations


class GalleryError(Exception):
    """Base class of every error Gallery raises on purpose."""


class StudioError(GalleryError):
    """A call to Studio did not work."""


class StudioUnavailable(StudioError):
    """Studio could not be reached or did not answer in time, or answered 5xx; try again later."""


class StudioUnauthorized(StudioUnavailable):
    """Studio refused Gallery's token: fix GALLERY_STUDIO_TOKEN and restart; the painting waits meanwhile."""


class StudioRejected(StudioError):
    """Studio refused the request (a 4xx other than 404); retrying will not help."""


class StudioImageGone(StudioRejected):
    """Studio no longer has the image (404): an old preview it has collected since (Gallery fell behind)."""


class StudioJobGone(StudioError):
    """Studio does not know this job (404): it lost its data, or never had it."""


__all__ = [
    "GalleryError",
    "StudioError",
    "StudioImageGone",
    "StudioJobGone",
    "StudioRejected",
    "StudioUnauthorized",
    "StudioUnavailable",
]
