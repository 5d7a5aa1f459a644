"""How paintings and their events look as JSON, for the API and the WebSocket alike."""

from __future__ import annotations

from typing import Any

from painting.progress import ProgressPoint, json_safe
from painting.records import PaintingRecord


def painting_json(
    record: PaintingRecord, progress: list[ProgressPoint] | None = None, *, mine: bool | None = None
) -> dict[str, Any]:
    """A painting as the API shows it; with `progress`, its loss curve too; with `mine`, whether the
    browser asking may change it (the page offers cancel, remix, delete and new weights only then).
    `weight_changes`: the loss weights changed while it painted, oldest first ({iteration, weights,
    at}; `iteration` null until the worker paints with them); `params` holds the latest."""
    body: dict[str, Any] = {
        "id": record.id,
        "status": record.status.value,
        "created_at": record.created_at.isoformat(),
        "updated_at": record.updated_at.isoformat(),
        "params": record.params.model_dump(mode="json"),
        "content_image": record.content_image,
        "styles": [{"image_id": s.image_id, "weight": s.weight} for s in record.styles],
        "preview_image": record.preview_image,
        "result_image": record.result_image,
        "iteration": record.iteration,
        "iterations": record.iterations,
        "error": record.error,
        "weight_changes": [change.to_json() for change in record.weight_changes],
    }
    if progress is not None:
        body["progress"] = [p.to_json() for p in progress]
    if mine is not None:
        body["mine"] = mine
    return json_safe(body)


def event(kind: str, painting_id: str, **fields: Any) -> dict[str, Any]:
    """A WebSocket event: {"type": "painting.<kind>", "id": ..., **fields}."""
    return json_safe({"type": f"painting.{kind}", "id": painting_id, **fields})


def progress_event(
    painting_id: str, point: ProgressPoint, iterations: int, preview_image: str | None
) -> dict[str, Any]:
    """The WebSocket's `painting.progress`: the point in its one JSON shape, the run's length, the preview."""
    return event("progress", painting_id, iterations=iterations, preview_image=preview_image, **point.to_json())


__all__ = ["event", "painting_json", "progress_event"]
