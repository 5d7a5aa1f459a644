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

What Studio must do to a job of a cancelled or deleted painting (cancel it; forget it with its
images) is an intent stored in the catalog (`remote_actions`, written in the same transaction as the
cancel or delete: `cancel` and `delete` here) and retried with capped backoff until Studio confirms
it, however long Studio is away and across Gallery restarts: Studio never paints a cancelled or
deleted painting to the end, and keeps nothing of a deleted one.

New loss weights for a painting (`change_weights`) go the same way: Gallery's record is the truth
(its params go with any later sending, after Studio lost the job too), and a `weights` intent tells
the job the painting's latest weights until Studio confirms, asked anew by each later change.

Several Studios (`gallery.pool`): each painting is sent to the one the pool chooses, and its record
keeps that Studio's URL (`remote_url`) beside the job id; every call about the job goes there. A
Studio gone for longer than the grace period loses its unfinished paintings: each is taken back
(`Catalog.move_off_remote`: queued again, and a `forget` of the old job stored for that Studio in the
same transaction) and sent to another, resuming from the latest preview Gallery holds (the preview
as `init`, its iteration as `start_iteration`), under a new Idempotency-Key (the painting id and how
often it moved). When the old Studio returns it is told to forget the job: one painting, one result.

Several Gallery processes (replicas on one PostgreSQL): a painting's task first claims the
painting's lease (`Catalog.claim`) and ends at once when another process holds it. Every third of
`lease_s` the leases held are renewed; a task whose lease another process took (this one stalled
past it) is stopped, and every painting nobody drives (its process died: the lease ran out) gets a
task here, as does every intent for Studio still due. A clean stop gives the leases back.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import Callable, Coroutine, Mapping
from typing import Any

from gallery import views
from gallery.errors import StudioImageGone, StudioJobGone, StudioRejected, StudioUnavailable
from gallery.hub import Publish
from gallery.pool import Member, StudioPool
from gallery.studio_client import StudioClient, StudioEvent
from httpapi.logs import about_job, about_painting
from painting.catalog import Catalog, RemoteAction
from painting.errors import ImageRejected, NotFound, StorageUnavailable
from painting.fsck import SERVICE_GRACE_S, collect
from painting.images import ImageStore, upright_size
from painting.params import weights_of
from painting.progress import ProgressPoint
from painting.records import UNFINISHED, PaintingRecord, Status

log = logging.getLogger("gallery.dispatcher")

_SENDABLE = frozenset({Status.QUEUED, Status.WAITING_FOR_STUDIO})


_JITTER = random.Random()  # its own generator: the global one belongs to whoever seeds it (tests, Hypothesis)


def backoff_s(attempt: int, *, initial_s: float, max_s: float, rng: Callable[[], float] = _JITTER.random) -> float:
    """Capped exponential backoff with full jitter: uniform in [0, min(max_s, initial_s * 2**attempt)]."""
    return rng() * min(max_s, initial_s * 2 ** min(attempt, 30))


class _ImagesMissing(Exception):
    """A painting's stored images are gone, so it can never be sent (before: queued for ever)."""


class Dispatcher:
    """Sends paintings to Studio and follows them; see the module docstring."""

    def __init__(
        self,
        catalog: Catalog,
        images: ImageStore,
        pool: StudioPool,
        publish: Publish,
        *,
        retry_initial_s: float = 0.5,
        retry_max_s: float = 30.0,
        collect_grace_s: float = SERVICE_GRACE_S,
        on_retry: Callable[[str], None] = lambda reason: None,
        holder: str = "gallery",
        lease_s: float = 15.0,
    ) -> None:
        self.catalog = catalog
        self.images = images
        self.pool = pool
        self.publish = publish
        self.holder = holder  # this process's name on the leases of the paintings it drives
        self.lease_s = lease_s
        self._held: set[str] = set()  # paintings whose lease this process holds
        self.retry_initial_s = retry_initial_s
        self.retry_max_s = retry_max_s
        self._tasks: dict[str, asyncio.Task] = {}
        self._background: set[asyncio.Task] = set()
        self._telling: set[str] = set()  # remote job ids with a task telling Studio what to do
        self.collect_grace_s = collect_grace_s
        self.on_retry = on_retry  # told each time a painting waits to try again: "studio", "storage", "stream"
        self.on_move: Callable[[], None] = lambda: None  # told each time a painting leaves a gone Studio

    def start(self) -> None:
        """Pick up every unfinished painting nobody else drives (after a restart: from its stored
        Studio job) and every cancel or forget Studio has not confirmed yet; then keep the leases."""
        self._pick_up()
        self._in_background(self._keep_leases(), "dispatch-leases")

    def _pick_up(self) -> None:
        for painting_id in self.catalog.claimable(self.holder):
            self.kick(painting_id)
        for remote_id, _ in self.catalog.remote_actions():
            self._tell_studio_in_background(remote_id)

    async def _keep_leases(self) -> None:
        """Renew this process's leases, stop the tasks of paintings another process took, and pick up
        what nobody drives, every third of the lease."""
        while True:
            await asyncio.sleep(self.lease_s / 3)
            try:
                held = self.catalog.renew(self.holder, self.lease_s)
                for painting_id in self._held - held:
                    task = self._tasks.get(painting_id)
                    if task is not None and not task.done() and not self.catalog.get(painting_id).finished:
                        log.warning("painting %s: another Gallery process drives it now; leaving it", painting_id)
                        task.cancel()
                self._held &= held
                self._pick_up()
            except (StorageUnavailable, NotFound) as exc:
                log.warning("keeping the leases: %s", exc)
            except Exception:  # a bug must not stop the renewals for good
                log.exception("keeping the leases")

    def cancel(self, painting_id: str) -> bool:
        """Cancel an unfinished painting and, in the same transaction, store the intent to cancel its
        Studio job; then forward it. False when the painting had already ended. Raises NotFound."""
        if not self.catalog.transition(painting_id, Status.CANCELLED, cancel_remote=True):
            return False
        remote_id = self.catalog.get(painting_id).remote_id
        # Without a job, the painting's task (here or in another process) cancels a submission in flight.
        if remote_id is not None:
            self._tell_studio_in_background(remote_id)
        self.publish(views.event("cancelled", painting_id), self.catalog.get(painting_id).owner)
        return True

    def delete(self, painting_id: str) -> None:
        """Delete a painting: its record, then its images here and its job and images at Studio
        (stored as an intent in the same transaction, forwarded until Studio confirms). Raises NotFound."""
        record = self.catalog.get(painting_id)
        self.catalog.delete(painting_id, forget_remote=True)
        if record.remote_id is not None:
            self._tell_studio_in_background(record.remote_id)
        self.publish(views.event("deleted", painting_id), record.owner)
        self._in_background(
            asyncio.to_thread(collect, self.images, self.catalog, record.image_ids(), grace_s=self.collect_grace_s),
            f"collect-{painting_id}",
        )

    def change_weights(self, painting_id: str, weights: Mapping[str, float]) -> PaintingRecord:
        """New loss weights for an unfinished painting: its record's params and history, and, in the
        same transaction, the intent that its Studio job takes them (forwarded until Studio confirms;
        a painting not sent yet goes with them). The painting as it now is. Raises NotFound,
        PaintingFinished, ValueError (see `Catalog.change_weights`)."""
        record, changed = self.catalog.change_weights(painting_id, weights, forward_remote=True)
        if changed:
            if record.remote_id is not None:
                self._tell_studio_in_background(record.remote_id)
            params = record.params.model_dump(mode="json")
            changes = [change.to_json() for change in record.weight_changes]
            self.publish(views.event("weights", painting_id, params=params, weight_changes=changes), record.owner)
        return record

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
        if self._held:  # another process may take them at once
            with contextlib.suppress(StorageUnavailable):
                self.catalog.release(self.holder)

    def forward(self, remote_id: str, action: RemoteAction, remote_url: str | None) -> None:
        """Store the intent that the Studio at `remote_url` `cancel` or `forget` a job (or take its
        painting's latest `weights`) and tell it, until it confirms."""
        self.catalog.add_remote_action(remote_id, action, remote_url)
        self._tell_studio_in_background(remote_id)

    def _in_background(self, work: Coroutine[Any, Any, object], name: str) -> asyncio.Task:
        task = asyncio.create_task(work, name=name)
        self._background.add(task)
        task.add_done_callback(self._background.discard)
        return task

    def _tell_studio_in_background(self, remote_id: str) -> None:
        if remote_id in self._telling:
            return
        self._telling.add(remote_id)
        task = self._in_background(self._tell_studio(remote_id), f"tell-studio-{remote_id}")
        task.add_done_callback(lambda _: self._telling.discard(remote_id))

    async def _tell_studio(self, remote_id: str) -> None:
        """Do what is stored for this job at Studio (a forget may replace a cancel meanwhile), with
        capped backoff however long Studio is away; forget the intent once Studio confirms it."""
        attempt = 0
        while True:
            try:
                due = self.catalog.remote_action(remote_id)
                if due is None:
                    return
                member = self.pool.member(due.remote_url)
                if member is None:
                    log.warning(
                        "Studio job %s: its Studio %s left the pool; cannot %s it",
                        remote_id,
                        due.remote_url,
                        due.action,
                    )
                else:
                    try:
                        await self._do_at_studio(member.client, remote_id, due.action)
                        member.reached()
                    except (StudioJobGone, StudioRejected) as exc:
                        log.info("Studio job %s, %s: %s; nothing left to do", remote_id, due.action, exc)
                    except StudioUnavailable as exc:
                        member.unreachable(str(exc))
                        raise
                # Forget the intent, unless asked anew since.
                self.catalog.remove_remote_action(remote_id, due.action, asked_by=due.asked)
                attempt = 0
            except (StudioUnavailable, StorageUnavailable) as exc:
                log.info("Studio job %s: %s; retrying", remote_id, exc)
                await asyncio.sleep(backoff_s(attempt, initial_s=self.retry_initial_s, max_s=self.retry_max_s))
                attempt += 1

    async def _do_at_studio(self, studio: StudioClient, remote_id: str, action: RemoteAction) -> None:
        if action == "forget":
            await studio.forget(remote_id)
        elif action == "cancel":
            await studio.cancel(remote_id)
        else:  # the painting's latest weights, read now: a later change is never overtaken by an older one
            record = self.catalog.find_by_remote_id(remote_id)
            if record is not None and not record.finished:
                await studio.change_weights(remote_id, weights_of(record.params))

    # --- one painting -------------------------------------------------------------------------

    async def _run(self, painting_id: str) -> None:
        about_painting(painting_id)  # this task's log lines carry the painting's id (and its job's, below)
        try:
            if not self.catalog.claim(painting_id, self.holder, self.lease_s):
                return  # finished, deleted, or another Gallery process drives it
        except (StorageUnavailable, NotFound):
            return  # the lease loop picks it up again
        self._held.add(painting_id)
        failures = 0
        member: Member | None = None
        while True:
            try:
                record = self.catalog.get(painting_id)
                if record.finished:
                    return
                if record.remote_id is not None and self._move_if_gone(record):
                    continue
                if record.remote_id is None:
                    if not await self._send(painting_id):
                        return
                    record = self.catalog.get(painting_id)
                member = self.pool.member(record.remote_url)
                if member is None:  # its Studio left the pool, and the move did not apply: read it again
                    await asyncio.sleep(backoff_s(failures, initial_s=self.retry_initial_s, max_s=self.retry_max_s))
                    failures += 1
                    continue
                about_job(record.remote_id, studio=None if self.pool.single else member.name)
                if await self._follow(painting_id, member, record.remote_id, record.remote_cursor):
                    return
                # The stream ended without an ending: Studio is shutting down, or a proxy cut it.
                # Reconnect after a pause that grows while nothing new arrives, so a stream that
                # keeps ending early is no busy loop.
                if self.catalog.get(painting_id).remote_cursor != record.remote_cursor:
                    failures = 0
                self.on_retry("stream")
                await asyncio.sleep(backoff_s(failures, initial_s=self.retry_initial_s, max_s=self.retry_max_s))
                failures += 1
            except StorageUnavailable as exc:  # Gallery's own disk or database: wait for it
                log.warning("painting %s: %s; retrying", painting_id, exc)
                self.on_retry("storage")
                await asyncio.sleep(backoff_s(failures, initial_s=self.retry_initial_s, max_s=self.retry_max_s))
                failures += 1
            except StudioUnavailable as exc:
                record_now = self._record_or_none(painting_id)
                on = self.pool.member(record_now.remote_url) if record_now and record_now.remote_id else None
                if on is not None:
                    on.unreachable(str(exc))
                    if self.pool.gone(on):
                        continue  # the next round moves it to another Studio
                self._wait(painting_id, str(exc))
                self.on_retry("studio")
                await asyncio.sleep(backoff_s(failures, initial_s=self.retry_initial_s, max_s=self.retry_max_s))
                failures += 1
            except StudioJobGone:
                log.warning("Studio lost the job of painting %s; sending it again", painting_id)
                with contextlib.suppress(NotFound):
                    self.catalog.transition(
                        painting_id,
                        Status.QUEUED,
                        from_=UNFINISHED,
                        remote_id=None,
                        remote_url=None,
                        remote_cursor=None,
                    )
            except (StudioRejected, _ImagesMissing) as exc:
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

    def _record_or_none(self, painting_id: str) -> PaintingRecord | None:
        try:
            return self.catalog.get(painting_id)
        except (NotFound, StorageUnavailable):
            return None

    def _move_if_gone(self, record: PaintingRecord) -> bool:
        """Take the painting back from its job when its Studio is gone (or left the pool), to send it
        to another; whether it moved."""
        member = self.pool.member(record.remote_url)
        if not self.pool.gone(member) or record.remote_id is None:
            return False
        name = member.name if member is not None else record.remote_url
        reason = f"Studio {name} is gone; painting it on another Studio from its latest preview"
        if self.catalog.move_off_remote(record.id, record.remote_id, error=reason):
            log.warning("moving off job %s: %s", record.remote_id, reason)
            self.on_move()
            self._tell_studio_in_background(record.remote_id)  # forget it there, when it returns
            self.publish(views.event("waiting", record.id, reason=reason), record.owner)
        return True

    async def _send(self, painting_id: str) -> bool:
        """Create the Studio job on the Studio the pool chooses; False when the painting ended
        (cancelled, deleted) meanwhile."""
        record = self.catalog.get(painting_id)
        try:
            content = self.images.read(record.content_image) if record.content_image is not None else None
            styles = [self.images.read(i) for i in record.style_images]
        except NotFound:  # removed by hand, or by a collection with no grace: it can never be sent
            raise _ImagesMissing(
                "Its photo or a style image is missing from Gallery's store, so it cannot be painted: "
                "upload them again."
            ) from None
        width, height = (upright_size(content) if content is not None else None) or (None, None)
        member = await self.pool.choose(record.params, width, height, len(styles))
        key = painting_id if record.attempts == 0 else f"{painting_id}.{record.attempts}"
        try:
            job = await member.client.submit(
                key, content, styles, record.params.model_dump(mode="json"), resume=self._resume_point(record)
            )
        except StudioUnavailable as exc:
            member.unreachable(str(exc))
            raise
        member.reached()
        job_id = str(job["id"])
        try:
            applied = self.catalog.transition(
                painting_id,
                Status.RUNNING,
                from_=_SENDABLE,
                remote_id=job_id,
                remote_url=member.url,
                remote_cursor=None,
                error=None,
            )
        except NotFound:  # deleted while it was being sent: Studio must forget the job it just made
            self.forward(job_id, "forget", member.url)
            return False
        if not applied:  # cancelled meanwhile
            self.forward(job_id, "cancel", member.url)
            return False
        now = self.catalog.get(painting_id).params
        if now.engine == "gatys" and weights_of(now) != weights_of(record.params):  # changed while it was sent
            self.forward(job_id, "weights", member.url)
        log.info("sent to Studio%s as job %s", "" if self.pool.single else f" {member.name}", job_id)
        return True

    def _resume_point(self, record: PaintingRecord) -> tuple[bytes, int] | None:
        """The latest preview Gallery holds and its iteration, for a Gatys painting that got that far
        (one sent again after its Studio was gone or lost its job); None: from the beginning."""
        if record.params.engine != "gatys" or record.preview_image is None or not record.preview_iteration:
            return None
        if record.preview_iteration >= record.iterations:
            return None
        try:
            return self.images.read(record.preview_image), record.preview_iteration
        except NotFound:
            return None

    async def _follow(self, painting_id: str, member: Member, job_id: str | None, cursor: str | None) -> bool:
        """Follow the job's events from `cursor`; True when the painting has ended."""
        assert job_id is not None
        async for studio_event in member.client.events(job_id, last_event_id=cursor):
            member.reached()
            record = self.catalog.get(painting_id)
            if record.finished:
                if record.status == Status.CANCELLED:
                    self.forward(job_id, "cancel", member.url)
                return True
            if record.status == Status.WAITING_FOR_STUDIO:
                self.catalog.transition(painting_id, Status.RUNNING, from_={Status.WAITING_FOR_STUDIO}, error=None)
            if await self._apply(painting_id, member.client, studio_event):
                return True
        return False

    async def _apply(self, painting_id: str, studio: StudioClient, studio_event: StudioEvent) -> bool:
        data = studio_event.data
        if studio_event.type == "progress":
            try:
                point = ProgressPoint.from_json(data)
            except ValueError as exc:  # a Studio of another version: wait for a fix, never record NaN
                raise StudioUnavailable(f"Studio sent a progress event Gallery cannot read: {exc}") from exc
            iterations = data.get("iterations")
            preview = await self._copy_image(studio, data.get("preview_image"))
            cursor = studio_event.id or None  # with the point, in one transaction: no point is published twice
            if self.catalog.record_progress(painting_id, point, preview_image=preview, remote_cursor=cursor):
                if point.weights is not None:  # the first iteration painted with them: mark the change there
                    self.catalog.mark_weights_applied(painting_id, point.iteration, point.weights)
                record = self.catalog.get(painting_id)
                total = iterations if isinstance(iterations, int) else record.iterations
                self.publish(views.progress_event(painting_id, point, total, preview), record.owner)
            return False
        if studio_event.type == "done":
            result = await self._copy_image(studio, data.get("result_image"))
            if result is None:
                self._finish(painting_id, Status.FAILED, "failed", error="Studio finished without a usable result")
            else:
                # The page shows the result now: the last preview is no longer needed (gc collects it).
                # The iterations run (one for the engines that paint in one pass, with no progress).
                ran = data.get("iteration")
                done_at = max(ran, self.catalog.get(painting_id).iteration) if type(ran) is int else None
                extra = {"iteration": done_at} if done_at is not None else {}
                self._finish(painting_id, Status.DONE, "done", result_image=result, preview_image=None, **extra)
            return True
        if studio_event.type == "failed":
            self._finish(painting_id, Status.FAILED, "failed", error=str(data.get("error") or "Studio failed"))
            return True
        if studio_event.type == "cancelled":
            self._finish(painting_id, Status.CANCELLED, "cancelled")
            return True
        return False  # an event type from a newer Studio: skip it

    async def _copy_image(self, studio: StudioClient, studio_image_id: Any) -> str | None:
        if not studio_image_id:
            return None
        try:
            data = await studio.image(str(studio_image_id))
        except StudioImageGone:  # an old preview Studio replaced and collected while Gallery was behind
            log.info("Studio image %s is gone; skipping it", studio_image_id)
            return None
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
            log.info("ended: %s%s", status.value, f" ({record.error})" if record.error else "")
            self.publish(views.event(kind, painting_id, **extra), record.owner)

    def _wait(self, painting_id: str, reason: str) -> None:
        with contextlib.suppress(NotFound):
            applied = self.catalog.transition(
                painting_id, Status.WAITING_FOR_STUDIO, from_={Status.QUEUED, Status.RUNNING}, error=reason
            )
            if applied:
                self.publish(views.event("waiting", painting_id, reason=reason), self.catalog.get(painting_id).owner)


__all__ = ["Dispatcher", "backoff_s"]
