"""Benchmark of the Pycasso engine (issue 12): one run, one table per section, each with its targets.

    .venv/bin/python bench/engine.py [--short] [--keras] [--out out/bench]

Sections (the full mode at 256 and 400 px; `--short` at 256 px with fewer iterations, a few minutes):

1. optimiser: the in-graph L-BFGS (`Engine.paint`) against scipy's L-BFGS-B on the same loss
   (`_Problem.evaluate`, float64 on the host: the old engine's path, kept here only as a reference),
   same start (init "content") and params; loss after 50/100/200 iterations, seconds per iteration.
   The FLOP floor of an evaluation (forward to block5_conv2 + input gradient at the best conv rate
   measured now) is reported beside it.
2. host: host-side time per iteration at 400 px, everything but the compiled call (the iteration's
   wall time from `on_iterate` minus the time inside the optimiser's `step`), against an evaluation.
3. setup: on a warm engine (one painting at another size done), time from `paint()` to the first
   `step`, minus the style/content targets (`Engine._targets`) and the first evaluation (`start`).
4. coarse: coarse-to-fine schedules against the single-scale run's full-size loss after 200
   iterations at 400 px: the wall time to reach it; the two final images side by side in a PNG.
5. precision: fp32 against bf16 (`Engine(precision="bf16")`): seconds per iteration, and the wall time
   bf16 needs to reach the fp32 run's loss after 50 and 100 iterations, every image scored by the
   fp32 engine (`Engine.losses`, uint8 images).
6. repro: two child processes paint the same seed and params at 400 px (init "noise", fp32); the
   largest pixel difference.
7. keras (`--keras`): seconds per evaluation of the classic Keras example's method (content, style and
   painting as one batch of 3, style Grams recomputed every evaluation).

Everything runs in ONE process (the repro children aside), so the ratios share the machine's state:
on a shared machine compare only numbers from the same run. Images and bench.json go to --out.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # before TensorFlow is imported

import numpy as np  # noqa: E402
import scipy.optimize  # noqa: E402

from painting.estimate import MIN_TILE, memory_bytes, overlap_for, plan_tiles, tile_side  # noqa: E402
from painting.params import VGG19_LAYERS, Params  # noqa: E402
from pycasso import imaging  # noqa: E402
from pycasso._tf import tf  # noqa: E402  (pycasso's TF settings: one inter-op thread, for reproducibility)
from pycasso.engine import Engine, Iterate, seam_contrast  # noqa: E402
from pycasso.errors import Cancelled  # noqa: E402
from pycasso.examples import landscape, swirls  # noqa: E402
from pycasso.lbfgs import LBFGS, State  # noqa: E402
from pycasso.losses import content_loss, gram_matrix, style_loss, total_variation_loss  # noqa: E402
from pycasso.vgg import VGG19Features, conv_flops  # noqa: E402
from pycasso.weights import KERNEL_SHAPES  # noqa: E402

RATE_LAYERS = ("block1_conv2", "block2_conv2", "block3_conv2", "block4_conv2")
TARGET_HOST = 0.02  # host time per iteration / one evaluation
TARGET_SETUP_S = 0.5  # set-up before the first iteration, targets and first evaluation excluded
TARGET_COARSE = 0.25  # coarse-to-fine time to the target loss / single-scale time to its last checkpoint
TARGET_REPRO = 1  # largest |Δpixel| between two processes, of 255
JSON_MARK = "BENCH_CHILD_JSON "


@dataclass(frozen=True)
class Config:
    """What one benchmark run measures. `full()` is the note's run, `short()` a few minutes'."""

    sizes: tuple[int, ...] = (256, 400)  # optimiser and floor sections
    checkpoints: tuple[int, ...] = (50, 100, 200)  # iterations at which losses are compared
    main_size: int = 400  # host time, set-up and coarse-to-fine
    coarse_schedules: tuple[tuple[int, int], ...] = ((1, 50), (1, 100), (2, 50), (2, 100))  # (passes, iterations)
    coarse_budget: int = 150  # full-size iterations at most per schedule
    coarse_time_cap: float = 0.5  # stop a schedule past this share of the single-scale run's wall time
    precision_sizes: tuple[int, ...] = (256, 400)
    precision_checkpoints: tuple[int, ...] = (50, 100)
    bf16_budget: float = 1.5  # bf16 iterations = this × the last precision checkpoint
    repro_size: int = 400
    repro_iterations: int = 20
    repro_seed: int = 1234
    warmup_size: int = 64  # one painting at another size first: every measured run is on a warm engine
    keras: bool = False
    keras_evals: int = 12
    tiles_size: int = 320  # a painting painted whole and in tiles of about 60 % of its height
    tiles_iterations: int = 30
    out: Path = Path("out/bench")

    @classmethod
    def full(cls, **changes: Any) -> Config:
        return dataclasses.replace(cls(), **changes)

    @classmethod
    def short(cls, **changes: Any) -> Config:
        base = cls(
            sizes=(256,),
            checkpoints=(25, 50),
            main_size=256,
            coarse_schedules=((1, 25), (2, 25)),
            coarse_budget=50,
            precision_sizes=(256,),
            precision_checkpoints=(25, 50),
            repro_size=256,
            repro_iterations=10,
            tiles_size=192,
            tiles_iterations=15,
        )
        return dataclasses.replace(base, **changes)


# --- inputs ---------------------------------------------------------------------------------------


def shape_for(size: int) -> tuple[int, int]:
    """(height, width) of a 4:3 landscape painting `size` pixels tall: 256 -> 256×341, 400 -> 400×533."""
    return imaging.painting_shape((3, 4), size)


def pair(size: int) -> tuple[np.ndarray, np.ndarray]:
    """The generated content and style images, both drawn at the painting's shape."""
    h, w = shape_for(size)
    return landscape(h, w), swirls(h, w)


def bench_params(size: int, iterations: int, **changes: Any) -> Params:
    fields: dict[str, Any] = {"size": size, "iterations": iterations, "init": "content", "preview_every": 0}
    return Params(**{**fields, **changes})


def _median(values: Sequence[float]) -> float:
    return float(statistics.median(values)) if values else math.nan


def _save_png(path: Path, image: np.ndarray) -> str:
    path.write_bytes(imaging.encode_png(image))
    return str(path)


# --- an engine that times its compiled calls ------------------------------------------------------


@dataclass
class CallLog:
    """perf_counter intervals of the optimiser's compiled calls and of the target computation."""

    starts: list[tuple[float, float]] = field(default_factory=list)  # `start`: the first evaluation of a pass
    steps: list[tuple[float, float, int]] = field(default_factory=list)  # `step`: (begin, end, evaluations)
    targets_s: float = 0.0

    def clear(self) -> None:
        self.starts.clear()
        self.steps.clear()
        self.targets_s = 0.0


class _TimedOptimiser:
    """Delegates to the engine's LBFGS, logging each compiled call's wall time. The scalar `f` is read
    before the clock stops, so the time is the call's even where execution is asynchronous (GPU)."""

    def __init__(self, inner: LBFGS, log: CallLog) -> None:
        self._inner = inner
        self._log = log

    def start(self, x: tf.Tensor, args: tuple[Any, ...]) -> State:
        begin = time.perf_counter()
        state = self._inner.start(x, args)
        float(state.f)
        self._log.starts.append((begin, time.perf_counter()))
        return state

    def step(self, state: State, lower: tf.Tensor, upper: tf.Tensor, args: tuple[Any, ...]) -> State:
        begin = time.perf_counter()
        new = self._inner.step(state, lower, upper, args)
        float(new.f)
        self._log.steps.append((begin, time.perf_counter(), int(new.evaluations)))
        return new

    def __getattr__(self, name: str) -> Any:  # objective, history...: the real optimiser's
        return getattr(self._inner, name)


class TimedEngine(Engine):
    """The engine, unchanged, with its optimiser's `start`/`step` and `_targets` timed into `log`."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.log = CallLog()

    def _optimiser(self, content_layer: str, style_layers: tuple[str, ...]) -> LBFGS:
        # A proxy, not an LBFGS: the engine only calls start, step and objective on it.
        return cast(LBFGS, _TimedOptimiser(super()._optimiser(content_layer, style_layers), self.log))

    def _targets(self, *args: Any) -> Any:
        begin = time.perf_counter()
        try:
            return super()._targets(*args)
        finally:
            self.log.targets_s += time.perf_counter() - begin


# --- one timed painting ---------------------------------------------------------------------------


@dataclass
class Mark:
    """One iteration as `on_iterate` heard it."""

    iteration: int
    elapsed_s: float
    size: int  # the pass's height
    loss: float  # total, at the pass's size
    evaluations: int


@dataclass
class Run:
    """A timed `Engine.paint` run: every iteration's mark, the kept iterates, the compiled calls."""

    size: int
    called: float  # perf_counter just before paint()
    wall_s: float
    marks: list[Mark]
    kept: dict[int, Iterate] = field(repr=False)  # iteration -> Iterate (its pixels stay a tensor)
    log: CallLog = field(repr=False)
    image: np.ndarray = field(repr=False)

    def at(self, iteration: int) -> Mark:
        return self.marks[iteration - 1]

    def s_per_iteration(self, size: int | None = None) -> float:
        """Median Δelapsed between iterations of one pass (`size`, default the last), its first skipped."""
        size = self.marks[-1].size if size is None else size
        marks = [m for m in self.marks if m.size == size]
        return _median([b.elapsed_s - a.elapsed_s for a, b in zip(marks, marks[1:], strict=False)])

    def s_per_evaluation(self) -> float:
        """Median time of a compiled step that made exactly one evaluation (the usual case)."""
        return _median([end - begin for begin, end, n in self.log.steps if n == 1])

    def host_times(self) -> list[float]:
        """Per iteration after the first: Δelapsed minus the time inside that iteration's `step`."""
        steps = self.log.steps
        assert len(steps) == len(self.marks), (len(steps), len(self.marks))
        return [
            (b.elapsed_s - a.elapsed_s) - (steps[i + 1][1] - steps[i + 1][0])
            for i, (a, b) in enumerate(zip(self.marks, self.marks[1:], strict=False))
            if a.size == b.size
        ]

    def setup(self) -> dict[str, float]:
        """paint() to the first `step`, and that minus the targets and the first evaluation (`start`)."""
        to_first_step = self.log.steps[0][0] - self.called
        first_eval = self.log.starts[0][1] - self.log.starts[0][0]
        return {
            "to_first_step_s": to_first_step,
            "targets_s": self.log.targets_s,
            "first_evaluation_s": first_eval,
            "setup_s": to_first_step - self.log.targets_s - first_eval,
        }


def paint_run(
    engine: TimedEngine,
    params: Params,
    *,
    keep: Callable[[int], bool] = lambda _i: False,
    stop: Callable[[Mark], bool] = lambda _m: False,
) -> Run:
    """Paint the generated pair at `params.size`, timing everything; `keep` says which iterations'
    Iterates to hold (for their images), `stop` ends the run after an iteration."""
    content, style = pair(params.size)
    marks: list[Mark] = []
    kept: dict[int, Iterate] = {}

    def on_iterate(it: Iterate) -> None:
        marks.append(Mark(it.iteration, it.elapsed_s, it.size, it.loss.total, it.evaluations))
        if keep(it.iteration):
            kept[it.iteration] = it

    engine.log.clear()
    called = time.perf_counter()
    try:
        image = engine.paint(
            content, [style], params, on_iterate, should_stop=lambda: bool(marks) and stop(marks[-1])
        ).image
    except Cancelled as stopped:
        assert stopped.image is not None
        image = stopped.image
    wall = time.perf_counter() - called
    log = CallLog(list(engine.log.starts), list(engine.log.steps), engine.log.targets_s)
    return Run(params.size, called, wall, marks, kept, log, image)


def score(engine: Engine, size: int, image: np.ndarray) -> float:
    """The full-size fp32 loss of a uint8 painting of the generated pair (the loss `paint` minimises)."""
    content, style = pair(size)
    return engine.losses(image, content, [style], bench_params(size, 1)).total


# --- the scipy L-BFGS-B reference -----------------------------------------------------------------


@dataclass
class ScipyRun:
    elapsed: list[float]  # seconds since the start at each iteration's end
    losses: list[float]  # total loss at each iterate
    evaluations: list[int]
    images: dict[int, np.ndarray] = field(repr=False)  # at the checkpoints

    def s_per_iteration(self) -> float:
        return _median(list(np.diff(self.elapsed)))


def scipy_run(engine: Engine, size: int, iterations: int, checkpoints: Sequence[int]) -> ScipyRun:
    """The old engine's optimiser: scipy L-BFGS-B in float64 on the host over the engine's loss and
    gradient (compiled, as the old engine's was: `_Problem.evaluate` runs it eagerly), bounded to the
    pixel box, from the content image, `iterations` iterations."""
    content, style = pair(size)
    params = bench_params(size, iterations)
    problem = engine._prepare(content, [style], params, [1.0])
    shape = (problem.height, problem.width, 3)
    x0 = imaging.to_vgg(problem.content_rgb).astype(np.float64).ravel()
    lower, upper = imaging.vgg_bounds(shape)
    evaluations = 0
    run = ScipyRun([], [], [], {})
    objective = _compiled_objective(problem)

    def fun(x: np.ndarray) -> tuple[float, np.ndarray]:
        nonlocal evaluations
        evaluations += 1
        f, _, grad = objective(tf.constant(x.reshape((1, *shape)), tf.float32), *problem.targets)
        return float(f), grad.numpy().ravel().astype(np.float64)

    fun(x0)  # trace before the clock starts (the in-graph step was traced by the warm-up)
    evaluations = 0

    def callback(intermediate_result: scipy.optimize.OptimizeResult) -> None:
        run.elapsed.append(time.perf_counter() - started)
        run.losses.append(float(intermediate_result.fun))
        run.evaluations.append(evaluations)
        if len(run.losses) in checkpoints:
            run.images[len(run.losses)] = problem.finish(intermediate_result.x.reshape(shape).astype(np.float32))

    started = time.perf_counter()
    scipy.optimize.minimize(
        fun,
        x0,
        jac=True,
        method="L-BFGS-B",
        bounds=scipy.optimize.Bounds(lower, upper),
        callback=callback,
        options={"maxiter": iterations, "maxfun": 25 * iterations, "ftol": 0, "gtol": 0},
    )
    return run


def _compiled_objective(problem: Any) -> Callable[..., Any]:
    """The problem's loss+gradient as one compiled call: (1, H, W, 3) pixels, *targets -> (f, terms, g)."""
    return cast(Callable[..., Any], tf.function(problem.optimiser.objective))


def alternating_s_per_eval(engines: dict[str, Engine], size: int, reps: int = 5) -> dict[str, float]:
    """Median seconds of one compiled loss+gradient per engine, the engines taking turns so that they
    share the machine's load (a shared machine's load moves between the runs of a section)."""
    content, style = pair(size)
    params = bench_params(size, 1)
    calls = {}
    for name, engine in engines.items():
        problem = engine._prepare(content, [style], params, [1.0])
        x = tf.constant(imaging.to_vgg(problem.content_rgb)[None])
        calls[name] = (_compiled_objective(problem), x, problem.targets)
    times: dict[str, list[float]] = {name: [] for name in engines}
    for rep in range(reps + 1):
        for name, (fn, x, targets) in calls.items():
            begin = time.perf_counter()
            fn(x, *targets)[2].numpy()
            if rep:  # the first call traces
                times[name].append(time.perf_counter() - begin)
    return {name: _median(t) for name, t in times.items()}


# --- the FLOP floor and the classic Keras method (earlier issues) --------------------------------


def conv_rates(height: int, width: int, layers: Sequence[str] = RATE_LAYERS, reps: int = 5) -> dict[str, float]:
    """GFLOP/s of tf.nn.conv2d (compiled) on VGG19's own layer shapes at this image size, median of reps."""
    rates: dict[str, float] = {}
    for name in layers:
        block = int(name[5])
        h, w = height, width
        for _ in range(block - 1):
            h, w = h // 2, w // 2
        kh, kw, cin, cout = KERNEL_SHAPES[name]
        x = tf.random.stateless_normal((1, h, w, cin), seed=(1, 2))
        kernel = tf.random.stateless_normal((kh, kw, cin, cout), seed=(3, 4)) * 0.05
        conv = tf.function(lambda x, k=kernel: tf.nn.conv2d(x, k, 1, "SAME"))
        conv(x)  # trace and warm up
        conv(x)
        times = []
        for _ in range(reps):
            start = time.perf_counter()
            conv(x).numpy()
            times.append(time.perf_counter() - start)
        rates[name] = 2.0 * h * w * kh * kw * cin * cout / _median(times) / 1e9
    return rates


def eval_flops(height: int, width: int) -> float:
    """FLOPs of one evaluation's convolutions: forward to block5_conv2 plus the input gradient (same)."""
    return 2.0 * conv_flops(height, width, "block5_conv2")


class KerasReference:
    """The classic Keras example: content, style and painting as ONE batch of 3 through the network at
    every evaluation, Grams of the style recomputed each time, loss and gradient in one compiled call."""

    def __init__(self, network: VGG19Features, content: np.ndarray, style: np.ndarray, params: Params) -> None:
        self.x0 = tf.constant(imaging.to_vgg(content)[None])
        content_t = self.x0
        style_t = tf.constant(imaging.to_vgg(style)[None])
        content_layer = params.content_layer
        style_layers = tuple(name for name in VGG19_LAYERS if name in params.style_layers)
        layers = (content_layer, *style_layers)
        pixels = content.shape[0] * content.shape[1]
        cw, sw, tw = params.content_weight, params.style_weight / len(style_layers), params.tv_weight

        @tf.function
        def loss_and_grads(combination):
            with tf.GradientTape() as tape:
                tape.watch(combination)
                feats = network(tf.concat([content_t, style_t, combination], axis=0), layers)
                loss = cw * content_loss(feats[content_layer][0], feats[content_layer][2])
                for name in style_layers:
                    loss += sw * style_loss(gram_matrix(feats[name][1]), feats[name][2], pixels)
                loss += tw * total_variation_loss(combination)
            return loss, tape.gradient(loss, combination)

        self.fn = loss_and_grads

    def s_per_evaluation(self, evaluations: int) -> float:
        self.fn(self.x0)[1].numpy()  # trace
        times = []
        for _ in range(evaluations):
            begin = time.perf_counter()
            self.fn(self.x0)[1].numpy()
            times.append(time.perf_counter() - begin)
        return _median(times)


# --- the sections ---------------------------------------------------------------------------------


def _target(what: str, value: float, limit: float, *, higher_is_better: bool = False) -> dict[str, Any]:
    ok = value >= limit if higher_is_better else value <= limit
    return {"what": what, "value": value, "target": limit, "op": ">=" if higher_is_better else "<=", "pass": bool(ok)}


class Bench:
    """Runs the sections in order; later ones reuse the earlier ones' runs (the in-graph runs of section 1
    are the single-scale and fp32 references of sections 2 to 5)."""

    def __init__(self, config: Config, log: Callable[[str], None] = lambda _m: None) -> None:
        self.config = config
        self.log = log
        self.out = Path(config.out)
        self.out.mkdir(parents=True, exist_ok=True)
        begin = time.perf_counter()
        self.engine = TimedEngine()
        self.engine_load_s = time.perf_counter() - begin
        self._bf16: TimedEngine | None = None
        self.ingraph: dict[int, Run] = {}
        self.setups: dict[int, dict[str, float]] = {}
        self.log(f"warm-up painting at {config.warmup_size} px")
        paint_run(self.engine, bench_params(config.warmup_size, 2))

    def bf16_engine(self) -> TimedEngine:
        if self._bf16 is None:
            self._bf16 = TimedEngine(precision="bf16")
            paint_run(self._bf16, bench_params(self.config.warmup_size, 2))
        return self._bf16

    # 1 --------------------------------------------------------------------------------------------

    def optimiser(self) -> dict[str, Any]:
        cfg = self.config
        iterations = max(cfg.checkpoints)
        rows = []
        targets = []
        for size in cfg.sizes:
            h, w = shape_for(size)
            self.log(f"optimiser: in-graph L-BFGS at {size} px, {iterations} iterations")
            keep = set(cfg.checkpoints) | set(cfg.precision_checkpoints)
            run = paint_run(self.engine, bench_params(size, iterations), keep=keep.__contains__)
            self.ingraph[size] = run
            self.setups[size] = run.setup()
            self.log(f"optimiser: scipy L-BFGS-B at {size} px, {iterations} iterations")
            ref = scipy_run(self.engine, size, iterations, cfg.checkpoints)
            rates = conv_rates(h, w)
            floor_s = eval_flops(h, w) / (max(rates.values()) * 1e9)
            row: dict[str, Any] = {
                "size": size,
                "height": h,
                "width": w,
                "ingraph_s_per_it": run.s_per_iteration(),
                "scipy_s_per_it": ref.s_per_iteration(),
                "ingraph_s_per_eval": run.s_per_evaluation(),
                "ingraph_evals": run.marks[-1].evaluations,
                "scipy_evals": ref.evaluations[-1] if ref.evaluations else 0,
                "floor_s": floor_s,
                "conv_gflops": rates,
                "checkpoints": {},
            }
            for n in cfg.checkpoints:
                if n > len(ref.losses) or n > len(run.marks):
                    continue  # scipy stopped early (it never should with ftol = gtol = 0)
                ingraph_image = run.kept[n].image()
                row["checkpoints"][n] = {
                    "ingraph": run.at(n).loss,
                    "scipy": ref.losses[n - 1],
                    "ingraph_uint8": score(self.engine, size, ingraph_image),
                    "scipy_uint8": score(self.engine, size, ref.images[n]),
                    "ingraph_s": run.at(n).elapsed_s,
                    "scipy_s": ref.elapsed[n - 1],
                    "ingraph_evals": run.at(n).evaluations,
                    "scipy_evals": ref.evaluations[n - 1],
                }
                targets.append(
                    _target(f"in-graph / scipy loss, {n} it at {size} px", run.at(n).loss / ref.losses[n - 1], 1.0)
                )
                _save_png(self.out / f"optimiser_{size}_{n}it_ingraph.png", ingraph_image)
                _save_png(self.out / f"optimiser_{size}_{n}it_scipy.png", ref.images[n])
            rows.append(row)
        return {"rows": rows, "targets": targets}

    # 2 --------------------------------------------------------------------------------------------

    def host(self) -> dict[str, Any]:
        size = self.config.main_size
        run = self.ingraph[size]
        host = run.host_times()
        per_eval = run.s_per_evaluation()
        host_s = _median(host)
        return {
            "size": size,
            "host_s_median": host_s,
            "host_s_mean": float(np.mean(host)) if host else math.nan,
            "host_s_max": max(host) if host else math.nan,
            "s_per_evaluation": per_eval,
            "iterations": len(host),
            "targets": [_target(f"host time per iteration / evaluation at {size} px", host_s / per_eval, TARGET_HOST)],
        }

    # 3 --------------------------------------------------------------------------------------------

    def setup(self) -> dict[str, Any]:
        size = self.config.main_size
        return {
            "sizes": self.setups,
            "targets": [
                _target(
                    f"set-up before the first iteration at {size} px (s)", self.setups[size]["setup_s"], TARGET_SETUP_S
                )
            ],
        }

    # 4 --------------------------------------------------------------------------------------------

    def coarse(self) -> dict[str, Any]:
        cfg = self.config
        size = cfg.main_size
        single = self.ingraph[size]
        n = max(cfg.checkpoints)
        target_loss = single.at(n).loss
        single_s = single.at(n).elapsed_s
        cap_s = cfg.coarse_time_cap * single_s
        schedules = []
        finals: dict[tuple[int, int], np.ndarray] = {}
        for passes, coarse_its in cfg.coarse_schedules:
            params = bench_params(size, cfg.coarse_budget, coarse_passes=passes, coarse_iterations=coarse_its)
            first_full = sum(its for _, its in params.passes()[:-1]) + 1  # the first iteration at the full size
            self.log(f"coarse: {passes} pass(es) × {coarse_its} it, then up to {cfg.coarse_budget} at {size} px")

            def stop(m: Mark) -> bool:
                return (m.size == size and m.loss <= target_loss) or m.elapsed_s > cap_s  # noqa: B023

            run = paint_run(self.engine, params, keep=lambda i: i == first_full, stop=stop)  # noqa: B023
            full = [m for m in run.marks if m.size == size]
            reached = next((m for m in full if m.loss <= target_loss), None)
            last = run.marks[-1]
            row: dict[str, Any] = {
                "coarse_passes": passes,
                "coarse_iterations": coarse_its,
                "passes": [list(p) for p in params.passes()],
                "coarse_s": max((m.elapsed_s for m in run.marks if m.size != size), default=0.0),
                "full_iterations": len(full),
                "reached": reached is not None,
                "time_to_target_s": reached.elapsed_s if reached else None,
                "ratio_to_single": (reached.elapsed_s / single_s) if reached else None,
                "last_s": last.elapsed_s,
                "last_loss_over_target": last.loss / target_loss if last.size == size else None,
                "capped": reached is None and last.elapsed_s > cap_s,
            }
            if first_full in run.kept:  # the last pass's losses are full-size: check the first with Engine.losses
                it = run.kept[first_full]
                scored = score(self.engine, size, it.image())
                row["first_full_loss"] = it.loss.total
                row["first_full_scored_uint8"] = scored
            schedules.append(row)
            finals[(passes, coarse_its)] = imaging.resize(run.image, *single.image.shape[:2])  # capped in a pass

        def rank(r: dict[str, Any]) -> tuple[int, float]:
            if r["reached"]:
                return (0, r["time_to_target_s"])
            return (1, r["last_loss_over_target"] if r["last_loss_over_target"] is not None else math.inf)

        best = min(schedules, key=rank)
        key = (best["coarse_passes"], best["coarse_iterations"])
        side = _side_by_side(single.image, finals[key])
        image_path = _save_png(self.out / f"coarse_{size}_single{n}_vs_{key[0]}x{key[1]}.png", side)
        value = best["ratio_to_single"] if best["reached"] else math.inf
        return {
            "size": size,
            "single_iterations": n,
            "single_s": single_s,
            "target_loss": target_loss,
            "cap_s": cap_s,
            "schedules": schedules,
            "best": {"coarse_passes": key[0], "coarse_iterations": key[1]},
            "image": image_path,
            "targets": [_target(f"coarse-to-fine time / single-scale {n} it at {size} px", value, TARGET_COARSE)],
        }

    # 5 --------------------------------------------------------------------------------------------

    def precision(self) -> dict[str, Any]:
        cfg = self.config
        bf16 = self.bf16_engine()
        rows = []
        targets = []
        for size in cfg.precision_sizes:
            fp32 = self.ingraph.get(size)
            if fp32 is None:  # a size the optimiser section did not run
                keep = set(cfg.precision_checkpoints)
                fp32 = paint_run(self.engine, bench_params(size, max(keep)), keep=keep.__contains__)
            iterations = math.ceil(cfg.bf16_budget * max(cfg.precision_checkpoints))
            self.log(f"precision: bf16 at {size} px, {iterations} iterations")
            run = paint_run(bf16, bench_params(size, iterations), keep=lambda _i: True)
            scored = _scorer(self.engine, run)
            alternating = alternating_s_per_eval({"fp32": self.engine, "bf16": bf16}, size)
            eval_ratio = alternating["bf16"] / alternating["fp32"]

            row: dict[str, Any] = {
                "size": size,
                "fp32_s_per_it": fp32.s_per_iteration(),
                "bf16_s_per_it": run.s_per_iteration(),
                "fp32_s_per_eval": fp32.s_per_evaluation(),
                "bf16_s_per_eval": run.s_per_evaluation(),
                "bf16_iterations": len(run.marks),
                "alternating_s_per_eval": alternating,
                "checkpoints": {},
            }
            for n in cfg.precision_checkpoints:
                goal = score(self.engine, size, fp32.kept[n].image())
                first = _first_reaching(len(run.marks), scored, goal)
                fp32_s = fp32.at(n).elapsed_s
                bf16_s = run.at(first).elapsed_s if first else None
                row["checkpoints"][n] = {
                    "fp32_loss": goal,
                    "fp32_s": fp32_s,
                    "bf16_iterations": first,
                    "bf16_s": bf16_s,
                    "ratio": bf16_s / fp32_s if bf16_s is not None else None,
                    # The same in evaluations, priced by the alternating timing: immune to load drift.
                    "eval_ratio": run.at(first).evaluations * eval_ratio / fp32.at(n).evaluations if first else None,
                    "bf16_loss_at_n": scored(n),
                    "bf16_own_loss_at_n": run.at(n).loss,  # its bf16 objective, for the bias
                }
                value = bf16_s / fp32_s if bf16_s is not None else math.inf
                targets.append(_target(f"bf16 / fp32 time to fp32's {n}-it loss at {size} px", value, 1.0))
            row["fp32_scored_final"] = scored(len(run.marks))
            rows.append(row)
        wall = all(t["pass"] for t in targets)
        evals = all(
            c["eval_ratio"] is not None and c["eval_ratio"] < 1 for r in rows for c in r["checkpoints"].values()
        )
        winner = (
            "bf16"
            if wall and evals
            else "fp32"
            if not (wall or evals)
            else "unclear (wall time and evaluations disagree)"
        )
        return {"rows": rows, "winner": winner, "targets": targets}

    # 6 --------------------------------------------------------------------------------------------

    def repro(self) -> dict[str, Any]:
        cfg = self.config
        job = {"size": cfg.repro_size, "iterations": cfg.repro_iterations, "seed": cfg.repro_seed}
        images = []
        paths = []
        for tag in ("a", "b"):
            self.log(f"repro: child {tag}, {cfg.repro_iterations} iterations at {cfg.repro_size} px")
            path = self.out / f"repro_{cfg.repro_size}_{tag}.png"
            run_child({**job, "out": str(path)})
            paths.append(str(path))
            images.append(imaging.decode_image(path.read_bytes()).astype(np.int16))
        diff = np.abs(images[0] - images[1])
        max_diff = int(diff.max())
        return {
            **job,
            "mean_abs_diff": float(diff.mean()),
            "max_abs_diff": max_diff,
            "bit_exact": max_diff == 0,
            "differing_pixels": float((diff > 0).mean()),
            "images": paths,
            "targets": [_target(f"max |Δpixel| between processes at {cfg.repro_size} px", max_diff, TARGET_REPRO)],
        }

    # 7 --------------------------------------------------------------------------------------------

    def keras(self) -> dict[str, Any]:
        rows = []
        for size in self.config.sizes:
            self.log(f"keras: the classic method at {size} px, {self.config.keras_evals} evaluations")
            content, style = pair(size)
            reference = KerasReference(self.engine.network, content, style, bench_params(size, 1))
            keras_s = reference.s_per_evaluation(self.config.keras_evals)
            engine_s = self.ingraph[size].s_per_evaluation()
            rows.append({"size": size, "keras_s": keras_s, "engine_s": engine_s, "ratio": engine_s / keras_s})
        return {"rows": rows, "targets": []}


def _scorer(engine: Engine, run: Run) -> Callable[[int], float]:
    """Iteration -> the fp32 full-size loss of that kept iterate's uint8 image, each scored once."""
    scores: dict[int, float] = {}

    def scored(iteration: int) -> float:
        if iteration not in scores:
            scores[iteration] = score(engine, run.size, run.kept[iteration].image())
        return scores[iteration]

    return scored


def _first_reaching(count: int, loss_at: Callable[[int], float], goal: float) -> int | None:
    """The first iteration in 1..count whose loss is ≤ goal, by bisection (the loss falls as it goes:
    L-BFGS here only accepts decreases), or None when even the last is above it."""
    if loss_at(count) > goal:
        return None
    lo, hi = 1, count
    while lo < hi:
        mid = (lo + hi) // 2
        if loss_at(mid) <= goal:
            hi = mid
        else:
            lo = mid + 1
    return lo


def _side_by_side(left: np.ndarray, right: np.ndarray, gap: int = 8) -> np.ndarray:
    white = np.full((left.shape[0], gap, 3), 255, np.uint8)
    return np.concatenate([left, white, right], axis=1)


# --- the child process of section 6 ---------------------------------------------------------------


def child_main(job: dict[str, Any]) -> dict[str, Any]:
    """Paint the repro job (init noise, fp32) on a fresh engine; save the PNG where `job["out"]` says."""
    size = job["size"]
    content, style = pair(size)
    params = bench_params(size, job["iterations"], init="noise", seed=job["seed"])
    image = Engine().paint(content, [style], params).image
    Path(job["out"]).write_bytes(imaging.encode_png(image))
    return {"out": job["out"]}


def run_child(job: dict[str, Any]) -> dict[str, Any]:
    proc = subprocess.run(
        [sys.executable, str(Path(__file__).resolve()), "--child", json.dumps(job)],
        capture_output=True,
        text=True,
        check=False,
    )
    for line in proc.stdout.splitlines():
        if line.startswith(JSON_MARK):
            return json.loads(line[len(JSON_MARK) :])
    raise RuntimeError(f"child failed (exit {proc.returncode}):\n{proc.stderr[-3000:]}")


# --- the whole benchmark --------------------------------------------------------------------------

# The sections in run order: (name, method of Bench, table). Each returns a JSON-able dict with a
# "targets" list (what, value, op, target, pass).
SECTIONS: list[tuple[str, Callable[[Bench], dict[str, Any]], Callable[[dict[str, Any]], list[str]]]] = []


def run_benchmark(config: Config, log: Callable[[str], None] = lambda _m: None) -> dict[str, Any]:
    """Run every section; return the JSON-able report (machine, config, one entry per section)."""
    begin = time.perf_counter()
    bench = Bench(config, log)
    report: dict[str, Any] = {
        "machine": {"cpus": os.cpu_count(), "tensorflow": tf.__version__, "scipy": scipy.__version__},
        "config": _jsonable(dataclasses.asdict(config)),
        "engine_load_s": bench.engine_load_s,
        "sections": {},
    }
    for name, measure, _ in SECTIONS:
        if name == "keras" and not config.keras:
            continue
        started = time.perf_counter()
        report["sections"][name] = {**measure(bench), "section_s": time.perf_counter() - started}
    report["total_s"] = time.perf_counter() - begin
    return report


# --- the tables -----------------------------------------------------------------------------------


def _fmt(value: Any, spec: str = ".3f") -> str:
    return "—" if value is None or (isinstance(value, float) and not math.isfinite(value)) else format(value, spec)


def table_optimiser(s: dict[str, Any]) -> list[str]:
    out = ["1. Optimiser: in-graph L-BFGS vs scipy L-BFGS-B (reference), init content, same params"]
    out.append(
        f"{'size':>5} {'it':>4} {'loss in-graph':>13} {'loss scipy':>11} {'ratio':>6} "
        f"{'uint8 in-g':>11} {'uint8 scipy':>11} {'s in-g':>7} {'s scipy':>7} {'evals':>9}"
    )
    for r in s["rows"]:
        for n, c in r["checkpoints"].items():
            out.append(
                f"{r['size']:>5} {n:>4} {c['ingraph']:>13.4e} {c['scipy']:>11.4e} {c['ingraph'] / c['scipy']:>6.3f} "
                f"{c['ingraph_uint8']:>11.4e} {c['scipy_uint8']:>11.4e} {c['ingraph_s']:>7.1f} {c['scipy_s']:>7.1f} "
                f"{c['ingraph_evals']:>4}/{c['scipy_evals']:<4}"
            )
    out.append(f"{'size':>5} {'s/it in-graph':>13} {'s/it scipy':>11} {'ratio':>6} {'s/eval':>7} {'floor s':>8} ×floor")
    for r in s["rows"]:
        out.append(
            f"{r['size']:>5} {r['ingraph_s_per_it']:>13.3f} {r['scipy_s_per_it']:>11.3f} "
            f"{r['ingraph_s_per_it'] / r['scipy_s_per_it']:>6.2f} {r['ingraph_s_per_eval']:>7.3f} "
            f"{r['floor_s']:>8.3f} {r['ingraph_s_per_eval'] / r['floor_s']:.2f}"
        )
    out.append("  (loss: the optimiser's own, float pixels; uint8: the saved image scored by Engine.losses;")
    out.append("   s: wall time to that iteration; s/eval: median compiled step of one evaluation)")
    return out


def table_host(s: dict[str, Any]) -> list[str]:
    return [
        f"2. Host-side time per iteration at {s['size']} px (iteration wall time minus the compiled step)",
        f"  median {s['host_s_median'] * 1e3:.2f} ms, mean {s['host_s_mean'] * 1e3:.2f} ms, max "
        f"{s['host_s_max'] * 1e3:.2f} ms over {s['iterations']} iterations; one evaluation "
        f"{s['s_per_evaluation']:.3f} s",
    ]


def table_setup(s: dict[str, Any]) -> list[str]:
    out = [
        "3. Set-up before the first iteration, warm engine (paint() to the first step)",
        f"{'size':>5} {'to step s':>9} {'targets s':>9} {'1st eval s':>10} {'set-up s':>8}",
    ]
    for size, v in s["sizes"].items():
        out.append(
            f"{size:>5} {v['to_first_step_s']:>9.3f} {v['targets_s']:>9.3f} {v['first_evaluation_s']:>10.3f} "
            f"{v['setup_s']:>8.3f}"
        )
    return out


def table_coarse(s: dict[str, Any]) -> list[str]:
    out = [
        f"4. Coarse-to-fine at {s['size']} px: target loss {s['target_loss']:.4e} = single-scale after "
        f"{s['single_iterations']} it, in {s['single_s']:.1f} s (schedules stopped past {s['cap_s']:.0f} s)",
        f"{'passes':>6} {'coarse it':>9} {'coarse s':>8} {'full it':>7} {'to target s':>11} {'× single':>8} "
        f"{'last loss/target':>16} {'1st full: own/uint8':>19}",
    ]
    for r in s["schedules"]:
        check = _fmt(r["first_full_loss"] / r["first_full_scored_uint8"], ".4f") if "first_full_loss" in r else "—"
        out.append(
            f"{r['coarse_passes']:>6} {r['coarse_iterations']:>9} {r['coarse_s']:>8.1f} {r['full_iterations']:>7} "
            f"{_fmt(r['time_to_target_s'], '.1f'):>11} {_fmt(r['ratio_to_single']):>8} "
            f"{_fmt(r['last_loss_over_target']):>16} {check:>19}"
        )
    b = s["best"]
    out.append(f"  best: {b['coarse_passes']} pass(es) × {b['coarse_iterations']} it; side by side: {s['image']}")
    return out


def table_precision(s: dict[str, Any]) -> list[str]:
    out = [
        "5. Precision: fp32 vs bf16 (losses scored by the fp32 engine on uint8 images)",
        f"{'size':>5} {'s/it fp32':>9} {'s/it bf16':>9} {'ratio':>6} {'s/ev fp32':>9} {'s/ev bf16':>9} "
        f"{'alternating s/ev fp32, bf16, ratio':>34}",
    ]
    for r in s["rows"]:
        alt = r["alternating_s_per_eval"]
        out.append(
            f"{r['size']:>5} {r['fp32_s_per_it']:>9.3f} {r['bf16_s_per_it']:>9.3f} "
            f"{r['bf16_s_per_it'] / r['fp32_s_per_it']:>6.2f} {r['fp32_s_per_eval']:>9.3f} "
            f"{r['bf16_s_per_eval']:>9.3f} {alt['fp32']:>18.3f}, {alt['bf16']:.3f}, {alt['bf16'] / alt['fp32']:.2f}"
        )
    out.append(
        f"{'size':>5} {'fp32 it':>7} {'fp32 loss':>10} {'fp32 s':>7} {'bf16 it':>7} {'bf16 s':>7} {'ratio':>6} "
        f"{'evals ratio':>11} {'bf16 loss@it':>12}"
    )
    for r in s["rows"]:
        for n, c in r["checkpoints"].items():
            out.append(
                f"{r['size']:>5} {n:>7} {c['fp32_loss']:>10.4e} {c['fp32_s']:>7.1f} "
                f"{_fmt(c['bf16_iterations'], 'd'):>7} {_fmt(c['bf16_s'], '.1f'):>7} {_fmt(c['ratio'], '.2f'):>6} "
                f"{_fmt(c['eval_ratio'], '.2f'):>11} {c['bf16_loss_at_n']:>12.4e}"
            )
    out.append("  (s/it, s/ev: from each paint run; alternating: the two engines' loss+gradient taking turns;")
    out.append("   evals ratio: bf16/fp32 evaluations to the same loss × the alternating s/ev ratio)")
    out.append(f"  winner on time-to-quality: {s['winner']}")
    return out


def table_repro(s: dict[str, Any]) -> list[str]:
    return [
        f"6. Reproducibility: two processes, {s['size']} px, init noise, seed {s['seed']}, {s['iterations']} it, fp32",
        f"  mean |Δpixel| {s['mean_abs_diff']:.4f}, max {s['max_abs_diff']} of 255, "
        f"{100 * s['differing_pixels']:.3f}% of values differ; bit-exact: {s['bit_exact']}",
    ]


def table_keras(s: dict[str, Any]) -> list[str]:
    out = ["7. The classic Keras method (batch of 3, Grams every evaluation), s per evaluation"]
    for r in s["rows"]:
        out.append(f"  {r['size']:>4} px: Keras {r['keras_s']:.3f}, engine {r['engine_s']:.3f}, ratio {r['ratio']:.2f}")
    return out


SECTIONS += [
    ("optimiser", Bench.optimiser, table_optimiser),
    ("host", Bench.host, table_host),
    ("setup", Bench.setup, table_setup),
    ("coarse", Bench.coarse, table_coarse),
    ("precision", Bench.precision, table_precision),
    ("repro", Bench.repro, table_repro),
    ("keras", Bench.keras, table_keras),
    ("tiles", lambda bench: bench_tiles(bench), lambda s: table_tiles(s)),
]


def bench_tiles(bench: Bench) -> dict[str, Any]:
    """Sizes beyond memory: one painting whole and under a memory budget that holds only a tile of about
    60 % of its height; the seams' contrast against the painting's typical one, and both losses."""
    config = bench.config
    size, iterations = config.tiles_size, config.tiles_iterations
    content, style = pair(size)
    params = bench_params(size, iterations)
    height, width = shape_for(size)
    side_wanted = max(MIN_TILE, int(size * 0.6) // 16 * 16)
    budget = memory_bytes(side_wanted, side_wanted, params) + 4 * height * width * 3 * 4
    side = tile_side(height, width, params, budget)
    assert side is not None, "the budget must force tiles"
    tiles = plan_tiles(height, width, side, overlap_for(side))
    bench.log(f"tiles: {size} px whole, then in {len(tiles)} tiles of {side} px, {iterations} it each")
    started = time.perf_counter()
    whole = bench.engine.paint(content, [style], params).image
    whole_s = time.perf_counter() - started
    tiled_engine = Engine(memory_budget=budget)
    started = time.perf_counter()
    tiled = tiled_engine.paint(content, [style], params).image
    tiled_s = time.perf_counter() - started
    across, inside = seam_contrast(tiled, tiles)
    whole_across, whole_inside = seam_contrast(whole, tiles)  # the same lines where there are no seams
    losses = {
        name: bench.engine.losses(image, content, [style], params).total
        for name, image in (("whole", whole), ("tiled", tiled))
    }
    image_path = bench.out / f"tiles_{size}_whole_vs_tiled.png"
    image_path.write_bytes(imaging.encode_png(_side_by_side(whole, tiled)))
    ratio = across / inside if inside else math.inf
    return {
        "size": size,
        "shape": [height, width],
        "tile": side,
        "tiles": len(tiles),
        "budget_bytes": budget,
        "whole_bytes": memory_bytes(height, width, params),
        "whole_s": whole_s,
        "tiled_s": tiled_s,
        "seam_across": across,
        "seam_inside": inside,
        "seam_ratio": ratio,
        "whole_at_seam_lines": whole_across,
        "whole_inside": whole_inside,
        "loss_whole": losses["whole"],
        "loss_tiled": losses["tiled"],
        "image": str(image_path),
        "targets": [
            {
                "what": "largest mean |Δ| across a seam / typical |Δ| between lines",
                "value": ratio,
                "op": "<=",
                "target": 1.5,
                "pass": ratio <= 1.5,
            },
        ],
    }


def table_tiles(s: dict[str, Any]) -> list[str]:
    return [
        f"8. Sizes beyond memory: {s['shape'][0]}×{s['shape'][1]} whole ({s['whole_bytes'] / 2**20:.0f} MiB) "
        f"and under a {s['budget_bytes'] / 2**20:.0f} MiB budget: {s['tiles']} tiles of {s['tile']} px",
        f"  seams: largest mean |Δ| across one {s['seam_across']:.2f} against {s['seam_inside']:.2f} typical "
        f"(ratio {s['seam_ratio']:.2f}; the whole painting at the same lines {s['whole_at_seam_lines']:.2f}, "
        f"typical {s['whole_inside']:.2f})",
        f"  loss (full size): whole {s['loss_whole']:.4e}, tiled {s['loss_tiled']:.4e} "
        f"({s['loss_tiled'] / s['loss_whole']:.2f}×); time whole {s['whole_s']:.1f} s, tiled {s['tiled_s']:.1f} s",
        f"  side by side: {s['image']}",
    ]


def format_report(report: dict[str, Any]) -> str:
    m = report["machine"]
    out = [
        f"Deep Painting engine benchmark: {m['cpus']} CPUs, TensorFlow {m['tensorflow']}, scipy {m['scipy']}; "
        f"engine load {report['engine_load_s']:.1f} s; total {report['total_s']:.0f} s",
    ]
    for name, _, table in SECTIONS:
        section = report["sections"].get(name)
        if section is None:
            continue
        out += ["", *table(section), f"  ({section['section_s']:.0f} s)"]
        for t in section["targets"]:
            out.append(
                f"  target: {t['what']:<58} {t['op']} {t['target']:<5} {_fmt(t['value'], '.4f'):>8}  "
                f"{'PASS' if t['pass'] else 'MISS'}"
            )
    return "\n".join(out)


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None  # JSON has no inf or NaN
    return value


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--short", action="store_true", help="256 px only, fewer iterations: a few minutes")
    parser.add_argument("--keras", action="store_true", help="also time the classic Keras method (earlier issue)")
    parser.add_argument("--out", default="out/bench", help="folder for the images and bench.json")
    parser.add_argument("--child", help=argparse.SUPPRESS)  # section 6's child process: a JSON job
    args = parser.parse_args(argv)
    if args.child:
        print(JSON_MARK + json.dumps(child_main(json.loads(args.child))), flush=True)
        return 0
    make = Config.short if args.short else Config.full
    config = make(keras=args.keras, out=Path(args.out))
    report = run_benchmark(config, log=lambda msg: print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr))
    Path(args.out, "bench.json").write_text(json.dumps(_jsonable(report), indent=1))
    print(format_report(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
