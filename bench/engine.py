"""Benchmark of the Pycasso engine against its FLOP floor and the classic Keras method (not a test).

    .venv/bin/python bench/engine.py [--sizes 256 400] [--evals 12] [--loss-evals 100] [--bf16] [--out out/bench]

For each size (4:3 landscape, the generated pair of `pycasso.examples` drawn at the painting's shape
so no image is resized) it measures in ONE process, so that the ratios share the machine's state:

1. engine: median seconds per evaluation of a real `Engine.paint` run (per L-BFGS iteration
   Δelapsed/Δevaluations from `on_iterate`, the first iteration skipped: it holds the set-up, which is
   reported on its own), plus the compiled loss function alone (no scipy, no conversions);
2. floor: forward FLOPs to block5_conv2 × 2 (forward + input gradient) / the best conv rate this
   machine reaches now (tf.nn.conv2d in a tf.function on VGG19's own layer shapes at that size,
   measured just before and just after the engine run);
3. reference: the classic Keras example's method (content, style and painting as one batch of 3
   through the network at every evaluation, style Grams recomputed each time, scipy
   `fmin_l_bfgs_b(maxfun=20)` restarted every 20 evaluations, no bounds, from the content image);
4. the loss after the same number of evaluations (100 at 256 px) for the engine (stopped with
   `should_stop`) and the reference, both final uint8 images scored by ONE loss function (the
   engine's compiled one with the same targets); the images are saved under --out.

`--bf16` also runs the engine in a child process with `TF_SET_ONEDNN_FPMATH_MODE=BF16` (oneDNN reads
it when TensorFlow starts) and compares an identical short run's image with the fp32 one.
Timings on a shared machine are noisy: compare only numbers from the same run.
"""

from __future__ import annotations

import argparse
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
from typing import Any

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # before TensorFlow is imported

import numpy as np  # noqa: E402
import scipy.optimize  # noqa: E402
import tensorflow as tf  # noqa: E402

from painting.params import VGG19_LAYERS, Params  # noqa: E402
from pycasso import imaging  # noqa: E402
from pycasso.engine import Engine, Iterate  # noqa: E402
from pycasso.errors import Cancelled  # noqa: E402
from pycasso.examples import landscape, swirls  # noqa: E402
from pycasso.losses import content_loss, gram_matrix, style_loss, total_variation_loss  # noqa: E402
from pycasso.vgg import VGG19Features, conv_flops  # noqa: E402
from pycasso.weights import KERNEL_SHAPES  # noqa: E402

RATE_LAYERS = ("block1_conv2", "block2_conv2", "block3_conv2", "block4_conv2")
TARGET_FLOOR = 1.25  # engine / floor at 400 px
TARGET_SPEED = 0.40  # engine / reference, seconds per evaluation
TARGET_LOSS = 0.75  # engine / reference, loss after the same evaluations
CHUNK = 20  # the Keras example's evaluations per fmin_l_bfgs_b call
JSON_MARK = "BENCH_CHILD_JSON "


# --- inputs ---------------------------------------------------------------------------------------


def shape_for(size: int) -> tuple[int, int]:
    """(height, width) of a 4:3 landscape painting `size` pixels tall: 256 -> 256×341, 400 -> 400×533."""
    return imaging.painting_shape((3, 4), size)


def pair(size: int) -> tuple[np.ndarray, np.ndarray]:
    """The generated content and style images, both drawn at the painting's shape."""
    h, w = shape_for(size)
    return landscape(h, w), swirls(h, w)


def bench_params(size: int, iterations: int = 5000) -> Params:
    return Params(size=size, iterations=iterations, preview_every=0)


def _style_layers(params: Params) -> tuple[str, ...]:
    return tuple(name for name in VGG19_LAYERS if name in params.style_layers)


def _median(values: Sequence[float]) -> float:
    return float(statistics.median(values)) if values else math.nan


# --- 2. the FLOP floor ----------------------------------------------------------------------------


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
            conv(x)  # eager CPU execution is synchronous: the result exists when the call returns
            times.append(time.perf_counter() - start)
        rates[name] = 2.0 * h * w * kh * kw * cin * cout / _median(times) / 1e9
    return rates


def eval_flops(height: int, width: int) -> float:
    """FLOPs of one evaluation's convolutions: forward to block5_conv2 plus the input gradient (same)."""
    return 2.0 * conv_flops(height, width, "block5_conv2")


# --- 1. the engine --------------------------------------------------------------------------------


@dataclass
class EngineRun:
    s_per_eval: float  # median over iterations 2.. of Δelapsed / Δevaluations
    setup_s: float  # elapsed at iteration 1 minus its evaluations × s_per_eval (targets, tracing)
    first_iteration_s: float
    evaluations: int
    iterations: int
    image: np.ndarray = field(repr=False)
    samples: int = 0  # iterations behind the median
    fn_s: float = math.nan  # median duration of the compiled loss+grad call inside the run (first skipped)


def run_engine(
    engine: Engine, content: np.ndarray, style: np.ndarray, evaluations: int, iterations: int = 5000
) -> EngineRun:
    """Paint until exactly `evaluations` loss evaluations are done (or `iterations` iterations)."""
    params = bench_params(content.shape[0], iterations)
    marks: list[tuple[int, float]] = []  # (evaluations, elapsed_s) after each iteration
    eval_starts: list[float] = []
    fn_times: list[float] = []
    original = engine._loss_fn

    def counting_loss_fn(content_layer, style_layers):
        fn = original(content_layer, style_layers)

        def counted(*args):
            start = time.perf_counter()
            eval_starts.append(start)
            values = fn(*args)  # eager CPU execution is synchronous: done when it returns
            fn_times.append(time.perf_counter() - start)
            return values

        return counted

    def on_iterate(it: Iterate) -> None:
        marks.append((it.evaluations, it.elapsed_s))

    # should_stop runs at the start of every evaluation: stop once `evaluations` have been made.
    # An instance attribute shadowing the method on purpose: counts evaluations, nothing else changes.
    engine._loss_fn = counting_loss_fn  # type: ignore[method-assign]
    try:
        try:
            result = engine.paint(
                content, [style], params, on_iterate, should_stop=lambda: len(eval_starts) >= evaluations
            )
            image, done_iterations = result.image, result.iterations
        except Cancelled as stopped:
            image, done_iterations = stopped.image, stopped.iterations
    finally:
        del engine._loss_fn
    per_eval = [(t1 - t0) / (e1 - e0) for (e0, t0), (e1, t1) in zip(marks, marks[1:], strict=False) if e1 > e0]
    if not per_eval:  # too short a run for two iterations: intervals between evaluation starts
        per_eval = list(np.diff(eval_starts[1:]))
    s_per_eval = _median(per_eval)
    first_evals, first_s = marks[0] if marks else (len(eval_starts), math.nan)
    return EngineRun(
        s_per_eval=s_per_eval,
        setup_s=first_s - first_evals * s_per_eval,
        first_iteration_s=first_s,
        evaluations=len(eval_starts),
        iterations=done_iterations,
        image=image,
        samples=len(per_eval),
        fn_s=_median(fn_times[1:]),
    )


def common_losses(
    engine: Engine, content: np.ndarray, style: np.ndarray, images: dict[str, np.ndarray]
) -> dict[str, dict[str, float]]:
    """Score paintings (uint8 RGB, or float VGG-space pixels) with ONE loss function: the one the
    engine minimises, with the engine's targets (`Engine.losses`)."""
    params = bench_params(content.shape[0])
    return {name: engine.losses(image, content, [style], params).as_dict() for name, image in images.items()}


# --- 3. the classic Keras example's method ---------------------------------------------------------


class Reference:
    """The classic Keras example: content, style and painting as ONE batch of 3 through the network at
    every evaluation, Grams of the style recomputed each time, loss and gradient in one compiled
    function, scipy's fmin_l_bfgs_b restarted every 20 evaluations without bounds."""

    def __init__(self, network: VGG19Features, content: np.ndarray, style: np.ndarray, params: Params) -> None:
        self.shape = (1, *content.shape)
        self.x0 = imaging.to_vgg(content).astype(np.float64).ravel()
        content_t = tf.constant(imaging.to_vgg(content)[None])
        style_t = tf.constant(imaging.to_vgg(style)[None])
        content_layer, style_layers = params.content_layer, _style_layers(params)
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

        self._fn = loss_and_grads

    def eval_loss_and_grads(self, x: np.ndarray) -> tuple[float, np.ndarray]:
        loss, grads = self._fn(tf.constant(x.reshape(self.shape), dtype=tf.float32))
        return float(loss), grads.numpy().ravel().astype(np.float64)


@dataclass
class ReferenceRun:
    s_per_eval: float  # median interval between evaluation starts, the first (tracing) one skipped
    setup_s: float  # the first evaluation minus s_per_eval
    evaluations: int
    restarts: int
    image: np.ndarray = field(repr=False)
    pixels: np.ndarray = field(repr=False)  # the final x, float VGG space, unclipped (H, W, 3)


class _Budget(Exception):
    pass


def _reference_call(reference: Reference, x: np.ndarray, budget: int, chunk: int, starts: list[float]) -> np.ndarray:
    """One `fmin_l_bfgs_b(loss, x, fprime=grads, maxfun=chunk)` call from `x`, held to `budget`
    evaluations (their start times go to `starts`): its last iterate."""
    used = 0
    cache: dict[str, np.ndarray] = {}
    last = {"x": x}

    def loss(xk: np.ndarray) -> float:
        nonlocal used
        if used >= budget:
            raise _Budget
        used += 1
        starts.append(time.perf_counter())
        value, cache["grads"] = reference.eval_loss_and_grads(xk)
        return value

    def grads(xk: np.ndarray) -> np.ndarray:
        return cache["grads"]  # the Evaluator trick: computed together with the loss

    def remember(xk: np.ndarray) -> None:
        last["x"] = np.array(xk)

    try:
        x, _, _ = scipy.optimize.fmin_l_bfgs_b(loss, x, fprime=grads, maxfun=chunk, callback=remember)
    except _Budget:
        x = last["x"]
    return x


def run_reference(reference: Reference, evaluations: int, chunk: int = CHUNK) -> ReferenceRun:
    """`fmin_l_bfgs_b(loss, x, fprime=grads, maxfun=20)` restarted from its result, as the Keras
    example does, for exactly `evaluations` evaluations. scipy's maxfun=20 actually makes 21 (it stops
    at the first iterate after the limit); here each call is held to `chunk` and continues from its
    last iterate, so both methods get the same budget."""
    starts: list[float] = []
    x = reference.x0
    restarts = 0
    while len(starts) < evaluations:
        restarts += 1
        x = _reference_call(reference, x, min(chunk, evaluations - len(starts)), chunk, starts)
    intervals = list(np.diff(starts[1:]))
    s_per_eval = _median(intervals)
    first = starts[1] - starts[0] if len(starts) > 1 else math.nan
    return ReferenceRun(
        s_per_eval=s_per_eval,
        setup_s=first - s_per_eval,
        evaluations=len(starts),
        restarts=restarts,
        image=imaging.from_vgg(x.reshape(reference.shape[1:]).astype(np.float32)),
        pixels=x.reshape(reference.shape[1:]).astype(np.float32),
    )


# --- 6. bf16 in a child process -------------------------------------------------------------------


def short_run(engine: Engine, size: int, iterations: int) -> np.ndarray:
    content, style = pair(size)
    return engine.paint(content, [style], bench_params(size, iterations)).image


def child_main(config: dict[str, Any]) -> dict[str, Any]:
    """Runs in a child process (TF_SET_ONEDNN_FPMATH_MODE read at TensorFlow's start): engine s/eval per
    size (unless `timing` is false), then the short run, saved as a PNG tagged `tag`."""
    engine = Engine()
    result: dict[str, Any] = {"fpmath": os.environ.get("TF_SET_ONEDNN_FPMATH_MODE", ""), "sizes": {}}
    for size in config["sizes"] if config["timing"] else ():
        content, style = pair(size)
        run = run_engine(engine, content, style, config["evals"])
        result["sizes"][str(size)] = {"s_per_eval": run.s_per_eval, "setup_s": run.setup_s}
    image = short_run(engine, config["short_size"], config["short_iterations"])
    path = Path(config["out"]) / f"short_{config['short_size']}_{config['short_iterations']}it_{config['tag']}.png"
    path.write_bytes(imaging.encode_png(image))
    result["image"] = str(path)
    return result


def run_child(config: dict[str, Any], fpmath: str | None) -> dict[str, Any]:
    env = {k: v for k, v in os.environ.items() if k != "TF_SET_ONEDNN_FPMATH_MODE"}
    if fpmath:
        env["TF_SET_ONEDNN_FPMATH_MODE"] = fpmath
    proc = subprocess.run(
        [sys.executable, str(Path(__file__).resolve()), "--child", json.dumps(config)],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    for line in proc.stdout.splitlines():
        if line.startswith(JSON_MARK):
            return json.loads(line[len(JSON_MARK) :])
    raise RuntimeError(f"child ({fpmath or 'fp32'}) failed (exit {proc.returncode}):\n{proc.stderr[-3000:]}")


# --- the whole benchmark --------------------------------------------------------------------------


def run_benchmark(
    sizes: Sequence[int] = (256, 400),
    evals: int = 12,
    loss_evals: int = 100,
    loss_size: int | None = None,
    bf16: bool = False,
    out: str | Path = "out/bench",
    short_iterations: int = 20,
    log: Callable[[str], None] = lambda _msg: None,
) -> dict[str, Any]:
    """Measure everything; return a JSON-able report (rows per size, loss comparison, bf16, targets)."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    loss_size = loss_size if loss_size is not None else (256 if 256 in sizes else sizes[0])
    t0 = time.perf_counter()
    engine = Engine()
    report: dict[str, Any] = {
        "machine": {
            "cpus": os.cpu_count(),
            "tensorflow": tf.__version__,
            "fpmath": os.environ.get("TF_SET_ONEDNN_FPMATH_MODE", "") or "fp32",
        },
        "engine_load_s": time.perf_counter() - t0,
        "rows": [],
    }
    order = [loss_size] + [s for s in sizes if s != loss_size]  # the long run first, in a fresh process
    rows: dict[int, dict[str, Any]] = {}
    for size in order:
        h, w = shape_for(size)
        content, style = pair(size)
        n = max(evals, loss_evals) if size == loss_size else evals
        log(f"{size} px: conv rates, engine ({n} evaluations), conv rates again")
        before = conv_rates(h, w)
        eng = run_engine(engine, content, style, n)
        after = conv_rates(h, w)  # the better of before and after the engine run: load drifts
        rates = {name: max(before[name], after[name]) for name in before}
        best = max(rates.values())
        flops = eval_flops(h, w)
        log(f"{size} px: reference, {n} evaluations")
        ref = run_reference(Reference(engine.network, content, style, bench_params(size)), n)
        floor = flops / (best * 1e9)
        rows[size] = {
            "size": size,
            "height": h,
            "width": w,
            "gflop_per_eval": flops / 1e9,
            "conv_gflops": rates,
            "best_conv_gflops": best,
            "floor_s": floor,
            "engine_s": eng.s_per_eval,
            "engine_setup_s": eng.setup_s,
            "engine_samples": eng.samples,
            "loss_fn_s": eng.fn_s,
            "overhead_s": eng.s_per_eval - eng.fn_s,
            "reference_s": ref.s_per_eval,
            "reference_setup_s": ref.setup_s,
            "engine_over_floor": eng.s_per_eval / floor,
            "engine_over_reference": eng.s_per_eval / ref.s_per_eval,
        }
        if size == loss_size:
            paths = {}
            for name, image in (("engine", eng.image), ("reference", ref.image)):
                paths[name] = out / f"{name}_{size}_{n}evals.png"
                paths[name].write_bytes(imaging.encode_png(image))
            scores = common_losses(engine, content, style, {"engine": eng.image, "reference": ref.image})
            unclipped = common_losses(engine, content, style, {"x": ref.pixels})["x"]
            rgb = ref.pixels[..., ::-1] + imaging.VGG_MEAN_BGR[::-1]
            report["loss"] = {
                "size": size,
                "engine": scores["engine"],
                "reference": scores["reference"],
                "engine_evaluations": eng.evaluations,
                "engine_iterations": eng.iterations,
                "reference_evaluations": ref.evaluations,
                "reference_restarts": ref.restarts,
                "ratio": scores["engine"]["total"] / scores["reference"]["total"],
                "reference_unclipped": unclipped,
                "reference_rgb_range": [float(rgb.min()), float(rgb.max())],
                "reference_out_of_range": float(((rgb < -0.5) | (rgb > 255.5)).mean()),
                "images": {k: str(v) for k, v in paths.items()},
            }
    report["rows"] = [rows[s] for s in sizes]
    if bf16:
        log("bf16 child process, then an fp32 child for the run-to-run baseline")
        config = {
            "sizes": list(sizes),
            "evals": evals,
            "short_size": loss_size,
            "short_iterations": short_iterations,
            "out": str(out),
            "timing": True,
            "tag": "bf16",
        }
        child = run_child(config, "BF16")
        control = run_child(dict(config, timing=False, tag="fp32_child"), None)
        fp32_image = short_run(engine, loss_size, short_iterations)
        fp32_path = out / f"short_{loss_size}_{short_iterations}it_fp32.png"
        fp32_path.write_bytes(imaging.encode_png(fp32_image))
        bf16_image = imaging.decode_image(Path(child["image"]).read_bytes())
        control_image = imaging.decode_image(Path(control["image"]).read_bytes())
        content, style = pair(loss_size)
        scores = common_losses(engine, content, style, {"fp32": fp32_image, "bf16": bf16_image})
        report["bf16"] = {
            "fpmath": child["fpmath"],
            "sizes": {int(k): v for k, v in child["sizes"].items()},
            "short_size": loss_size,
            "short_iterations": short_iterations,
            "mean_abs_diff": _mean_abs_diff(fp32_image, bf16_image),
            "max_abs_diff": int(np.abs(fp32_image.astype(np.int16) - bf16_image.astype(np.int16)).max()),
            "fp32_rerun_mean_abs_diff": _mean_abs_diff(fp32_image, control_image),
            "loss_fp32": scores["fp32"]["total"],
            "loss_bf16": scores["bf16"]["total"],
            "images": {"fp32": str(fp32_path), "bf16": child["image"], "fp32_child": control["image"]},
        }
    report["targets"] = targets(report)
    report["total_s"] = time.perf_counter() - t0
    return report


def _mean_abs_diff(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.abs(a.astype(np.int16) - b.astype(np.int16)).mean())


def targets(report: dict[str, Any]) -> list[dict[str, Any]]:
    """PASS/MISS lines: engine/floor at 400 px (the largest size when 400 was not run), engine/reference
    s/eval at every size, engine/reference loss."""
    rows = {r["size"]: r for r in report["rows"]}
    floor_size = 400 if 400 in rows else max(rows)
    lines = [
        {
            "what": f"engine / floor s/eval at {floor_size} px",
            "target": TARGET_FLOOR,
            "value": rows[floor_size]["engine_over_floor"],
        }
    ]
    lines += [
        {"what": f"engine / reference s/eval at {s} px", "target": TARGET_SPEED, "value": r["engine_over_reference"]}
        for s, r in rows.items()
    ]
    if "loss" in report:
        lines.append(
            {
                "what": f"engine / reference loss, {report['loss']['engine_evaluations']} evals "
                f"at {report['loss']['size']} px",
                "target": TARGET_LOSS,
                "value": report["loss"]["ratio"],
            }
        )
    for line in lines:
        line["pass"] = bool(line["value"] <= line["target"])
    return lines


def format_table(report: dict[str, Any]) -> str:
    m = report["machine"]
    out = [
        f"Deep Painting engine benchmark: {m['cpus']} CPUs, TensorFlow {m['tensorflow']}, {m['fpmath']}; "
        f"engine load {report['engine_load_s']:.1f} s; total {report.get('total_s', math.nan):.0f} s",
        "",
    ]
    head = (
        "size",
        "H×W",
        "GFLOP/ev",
        "conv GF/s",
        "floor s",
        "engine s",
        "(fn s",
        "other s)",
        "set-up s",
        "ref s",
        "eng/floor",
        "eng/ref",
    )
    out.append("{:>5} {:>8} {:>9} {:>9} {:>8} {:>8} {:>6} {:>8} {:>8} {:>7} {:>9} {:>7}".format(*head))
    for r in report["rows"]:
        out.append(
            f"{r['size']:>5} {r['height']}×{r['width']:<4} {r['gflop_per_eval']:>8.1f} "
            f"{r['best_conv_gflops']:>9.1f} {r['floor_s']:>8.3f} {r['engine_s']:>8.3f} {r['loss_fn_s']:>6.3f} "
            f"{r['overhead_s']:>8.3f} "
            f"{r['engine_setup_s']:>8.2f} {r['reference_s']:>7.3f} {r['engine_over_floor']:>9.2f} "
            f"{r['engine_over_reference']:>7.2f}"
        )
    out.append(
        "(s = seconds per evaluation, medians; engine from a paint run over "
        + ", ".join(f"{r['engine_samples']} it at {r['size']}" for r in report["rows"])
        + ";\n fn = the compiled loss+grad call inside that run, other = the rest: scipy L-BFGS-B, conversions)"
    )
    for r in report["rows"]:
        out.append(f"conv GFLOP/s at {r['size']} px: " + ", ".join(f"{k} {v:.0f}" for k, v in r["conv_gflops"].items()))
    if "loss" in report:
        lo = report["loss"]
        out += [
            "",
            f"Loss after {lo['engine_evaluations']} evaluations at {lo['size']} px "
            "(one common loss fn: the engine's, same targets, uint8 images):",
        ]
        for name in ("engine", "reference"):
            s = lo[name]
            extra = (
                f"{lo['engine_iterations']} iterations"
                if name == "engine"
                else f"{lo['reference_evaluations']} evals, {lo['reference_restarts']} restarts"
            )
            out.append(
                f"  {name:<9} {s['total']:.4e} (content {s['content']:.3e}, style {s['style']:.3e}, "
                f"tv {s['tv']:.3e}; {extra})  {lo['images'][name]}"
            )
        out.append(f"  engine / reference  {lo['ratio']:.3f}")
        lo_min, lo_max = lo["reference_rgb_range"]
        out.append(
            f"  (reference before uint8 clipping: {lo['reference_unclipped']['total']:.4e}; its pixels span "
            f"{lo_min:.0f}..{lo_max:.0f}, {100 * lo['reference_out_of_range']:.1f}% outside 0..255: no bounds)"
        )
    if "bf16" in report:
        b = report["bf16"]
        out += ["", f"oneDNN fpmath {b['fpmath']} (child process) vs fp32, engine s/eval:"]
        for r in report["rows"]:
            s = b["sizes"][r["size"]]["s_per_eval"]
            out.append(f"  {r['size']:>4} px: fp32 {r['engine_s']:.3f}  bf16 {s:.3f}  ratio {s / r['engine_s']:.2f}")
        out.append(
            f"  {b['short_iterations']} iterations at {b['short_size']} px: mean |Δpixel| "
            f"{b['mean_abs_diff']:.2f} (max {b['max_abs_diff']}) of 255; loss fp32 {b['loss_fp32']:.4e} "
            f"bf16 {b['loss_bf16']:.4e}"
        )
        out.append(
            f"  fp32 in two processes, same run: mean |Δpixel| {b['fp32_rerun_mean_abs_diff']:.2f} (baseline); "
            f"{b['images']['fp32']} {b['images']['bf16']}"
        )
    out += ["", "Targets:"]
    for t in report["targets"]:
        out.append(f"  {t['what']:<44} <= {t['target']:.2f}  {t['value']:6.3f}  {'PASS' if t['pass'] else 'MISS'}")
    return "\n".join(out)


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    return value


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[256, 400], help="painting heights (4:3)")
    parser.add_argument("--evals", type=int, default=12, help="evaluations timed at each size")
    parser.add_argument("--loss-evals", type=int, default=100, help="evaluations of the loss comparison")
    parser.add_argument("--loss-size", type=int, default=None, help="size of the loss comparison (256)")
    parser.add_argument("--bf16", action="store_true", help="also measure oneDNN bf16 math (child process)")
    parser.add_argument("--out", default="out/bench", help="folder for the images and bench.json")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        print(JSON_MARK + json.dumps(_jsonable(child_main(json.loads(args.child)))), flush=True)
        return 0
    report = run_benchmark(
        args.sizes,
        args.evals,
        args.loss_evals,
        args.loss_size,
        args.bf16,
        args.out,
        log=lambda msg: print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr),
    )
    Path(args.out, "bench.json").write_text(json.dumps(_jsonable(report), indent=1))
    print(format_table(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
