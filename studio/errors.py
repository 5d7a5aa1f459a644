"""Studio's errors, in one place.

    StudioError                  every error Studio raises on purpose
    └── WorkerCrashed            a worker process died (mid-job: the job is resumed once, then failed)

A refused request (BadRequest, BodyTooLarge) is `httpapi.errors`', storage errors are
`painting.errors`'; `httpapi.errors.add_error_handlers` maps both families to HTTP statuses.
"""

from __future__ import annotations


class StudioError(Exception):
    """Base class of every error Studio raises on purpose."""


class WorkerCrashed(StudioError):
    """A worker process died (or was killed as hung)."""

    def __init__(self, message: str, *, job: str | None = None) -> None:
        super().__init__(message)
        self.job = job


__all__ = ["StudioError", "WorkerCrashed"]
