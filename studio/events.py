"""A job's event stream: recording what happens to a job, publishing it, and replaying it over SSE.

    events = JobEvents(catalog)
    events.progress(job_id, point, iterations, preview_id)   # store the point, publish `progress`
                                                              # (weights it carries: the change took effect)
    events.finish(job_id, Status.DONE, result_image=...)      # store the ending, publish `done`
    async for text in events.stream(job_id, after=last_event_id): ...   # SSE text

Every progress point and every ending is stored and published here and nowhere else, so what a
reader is sent live is exactly what a later replay from the catalog sends.

Event ids: a `progress` event's id is its iteration; an ending (`done`, `failed`, `cancelled`) has
the highest iteration the job ever reached + 1 (`Catalog.last_iteration`), not its current one: a
resumed run repeats up to `preview_every` iterations, and an ending inside that window must still
have an id above everything a reader has seen. Ids only grow for a reader, so "everything after
Last-Event-ID" replays what was missed and nothing twice (a resumed run's repeated iterations have
ids a reader has already seen, and are skipped), and an ending's id is above all of them. Replay reads the
catalog, so it survives a Studio restart; live events come from in-memory subscriptions.

A point that carries loss weights (the first of a run, the first after a change) marks the job's
pending weight changes as painted from there (`Catalog.mark_weights_applied`); the catalog's curve
keeps no weights, so a replayed point gets them back from the job's history of changes.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

from painting.catalog import Catalog
from painting.progress import ProgressPoint, json_safe
from painting.records import PaintingRecord, Status

RUNNABLE = frozenset({Status.QUEUED, Status.RUNNING})


@dataclass(frozen=True)
class Event:
    """One Server-Sent Event of a job: `progress`, `done`, `failed` or `cancelled`."""

    id: int
    type: str
    data: dict[str, Any]

    @property
    def ending(self) -> bool:
        return self.type != "progress"

    def encode(self) -> str:
        data = json.dumps(json_safe(self.data), separators=(",", ":"))
        return f"id: {self.id}\nevent: {self.type}\ndata: {data}\n\n"


def progress_event(job_id: str, point: ProgressPoint, iterations: int, preview: str | None) -> Event:
    data = {"job": job_id, "iterations": iterations, "preview_image": preview, **point.to_json()}
    return Event(point.iteration, "progress", data)


def ending_event(record: PaintingRecord, last_iteration: int) -> Event:
    """The ending of a finished job; `last_iteration` is the highest it reached (see the module docstring)."""
    event_id = max(record.iteration, last_iteration) + 1
    if record.status == Status.DONE:
        data = {"job": record.id, "result_image": record.result_image, "iteration": record.iteration}
        return Event(event_id, "done", data)
    if record.status == Status.FAILED:
        return Event(event_id, "failed", {"job": record.id, "error": record.error})
    return Event(event_id, "cancelled", {"job": record.id})


class JobEvents:
    """Records each job's progress and ending in the catalog and publishes them to subscribers."""

    def __init__(self, catalog: Catalog) -> None:
        self.catalog = catalog
        self._subscribers: dict[str, set[asyncio.Queue[Event | None]]] = {}
        self._closing = False

    def forgotten(self, job_id: str) -> None:
        """The job was deleted: end its open streams (there is nothing more to say about it)."""
        for queue in self._subscribers.get(job_id, ()):
            queue.put_nowait(None)

    def close_all(self) -> None:
        """End every open stream now, and any opened later (Studio is stopping): readers reconnect.

        Without it a stream ends only with its job, and the server would wait for it until its
        graceful-shutdown timeout and then cancel it mid-write."""
        self._closing = True
        for queues in self._subscribers.values():
            for queue in queues:
                queue.put_nowait(None)

    def progress(self, job_id: str, point: ProgressPoint, iterations: int, preview_image: str | None) -> bool:
        """Store a point of a running job and publish it; False (nothing done) if the job is not running."""
        if not self.catalog.record_progress(job_id, point, preview_image=preview_image, only_if={Status.RUNNING}):
            return False
        if point.weights is not None:
            self.catalog.mark_weights_applied(job_id, point.iteration, point.weights)
        self._publish(job_id, progress_event(job_id, point, iterations, preview_image))
        return True

    def finish(self, job_id: str, status: Status, **fields: Any) -> bool:
        """End a queued or running job with `status` (and record `fields`) and publish the ending.

        False, and nothing published, when the job had already ended.
        """
        if not self.catalog.transition(job_id, status, from_=RUNNABLE, **fields):
            return False
        self._publish(job_id, self._ending(job_id))
        return True

    def _ending(self, job_id: str) -> Event:
        return ending_event(self.catalog.get(job_id), self.catalog.last_iteration(job_id))

    async def stream(self, job_id: str, *, after: int = -1, keepalive_s: float = 15.0) -> AsyncIterator[str]:
        """SSE text for a job: what happened after event `after`, then live, until it ends."""
        queue: asyncio.Queue[Event | None] = asyncio.Queue()
        self._subscribers.setdefault(job_id, set()).add(queue)
        if self._closing:
            queue.put_nowait(None)
        try:
            record = self.catalog.get(job_id)
            points = self.catalog.progress(job_id)
            changed_at = {c.iteration: c.weights for c in record.weight_changes if c.iteration is not None}
            last = after
            for i, point in enumerate(points):
                if point.iteration > last:
                    preview = record.preview_image if i == len(points) - 1 else None
                    if point.iteration in changed_at:
                        point = dataclasses.replace(point, weights=changed_at[point.iteration])
                    yield progress_event(job_id, point, record.iterations, preview).encode()
                    last = point.iteration
            if self.catalog.get(job_id).finished:
                ending = self._ending(job_id)
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
                    return  # Studio is stopping, or the job was deleted
                if event.id <= last:
                    continue  # a resumed run repeating an iteration this reader has seen
                yield event.encode()
                last = event.id
                if event.ending:
                    return
        finally:
            subscribers = self._subscribers.get(job_id)
            if subscribers is not None:
                subscribers.discard(queue)
                if not subscribers:
                    del self._subscribers[job_id]

    def _publish(self, job_id: str, event: Event) -> None:
        for queue in self._subscribers.get(job_id, ()):
            queue.put_nowait(event)


__all__ = ["RUNNABLE", "Event", "JobEvents"]
