"""Studio's jobs: stored in its own Painting catalog and image store, with an event feed per job.

    jobs = Jobs(catalog, images)
    record, created = jobs.create(content_png, [style_png], params_json, idempotency_key="k")
    async for event in jobs.events(record.id, after=last_event_id): ...

`Jobs` is also the supervisor's handler: it builds a job's `paint` message (resuming from the last
preview after a worker died), records each worker message, and publishes it as an `Event`.

Event ids: a `progress` event's id is its iteration; a terminal event (`done`, `failed`,
`cancelled`) has the job's last iteration + 1. Ids only grow for a reader, so "everything after
Last-Event-ID" replays what was missed and nothing twice (a resumed run repeats iterations; their
ids are at or below what a reader has already seen, and are skipped). Replay reads the catalog,
so it survives a Studio restart; live events come from in-memory subscriptions.
"""

from __future__ import annotations

import asyncio
import json
import math
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

from painting.catalog import Catalog, PaintingRecord, ProgressPoint, Status
from painting.errors import ImageRejected
from painting.images import ImageStore
from painting.params import MAX_SIZE, parse_params
from pycasso import port
from studio.errors import BadRequest

RUNNABLE = frozenset({Status.QUEUED, Status.RUNNING})
CRASHED_TWICE = "worker crashed twice"


@dataclass(frozen=True)
class Event:
    """One Server-Sent Event of a job: `progress`, `done`, `failed` or `cancelled`."""

    id: int
    type: str
    data: dict[str, Any]

    @property
    def terminal(self) -> bool:
        return self.type != "progress"

    def encode(self) -> str:
        return f"id: {self.id}\nevent: {self.type}\ndata: {json.dumps(_finite(self.data), separators=(',', ':'))}\n\n"


class Jobs:
    """The jobs of one Studio: creating, describing, following and cancelling them."""

    def __init__(self, catalog: Catalog, images: ImageStore, *, max_styles: int = 8, max_size: int = MAX_SIZE) -> None:
        self.catalog = catalog
        self.images = images
        self.max_styles = max_styles
        self.max_size = max_size
        self.cancel_running: Callable[[str], str] = lambda job_id: "unknown"  # set by the app: Supervisor.cancel
        self._subscribers: dict[str, set[asyncio.Queue]] = {}

    # --- requests -----------------------------------------------------------------------------

    def create(
        self, content: bytes, styles: list[bytes], params_text: str | None, *, idempotency_key: str | None = None
    ) -> tuple[PaintingRecord, bool]:
        """Check everything, then store the images and the job; (job, whether it is new).

        Raises BadRequest (422), ImageRejected (413/415); nothing is stored for a rejected request.
        A key already used returns that job and stores nothing.
        """
        try:
            params = parse_params(params_text)
        except ValueError as exc:
            raise BadRequest(f"params: {exc}") from None
        if params.size > self.max_size:
            raise BadRequest(f"params: size: this Studio paints at most {self.max_size} px high (asked {params.size})")
        if not styles:
            raise BadRequest("style: at least one style image is needed")
        if len(styles) > self.max_styles:
            raise BadRequest(f"style: at most {self.max_styles} style images")
        try:
            params.blend_for(len(styles))
        except ValueError as exc:
            raise BadRequest(f"params: style_blend: {exc}") from None
        if idempotency_key is not None:
            if not 1 <= len(idempotency_key) <= 200:
                raise BadRequest("Idempotency-Key: must be 1 to 200 characters")
            existing = self.catalog.find_by_idempotency_key(idempotency_key)
            if existing is not None:
                return existing, False
        for what, data in [("content", content), *(("style", s) for s in styles)]:
            try:
                self.images.inspect(data)
            except ImageRejected as exc:
                raise type(exc)(f"{what}: {exc}") from None
        content_id = self.images.put(content).id
        style_ids = [self.images.put(s).id for s in styles]
        record = self.catalog.create(
            params=params, content_image=content_id, style_images=style_ids, idempotency_key=idempotency_key
        )
        return record, True

    def describe(self, job_id: str) -> dict[str, Any]:
        """The job as the API shows it; raises NotFound."""
        record = self.catalog.get(job_id)
        points = self.catalog.progress(job_id)
        return _job_json(record, points[-1] if points else None)

    def cancel(self, job_id: str) -> PaintingRecord:
        """Cancel a job: at once when queued, within one evaluation when running. Raises NotFound."""
        record = self.catalog.get(job_id)
        if record.finished:
            return record
        if self.cancel_running(job_id) != "running":
            self._finish(job_id, Status.CANCELLED)
        return self.catalog.get(job_id)

    # --- the event feed -----------------------------------------------------------------------

    async def events(self, job_id: str, *, after: int = -1, keepalive_s: float = 15.0) -> AsyncIterator[str]:
        """SSE text for a job: what happened after event `after`, then live, until it ends."""
        queue: asyncio.Queue = asyncio.Queue()
        self._subscribers.setdefault(job_id, set()).add(queue)
        try:
            record = self.catalog.get(job_id)
            points = self.catalog.progress(job_id)
            last = after
            for i, point in enumerate(points):
                if point.iteration > last:
                    preview = record.preview_image if i == len(points) - 1 else None
                    yield _progress_event(job_id, point, record.iterations, preview).encode()
                    last = point.iteration
            record = self.catalog.get(job_id)
            if record.finished:
                event = _terminal_event(record)
                if event.id > last:
                    yield event.encode()
                return
            while True:
                try:
                    event = await asyncio.wait_for(queue.get(), keepalive_s)
                except TimeoutError:
                    yield ": keep-alive\n\n"
                    continue
                if event.id <= last:
                    continue
                yield event.encode()
                last = event.id
                if event.terminal:
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

    def _finish(self, job_id: str, status: Status, **fields: Any) -> None:
        if self.catalog.transition(job_id, status, from_=RUNNABLE, **fields):
            self._publish(job_id, _terminal_event(self.catalog.get(job_id)))

    # --- the supervisor's handler -------------------------------------------------------------

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
                self._finish(job_id, Status.FAILED, error=f"the worker's result is not a usable image: {exc}")
                return
            iteration = self.catalog.get(job_id).iteration
            self._finish(job_id, Status.DONE, result_image=result_id, iteration=iteration)
        elif message.type == "error":
            self._finish(job_id, Status.FAILED, error=f"{message.get('code')}: {message.get('message')}")
        elif message.type == "cancelled":
            self._finish(job_id, Status.CANCELLED)

    def _on_progress(self, job_id: str, message: port.Message) -> None:
        loss = message.get("loss") or {}
        point = ProgressPoint(
            iteration=int(message.get("iteration", 0)),
            evaluations=int(message.get("evaluations", 0)),
            total_loss=_float(loss.get("total")),
            content_loss=_float(loss.get("content")),
            style_loss=_float(loss.get("style")),
            tv_loss=_float(loss.get("tv")),
            elapsed_s=_float(message.get("elapsed_s")),
        )
        preview_id = None
        previews = message.blobs("preview")
        if previews:
            try:
                preview_id = self.images.put(previews[0]).id
            except ImageRejected:
                preview_id = None
        if self.catalog.record_progress(job_id, point, preview_image=preview_id, only_if={Status.RUNNING}):
            iterations = int(message.get("iterations") or self.catalog.get(job_id).iterations)
            self._publish(job_id, _progress_event(job_id, point, iterations, preview_id))

    def on_worker_died(self, job_id: str) -> bool:
        record = self.catalog.get(job_id)
        if record.finished:
            return False
        if record.attempts >= 2:
            self._finish(job_id, Status.FAILED, error=CRASHED_TWICE)
            return False
        return self.catalog.transition(job_id, Status.QUEUED, from_=RUNNABLE)


def _float(value: Any) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return math.nan


def _finite(value: Any) -> Any:
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_finite(v) for v in value]
    return value


def _losses(point: ProgressPoint) -> dict[str, float]:
    return {
        "total": point.total_loss,
        "content": point.content_loss,
        "style": point.style_loss,
        "tv": point.tv_loss,
    }


def _progress_event(job_id: str, point: ProgressPoint, iterations: int, preview: str | None) -> Event:
    data = {
        "job": job_id,
        "iteration": point.iteration,
        "iterations": iterations,
        "evaluations": point.evaluations,
        "loss": _losses(point),
        "elapsed_s": point.elapsed_s,
        "preview_image": preview,
    }
    return Event(point.iteration, "progress", data)


def _terminal_event(record: PaintingRecord) -> Event:
    event_id = record.iteration + 1
    if record.status == Status.DONE:
        return Event(event_id, "done", {"job": record.id, "result_image": record.result_image})
    if record.status == Status.FAILED:
        return Event(event_id, "failed", {"job": record.id, "error": record.error})
    return Event(event_id, "cancelled", {"job": record.id})


def _job_json(record: PaintingRecord, last: ProgressPoint | None) -> dict[str, Any]:
    return _finite(
        {
            "id": record.id,
            "state": record.status.value,
            "iteration": record.iteration,
            "iterations": record.iterations,
            "loss": _losses(last) if last is not None else None,
            "preview_image": record.preview_image,
            "result_image": record.result_image,
            "error": record.error,
            "attempts": record.attempts,
            "params": record.params.model_dump(mode="json"),
            "created_at": record.created_at.isoformat(),
            "updated_at": record.updated_at.isoformat(),
        }
    )


__all__ = ["CRASHED_TWICE", "Event", "Jobs"]
