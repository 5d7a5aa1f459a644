"""What a running Studio holds, and the one typed way routes get it (see `gallery.state`)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends
from starlette.requests import HTTPConnection

from painting.fsck import write_problem
from painting.images import ImageStore
from studio.estimates import Estimator
from studio.events import JobEvents
from studio.jobs import Jobs
from studio.metrics import StudioMetrics
from studio.settings import StudioSettings
from studio.supervisor import Supervisor
from studio.trainings import Trainings


@dataclass(frozen=True)
class StudioState:
    """The parts of one running Studio."""

    settings: StudioSettings
    jobs: Jobs
    events: JobEvents
    images: ImageStore
    supervisor: Supervisor
    metrics: StudioMetrics
    estimator: Estimator
    trainings: Trainings

    def readiness(self) -> str | None:
        """Why Studio cannot take work now (None: it can): storage must take writes, and a worker
        must be up with its model loaded."""
        problem = write_problem(self.images, self.jobs.catalog)
        if problem is not None:
            return problem
        self.supervisor.storage_works()
        return self.supervisor.not_ready_reason

    def close_streams(self) -> None:
        """End every open event stream, of jobs and trainings, and any opened later (Studio is stopping)."""
        self.events.close_all()
        self.trainings.events.close_all()


def studio_state(connection: HTTPConnection) -> StudioState:
    """The running Studio of the app serving this request (set by the lifespan)."""
    state = connection.app.state.studio
    assert isinstance(state, StudioState), "Studio's lifespan has not run"
    return state


StudioDep = Annotated[StudioState, Depends(studio_state)]

__all__ = ["StudioDep", "StudioState", "studio_state"]
