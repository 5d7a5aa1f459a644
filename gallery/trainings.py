"""The training follower: takes each unfinished training to a Studio and follows it there until it ends.

    trainings = TrainingFollower(catalog, images, pool, broadcast.publish, TrainingSets(root))
    trainings.start()                         # picks up every unfinished training (after a restart too)
    record = await trainings.create(training_id, params, images, owner)   # stored, queued, on its way
    trainings.cancel(training_id); trainings.delete(training_id)
    await trainings.stop()

Like the painting dispatcher (gallery.dispatcher), simpler. One asyncio task per unfinished training:

1. not sent yet (`remote_id` unset): choose a Studio (below), send the params and each collection as
   one uncompressed zip (`POST /v1/trainings`, `Idempotency-Key` = the training id, so a retry after a
   lost answer finds the same training there), store its id and URL, then delete Gallery's copy of
   the images (Studio keeps its own);
2. follow its event stream from `remote_cursor` (Last-Event-ID): each `progress` adds a step to the
   loss curves, with the sample image copied into Gallery's image store and the cursor moved in the
   same transaction; `done`, `failed`, `cancelled` end it;
3. Studio unreachable, slow or 5xx: the training goes to `waiting_for_studio` and the task retries
   with capped exponential backoff; a Studio refusal (4xx: too few images by its count, a CPU Studio
   that does not train, with its estimate of the seconds a step) fails the training with Studio's
   words; Studio lost the training (404): sent again while Gallery still holds the images, else failed.

Every change is published as a WebSocket event through the same publish function as the
dispatcher's (every replica's pages see it; the hub's owner rules apply): `training.created`,
`training.running` (Studio accepted it), `training.waiting` {reason}, `training.progress` {step,
steps, losses, seconds_per_step, checkpoint_step, sample_image}, `training.done` {model,
sample_image}, `training.failed` {error}, `training.cancelled`, `training.deleted`.

Choosing a Studio, kept simple: the first Studio of the pool that is up and says it has the `model`
engine (`engines.model` in its /v1/status: the engine that serves what a training makes); with one
Studio, that one. Load, queues and estimates are not weighed, and a training whose Studio is gone
stays with it (training resumes from Studio's checkpoints, which only that Studio holds).

Cancel and delete are stored as intents in the same transaction (`remote_actions`, target
"training") and told to the training's Studio with capped backoff until it confirms, however long it
is away and across Gallery restarts, as for paintings. Deleting a training here never deletes the
model a finished one made: it stays in Studio's models folder.

Replicas: trainings have no lease. Each process follows the trainings it was given and, at its
start, every unfinished one, so after a restart beside running replicas a training may be followed
twice: its record stays right (one Studio training per Idempotency-Key, progress written by step),
but its pages may get its events twice.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Coroutine, Mapping, Sequence
from typing import IO, Any

from gallery import views
from gallery.dispatcher import backoff_s
from gallery.errors import StudioImageGone, StudioJobGone, StudioRejected, StudioUnavailable
from gallery.hub import Publish
from gallery.pool import Member, StudioPool
from gallery.studio_client import StudioClient, StudioEvent
from gallery.training_sets import TrainingSets
from painting.catalog import Catalog, RemoteAction
from painting.errors import ImageRejected, NotFound, StorageUnavailable
from painting.fsck import SERVICE_GRACE_S, collect
from painting.images import ImageStore
from painting.records import UNFINISHED, Status, TrainingPoint, TrainingRecord
from painting.training import TrainingParams, collections_for

log = logging.getLogger("gallery.trainings")

_SENDABLE = frozenset({Status.QUEUED, Status.WAITING_FOR_STUDIO})
_IMAGES_GONE = "Gallery no longer holds this training's images, so it cannot be sent: upload them again."


class _ImagesGone(Exception):
    """Gallery no longer holds a training's images, and Studio does not have them either."""


class TrainingFollower:
    """Sends trainings to Studio and follows them; see the module docstring."""

    def __init__(
        self,
        catalog: Catalog,
        images: ImageStore,
        pool: StudioPool,
        publish: Publish,
        sets: TrainingSets,
        *,
        retry_initial_s: float = 0.5,
        retry_max_s: float = 30.0,
        collect_grace_s: float = SERVICE_GRACE_S,
        on_retry: Callable[[str], None] = lambda reason: None,
    ) -> None:
        self.catalog = catalog
        self.images = images
        self.pool = pool
        self.publish = publish
        self.sets = sets
        self.retry_initial_s = retry_initial_s
        self.retry_max_s = retry_max_s
        self.collect_grace_s = collect_grace_s
        self.on_retry = on_retry
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self.checking = asyncio.Semaphore(1)  # the uploads being read and checked (gallery.training_routes)
        self._background: set[asyncio.Task[Any]] = set()
        self._telling: set[str] = set()  # Studio training ids with a task telling Studio what to do

    # --- the whole --------------------------------------------------------------------------

    def start(self) -> None:
        """Follow every unfinished training again (from its stored Studio training and cursor), and
        remove the image sets no unsent training owns."""
        unfinished = self.catalog.unfinished_trainings()
        removed = self.sets.sweep({r.id for r in unfinished if r.remote_id is None})
        if removed:
            log.info("removed %d training image folder(s) nothing waits for", len(removed))
        for record in unfinished:
            self.kick(record.id)
        for remote_id, _ in self.catalog.remote_actions(target="training"):  # cancels and forgets still due
            self._tell_in_background(remote_id)

    async def stop(self) -> None:
        tasks = [*self._tasks.values(), *self._background]
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task

    def kick(self, training_id: str) -> None:
        """Make sure a task is taking this training to Studio."""
        task = self._tasks.get(training_id)
        if task is None or task.done():
            self._tasks[training_id] = asyncio.create_task(self._run(training_id), name=f"training-{training_id}")

    async def create(
        self,
        training_id: str,
        params: TrainingParams,
        images: Mapping[str, Sequence[bytes]],
        owner: str | None,
    ) -> TrainingRecord:
        """Keep a checked upload's images, store the training `queued`, tell the pages, and send it.
        `params` are resolved (their `name` set). Raises StorageUnavailable (nothing kept)."""
        await asyncio.to_thread(self.sets.store, training_id, images)
        try:
            record = self.catalog.create_training(
                kind=params.kind,
                params=params.model_dump(mode="json"),
                steps=params.steps,
                model_name=params.model_name(training_id),
                counts={name: len(found) for name, found in images.items()},
                training_id=training_id,
                owner=owner,
            )
        except BaseException:
            await asyncio.to_thread(self.sets.remove, training_id)
            raise
        self.publish(views.training_event("created", record.id, training=views.training_json(record)), record.owner)
        self.kick(record.id)
        return record

    def cancel(self, training_id: str) -> bool:
        """Cancel an unfinished training here, and at its Studio (in the background); False when it
        had already ended. Raises NotFound."""
        if not self.catalog.transition_training(training_id, Status.CANCELLED, from_=UNFINISHED, cancel_remote=True):
            return False
        record = self.catalog.get_training(training_id)
        if record.remote_id is not None:  # stored with the cancel: told until Studio confirms, restarts too
            self._tell_in_background(record.remote_id)
        else:  # never sent (its task, if it is sending now, cancels what Studio made): its images can go
            self._in_background(asyncio.to_thread(self.sets.remove, training_id), f"remove-set-{training_id}")
        self.publish(views.training_event("cancelled", training_id), record.owner)
        return True

    def delete(self, training_id: str) -> None:
        """Delete a training: its record and curves, its images here, and its training at Studio (in
        the background; a model it finished stays there). Raises NotFound."""
        record = self.catalog.get_training(training_id)
        if not self.catalog.delete_training(training_id, forget_remote=True):
            raise NotFound("No training with that id.")
        if record.remote_id is not None:  # stored with the delete: told until Studio confirms, restarts too
            self._tell_in_background(record.remote_id)
        samples = {record.sample_image} if record.sample_image else set()

        def clean_up() -> None:
            self.sets.remove(training_id)
            collect(self.images, self.catalog, samples, grace_s=self.collect_grace_s)

        self._in_background(asyncio.to_thread(clean_up), f"clean-up-{training_id}")
        self.publish(views.training_event("deleted", training_id), record.owner)

    # --- telling Studio -----------------------------------------------------------------------

    def _in_background(self, work: Coroutine[Any, Any, object], name: str) -> asyncio.Task[Any]:
        task = asyncio.create_task(work, name=name)
        self._background.add(task)
        task.add_done_callback(self._background.discard)
        return task

    def _tell_studio(self, remote_id: str, remote_url: str | None, action: RemoteAction) -> None:
        """Store the intent that Studio `cancel` or `forget` a training, and tell it until it confirms."""
        self.catalog.add_remote_action(remote_id, action, remote_url, target="training")
        self._tell_in_background(remote_id)

    def _tell_in_background(self, remote_id: str) -> None:
        if remote_id in self._telling:
            return
        self._telling.add(remote_id)
        task = self._in_background(self._tell(remote_id), f"tell-studio-training-{remote_id}")
        task.add_done_callback(lambda _: self._telling.discard(remote_id))

    async def _tell(self, remote_id: str) -> None:
        """Do what is stored for this training at its Studio (a forget may replace a cancel meanwhile),
        retried with capped backoff however long Studio is away, across restarts (the intent is in the
        catalog); forget the intent once Studio confirms it."""
        attempt = 0
        while True:
            try:
                due = self.catalog.remote_action(remote_id)
                if due is None:
                    return
                member = self.pool.member(due.remote_url)
                if member is None:
                    log.warning("Studio training %s: its Studio %s left the pool", remote_id, due.remote_url)
                else:
                    try:
                        if due.action == "cancel":
                            await member.client.cancel_training(remote_id)
                        else:
                            await member.client.forget_training(remote_id)
                        member.reached()
                    except (StudioJobGone, StudioRejected) as exc:  # gone already, or ended: nothing left to do
                        log.info("Studio training %s, %s: %s", remote_id, due.action, exc)
                    except StudioUnavailable as exc:
                        member.unreachable(str(exc))
                        raise
                self.catalog.remove_remote_action(remote_id, due.action, asked_by=due.asked)
                attempt = 0
            except (StudioUnavailable, StorageUnavailable) as exc:
                log.info("Studio training %s: %s; retrying", remote_id, exc)
                await asyncio.sleep(backoff_s(attempt, initial_s=self.retry_initial_s, max_s=self.retry_max_s))
                attempt += 1

    # --- one training -------------------------------------------------------------------------

    async def _run(self, training_id: str) -> None:
        failures = 0
        while True:
            try:
                record = self.catalog.get_training(training_id)
                if record.finished:
                    return
                if record.remote_id is None:
                    if not await self._send(record):
                        return
                    failures = 0
                    continue
                member = self.pool.member(record.remote_url)
                if member is None:
                    self._finish(
                        training_id,
                        Status.FAILED,
                        "failed",
                        error=f"Its Studio ({record.remote_url}) is no longer one of Gallery's Studios.",
                    )
                    return
                if await self._follow(training_id, member, record.remote_id, record.remote_cursor):
                    return
                # The stream ended without an ending (Studio stopping, a proxy): reconnect after a
                # pause that grows while nothing new arrives.
                if self.catalog.get_training(training_id).remote_cursor != record.remote_cursor:
                    failures = 0
                self.on_retry("stream")
                await self._pause(failures)
                failures += 1
            except StorageUnavailable as exc:
                log.warning("training %s: %s; retrying", training_id, exc)
                self.on_retry("storage")
                await self._pause(failures)
                failures += 1
            except StudioUnavailable as exc:
                self._wait(training_id, str(exc))
                self.on_retry("studio")
                await self._pause(failures)
                failures += 1
            except StudioJobGone as exc:
                if not self.sets.has(training_id):
                    self._finish(
                        training_id,
                        Status.FAILED,
                        "failed",
                        error="Studio lost this training, and Gallery no longer holds its images: upload them again.",
                    )
                    return
                log.warning("training %s: %s; sending it again", training_id, exc)
                with contextlib.suppress(NotFound):
                    self.catalog.transition_training(
                        training_id,
                        Status.QUEUED,
                        bump_attempts=True,
                        remote_id=None,
                        remote_url=None,
                        remote_cursor=None,
                    )
            except (StudioRejected, _ImagesGone) as exc:
                self._finish(training_id, Status.FAILED, "failed", error=str(exc))
                return
            except NotFound:
                return  # deleted meanwhile
            except asyncio.CancelledError:
                raise
            except Exception:  # a bug must not stop this training for good: log it and retry
                log.exception("following training %s", training_id)
                await self._pause(failures)
                failures += 1

    async def _pause(self, failures: int) -> None:
        await asyncio.sleep(backoff_s(failures, initial_s=self.retry_initial_s, max_s=self.retry_max_s))

    def choose(self) -> Member:
        """The Studio to send a training to: the first that is up and has the model engine; with one
        Studio, it; none up: the first not read yet. Raises StudioUnavailable or StudioRejected."""
        members = self.pool.members
        if self.pool.single:
            return members[0]
        up = [m for m in members if m.up]
        engines = {m: (m.status or {}).get("engines") for m in up}
        for member in up:
            said = engines[member]
            if isinstance(said, dict) and "model" in said:
                return member
        if any(not said for said in engines.values()):  # a Studio whose workers have not said yet: wait
            raise StudioUnavailable("The Studios are starting their workers")
        if up:
            raise StudioRejected(
                "No Studio of this Gallery can train: none has the model engine (STUDIO_MODELS_DIR unset)."
            )
        unread = [m for m in members if m.status is None and m.down_since is None]
        if unread:
            return unread[0]
        raise StudioUnavailable(
            "No Studio answers: " + "; ".join(f"{m.name}: {m.problem or 'not read yet'}" for m in members)
        )

    async def _send(self, record: TrainingRecord) -> bool:
        """Send the training to a Studio and store which; False when it ended meanwhile (cancelled,
        deleted: what Studio made is cancelled or forgotten there)."""
        training_id = record.id
        if not self.sets.has(training_id):
            raise _ImagesGone(_IMAGES_GONE)
        member = self.choose()
        key = training_id if record.attempts == 0 else f"{training_id}.{record.attempts}"
        try:
            opened = await asyncio.to_thread(self._archives, training_id, collections_for(record.kind))
        except NotFound:
            raise _ImagesGone(_IMAGES_GONE) from None
        try:
            answer = await member.client.submit_training(key, record.params, opened)
        except StudioUnavailable as exc:
            member.unreachable(str(exc))
            raise
        finally:
            for archive in opened.values():
                archive.close()
        member.reached()
        remote_id = str(answer["id"])
        try:
            applied = self.catalog.transition_training(
                training_id,
                Status.RUNNING,
                from_=_SENDABLE,
                remote_id=remote_id,
                remote_url=member.url,
                remote_cursor=None,
                error=None,
            )
        except NotFound:  # deleted while it was being sent
            self._tell_studio(remote_id, member.url, "forget")
            return False
        if not applied:  # cancelled meanwhile
            self._tell_studio(remote_id, member.url, "cancel")
            await asyncio.to_thread(self.sets.remove, training_id)
            return False
        await asyncio.to_thread(self.sets.remove, training_id)  # Studio has its own copy now
        where = "" if self.pool.single else f" {member.name}"
        log.info("training %s sent to Studio%s as %s", training_id, where, remote_id)
        self.publish(views.training_event("running", training_id, status="running"), record.owner)
        return True

    def _archives(self, training_id: str, names: Sequence[str]) -> dict[str, IO[bytes]]:
        """Each collection of a stored set as an open zip (`TrainingSets.archive`), all or none."""
        opened: dict[str, IO[bytes]] = {}
        try:
            for name in names:
                opened[name] = self.sets.archive(training_id, name)
        except BaseException:
            for archive in opened.values():
                archive.close()
            raise
        return opened

    async def _follow(self, training_id: str, member: Member, remote_id: str, cursor: str | None) -> bool:
        """Follow the training's events from `cursor`; True when it has ended."""
        async for studio_event in member.client.training_events(remote_id, last_event_id=cursor):
            member.reached()
            record = self.catalog.get_training(training_id)
            if record.finished:
                if record.status == Status.CANCELLED:
                    self._tell_studio(remote_id, member.url, "cancel")
                return True
            if record.status == Status.WAITING_FOR_STUDIO:
                self.catalog.transition_training(
                    training_id, Status.RUNNING, from_={Status.WAITING_FOR_STUDIO}, error=None
                )
            if await self._apply(record, member.client, studio_event):
                return True
        return False

    async def _apply(self, record: TrainingRecord, studio: StudioClient, studio_event: StudioEvent) -> bool:
        """Take one event; True when it ended the training."""
        training_id, data = record.id, studio_event.data
        if studio_event.type == "progress":
            try:
                point = TrainingPoint.from_json(data)
            except ValueError as exc:  # a Studio of another version: wait for a fix, never record NaN
                raise StudioUnavailable(f"Studio sent a progress event Gallery cannot read: {exc}") from exc
            sample = await self._copy_image(studio, data.get("sample_image"))
            checkpoint = data.get("checkpoint_step")
            checkpoint = checkpoint if type(checkpoint) is int and checkpoint >= 0 else None
            cursor = studio_event.id or None  # with the step, in one transaction: no step is published twice
            if self.catalog.record_training_progress(
                training_id, point, sample_image=sample, checkpoint_step=checkpoint, remote_cursor=cursor
            ):
                steps = data.get("steps")
                event = views.training_progress_event(
                    training_id,
                    point,
                    steps if type(steps) is int else record.steps,
                    sample_image=sample,
                    checkpoint_step=checkpoint,
                )
                self.publish(event, record.owner)
            return False
        if studio_event.type == "done":
            sample = await self._copy_image(studio, data.get("sample_image"))
            extra = {"sample_image": sample} if sample is not None else {}
            self._finish(training_id, Status.DONE, "done", step=record.steps, **extra)
            return True
        if studio_event.type == "failed":
            self._finish(training_id, Status.FAILED, "failed", error=str(data.get("error") or "Studio failed"))
            return True
        if studio_event.type == "cancelled":
            self._finish(training_id, Status.CANCELLED, "cancelled")
            return True
        return False  # an event type from a newer Studio: skip it

    async def _copy_image(self, studio: StudioClient, studio_image_id: Any) -> str | None:
        if not studio_image_id:
            return None
        try:
            data = await studio.image(str(studio_image_id))
        except StudioImageGone:  # an old sample Studio replaced and collected while Gallery was behind
            log.info("Studio image %s is gone; skipping it", studio_image_id)
            return None
        try:
            return (await asyncio.to_thread(self.images.put, data)).id
        except ImageRejected as exc:
            log.warning("Studio image %s refused: %s", studio_image_id, exc)
            return None

    def _finish(self, training_id: str, status: Status, kind: str, **fields: Any) -> None:
        with contextlib.suppress(NotFound):
            if not self.catalog.transition_training(training_id, status, from_=UNFINISHED, **fields):
                return
            record = self.catalog.get_training(training_id)
            extra: dict[str, Any] = {}
            if status == Status.DONE:
                extra = {"model": record.model_name, "sample_image": record.sample_image, "step": record.step}
            elif status == Status.FAILED:
                extra = {"error": record.error}
            log.info("training %s ended: %s%s", training_id, status.value, f" ({record.error})" if record.error else "")
            self.publish(views.training_event(kind, training_id, **extra), record.owner)
            if record.remote_id is None:  # never sent (refused by Studio): its images are of no more use
                self.sets.remove(training_id)

    def _wait(self, training_id: str, reason: str) -> None:
        with contextlib.suppress(NotFound):
            applied = self.catalog.transition_training(
                training_id, Status.WAITING_FOR_STUDIO, from_={Status.QUEUED, Status.RUNNING}, error=reason
            )
            if applied:
                owner = self.catalog.get_training(training_id).owner
                self.publish(views.training_event("waiting", training_id, reason=reason), owner)


__all__ = ["TrainingFollower"]
