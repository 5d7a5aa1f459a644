"""Studio's job requests: check and store a new job, describe one, cancel one.

    jobs = Jobs(catalog, images, events, cancel_running=supervisor.cancel)
    record, created = jobs.create(content_png, [style_png], params_json, idempotency_key="k")
    jobs.create(content_png, [style_png], params_json, init=preview_png, start_iteration=40)  # resumes at 40
    jobs.describe(record.id)     # the API's JSON
    jobs.cancel(record.id)       # stop it; jobs.forget(record.id): and delete it and its images
    jobs.change_weights(record.id, {"style_weight": 100.0})   # from its next iteration on

What a job does once queued is `studio.runner`'s business; its event stream is `studio.events`'.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from httpapi.errors import BadRequest
from painting.catalog import Catalog
from painting.errors import NotFound
from painting.fsck import SERVICE_GRACE_S, collect
from painting.images import ImageStore, upright_size
from painting.params import (
    MAX_STYLES,
    Params,
    check_inputs,
    model_kind,
    painting_shape,
    parse_params,
    weights_of,
)
from painting.progress import json_safe
from painting.records import PaintingRecord, Status
from studio.estimates import Estimator
from studio.events import JobEvents

log = logging.getLogger("studio.jobs")


class Jobs:
    """The jobs of one Studio: creating, describing and cancelling them.

    `cancel_running(job_id)` asks the workers to stop a job (`Supervisor.cancel`): it answers
    "running" when a worker has it (the worker then confirms with a `cancelled` frame), anything
    else when no worker does. `weights_running(job_id, weights)` likewise sends a job's new loss
    weights to the worker painting it (`Supervisor.change_weights`).
    """

    def __init__(
        self,
        catalog: Catalog,
        images: ImageStore,
        events: JobEvents,
        *,
        cancel_running: Callable[[str], str],
        weights_running: Callable[[str, dict[str, float]], str] = lambda job_id, weights: "unknown",
        engine_problem: Callable[[str], str | None] = lambda engine: None,
        models: Callable[[], list[dict[str, Any]] | None] = lambda: None,
        max_styles: int = MAX_STYLES,
        estimator: Estimator | None = None,
        collect_grace_s: float = SERVICE_GRACE_S,
    ) -> None:
        self.catalog = catalog
        self.images = images
        self.events = events
        self.cancel_running = cancel_running
        self.weights_running = weights_running
        self.engine_problem = engine_problem
        self.models = models
        self.max_styles = max_styles
        self.estimator = estimator  # refuses a job over the memory budget; None: no guard
        self.collect_grace_s = collect_grace_s

    def create(
        self,
        content: bytes | None,
        styles: list[bytes],
        params_text: str | None,
        *,
        idempotency_key: str | None = None,
        init: bytes | None = None,
        start_iteration: int | None = None,
    ) -> tuple[PaintingRecord, bool]:
        """Check everything, then store the images and the job; (job, whether it is new).

        Raises BadRequest (422), ImageRejected (413/415); nothing is stored for a rejected request.
        A key already used returns that job and stores nothing. `content` is None only for a
        latent generator model's job. `init` and `start_iteration` (both or neither, gatys only)
        resume a painting begun elsewhere: the job is stored with `init` as its preview at
        `start_iteration`, so its run starts from there (`JobRunner.paint_message`).
        """
        try:
            params = parse_params(params_text)
        except ValueError as exc:
            raise BadRequest(f"params: {exc}") from None
        problem = self.engine_problem(params.engine)
        if problem is not None:
            raise BadRequest(f"params: engine: this Studio cannot paint with {params.engine}: {problem}")
        if len(styles) > self.max_styles:
            raise BadRequest(f"style: at most {self.max_styles} style images")
        try:
            kind = model_kind(params, self.models())
            check_inputs(params, content=content is not None, styles=len(styles), model_kind=kind)
        except ValueError as exc:
            raise BadRequest(str(exc)) from None
        _check_resume(params, init, start_iteration)
        upright = upright_size(content) if content is not None else None  # as shown (EXIF orientation applied)
        if upright is not None:  # else put_all says why it cannot be read
            try:
                painting_shape(*upright, params.size)
            except ValueError as exc:
                raise BadRequest(f"content: {exc}") from None
        if self.estimator is not None and (content is None or upright is not None):
            too_big = self.estimator.refusal(params, *(upright or (None, None)), styles=len(styles))
            if too_big is not None:  # the memory budget is the guard on size (no fixed cap)
                raise BadRequest(too_big)
        if idempotency_key is not None:
            if not 1 <= len(idempotency_key) <= 200:
                raise BadRequest("Idempotency-Key: must be 1 to 200 characters")
            existing = self.catalog.find_by_idempotency_key(idempotency_key)
            if existing is not None:
                return existing, False
        uploads = [("content", content)] if content is not None else []
        uploads += [("style", s) for s in styles] + ([("init", init)] if init is not None else [])
        refs = self.images.put_all(uploads)  # all checked before any is written
        content_ref = refs.pop(0) if content is not None else None
        init_ref = refs.pop() if init is not None else None
        fields: dict[str, Any] = {
            "params": params,
            "content_image": content_ref.id if content_ref is not None else None,
            "style_images": [s.id for s in refs],
            "idempotency_key": idempotency_key,
        }
        resume_from = None if init_ref is None or start_iteration is None else (init_ref.id, start_iteration)
        return self.catalog.create(**fields, resume_from=resume_from), True

    def describe(self, job_id: str) -> dict[str, Any]:
        """The job as the API shows it; raises NotFound."""
        record = self.catalog.get(job_id)
        points = self.catalog.progress(job_id)
        last = points[-1] if points else None
        return json_safe(
            {
                "id": record.id,
                "state": record.status.value,
                "iteration": record.iteration,
                "iterations": record.iterations,
                "loss": last.loss if last is not None else None,
                "preview_image": record.preview_image,
                "result_image": record.result_image,
                "error": record.error,
                "attempts": record.attempts,
                "params": record.params.model_dump(mode="json"),
                "weight_changes": [change.to_json() for change in record.weight_changes],
                "created_at": record.created_at.isoformat(),
                "updated_at": record.updated_at.isoformat(),
            }
        )

    def change_weights(self, job_id: str, weights: dict[str, float]) -> PaintingRecord:
        """New loss weights for an unfinished Gatys job: stored in its params (a run that starts or
        resumes later paints with them) and its history, then sent to the worker painting it, which
        takes them at its next iteration. Weights it already has change nothing.

        Raises NotFound, PaintingFinished (409: it ended) and BadRequest (422: out of range, an engine
        without loss weights, too many changes).
        """
        try:
            record, changed = self.catalog.change_weights(job_id, weights)
        except NotFound:
            raise
        except ValueError as exc:
            raise BadRequest(str(exc)) from None
        if changed:
            sent = self.weights_running(job_id, weights_of(record.params))
            log.info("job %s: weights %s (%s)", job_id, weights_of(record.params), sent)
        return record

    def forget(self, job_id: str) -> None:
        """Stop the job if a worker paints it, then delete it and its images (those nothing else
        refers to; one stored within the grace period goes with the next collection). Raises NotFound."""
        record = self.catalog.get(job_id)
        if not record.finished:
            self.cancel_running(job_id)
        self.catalog.delete(job_id)
        self.events.forgotten(job_id)
        collect(self.images, self.catalog, record.image_ids(), grace_s=self.collect_grace_s)

    def forget_finished(self, older_than_s: float) -> int:
        """Forget the jobs that ended more than `older_than_s` seconds ago (Gallery has copied what it
        needs long before); how many. Studio keeps nobody's photos for longer than it must."""
        cutoff = datetime.now(UTC) - timedelta(seconds=older_than_s)
        forgotten = 0
        for job_id in self.catalog.finished_before(cutoff):
            with contextlib.suppress(NotFound):  # Gallery forgot it meanwhile
                self.forget(job_id)
                forgotten += 1
        return forgotten

    def cancel(self, job_id: str) -> PaintingRecord:
        """Cancel a job: at once when queued, within one evaluation when running. Raises NotFound."""
        record = self.catalog.get(job_id)
        if record.finished:
            return record
        if self.cancel_running(job_id) != "running":
            self.events.finish(job_id, Status.CANCELLED)
        return self.catalog.get(job_id)


def _check_resume(params: Params, init: bytes | None, start_iteration: int | None) -> None:
    """BadRequest unless `init` and `start_iteration` are both absent, or both given for a gatys job
    with 0 <= start_iteration < its iterations (`Params.steps`, coarse passes' included)."""
    if init is None and start_iteration is None:
        return
    if start_iteration is None:
        raise BadRequest("start_iteration: needed with init (the iteration the init image shows)")
    if init is None:
        raise BadRequest("init: needed with start_iteration (the image to resume from)")
    if params.engine != "gatys":
        raise BadRequest("init: only the gatys engine resumes from an image")
    if not 0 <= start_iteration < params.steps:
        raise BadRequest(
            f"start_iteration: must be 0 or more and less than the job's {params.steps} iterations, "
            f"got {start_iteration}"
        )


def start_forgetting(jobs: Jobs, *, every_s: float, older_than_s: float) -> asyncio.Task[None]:
    """A task that forgets finished jobs older than `older_than_s`, every `every_s` seconds (cancel it to stop)."""

    async def forget_forever() -> None:
        while True:
            await asyncio.sleep(every_s)
            try:
                forgotten = await asyncio.to_thread(jobs.forget_finished, older_than_s)
            except Exception as exc:  # storage trouble: the next round tries again
                log.warning("forgetting finished jobs failed: %s", exc)
                continue
            if forgotten:
                log.info("forgot %d finished job(s) older than %g s", forgotten, older_than_s)

    return asyncio.create_task(forget_forever(), name="forget-finished-jobs")


__all__ = ["Jobs", "start_forgetting"]
