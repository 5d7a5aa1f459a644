"""What a running Gallery holds, and the one typed way routes get it.

    @router.get("/paintings")
    async def list_paintings(gallery: GalleryDep) -> ...:
        gallery.catalog.newest(...)

The lifespan builds one `GalleryState` and keeps it on the app; `GalleryDep` is the dependency
that hands it to a route, so a misspelt attribute is a type error, not a failed request.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends
from starlette.requests import HTTPConnection

from gallery.dispatcher import Dispatcher
from gallery.hub import Hub
from gallery.limits import Limits
from gallery.metrics import GalleryMetrics
from gallery.pool import StudioPool
from gallery.settings import GallerySettings
from gallery.trainings import TrainingFollower
from painting.catalog import Catalog
from painting.fsck import write_problem
from painting.images import ImageStore


@dataclass(frozen=True)
class GalleryState:
    """The parts of one running Gallery."""

    settings: GallerySettings
    catalog: Catalog
    images: ImageStore
    dispatcher: Dispatcher
    hub: Hub
    limits: Limits
    metrics: GalleryMetrics
    pool: StudioPool  # the Studios; `pool.front()` answers what any of them can tell
    trainings: TrainingFollower  # takes trainings to Studio and follows them

    def readiness(self) -> str | None:
        """Why Gallery cannot take paintings now (None: it can): its catalog and image store must take
        writes. Studio's state is not part of it: a painting made while Studio is away waits for it."""
        return write_problem(self.images, self.catalog)


def gallery_state(connection: HTTPConnection) -> GalleryState:
    """The running Gallery of the app serving this request or WebSocket (set by the lifespan)."""
    state = connection.app.state.gallery
    assert isinstance(state, GalleryState), "Gallery's lifespan has not run"
    return state


GalleryDep = Annotated[GalleryState, Depends(gallery_state)]

__all__ = ["GalleryDep", "GalleryState", "gallery_state"]
