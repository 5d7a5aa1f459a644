"""Trainings on workers, and the one handler the supervisor is given (`studio.supervisor.JobHandler`).

    handler = Handlers(JobRunner(...), TrainingRunner(catalog, images, events, folders, models_dir=...))
    for job_id in handler.requeue_unfinished(): supervisor.submit(job_id)   # after a restart

The supervisor's queue holds painting jobs and trainings alike (one FIFO, one at a time per worker);
`Handlers` sends each call to the runner of the id's kind: a training's id is in the catalog's
trainings (ids never collide with jobs'), everything else is a painting job (`studio.runner.JobRunner`).

`TrainingRunner` builds a training's `train` message (its folders, its model's name, its cadence),
says what each worker message means for it (stored and published through
`studio.training_events.TrainingEvents`), and what a worker's death means. The worker checkpoints
every `checkpoint_every` steps and a `train` whose folder holds a checkpoint resumes from it, so a
training whose worker died is simply queued again: it goes on from its last checkpoint. Its
`attempts` counts its runs (1 while it first runs; a crash adds one); the third crash fails it. A
clean stop (Studio shut down) is no crash: it waits for the next start with its count unchanged, and
one still `running` when Studio starts was cut off by a Studio that died: that counts as a crash.
"""

from __future__ import annotations

import contextlib
import logging
import time
from pathlib import Path

from painting.catalog import Catalog
from painting.errors import ImageRejected, NotFound
from painting.images import ImageStore
from painting.records import Status, TrainingPoint
from painting.training import parse_training_params
from pycasso import port
from studio.events import RUNNABLE
from studio.runner import JobRunner
from studio.training_events import TrainingEvents
from studio.trainings import TrainingFolders

log = logging.getLogger("studio.training_runner")
MAX_REMEMBERED = 10_000  # painting job ids remembered as such (each progress frame would ask the catalog)
MAX_ATTEMPTS = 3  # runs of one training that a worker's death may end; the next death fails it
DATA_MISSING = "its images are missing from Studio's trainings folder, so it cannot be trained"
NO_MODELS_DIR = "this Studio has no models folder (STUDIO_MODELS_DIR) to put the trained model in"


def died_too_often(checkpoint_step: int | None) -> str:
    kept = f"; its checkpoint at step {checkpoint_step} is kept" if checkpoint_step else ""
    return f"the worker died {MAX_ATTEMPTS} times while training it{kept}"


class TrainingRunner:
    """Starts, follows and ends trainings on behalf of the supervisor; see the module docstring."""

    def __init__(
        self,
        catalog: Catalog,
        images: ImageStore,
        events: TrainingEvents,
        folders: TrainingFolders,
        *,
        models_dir: Path | None,
    ) -> None:
        self.catalog = catalog
        self.images = images
        self.events = events
        self.folders = folders
        self.models_dir = models_dir
        self._known: set[str] = set()  # ids known to be trainings (they never become jobs)
        self._not: set[str] = set()  # ids known not to be: a training is stored before its id is handed out
        self._runs: dict[str, tuple[float, float]] = {}  # training -> (monotonic start of this run, elapsed before)

    def owns(self, job_id: str) -> bool:
        """Whether `job_id` names a training (one deleted is no longer known, unless seen before)."""
        if job_id in self._known:
            return True
        if job_id in self._not:
            return False
        try:
            self.catalog.get_training(job_id)
        except NotFound:
            if len(self._not) >= MAX_REMEMBERED:
                self._not.clear()
            self._not.add(job_id)
            return False
        self._known.add(job_id)
        return True

    def requeue_unfinished(self) -> list[str]:
        """At Studio's start: the trainings to run, oldest first. One still `running` was cut off by
        a Studio that died: it counts as a crash."""
        ids = []
        for record in self.catalog.unfinished_trainings():
            self._known.add(record.id)
            if record.status == Status.RUNNING and not self.on_worker_died(record.id):
                continue
            ids.append(record.id)
        return ids

    def on_stopped(self, job_id: str) -> None:
        """The training's worker was stopped cleanly (it checkpointed on the way out): queued again."""
        self._runs.pop(job_id, None)
        with contextlib.suppress(NotFound):
            self.catalog.transition_training(job_id, Status.QUEUED, from_={Status.RUNNING})

    def paint_message(self, job_id: str) -> port.Message | None:
        """The `train` message that starts or resumes the training; None when it should not run."""
        try:
            record = self.catalog.get_training(job_id)
        except NotFound:
            return None  # deleted while it waited
        if record.status not in RUNNABLE:
            return None
        if self.models_dir is None:
            self.events.finish(job_id, Status.FAILED, error=NO_MODELS_DIR)
            return None
        if not self.folders.exists(job_id):  # removed by hand: it can never run
            self.events.finish(job_id, Status.FAILED, error=DATA_MISSING)
            return None
        try:
            params = parse_training_params(record.params)
        except ValueError as exc:  # stored by another version of Studio
            self.events.finish(job_id, Status.FAILED, error=f"its stored params are not valid here: {exc}")
            return None
        if not self.catalog.transition_training(
            job_id, Status.RUNNING, from_=RUNNABLE, attempts=max(record.attempts, 1)
        ):
            return None
        points = self.catalog.training_progress(job_id)
        before = max((p.elapsed_s for p in points), default=0.0)
        self._runs[job_id] = (time.monotonic(), before)
        return port.train(
            job_id,
            params.kind,
            params.to_engine(),
            data=str(self.folders.data(job_id).resolve()),
            checkpoints=str(self.folders.checkpoints(job_id).resolve()),
            name=record.model_name,
            sample_every=params.sample_every,
            checkpoint_every=params.checkpoint_every,
        )

    def on_message(self, job_id: str, message: port.Message) -> None:
        if message.type != "training":
            self._runs.pop(job_id, None)  # the run ended
        try:
            self._on_message(job_id, message)
        except NotFound:  # deleted while its worker stopped: nothing to keep, not even its folder
            log.info("training %s was deleted; its worker's %r message is dropped", job_id, message.type)
            self.folders.remove(job_id)  # the worker may have checkpointed into it after the delete

    def _on_message(self, job_id: str, message: port.Message) -> None:
        if message.type == "training":
            self._on_training(job_id, message)
        elif message.type == "done":
            samples = message.blobs("result")
            sample_id = None
            try:
                sample_id = self.images.put(samples[0]).id if samples else None
            except ImageRejected as exc:  # the model is trained all the same: only its last sample is lost
                log.warning("training %s: the worker's last sample is not a usable image: %s", job_id, exc)
            record = self.catalog.get_training(job_id)
            stats = message.get("stats") or {}
            ran = stats.get("steps") if isinstance(stats, dict) else None
            step = ran if isinstance(ran, int) and not isinstance(ran, bool) else record.steps
            fields: dict[str, object] = {"step": max(record.step, step)}
            if sample_id is not None:
                fields["sample_image"] = sample_id
            self.events.finish(job_id, Status.DONE, **fields)
        elif message.type == "error":
            self.events.finish(job_id, Status.FAILED, error=f"{message.get('code')}: {message.get('message')}")
        elif message.type == "cancelled":
            self.events.finish(job_id, Status.CANCELLED)

    def _on_training(self, job_id: str, message: port.Message) -> None:
        step, steps = message.get("step"), message.get("steps")
        seconds = message.get("seconds_per_step")
        started, before = self._runs.get(job_id, (time.monotonic(), 0.0))
        try:
            point = TrainingPoint.from_json(
                {
                    "step": step,
                    "losses": message.get("losses"),
                    "seconds_per_step": seconds,
                    "elapsed_s": round(before + time.monotonic() - started, 3),
                }
            )
        except ValueError as exc:  # a worker of another version: say so, never record a made-up point
            log.error("training %s: a training frame Studio cannot read: %s", job_id, exc)
            return
        sample_id = None
        samples = message.blobs("sample")
        if samples:
            try:
                sample_id = self.images.put(samples[0]).id
            except ImageRejected as exc:
                log.warning("training %s: the worker's sample is not a usable image: %s", job_id, exc)
        checkpoint = message.get("checkpoint")
        if not isinstance(checkpoint, int) or isinstance(checkpoint, bool) or checkpoint < 1:
            checkpoint = None
        if not isinstance(steps, int) or isinstance(steps, bool) or steps < 1:
            steps = self.catalog.get_training(job_id).steps
        self.events.progress(job_id, point, steps, sample_image=sample_id, checkpoint_step=checkpoint)

    def on_worker_died(self, job_id: str) -> bool:
        """The training's worker died: True (queued again, to resume from its checkpoint) unless it
        has run MAX_ATTEMPTS times; then failed."""
        self._runs.pop(job_id, None)
        try:
            record = self.catalog.get_training(job_id)
        except NotFound:
            self.folders.remove(job_id)  # deleted while it ran
            return False
        if record.finished:
            return False
        if record.attempts >= MAX_ATTEMPTS:
            self.events.finish(job_id, Status.FAILED, error=died_too_often(record.checkpoint_step))
            return False
        log.warning("training %s: its worker died (run %d); it resumes from its checkpoint", job_id, record.attempts)
        return self.catalog.transition_training(job_id, Status.QUEUED, from_=RUNNABLE, attempts=record.attempts + 1)


class Handlers:
    """The supervisor's handler: each call goes to the runner of the id's kind (see the module docstring)."""

    def __init__(self, jobs: JobRunner, trainings: TrainingRunner) -> None:
        self.jobs = jobs
        self.trainings = trainings

    def _runner(self, job_id: str) -> JobRunner | TrainingRunner:
        return self.trainings if self.trainings.owns(job_id) else self.jobs

    def requeue_unfinished(self) -> list[str]:
        """At Studio's start: the painting jobs to run, oldest first, then the trainings (a painting
        takes seconds or minutes, a training hours: the paintings go first)."""
        return self.jobs.requeue_unfinished() + self.trainings.requeue_unfinished()

    def paint_message(self, job_id: str) -> port.Message | None:
        return self._runner(job_id).paint_message(job_id)

    def on_message(self, job_id: str, message: port.Message) -> None:
        self._runner(job_id).on_message(job_id, message)

    def on_worker_died(self, job_id: str) -> bool:
        return self._runner(job_id).on_worker_died(job_id)

    def on_stopped(self, job_id: str) -> None:
        self._runner(job_id).on_stopped(job_id)


__all__ = ["DATA_MISSING", "MAX_ATTEMPTS", "NO_MODELS_DIR", "Handlers", "TrainingRunner", "died_too_often"]
