"""Jobs on workers: the supervisor's handler (`studio.supervisor.JobHandler`).

    runner = JobRunner(catalog, images, events)
    for job_id in runner.requeue_unfinished(): supervisor.submit(job_id)   # after a restart

It builds a job's `paint` message (resuming from the last preview when the job ran before), says
what each worker message means for the job (stored and published through `studio.events.JobEvents`),
and decides what a worker's death means: the job runs once more, then fails.

A job's `attempts` counts its runs that a crash ended, plus the one under way: 1 while it first
runs, 2 after one crash; a second crash fails it. A clean stop (Studio shut down, Ctrl-C) is not a
crash: the job goes back to the queue with its count unchanged. A Studio that died without a clean
stop (SIGKILL, the host lost power) left its running jobs `running`: on the next start they count
as crashed, because their worker died with it.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable

from painting.catalog import Catalog
from painting.errors import ImageRejected, NotFound
from painting.images import ImageStore
from painting.progress import ProgressPoint
from painting.records import Status
from pycasso import port
from studio.events import RUNNABLE, JobEvents

log = logging.getLogger("studio.runner")
CRASHED_TWICE = "worker crashed twice"
IMAGES_MISSING = "its photo or a style image is missing from Studio's store, so it cannot be painted"


class JobRunner:
    """Starts, follows and ends jobs on behalf of the supervisor; see the module docstring."""

    def __init__(
        self,
        catalog: Catalog,
        images: ImageStore,
        events: JobEvents,
        *,
        on_iteration_seconds: Callable[[float], None] | None = None,
        pass_budget: Callable[[], int | None] | None = None,
    ) -> None:
        self.catalog = catalog
        self.pass_budget = pass_budget  # bytes a worker's pass may use (the budget less the worker): above, tiles
        self.images = images
        self.events = events
        self.on_iteration_seconds = on_iteration_seconds  # told how long each iteration took
        self._last: dict[str, tuple[int, float]] = {}  # job -> (iteration, elapsed_s) of its last progress

    def requeue_unfinished(self) -> list[str]:
        """At Studio's start: the jobs to run, oldest first. One still `running` was cut off by a
        Studio that died (it stops its jobs cleanly otherwise): it counts as crashed."""
        ids = []
        for record in self.catalog.unfinished():
            if record.status == Status.RUNNING and not self.on_worker_died(record.id):
                continue
            ids.append(record.id)
        return ids

    def on_stopped(self, job_id: str) -> None:
        """The job's worker was stopped cleanly (Studio is shutting down): queued again, not a crash."""
        with contextlib.suppress(NotFound):
            self.catalog.transition(job_id, Status.QUEUED, from_={Status.RUNNING})

    def paint_message(self, job_id: str) -> port.Message | None:
        try:
            record = self.catalog.get(job_id)
        except NotFound:
            return None  # forgotten (deleted) while it waited
        if record.status not in RUNNABLE:
            return None
        init, start = None, 0
        # Resume from the latest preview, at the iteration it shows (0: a draft, not made again).
        preview, at = record.preview_image, record.preview_iteration
        if preview is not None and at is not None and record.params.engine == "gatys" and self.images.exists(preview):
            init, start = self.images.read(preview), at
        try:
            content = self.images.read(record.content_image) if record.content_image is not None else None
            styles = [self.images.read(i) for i in record.style_images]
        except NotFound:  # removed by hand, or by a collection with no grace: it can never run
            self.events.finish(job_id, Status.FAILED, error=IMAGES_MISSING)
            return None
        if not self.catalog.transition(job_id, Status.RUNNING, from_=RUNNABLE, attempts=max(record.attempts, 1)):
            return None
        params = record.params.model_dump(mode="json")
        budget = self.pass_budget() if self.pass_budget is not None else None
        return port.paint(job_id, params, content, styles, init=init, start_iteration=start, memory_budget=budget)

    def on_message(self, job_id: str, message: port.Message) -> None:
        if message.type != "progress":
            self._last.pop(job_id, None)  # the run ended: its timing with it
        try:
            self._on_message(job_id, message)
        except NotFound:  # the job was forgotten (deleted) while its worker stopped: nothing to keep
            log.info("job %s was deleted; its worker's %r message is dropped", job_id, message.type)

    def _on_message(self, job_id: str, message: port.Message) -> None:
        if message.type == "progress":
            self._on_progress(job_id, message)
        elif message.type == "done":
            results = message.blobs("result")
            try:
                result_id = self.images.put(results[0]).id if results else None
            except ImageRejected as exc:
                self.events.finish(job_id, Status.FAILED, error=f"the worker's result is not a usable image: {exc}")
                return
            # The last iteration the worker ran: progress it sent may not all have been stored.
            ran = (message.get("stats") or {}).get("iterations")
            iteration = self.catalog.get(job_id).iteration
            if isinstance(ran, int) and not isinstance(ran, bool):
                iteration = max(iteration, ran)
            # The preview served resumes and the page while it ran; the result replaces it (gc collects it).
            self.events.finish(job_id, Status.DONE, result_image=result_id, iteration=iteration, preview_image=None)
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
        self._time_iteration(job_id, point)

    def _time_iteration(self, job_id: str, point: ProgressPoint) -> None:
        last = self._last.get(job_id)
        self._last[job_id] = (point.iteration, point.elapsed_s)
        if last is None or self.on_iteration_seconds is None or point.iteration <= last[0]:
            return  # the first point of a run, or a resumed run repeating iterations
        seconds = (point.elapsed_s - last[1]) / (point.iteration - last[0])
        if seconds >= 0:
            self.on_iteration_seconds(seconds)

    def on_worker_died(self, job_id: str) -> bool:
        """The job's worker crashed: True (queued again) after a first crash, else failed."""
        try:
            record = self.catalog.get(job_id)
        except NotFound:
            return False  # forgotten meanwhile
        if record.finished:
            return False
        if record.attempts >= 2:
            self.events.finish(job_id, Status.FAILED, error=CRASHED_TWICE)
            return False
        return self.catalog.transition(job_id, Status.QUEUED, from_=RUNNABLE, attempts=2)


__all__ = ["CRASHED_TWICE", "IMAGES_MISSING", "JobRunner"]
