"""The dispatcher: takes each unfinished painting to Studio and follows it there until it ends.

One asyncio task per unfinished painting (Studio keeps the queue; Gallery only follows):

1. no Studio job yet (`remote_id` unset): send it, `Idempotency-Key` = the painting id, so a retry
   after a lost answer finds the same job instead of making a second one; store the job id;
2. follow the job's event stream from `remote_cursor` (Last-Event-ID): copy each preview and the
   result into Gallery's own image store, record progress, move the cursor, publish on the hub;
3. Studio unreachable, slow or 5xx: the painting goes to `waiting_for_studio` and the task retries
   with capped exponential backoff and full jitter; Studio lost the job (404): send it again.

On start every unfinished painting gets its task again, so a Gallery restart resumes from the
stored job id and cursor. A painting cancelled or deleted meanwhile is noticed at each step and
its Studio job cancelled.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import Callable
from typing import Any

from gallery import views
from gallery.errors import StudioJobGone, StudioRejected, StudioUnavailable
from gallery.studio_client import StudioClient, StudioEvent
from painting.catalog import Catalog
from painting.errors import ImageRejected, NotFound
from painting.images import ImageStore
from painting.progress import ProgressPoint
from painting.records import UNFINISHED, Status

log = logging.getLogger("gallery.dispatcher")

_SENDABLE = frozenset({Status.QUEUED, Status.WAITING_FOR_STUDIO})


def backoff_s(attempt: int, *, initial_s: float, max_s: float, rng: Callable[[], float] = random.random) -> float:
    """Capped exponential backoff with full jitter: uniform in [0, min(max_s, initial_s * 2**attempt)]."""
    return rng() * min(max_s, initial_s * 2 ** min(attempt, 30))


class Dispatcher:
    """Sends paintings to Studio and follows them; see the module docstring."""

    def __init__(
        self,
        catalog: Catalog,
        images: ImageStore,
        studio: StudioClient,
        publish: Callable[[dict[str, Any]], None],
        *,
        retry_initial_s: float = 0.5,
        retry_max_s: float = 30.0,
    ) -> None:
        self.catalog = catalog
        self.images = images
        self.studio = studio
        self.publish = publish
        self.retry_initial_s = retry_initial_s
        self.retry_max_s = retry_max_s
        self._tasks: dict[str, asyncio.Task] = {}
        self._background: set[asyncio.Task] = set()

    def start(self) -> None:
        """Pick up every unfinished painting (after a restart: from its stored Studio job)."""
        for record in self.catalog.unfinished():
            self.kick(record.id)

    def kick(self, painting_id: str) -> None:
        """Make sure a task is taking this painting to Studio."""
        task = self._tasks.get(painting_id)
        if task is None or task.done():
            self._tasks[painting_id] = asyncio.create_task(self._run(painting_id), name=f"painting-{painting_id}")

    async def stop(self) -> None:
        tasks = [*self._tasks.values(), *self._background]
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task

    def forward_cancel(self, remote_id: str | None) -> None:
        """Tell Studio to cancel a job, in the background, retrying for a while if it is away."""
        if remote_id is None:
            return  # the painting's task cancels the job if its submission was in flight
        task = asyncio.create_task(self._cancel_remote(remote_id))
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def _cancel_remote(self, remote_id: str) -> None:
        for attempt in range(8):
            try:
                await self.studio.cancel(remote_id)
                return
            except (StudioJobGone, StudioRejected):
                return
            except StudioUnavailable as exc:
                log.info("cancelling Studio job %s: %s; retrying", remote_id, exc)
                await asyncio.sleep(backoff_s(attempt, initial_s=self.retry_initial_s, max_s=self.retry_max_s))

    # --- one painting -------------------------------------------------------------------------

    async def _run(self, painting_id: str) -> None:
        failures = 0
        while True:
            try:
                record = self.catalog.get(painting_id)
            except NotFound:
                return  # deleted
            if record.finished:
                return
            try:
                if record.remote_id is None:
                    if not await self._send(painting_id):
                        return
                    record = self.catalog.get(painting_id)
                if await self._follow(painting_id, record.remote_id, record.remote_cursor):
                    return
                failures = 0  # the stream ended without a final event: reconnect at once
            except StudioUnavailable as exc:
                self._wait(painting_id, str(exc))
                await asyncio.sleep(backoff_s(failures, initial_s=self.retry_initial_s, max_s=self.retry_max_s))
                failures += 1
            except StudioJobGone:
                log.warning("Studio lost the job of painting %s; sending it again", painting_id)
                with contextlib.suppress(NotFound):
                    self.catalog.transition(
                        painting_id, Status.QUEUED, from_=UNFINISHED, remote_id=None, remote_cursor=None
                    )
            except StudioRejected as exc:
                self._finish(painting_id, Status.FAILED, "failed", error=str(exc))
                return
            except NotFound:
                return  # deleted while we worked on it
            except asyncio.CancelledError:
                raise
            except Exception:  # a bug must not stop this painting for good: log it and retry
                log.exception("dispatching painting %s", painting_id)
                await asyncio.sleep(backoff_s(failures, initial_s=self.retry_initial_s, max_s=self.retry_max_s))
                failures += 1

    async def _send(self, painting_id: str) -> bool:
        """Create the Studio job; False when the painting ended (cancelled, deleted) meanwhile."""
        record = self.catalog.get(painting_id)
        content = self.images.read(record.content_image)
        styles = [self.images.read(i) for i in record.style_images]
        job = await self.studio.submit(painting_id, content, styles, record.params.model_dump(mode="json"))
        try:
            applied = self.catalog.transition(
                painting_id, Status.RUNNING, from_=_SENDABLE, remote_id=str(job["id"]), remote_cursor=None, error=None
            )
        except NotFound:
            applied = False
        if not applied:
            self.forward_cancel(str(job["id"]))
            return False
        return True

    async def _follow(self, painting_id: str, job_id: str | None, cursor: str | None) -> bool:
        """Follow the job's events from `cursor`; True when the painting has ended."""
        assert job_id is not None
        async for studio_event in self.studio.events(job_id, last_event_id=cursor):
            record = self.catalog.get(painting_id)
            if record.finished:
                if record.status == Status.CANCELLED:
                    self.forward_cancel(job_id)
                return True
            if record.status == Status.WAITING_FOR_STUDIO:
                self.catalog.transition(painting_id, Status.RUNNING, from_={Status.WAITING_FOR_STUDIO}, error=None)
            if await self._apply(painting_id, studio_event):
                return True
        return False

    async def _apply(self, painting_id: str, studio_event: StudioEvent) -> bool:
        data = studio_event.data
        if studio_event.type == "progress":
            try:
                point = ProgressPoint.from_json(data)
            except ValueError as exc:  # a Studio of another version: wait for a fix, never record NaN
                raise StudioUnavailable(f"Studio sent a progress event Gallery cannot read: {exc}") from exc
            iterations = data.get("iterations")
            preview = await self._copy_image(data.get("preview_image"))
            if self.catalog.record_progress(painting_id, point, preview_image=preview):
                self.catalog.update(painting_id, remote_cursor=studio_event.id)
                total = iterations if isinstance(iterations, int) else self.catalog.get(painting_id).iterations
                self.publish(views.progress_event(painting_id, point, total, preview))
            return False
        if studio_event.type == "done":
            result = await self._copy_image(data.get("result_image"))
            if result is None:
                self._finish(painting_id, Status.FAILED, "failed", error="Studio finished without a usable result")
            else:
                self._finish(painting_id, Status.DONE, "done", result_image=result)
            return True
        if studio_event.type == "failed":
            self._finish(painting_id, Status.FAILED, "failed", error=str(data.get("error") or "Studio failed"))
            return True
        if studio_event.type == "cancelled":
            self._finish(painting_id, Status.CANCELLED, "cancelled")
            return True
        return False  # an event type from a newer Studio: skip it

    async def _copy_image(self, studio_image_id: Any) -> str | None:
        if not studio_image_id:
            return None
        data = await self.studio.image(str(studio_image_id))
        try:
            return self.images.put(data).id
        except ImageRejected as exc:
            log.warning("Studio image %s refused: %s", studio_image_id, exc)
            return None

    def _finish(self, painting_id: str, status: Status, kind: str, **fields: Any) -> None:
        if self.catalog.transition(painting_id, status, from_=UNFINISHED, **fields):
            record = self.catalog.get(painting_id)
            extra: dict[str, Any] = {}
            if status == Status.DONE:
                extra["result_image"] = record.result_image
            elif status == Status.FAILED:
                extra["error"] = record.error
            self.publish(views.event(kind, painting_id, **extra))

    def _wait(self, painting_id: str, reason: str) -> None:
        with contextlib.suppress(NotFound):
            applied = self.catalog.transition(
                painting_id, Status.WAITING_FOR_STUDIO, from_={Status.QUEUED, Status.RUNNING}, error=reason
            )
            if applied:
                self.publish(views.event("waiting", painting_id, reason=reason))


__all__ = ["Dispatcher", "backoff_s"]
