"""How paintings, trainings and their events look as JSON, for the API and the WebSocket alike."""

from __future__ import annotations

from typing import Any

from painting.progress import ProgressPoint, json_safe
from painting.records import PaintingRecord, Status, TrainingPoint, TrainingRecord


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


def training_json(
    record: TrainingRecord, progress: list[TrainingPoint] | None = None, *, mine: bool | None = None
) -> dict[str, Any]:
    """A training as the API shows it: its kind, params (resolved), the model it makes (`model`: its
    name; served by Studio once `status` is done), the images of each collection (`counts`), where it
    is (`step` of `steps`, the latest `losses` by network, `seconds_per_step`, `seconds_left`, the
    step its latest checkpoint holds), its latest `sample_image`; with `progress`, its loss curves
    ({step, losses, seconds_per_step, elapsed_s} per step); with `mine`, whether the browser asking
    may cancel or delete it."""
    left = None
    if record.status in (Status.RUNNING, Status.WAITING_FOR_STUDIO) and record.seconds_per_step is not None:
        left = max(0, record.steps - record.step) * record.seconds_per_step
    body: dict[str, Any] = {
        "id": record.id,
        "status": record.status.value,
        "created_at": record.created_at.isoformat(),
        "updated_at": record.updated_at.isoformat(),
        "kind": record.kind,
        "params": dict(record.params),
        "model": record.model_name,
        "counts": dict(record.counts),
        "step": record.step,
        "steps": record.steps,
        "losses": record.losses,
        "seconds_per_step": record.seconds_per_step,
        "seconds_left": left,
        "checkpoint_step": record.checkpoint_step,
        "sample_image": record.sample_image,
        "error": record.error,
    }
    if progress is not None:
        body["progress"] = [p.to_json() for p in progress]
    if mine is not None:
        body["mine"] = mine
    return json_safe(body)


def training_event(kind: str, training_id: str, **fields: Any) -> dict[str, Any]:
    """A WebSocket event about a training: {"type": "training.<kind>", "id": ..., **fields}."""
    return json_safe({"type": f"training.{kind}", "id": training_id, **fields})


def training_progress_event(
    training_id: str, point: TrainingPoint, steps: int, *, sample_image: str | None, checkpoint_step: int | None
) -> dict[str, Any]:
    """The WebSocket's `training.progress`: the step's losses by network (null for a diverged one),
    its seconds, the run's length, and the new sample image (null: none with this step)."""
    return training_event(
        "progress",
        training_id,
        steps=steps,
        sample_image=sample_image,
        checkpoint_step=checkpoint_step,
        **point.to_json(),
    )


__all__ = ["event", "painting_json", "progress_event", "training_event", "training_json", "training_progress_event"]
