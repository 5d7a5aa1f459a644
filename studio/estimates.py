"""What a painting will cost on this Studio before it is painted: seconds and peak memory, against the
memory budget that guards the workers.

    estimator = Estimator(supervisor, budget_bytes=None, workers_per_device=1)
    estimator.describe(params, 1200, 900, styles=1)   # the answer of POST /v1/estimate
    estimator.refusal(params, 1200, 900, styles=1)    # why a job is refused (422), or None
    estimator.capacity()                              # what GET /v1/status says of the budget and speed

The model is `painting.estimate`'s; the numbers it needs come from the workers: each one's timing
(`calibrated`, measured once it is idle after starting) and the memory it holds and its device has
(`ready`). The budget is `STUDIO_MEMORY_BUDGET_BYTES`, or half the device's memory shared between the
workers on it. Memory needs no timing, so the guard works from the start; seconds wait for a worker's.
"""

from __future__ import annotations

from typing import Any, Protocol

from painting.estimate import (
    DEFAULT_BASE_BYTES,
    Calibration,
    Estimate,
    estimate,
    largest_size,
    physical_memory_bytes,
)
from painting.params import Params

MEMORY_SHARE = 0.5  # of the device's memory, when no budget is set
# The painting `capacity` describes a Studio by: default params (gatys), one style, a 4:3 landscape photo.
REFERENCE_PHOTO = (1600, 1200)  # width, height
# The iteration `capacity` times: a painting 512 px tall and 683 px wide (size 512 of a 4:3 landscape photo).
REFERENCE_ITERATION_PIXELS = 512 * 683
UNKNOWN_MEMORY_BYTES = 8 * 2**30  # a machine that does not say how much it has


class Workers(Protocol):
    """What the estimator reads of the supervisor (`studio.supervisor.Supervisor`)."""

    calibrate: bool

    def calibration(self) -> Calibration | None: ...

    def calibration_problem(self) -> str | None: ...

    def worker_memory(self) -> tuple[int | None, int | None]: ...


class Estimator:
    """Estimates paintings on this Studio's workers and refuses those over the memory budget."""

    def __init__(self, workers: Workers, *, budget_bytes: int | None, workers_per_device: int) -> None:
        self.workers = workers
        self.fixed_budget = budget_bytes
        self.workers_per_device = max(1, workers_per_device)

    def budget_bytes(self) -> int:
        """The most memory one painting may need at its peak, the worker's own included."""
        if self.fixed_budget is not None:
            return self.fixed_budget
        _, device = self.workers.worker_memory()  # a GPU's total, or the machine's, as a worker says
        total = device or physical_memory_bytes() or UNKNOWN_MEMORY_BYTES
        return int(total * MEMORY_SHARE / self.workers_per_device)

    def pass_budget_bytes(self) -> int:
        """The working memory one pass of a painting may use: the budget less the worker's own memory.
        A pass over it is painted in tiles (`painting.estimate.tile_side`)."""
        return max(0, self.budget_bytes() - self.base_bytes())

    def base_bytes(self) -> int:
        base, _ = self.workers.worker_memory()
        return base if base is not None else DEFAULT_BASE_BYTES

    def estimate(self, params: Params, width: int | None, height: int | None, *, styles: int = 1) -> Estimate:
        """Raises ValueError when the painting's shape breaks the shape rule."""
        calibration = self.workers.calibration()
        found = estimate(
            params,
            width,
            height,
            calibration,
            base_bytes=self.base_bytes(),
            styles=max(1, styles),
            budget_bytes=self.budget_bytes(),
        )
        if calibration is None:
            found = Estimate(None, found.peak_bytes, found.passes, reason=self._why_no_timing())
        return found

    def largest_size(self, params: Params, width: int | None, height: int | None) -> int | None:
        """The largest params.size at which this painting fits the memory budget; None: none does."""
        return largest_size(params, width, height, self.budget_bytes(), base_bytes=self.base_bytes())

    def iteration_seconds(self, pixels: int) -> float | None:
        """Seconds one Gatys iteration takes at `pixels` (its evaluations, by the slowest worker's
        timing); None until a worker has timed itself."""
        calibration = self.workers.calibration()
        if calibration is None:
            return None
        return calibration.evaluations_per_iteration * calibration.evaluation_seconds(pixels)

    def capacity(self) -> dict[str, Any]:
        """What a dispatcher choosing between Studios needs of this one's memory and speed:
        `memory_budget_bytes`; `largest_size`, the largest params.size of a default Gatys painting of a
        1600×1200 photo with one style that fits it (null: none fits); `iteration_seconds_512`, one
        Gatys iteration of a painting 512 px tall and 683 px wide, in seconds (null until a worker has
        timed itself)."""
        seconds = self.iteration_seconds(REFERENCE_ITERATION_PIXELS)
        return {
            "memory_budget_bytes": self.budget_bytes(),
            "largest_size": self.largest_size(Params(), *REFERENCE_PHOTO),
            "iteration_seconds_512": None if seconds is None else round(seconds, 4),
        }

    def describe(self, params: Params, width: int | None, height: int | None, *, styles: int = 1) -> dict[str, Any]:
        """The estimate as the API answers it: seconds (null with a reason until a worker has timed
        itself), peak_bytes, each pass, the budget, whether it fits and the largest size that does."""
        found = self.estimate(params, width, height, styles=styles)
        budget = self.budget_bytes()
        return {
            **found.to_json(),
            "budget_bytes": budget,
            "fits": found.peak_bytes <= budget,
            "largest_size": self.largest_size(params, width, height),
        }

    def refusal(self, params: Params, width: int | None, height: int | None, *, styles: int = 1) -> str | None:
        """Why this Studio refuses the painting for its memory (a sentence for a person), or None."""
        found = self.estimate(params, width, height, styles=styles)
        budget = self.budget_bytes()
        if found.peak_bytes <= budget:
            return None
        last = found.passes[-1]
        largest = self.largest_size(params, width, height)
        advice = (
            f"the largest size that fits is {largest} px (params.size)"
            if largest is not None
            else "not even the smallest size fits: this Studio's workers hold too much already"
        )
        return (
            f"params: size: a {last.width}×{last.height} painting needs about {_gb(found.peak_bytes)} of memory at "
            f"its peak, more than this Studio's budget of {_gb(budget)}; {advice}"
        )

    def _why_no_timing(self) -> str:
        if not self.workers.calibrate:
            return "this Studio does not time its workers (STUDIO_CALIBRATE is off)"
        problem = self.workers.calibration_problem()
        if problem is not None:
            return f"the worker could not time itself: {problem}"
        return "the worker is timing itself (a few seconds once it is idle after starting)"


def _gb(n: int) -> str:
    return f"{n / 1e9:.1f} GB" if n >= 1e8 else f"{n / 1e6:.0f} MB"


__all__ = ["Estimator", "MEMORY_SHARE", "REFERENCE_ITERATION_PIXELS", "REFERENCE_PHOTO"]
