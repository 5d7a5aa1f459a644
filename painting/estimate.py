"""How long a painting takes and how much memory it needs, before it is painted: a pure model.

    calibration = Calibration.from_json(worker_said)          # what the worker measured at start
    estimate(params, 1200, 900, calibration, base_bytes=worker_rss).to_json()
    memory_bytes(400, 533, params)                              # one pass's working memory
    largest_size(params, 1200, 900, budget_bytes, base_bytes=worker_rss)

No TensorFlow and nothing of the engine: Studio (which never loads TensorFlow) refuses a job on this
model's memory and answers its estimate, the engine may call it to decide on tiling, and the numbers
are the same on both sides.

Time. A Gatys painting is a list of passes (`Params.passes()`, coarsest first). Each pass sets up
(its content target and the style Grams: one forward pass of each image, plus a fixed part), then
runs its iterations; an iteration costs `evaluations_per_iteration` loss+gradient evaluations, and an
evaluation at P pixels costs `eval_s + eval_pixel_s * P` seconds, a line the worker fits at start from
timed runs at two small sizes (`pycasso.calibration`). `init: draft` adds one pass of the fast engine.
The fast engine costs `fast_s + fast_pixel_s * P`; a generator model, a constant.

Memory. One Gatys pass holds VGG19's activations up to the deepest layer it reads (kept for the
backward pass; `ACTIVATION_FACTOR` covers the gradients and TensorFlow's own buffers, measured at
256 to 600 px on a CPU), the optimiser's vectors (the image, its gradient, a direction and the
m = `LBFGS_HISTORY` (s, y) pairs, each float32 H×W×3), and a fixed part. Before that, each style
image goes forward alone at the painting's area times style_scale² (`FORWARD_BYTES_PER_PIXEL`); a
pass needs the larger of the two. The estimate's peak adds the worker's own resident memory
(`base_bytes`: the weights, the libraries), which the worker reports when ready, and for `init: draft`
the fast engine's memory for the draft (onnxruntime keeps its arena). `bench/estimate.py` found the
peak within 5 % and the time within 1 % at 256, 400 and 600 px (in-graph L-BFGS engine, 2 CPUs).
"""

from __future__ import annotations

import math
import os
from dataclasses import asdict, dataclass, field
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from painting.params import MAX_SIZE, MAX_STYLES, MAX_WIDTH, MIN_SIZE, VGG19_LAYERS, Params, painting_shape

# --- the model's constants (measured on a 2-core CPU with TensorFlow 2; see bench/estimate.py) --------

CHANNELS = {1: 64, 2: 128, 3: 256, 4: 512, 5: 512}  # VGG19's channels per block
FLOAT_BYTES = 4
ACTIVATION_FACTOR = 2.0  # bytes held per byte of kept activations: their gradients, TF's buffers
LBFGS_HISTORY = 10  # the optimiser's (s, y) pairs
OPTIMISER_VECTORS = 2 * LBFGS_HISTORY + 6  # the pairs, plus x, gradient, direction and a few more
FORWARD_BYTES_PER_PIXEL = 3 * 64 * FLOAT_BYTES  # a style image's forward pass: three 64-channel maps
PASS_FIXED_BYTES = 48 * 2**20  # oneDNN scratch pads, the Grams, the targets, the preview
FAST_BYTES_PER_PIXEL = 256  # the fast engine's transform network (onnxruntime keeps its arena after)
MODEL_BYTES_PER_PIXEL = 1024  # a generator model (unknown network: an allowance, not a measure)
MODEL_SECONDS = 1.0  # a generator model's one pass (not calibrated)
DEFAULT_BASE_BYTES = 1024 * 2**20  # a worker's resident memory before it says (TensorFlow, weights)
FORWARD_SHARE = 0.5  # a forward pass alone costs about half an evaluation (forward + input gradient)


class EstimateRequest(BaseModel):
    """A painting to estimate: its params, its photo's size as shown (upright; none for a latent
    generator model) and how many style images it has."""

    model_config = ConfigDict(extra="forbid")

    params: dict[str, Any] = Field(default_factory=dict, description="The painting's params (as for a job).")
    width: int | None = Field(None, ge=1, le=100 * MAX_WIDTH, description="The photo's width in pixels, upright.")
    height: int | None = Field(None, ge=1, le=100 * MAX_WIDTH, description="The photo's height in pixels, upright.")
    styles: int = Field(1, ge=0, le=MAX_STYLES, description="How many style images it has.")


@dataclass(frozen=True)
class Calibration:
    """What a worker measured at start: the line `eval_s + eval_pixel_s * pixels` (seconds per loss+gradient
    evaluation), its fixed set-up per pass, its evaluations per iteration, and the fast engine's line
    (None where the worker has no fast engine). `points`: the measured (pixels, seconds per evaluation)."""

    eval_s: float
    eval_pixel_s: float
    setup_s: float = 0.2
    evaluations_per_iteration: float = 1.1
    fast_s: float | None = None
    fast_pixel_s: float | None = None
    took_s: float = 0.0
    points: tuple[tuple[int, float], ...] = ()

    def evaluation_seconds(self, pixels: int) -> float:
        return self.eval_s + self.eval_pixel_s * pixels

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["points"] = [list(p) for p in self.points]
        return data

    @classmethod
    def from_json(cls, data: Any) -> Calibration:
        """Read a worker's calibration; raises ValueError naming what is wrong (it came over a pipe)."""
        if not isinstance(data, dict):
            raise ValueError("a calibration is a JSON object")

        def number(name: str, *, optional: bool = False, default: float | None = None) -> float | None:
            value = data.get(name, default)
            if value is None and (optional or default is not None):
                return None
            if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value) or value < 0:
                raise ValueError(f"calibration: {name} must be a number, 0 or more, got {value!r:.40}")
            return float(value)

        points = data.get("points", [])
        if not isinstance(points, list) or not all(
            isinstance(p, list) and len(p) == 2 and all(isinstance(v, int | float) for v in p) for p in points
        ):
            raise ValueError("calibration: points must be a list of [pixels, seconds]")
        epi = number("evaluations_per_iteration", default=1.1)
        return cls(
            eval_s=number("eval_s") or 0.0,
            eval_pixel_s=number("eval_pixel_s") or 0.0,
            setup_s=number("setup_s", default=0.2) or 0.0,
            evaluations_per_iteration=max(1.0, epi or 1.0),
            fast_s=number("fast_s", optional=True),
            fast_pixel_s=number("fast_pixel_s", optional=True),
            took_s=number("took_s", default=0.0) or 0.0,
            points=tuple((int(p[0]), float(p[1])) for p in points),
        )


@dataclass(frozen=True)
class PassEstimate:
    """One pass of a painting: its size (height, width in px), iterations, seconds (None: not calibrated)
    and working memory (bytes, the worker's own not included)."""

    height: int
    width: int
    iterations: int
    seconds: float | None
    memory_bytes: int
    tile: int | None = None  # the side of its tiles when it is over the memory budget (None: whole)


@dataclass(frozen=True)
class Estimate:
    """A painting's estimate: seconds to finish (None, with `reason`, before the worker is calibrated),
    peak memory (bytes, the worker's own included) and each pass."""

    seconds: float | None
    peak_bytes: int
    passes: tuple[PassEstimate, ...] = field(default=())
    reason: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "seconds": None if self.seconds is None else round(self.seconds, 2),
            "peak_bytes": self.peak_bytes,
            "reason": self.reason,
            "passes": [
                {**asdict(p), "seconds": None if p.seconds is None else round(p.seconds, 2)} for p in self.passes
            ],
        }


# --- memory -----------------------------------------------------------------------------------------


def deepest_layer(params: Params) -> str:
    """The deepest VGG19 layer a Gatys painting reads: the network is cut there."""
    return max((params.content_layer, *params.style_layers), key=VGG19_LAYERS.index)


def activation_bytes(height: int, width: int, deepest: str) -> int:
    """Bytes of VGG19's activations for one (height, width) image up to `deepest`: every conv output
    and every pooled map on the way (what the backward pass needs), float32."""
    total = 0
    h, w, block = height, width, 1
    for name in VGG19_LAYERS[: VGG19_LAYERS.index(deepest) + 1]:
        this_block = int(name[5])
        if this_block != block:  # a 2x2 max pool (VALID) between blocks
            h, w, block = h // 2, w // 2, this_block
            total += h * w * CHANNELS[block - 1]
        total += h * w * CHANNELS[block]
    return total * FLOAT_BYTES


def memory_bytes(height: int, width: int, params: Params) -> int:
    """Working memory of one pass at (height, width) px with `params`' engine and layers, in bytes:
    what the worker needs beside its own resident memory (weights, libraries) while it paints."""
    pixels = height * width
    if params.engine == "fast":
        return FAST_BYTES_PER_PIXEL * pixels + PASS_FIXED_BYTES
    if params.engine == "model":
        return MODEL_BYTES_PER_PIXEL * pixels + PASS_FIXED_BYTES
    optimise = ACTIVATION_FACTOR * activation_bytes(height, width, deepest_layer(params))
    optimise += OPTIMISER_VECTORS * pixels * 3 * FLOAT_BYTES
    style_forward = FORWARD_BYTES_PER_PIXEL * pixels * params.style_scale**2
    return math.ceil(max(optimise, style_forward)) + PASS_FIXED_BYTES


# --- tiles: a pass larger than the budget ---------------------------------------------------------

MIN_TILE = 128  # the smallest tile: below it the borders, which see zero padding, are most of a tile
TILE_CANVAS_VECTORS = 4  # a tiled pass keeps its starting image and the canvas (and copies) at full size
DRAFT_MAX_SIZE = 1024  # the fast engine drafts a larger painting at this height, then upscales


def overlap_for(side: int) -> int:
    """The overlap between neighbouring tiles of `side` px: an eighth of a tile, at least 32 px, a
    multiple of 16 (block5's stride) so that neighbours see the same pooling grid."""
    return max(32, side // 8 // 16 * 16)


def _starts(length: int, side: int, overlap: int) -> list[int]:
    if length <= side:
        return [0]
    count = math.ceil((length - overlap) / (side - overlap))
    return [round(i * (length - side) / (count - 1)) for i in range(count)]


def plan_tiles(height: int, width: int, side: int, overlap: int) -> list[tuple[int, int, int, int]]:
    """(top, left, height, width) of tiles at most `side` px square covering height × width in raster
    order, neighbours overlapping by at least `overlap` px, evenly spread."""
    if side <= overlap:
        raise ValueError(f"a tile ({side} px) must be larger than its overlap ({overlap} px)")
    return [
        (top, left, min(side, height), min(side, width))
        for top in _starts(height, side, overlap)
        for left in _starts(width, side, overlap)
    ]


def tile_side(height: int, width: int, params: Params, pass_budget: int | None) -> int | None:
    """The side of the square tiles a Gatys pass of height × width is painted in when its working memory
    is over `pass_budget` bytes (the budget less the worker's own memory): the largest multiple of 16
    that fits, but not under MIN_TILE (which may then still not fit: the caller refuses). None: whole."""
    if pass_budget is None or params.engine != "gatys" or memory_bytes(height, width, params) <= pass_budget:
        return None
    side = max(height, width)
    while side > MIN_TILE and _tiled_bytes(height, width, side, params) > pass_budget:
        side = max(MIN_TILE, int(side * 0.8) // 16 * 16)
    return side


def _tiled_bytes(height: int, width: int, side: int, params: Params) -> int:
    return memory_bytes(side, side, params) + TILE_CANVAS_VECTORS * height * width * 3 * FLOAT_BYTES


def pass_bytes(height: int, width: int, params: Params, pass_budget: int | None = None) -> int:
    """A pass's working memory, painted whole or, over `pass_budget`, in tiles (`tile_side`)."""
    side = tile_side(height, width, params, pass_budget)
    return memory_bytes(height, width, params) if side is None else _tiled_bytes(height, width, side, params)


def draft_shape(height: int, width: int) -> tuple[int, int]:
    """The shape the fast engine drafts a painting of height × width at (no taller than DRAFT_MAX_SIZE)."""
    if height <= DRAFT_MAX_SIZE:
        return height, width
    return DRAFT_MAX_SIZE, max(1, round(width * DRAFT_MAX_SIZE / height))


def _peak_bytes(params: Params, shapes: list[tuple[int, int]], pass_budget: int | None = None) -> int:
    """The most working memory of a run whose passes have these (height, width): its largest pass (in
    tiles where it is over `pass_budget`), plus for `init: draft` the fast engine's memory for the draft
    (onnxruntime keeps its arena)."""
    peak = max(pass_bytes(h, w, params, pass_budget) for h, w in shapes)
    if params.engine == "gatys" and params.init == "draft":
        height, width = draft_shape(*shapes[-1])
        peak += FAST_BYTES_PER_PIXEL * height * width
    return peak


# --- time -------------------------------------------------------------------------------------------


def _pass_shapes(params: Params, content_width: int | None, content_height: int | None) -> list[tuple[int, int, int]]:
    """(height, width, iterations) of each pass; the last one's shape is checked by the shape rule."""
    if content_width is None or content_height is None:  # a latent model paints a square
        content_width = content_height = 1
    passes = params.passes() if params.engine == "gatys" else [(params.size, 1)]
    *coarse, (size, iterations) = passes
    shapes = [(s, max(MIN_SIZE, round(content_width * s / content_height)), n) for s, n in coarse]
    height, width = painting_shape(content_width, content_height, size)
    return [*shapes, (height, width, iterations)]


def _pass_seconds(
    height: int, width: int, iterations: int, params: Params, calibration: Calibration, styles: int
) -> float:
    pixels = height * width
    if params.engine == "fast":
        return (calibration.fast_s or 0.0) + (calibration.fast_pixel_s or 0.0) * pixels
    if params.engine == "model":
        return MODEL_SECONDS
    per_evaluation = calibration.evaluation_seconds(pixels)
    targets = FORWARD_SHARE * (
        per_evaluation + styles * calibration.evaluation_seconds(round(pixels * params.style_scale**2))
    )
    evaluations = 1 + calibration.evaluations_per_iteration * iterations  # the first iteration evaluates twice
    return calibration.setup_s + targets + evaluations * per_evaluation


def estimate(
    params: Params,
    content_width: int | None,
    content_height: int | None,
    calibration: Calibration | None,
    *,
    base_bytes: int = 0,
    styles: int = 1,
    budget_bytes: int | None = None,
) -> Estimate:
    """The time and peak memory of painting a `content_width` × `content_height` photo (upright; None
    for a latent model) with `params` and `styles` style images, on a worker that measured `calibration`
    (None: not yet; then `seconds` is None and `reason` says why) and holds `base_bytes` already.

    Raises ValueError when the painting's shape breaks the shape rule (`painting_shape`).
    """
    pass_budget = None if budget_bytes is None else budget_bytes - base_bytes
    passes = []
    for height, width, iterations in _pass_shapes(params, content_width, content_height):
        side = tile_side(height, width, params, pass_budget)
        seconds = None
        if calibration is not None and side is None:
            seconds = _pass_seconds(height, width, iterations, params, calibration, styles)
        elif calibration is not None and side is not None:  # each tile: its own set-up and all the iterations
            tiles = plan_tiles(height, width, side, overlap_for(side))
            seconds = sum(_pass_seconds(h, w, iterations, params, calibration, styles) for _, _, h, w in tiles)
        memory = pass_bytes(height, width, params, pass_budget)
        passes.append(PassEstimate(height, width, iterations, seconds, memory, tile=side))
    peak = base_bytes + _peak_bytes(params, [(p.height, p.width) for p in passes], pass_budget)
    if calibration is None:
        return Estimate(None, peak, tuple(passes), reason="the worker has not measured its speed yet")
    total = sum(p.seconds or 0.0 for p in passes)
    if params.engine == "gatys" and params.init == "draft" and calibration.fast_s is not None:
        full = passes[-1]  # the worker drafts at the painting's size
        total += calibration.fast_s + (calibration.fast_pixel_s or 0.0) * full.height * full.width
    return Estimate(total, peak, tuple(passes))


def largest_size(
    params: Params,
    content_width: int | None,
    content_height: int | None,
    budget_bytes: int,
    *,
    base_bytes: int = 0,
) -> int | None:
    """The largest `size` (height in px) at which painting this photo with `params` keeps its peak memory
    (`base_bytes` + the largest pass's `memory_bytes`) within `budget_bytes`; None when not even the
    smallest size fits. Sizes the shape rule refuses (a panorama's width) are not offered."""

    def fits(size: int) -> bool:
        try:
            shapes = _pass_shapes(params.model_copy(update={"size": size}), content_width, content_height)
        except ValueError:
            return False
        shapes_hw = [(h, w) for h, w, _ in shapes]
        return base_bytes + _peak_bytes(params, shapes_hw, budget_bytes - base_bytes) <= budget_bytes

    sizes = [s for s in range(MIN_SIZE, MAX_SIZE + 1) if _shape_ok(content_width, content_height, s)]
    low, high = 0, len(sizes)  # memory grows with size: the sizes that fit are a prefix
    while low < high:
        middle = (low + high) // 2
        if fits(sizes[middle]):
            low = middle + 1
        else:
            high = middle
    return sizes[low - 1] if low else None


def physical_memory_bytes() -> int | None:
    """This machine's physical memory in bytes; None where the system does not say."""
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return None


def _shape_ok(width: int | None, height: int | None, size: int) -> bool:
    if width is None or height is None:
        return True
    return MIN_SIZE <= max(1, round(width * size / height)) <= MAX_WIDTH


__all__ = [
    "ACTIVATION_FACTOR",
    "DRAFT_MAX_SIZE",
    "MIN_TILE",
    "TILE_CANVAS_VECTORS",
    "Calibration",
    "DEFAULT_BASE_BYTES",
    "Estimate",
    "EstimateRequest",
    "FAST_BYTES_PER_PIXEL",
    "FORWARD_SHARE",
    "PassEstimate",
    "activation_bytes",
    "deepest_layer",
    "draft_shape",
    "estimate",
    "largest_size",
    "memory_bytes",
    "overlap_for",
    "pass_bytes",
    "physical_memory_bytes",
    "plan_tiles",
    "tile_side",
]
