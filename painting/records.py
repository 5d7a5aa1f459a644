"""The records of the painting catalog: plain frozen values, no database in sight.

`Status` and its two sets, a painting's `PaintingRecord` with its `StyleImage`s and the history of
its loss weights (`WeightChange`), the `ImageReference`s that `fsck` and `gc` walk, and painting ids.
`painting.catalog` reads and writes them; Gallery and Studio pass them around. The loss curve's point
is `painting.progress.ProgressPoint`.
"""

from __future__ import annotations

import math
import re
import uuid
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

from painting.errors import InvalidId
from painting.params import Params

_PAINTING_ID_RE = re.compile(r"[0-9a-f]{32}")


class Status(StrEnum):
    """Where a painting is in its life. The last three are final."""

    QUEUED = "queued"  # stored, not yet handed to a worker
    WAITING_FOR_STUDIO = "waiting_for_studio"  # Gallery: Studio unreachable, retrying
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def finished(self) -> bool:
        return self in FINISHED


UNFINISHED: frozenset[Status] = frozenset({Status.QUEUED, Status.WAITING_FOR_STUDIO, Status.RUNNING})
FINISHED: frozenset[Status] = frozenset({Status.DONE, Status.FAILED, Status.CANCELLED})


@dataclass(frozen=True)
class StyleImage:
    """One style image of a painting and its blend weight (the weights of a painting sum to 1)."""

    image_id: str
    weight: float


@dataclass(frozen=True)
class WeightChange:
    """One change of a painting's loss weights while it was queued or painting.

    `weights` are all three after the change (content_weight, style_weight, tv_weight). `iteration` is
    the first iteration painted with them, once the worker has said so; None until then (and for
    good when the painting ended first).
    """

    iteration: int | None
    weights: dict[str, float]
    at: datetime  # aware, UTC: when it was asked for

    def to_json(self) -> dict[str, object]:
        return {"iteration": self.iteration, "weights": dict(self.weights), "at": self.at.isoformat()}


@dataclass(frozen=True)
class PaintingRecord:
    """A painting (Gallery) or job (Studio) as stored."""

    id: str
    scope: str
    created_at: datetime  # aware, UTC
    updated_at: datetime  # aware, UTC
    status: Status
    params: Params
    content_image: str | None  # None: painted from a seed alone (a latent generator model)
    styles: tuple[StyleImage, ...]
    preview_image: str | None
    result_image: str | None
    iteration: int
    iterations: int
    error: str | None
    remote_id: str | None  # the other side's id for it (Gallery: Studio's job id)
    remote_url: str | None  # where the other side serves it
    remote_cursor: str | None  # how far the other side's event stream was read (Last-Event-ID)
    attempts: int
    idempotency_key: str | None
    owner: str | None = None  # a digest of the creating browser's secret; see Catalog.create
    preview_iteration: int | None = None  # the iteration `preview_image` shows (a resume starts there)
    weight_changes: tuple[WeightChange, ...] = ()  # oldest first; `params` holds the latest weights

    @property
    def finished(self) -> bool:
        return self.status.finished

    @property
    def style_images(self) -> tuple[str, ...]:
        return tuple(s.image_id for s in self.styles)

    def image_ids(self) -> frozenset[str]:
        """Every image this record refers to (what deleting it may leave unreferenced)."""
        ids = set(self.style_images)
        ids.update(i for i in (self.content_image, self.preview_image, self.result_image) if i is not None)
        return frozenset(ids)


@dataclass(frozen=True)
class TrainingRecord:
    """A training run (Studio: a job that trains a generator; Gallery: one a browser asked for).

    `params` are `painting.training.TrainingParams`, resolved, as JSON; `counts` the images of each
    collection it trains on; `losses` the latest step's, by network; `checkpoint_step` the step its
    latest checkpoint holds (a resume starts there); `sample_image` its latest sample.
    """

    id: str
    scope: str
    created_at: datetime  # aware, UTC
    updated_at: datetime  # aware, UTC
    status: Status
    kind: str
    params: dict[str, Any]
    model_name: str
    counts: dict[str, int]
    step: int
    steps: int
    losses: dict[str, float] | None
    seconds_per_step: float | None
    checkpoint_step: int | None
    sample_image: str | None
    error: str | None
    attempts: int
    idempotency_key: str | None
    owner: str | None
    remote_id: str | None
    remote_url: str | None
    remote_cursor: str | None

    @property
    def finished(self) -> bool:
        return self.status.finished


@dataclass(frozen=True)
class TrainingPoint:
    """One step of a training's loss curves: each network's loss, and the seconds the step took."""

    step: int
    losses: dict[str, float]
    seconds_per_step: float
    elapsed_s: float

    def to_json(self) -> dict[str, Any]:
        losses = {k: (v if math.isfinite(v) else None) for k, v in self.losses.items()}
        return {
            "step": self.step,
            "losses": losses,
            "seconds_per_step": self.seconds_per_step,
            "elapsed_s": self.elapsed_s,
        }

    @classmethod
    def from_json(cls, data: object) -> TrainingPoint:
        """A point as a worker or Studio sends it; ValueError for anything else."""
        if not isinstance(data, dict):
            raise ValueError("a training point is an object")
        step, losses = data.get("step"), data.get("losses")
        if type(step) is not int or step < 0:
            raise ValueError(f"step {step!r}: a whole number, 0 or more")
        if not isinstance(losses, dict) or not all(isinstance(k, str) for k in losses):
            raise ValueError("losses: an object of network names to numbers")
        values = {k: math.nan if v is None else v for k, v in losses.items()}
        if not all(isinstance(v, int | float) and not isinstance(v, bool) for v in values.values()):
            raise ValueError("losses: an object of network names to numbers")
        timing = [data.get("seconds_per_step", 0.0), data.get("elapsed_s", 0.0)]
        if not all(
            isinstance(t, int | float) and not isinstance(t, bool) and math.isfinite(t) and t >= 0 for t in timing
        ):
            raise ValueError("seconds_per_step and elapsed_s: numbers, 0 or more")
        return cls(step, {k: float(v) for k, v in values.items()}, float(timing[0]), float(timing[1]))


@dataclass(frozen=True)
class ImageReference:
    """One use of an image by a record: which painting, in which role, which image."""

    painting_id: str
    role: str  # "content", "style", "preview" or "result"
    image_id: str


def new_painting_id() -> str:
    """A fresh painting id: 32 lowercase hex digits (a random UUID)."""
    return uuid.uuid4().hex


def check_painting_id(painting_id: object) -> str:
    """Return `painting_id` if it is well formed (32 lowercase hex digits); raise InvalidId."""
    if not isinstance(painting_id, str) or not _PAINTING_ID_RE.fullmatch(painting_id):
        raise InvalidId("That is not a valid painting id.")
    return painting_id


__all__ = [
    "FINISHED",
    "UNFINISHED",
    "ImageReference",
    "PaintingRecord",
    "Status",
    "StyleImage",
    "TrainingPoint",
    "TrainingRecord",
    "WeightChange",
    "check_painting_id",
    "new_painting_id",
]
