"""Jobs on workers: the supervisor's handler (`studio.supervisor.JobHandler`).

    runner = JobRunner(catalog, images, events)
    for job_id in runner.requeue_unfinished(): supervisor.submit(job_id)   # after a restart

It builds a job's `paint` message (resuming from the last preview after a worker died), says what
each worker message means for the job (stored and published through `studio.events.JobEvents`),
and decides what a worker's death means: the job runs once more, then fails.
"""

from __future__ import annotations

import logging

from painting.catalog import Catalog
from painting.errors import ImageRejected
from painting.images import ImageStore
from painting.progress import ProgressPoint
from painting.records import Status
from pycasso import port
from studio.events import RUNNABLE, JobEvents

log = logging.getLogger("studio.runner")
CRASHED_TWICE = "worker crashed twice"


class JobRunner:
    """Starts, follows and ends jobs on behalf of the supervisor; see the module docstring."""

    def __init__(self, catalog: Catalog, images: ImageStore, events: JobEvents) -> None:
        self.catalog = catalog
        self.images = images
        self.events = events

    def requeue_unfinished(self) -> list[str]:
        """After a Studio restart: every unfinished job back to queued, oldest first; their ids."""
        ids = []
        for record in self.catalog.unfinished():
            self.catalog.transition(record.id, Status.QUEUED, from_=RUNNABLE)
            ids.append(record.id)
        return ids

    def paint_message(self, job_id: str) -> port.Message | None:
        record = self.catalog.get(job_id)
        if record.status not in RUNNABLE:
            return None
        init, start = None, 0
        if record.attempts >= 1 and record.preview_image is not None and record.params.preview_every:
            # Previews come at multiples of preview_every, so the last one is at the last such multiple.
            start = record.iteration - record.iteration % record.params.preview_every
            if start > 0 and self.images.exists(record.preview_image):
                init = self.images.read(record.preview_image)
            else:
                start = 0
        if not self.catalog.transition(job_id, Status.RUNNING, from_=RUNNABLE, bump_attempts=True):
            return None
        content = self.images.read(record.content_image)
        styles = [self.images.read(i) for i in record.style_images]
        params = record.params.model_dump(mode="json")
        return port.paint(job_id, params, content, styles, init=init, start_iteration=start)

    def on_message(self, job_id: str, message: port.Message) -> None:
        if message.type == "progress":
            self._on_progress(job_id, message)
        elif message.type == "done":
            results = message.blobs("result")
            try:
                result_id = self.images.put(results[0]).id if results else None
            except ImageRejected as exc:
                self.events.finish(job_id, Status.FAILED, error=f"the worker's result is not a usable image: {exc}")
                return
            iteration = self.catalog.get(job_id).iteration
            self.events.finish(job_id, Status.DONE, result_image=result_id, iteration=iteration)
        elif message.type == "error":
            self.events.finish(job_id, Status.FAILED, error=f"{message.get('code')}: {message.get('message')}")
        elif message.type == "cancelled":
            self.events.finish(job_id, Status.CANCELLED)

    def _on_progress(self, job_id: str, message: port.Message) -> None:
        try:
            point = ProgressPoint.from_json(message.fields)
        except ValueError as exc:  # a worker of another version: say so, never record a made-up point
            log.error("job %s: a progress frame Studio cannot read: %s", job_id, exc)
            return
        preview_id = None
        previews = message.blobs("preview")
        if previews:
            try:
                preview_id = self.images.put(previews[0]).id
            except ImageRejected as exc:
                log.warning("job %s: the worker's preview is not a usable image: %s", job_id, exc)
        iterations = message.get("iterations")
        if not isinstance(iterations, int) or iterations < 1:
            iterations = self.catalog.get(job_id).iterations
        self.events.progress(job_id, point, iterations, preview_id)

    def on_worker_died(self, job_id: str) -> bool:
        record = self.catalog.get(job_id)
        if record.finished:
            return False
        if record.attempts >= 2:
            self.events.finish(job_id, Status.FAILED, error=CRASHED_TWICE)
            return False
        return self.catalog.transition(job_id, Status.QUEUED, from_=RUNNABLE)


__all__ = ["CRASHED_TWICE", "JobRunner"]
