"""Studio's errors, in one place.

    StudioError                  every error Studio raises on purpose
    ├── WorkerCrashed            a worker process died (mid-job: the job is resumed once, then failed)
    ├── WorkerNotReady           no worker is up with its model loaded (reason in the message)
    ├── BadRequest               a job request that cannot be taken: missing part, bad params (422)
    └── BodyTooLarge             the request body is over the cap (413); raised while it streams in

Storage errors come from `painting.errors`; `studio.app` maps both families to HTTP statuses in one
place: NotFound -> 404, ImageTooLarge/BodyTooLarge -> 413, InvalidImage -> 415, BadRequest -> 422.
"""

from __future__ import annotations


class StudioError(Exception):
    """Base class of every error Studio raises on purpose."""


class WorkerCrashed(StudioError):
    """A worker process died (or was killed as hung)."""

    def __init__(self, message: str, *, job: str | None = None) -> None:
        super().__init__(message)
        self.job = job


class WorkerNotReady(StudioError):
    """No worker is up with its model loaded."""


class BadRequest(StudioError):
    """A job request that cannot be taken as it is; the message names the part or field."""


class BodyTooLarge(StudioError):
    """The request body is larger than the configured cap."""


__all__ = ["BadRequest", "BodyTooLarge", "StudioError", "WorkerCrashed", "WorkerNotReady"]
