"""One point of a painting's loss curve, and the one JSON shape it travels in.

Every hop carries the same shape: the worker's `progress` frame (`pycasso.port`), Studio's SSE
`progress` event, Gallery's API and its WebSocket `painting.progress` event:

    {"iteration": 12, "evaluations": 15, "elapsed_s": 3.2,
     "loss": {"total": 9.1e6, "content": 2.0e6, "style": 7.0e6, "tv": 1.0e5}}

The first point of a Gatys run, and the first after its loss weights were changed while it painted,
also carry the weights it paints with from that iteration on:
`"weights": {"content_weight": 1.0, "style_weight": 100.0, "tv_weight": 0.1}`; other points leave
the key out, so a point without it reads and writes exactly as before.

JSON has no NaN: a loss that diverged (NaN or infinite) travels as null and is read back as NaN.
A missing or misspelt key is a ValueError, never a silent NaN. Standard library only, so the
engine's port module can use it without loading anything heavy.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

LOSS_TERMS: tuple[str, ...] = ("total", "content", "style", "tv")


def json_safe(value: Any) -> Any:
    """`value` with every NaN or infinite float replaced by None, in nested dicts and lists too."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_safe(v) for v in value]
    return value


@dataclass(frozen=True)
class ProgressPoint:
    """One point of the loss curve: after `iteration` L-BFGS iterations and `evaluations` evaluations."""

    iteration: int
    evaluations: int
    total_loss: float
    content_loss: float
    style_loss: float
    tv_loss: float
    elapsed_s: float
    weights: Mapping[str, float] | None = None  # the loss weights from this iteration on, where they changed
    size: int | None = None  # a coarse pass's height (coarse-to-fine); None at the painting's own size

    @property
    def loss(self) -> dict[str, float]:
        """The loss terms by name, as the wire carries them (NaN stays NaN here)."""
        return {"total": self.total_loss, "content": self.content_loss, "style": self.style_loss, "tv": self.tv_loss}

    def to_json(self) -> dict[str, Any]:
        """The wire shape (see the module docstring); NaN and infinities become null."""
        body: dict[str, Any] = {
            "iteration": self.iteration,
            "evaluations": self.evaluations,
            "loss": self.loss,
            "elapsed_s": self.elapsed_s,
        }
        if self.weights is not None:
            body["weights"] = dict(self.weights)
        if self.size is not None:
            body["size"] = self.size
        return json_safe(body)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> ProgressPoint:
        """Read the wire shape back; other keys beside it are ignored. Raises ValueError naming
        the first key that is missing or of the wrong type."""
        if not isinstance(data, Mapping):
            raise ValueError(f"a progress point must be a JSON object, not {type(data).__name__}")
        loss = data.get("loss")
        if not isinstance(loss, Mapping):
            raise ValueError("progress: `loss` must be an object with " + ", ".join(LOSS_TERMS))
        return cls(
            iteration=_count(data, "iteration"),
            evaluations=_count(data, "evaluations"),
            total_loss=_number(loss, "total", "loss."),
            content_loss=_number(loss, "content", "loss."),
            style_loss=_number(loss, "style", "loss."),
            tv_loss=_number(loss, "tv", "loss."),
            elapsed_s=_number(data, "elapsed_s"),
            weights=_weights(data),
            size=_count(data, "size") if data.get("size") is not None else None,
        )


def _count(data: Mapping[str, Any], key: str) -> int:
    value = data.get(key)
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise ValueError(f"progress: `{key}` must be a whole number >= 0, got {value!r:.40}")
    return value


def _weights(data: Mapping[str, Any]) -> dict[str, float] | None:
    weights = data.get("weights")
    if weights is None:
        return None
    if not isinstance(weights, Mapping) or not weights:
        raise ValueError("progress: `weights` must be an object of loss weights, or left out")
    read = {}
    for name in weights:
        value = _number(weights, name, "weights.")
        if not isinstance(name, str) or not math.isfinite(value):
            raise ValueError(f"progress: `weights.{name}` must be a finite number")
        read[name] = value
    return read


def _number(data: Mapping[str, Any], key: str, where: str = "") -> float:
    if key not in data:
        raise ValueError(f"progress: `{where}{key}` is missing")
    value = data[key]
    if value is None:  # a NaN or infinity on its way through JSON
        return math.nan
    if not isinstance(value, int | float) or isinstance(value, bool):
        raise ValueError(f"progress: `{where}{key}` must be a number or null, got {value!r:.40}")
    return float(value)


__all__ = ["LOSS_TERMS", "ProgressPoint", "json_safe"]
