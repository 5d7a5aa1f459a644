"""How paintings and their events look as JSON, for the API and the WebSocket alike."""

from __future__ import annotations

import math
from typing import Any

from painting.catalog import PaintingRecord, ProgressPoint


def finite(value: Any) -> Any:
    """`value` with every NaN or infinite float replaced by None (JSON has no NaN)."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [finite(v) for v in value]
    return value


def losses(point: ProgressPoint) -> dict[str, float]:
    return {"total": point.total_loss, "content": point.content_loss, "style": point.style_loss, "tv": point.tv_loss}


def progress_json(point: ProgressPoint) -> dict[str, Any]:
    return {
        "iteration": point.iteration,
        "evaluations": point.evaluations,
        "loss": losses(point),
        "elapsed_s": point.elapsed_s,
    }


def painting_json(record: PaintingRecord, progress: list[ProgressPoint] | None = None) -> dict[str, Any]:
    """A painting as the API shows it; with `progress`, its loss curve too."""
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
    }
    if progress is not None:
        body["progress"] = [progress_json(p) for p in progress]
    return finite(body)


def event(kind: str, painting_id: str, **fields: Any) -> dict[str, Any]:
    """A WebSocket event: {"type": "painting.<kind>", "id": ..., **fields}."""
    return finite({"type": f"painting.{kind}", "id": painting_id, **fields})


__all__ = ["event", "finite", "losses", "painting_json", "progress_json"]
