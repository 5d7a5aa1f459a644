"""A training's event stream: recording what happens to a training, publishing it, replaying it over SSE.

    events = TrainingEvents(catalog)
    events.progress(training_id, point, steps, sample_image=..., checkpoint_step=4)   # store, publish `progress`
    events.finish(training_id, Status.DONE, sample_image=...)                         # store, publish `done`
    async for text in events.stream(training_id, after=last_event_id): ...            # SSE text

As for a painting job (`studio.events`), every point and every ending is stored and published here and
nowhere else, so what a reader is sent live is what a later replay from the catalog sends.

Event ids: a `progress` event's id is its step; an ending (`done`, `failed`, `cancelled`) has the
highest step the training ever reported + 1. A training resumed from its checkpoint repeats the steps
after it (the catalog keeps one point per step, the repeat replacing the first), and a reader that
saw them is not sent them again: "everything after Last-Event-ID" replays what was missed and nothing
twice, and an ending's id is above all of them.

    progress   {training, step, steps, losses: {network: loss}, seconds_per_step, elapsed_s,
                checkpoint_step, sample_image (an image id, or null: only some steps make one)}
    done       {training, model, sample_image}        failed {training, error}      cancelled {training}
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

from painting.catalog import Catalog
from painting.records import Status, TrainingPoint, TrainingRecord
from studio.events import RUNNABLE, Event


def progress_event(
    training_id: str, point: TrainingPoint, steps: int, *, checkpoint_step: int | None, sample_image: str | None
) -> Event:
    data: dict[str, Any] = {
        "training": training_id,
        "steps": steps,
        **point.to_json(),
        "checkpoint_step": checkpoint_step,
        "sample_image": sample_image,
    }
    return Event(point.step, "progress", data)


def ending_event(record: TrainingRecord, last_step: int) -> Event:
    """The ending of a finished training; `last_step` is the highest step it reported."""
    event_id = max(record.step, last_step) + 1
    if record.status == Status.DONE:
        return Event(
            event_id, "done", {"training": record.id, "model": record.model_name, "sample_image": record.sample_image}
        )
    if record.status == Status.FAILED:
        return Event(event_id, "failed", {"training": record.id, "error": record.error})
    return Event(event_id, "cancelled", {"training": record.id})


class TrainingEvents:
    """Records each training's progress and ending in the catalog and publishes them to subscribers."""

    def __init__(self, catalog: Catalog) -> None:
        self.catalog = catalog
        self._subscribers: dict[str, set[asyncio.Queue[Event | None]]] = {}
        self._closing = False

    def forgotten(self, training_id: str) -> None:
        """The training was deleted: end its open streams."""
        for queue in self._subscribers.get(training_id, ()):
            queue.put_nowait(None)

    def close_all(self) -> None:
        """End every open stream now, and any opened later (Studio is stopping): readers reconnect."""
        self._closing = True
        for queues in self._subscribers.values():
            for queue in queues:
                queue.put_nowait(None)

    def progress(
        self,
        training_id: str,
        point: TrainingPoint,
        steps: int,
        *,
        sample_image: str | None = None,
        checkpoint_step: int | None = None,
    ) -> bool:
        """Store a point of a running training and publish it; False (nothing done) if it is not running."""
        if not self.catalog.record_training_progress(
            training_id, point, sample_image=sample_image, checkpoint_step=checkpoint_step, only_if={Status.RUNNING}
        ):
            return False
        event = progress_event(training_id, point, steps, checkpoint_step=checkpoint_step, sample_image=sample_image)
        self._publish(training_id, event)
        return True

    def finish(self, training_id: str, status: Status, **fields: Any) -> bool:
        """End a queued or running training with `status` (and record `fields`) and publish the ending.

        False, and nothing published, when it had already ended.
        """
        if not self.catalog.transition_training(training_id, status, from_=RUNNABLE, **fields):
            return False
        self._publish(training_id, self._ending(training_id))
        return True

    def _last_step(self, training_id: str) -> int:
        return max((p.step for p in self.catalog.training_progress(training_id)), default=0)

    def _ending(self, training_id: str) -> Event:
        return ending_event(self.catalog.get_training(training_id), self._last_step(training_id))

    async def stream(self, training_id: str, *, after: int = -1, keepalive_s: float = 15.0) -> AsyncIterator[str]:
        """SSE text for a training: what happened after event `after`, then live, until it ends."""
        queue: asyncio.Queue[Event | None] = asyncio.Queue()
        self._subscribers.setdefault(training_id, set()).add(queue)
        if self._closing:
            queue.put_nowait(None)
        try:
            record = self.catalog.get_training(training_id)
            points = sorted(self.catalog.training_progress(training_id), key=lambda p: p.step)
            last = after
            for i, point in enumerate(points):
                if point.step > last:
                    latest = i == len(points) - 1  # the record keeps the latest sample and checkpoint only
                    yield progress_event(
                        training_id,
                        point,
                        record.steps,
                        checkpoint_step=record.checkpoint_step if latest else None,
                        sample_image=record.sample_image if latest and not record.finished else None,
                    ).encode()
                    last = point.step
            if self.catalog.get_training(training_id).finished:
                ending = self._ending(training_id)
                if ending.id > last:  # else this reader has had it
                    yield ending.encode()
                return
            while True:
                try:
                    event = await asyncio.wait_for(queue.get(), keepalive_s)
                except TimeoutError:
                    yield ": keep-alive\n\n"
                    continue
                if event is None:
                    return  # Studio is stopping, or the training was deleted
                if event.id <= last:
                    continue  # a resumed run repeating a step this reader has seen
                yield event.encode()
                last = event.id
                if event.ending:
                    return
        finally:
            subscribers = self._subscribers.get(training_id)
            if subscribers is not None:
                subscribers.discard(queue)
                if not subscribers:
                    del self._subscribers[training_id]

    def _publish(self, training_id: str, event: Event) -> None:
        for queue in self._subscribers.get(training_id, ()):
            queue.put_nowait(event)


__all__ = ["TrainingEvents", "ending_event", "progress_event"]
