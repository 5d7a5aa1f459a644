"""A worker's measure of itself, for Studio's estimates (`painting.estimate`): how fast it paints and
how much memory it holds.

    calibration = calibrate(engine, fast, should_stop=lambda: job_waiting)   # a few seconds
    memory("GPU:0" or None)        # {"base_bytes": what it holds now, "device_bytes": the device's total}

`calibrate` paints the generated pair (`pycasso.examples`) for a few iterations at two small sizes
with the real engine, times the evaluations after the first iteration (which holds the set-up and,
in a fresh worker, the compilation; the median over the iterations), and fits
`eval_s + eval_pixel_s * pixels`. A short third run at
the first size, once both sizes are compiled (the loss function is then traced for any size, as the
first real painting will find it), measures the set-up a warm pass pays. The fast engine is timed at
the same two sizes. A side effect is welcome: the worker's first painting does not pay the tracing.

`should_stop()` is asked at every evaluation: a job that arrives meanwhile stops the calibration
(`Cancelled`) instead of waiting behind it; the worker answers `calibrated` with the reason and
Studio asks again when the worker is idle.
"""

from __future__ import annotations

import itertools
import os
import statistics
import subprocess
import time
from collections.abc import Callable
from typing import Any

from painting.estimate import FORWARD_SHARE, Calibration, physical_memory_bytes
from painting.params import Params
from pycasso import imaging
from pycasso.errors import Cancelled
from pycasso.examples import landscape, swirls

SIZES = (128, 256)  # heights of the timed runs, 4:3 landscape
TIMED_ITERATIONS = 3  # after the first, which holds the set-up
ASPECT = (3, 4)  # (height, width) of the generated pair


def calibrate(engine: Any, fast: Any | None = None, *, should_stop: Callable[[], bool] | None = None) -> Calibration:
    """Time `engine` (a `pycasso.engine.Engine`) and `fast` (a `pycasso.fast.FastEngine`, or None).

    Raises `Cancelled` as soon as `should_stop()` says so.
    """
    started = time.perf_counter()
    points = []
    for size in SIZES:
        _, per_evaluation, pixels = _timed_run(engine, size, 1 + TIMED_ITERATIONS, should_stop)
        points.append((pixels, per_evaluation))
    (p1, t1), (p2, t2) = points
    eval_pixel_s = max(0.0, (t2 - t1) / (p2 - p1))
    eval_s = max(0.0, t1 - eval_pixel_s * p1)
    first_s, _, _ = _timed_run(engine, SIZES[0], 1, should_stop)
    # The first iteration: the set-up, the targets (a forward pass of each image), two evaluations.
    setup_s = max(0.0, first_s - (2 + 2 * FORWARD_SHARE) * (eval_s + eval_pixel_s * p1))
    fast_s = fast_pixel_s = None
    if fast is not None:
        fast_points = [_timed_fast(fast, size) for size in SIZES]
        (f1, s1), (f2, s2) = fast_points
        fast_pixel_s = max(0.0, (s2 - s1) / (f2 - f1))
        fast_s = max(0.0, s1 - fast_pixel_s * f1)
    return Calibration(
        eval_s=round(eval_s, 6),
        eval_pixel_s=eval_pixel_s,
        setup_s=round(setup_s, 4),
        fast_s=fast_s,
        fast_pixel_s=fast_pixel_s,
        took_s=round(time.perf_counter() - started, 3),
        points=tuple((p, round(t, 5)) for p, t in points),
    )


def _pair(size: int) -> tuple[Any, Any, int]:
    height, width = imaging.painting_shape(ASPECT, size)
    return landscape(height, width), swirls(height, width), height * width


def _timed_run(
    engine: Any, size: int, iterations: int, should_stop: Callable[[], bool] | None
) -> tuple[float, float, int]:
    """(seconds to the first iteration, seconds per evaluation after it, pixels) of a short painting."""
    content, style, pixels = _pair(size)
    heard: list[tuple[int, float]] = []  # (evaluations, elapsed_s) after each iteration
    params = Params(size=size, iterations=iterations, init="content", preview_every=0, preview_seconds=0.0)
    engine.paint(
        content, [style], params, lambda it: heard.append((it.evaluations, it.elapsed_s)), should_stop=should_stop
    )
    if not heard:
        raise Cancelled("the calibration run heard no iteration")
    # Each later iteration's seconds per evaluation; the median, so one burst of a busy machine's
    # other work does not set the figure.
    samples = [(t - t0) / (e - e0) for (e0, t0), (e, t) in itertools.pairwise(heard) if e > e0]
    per_evaluation = statistics.median(samples) if samples else heard[0][1] / max(1, heard[0][0])
    return heard[0][1], per_evaluation, pixels


def _timed_fast(fast: Any, size: int) -> tuple[int, float]:
    """(pixels, seconds) of one fast-engine painting, the best of two."""
    content, style, pixels = _pair(size)
    params = Params(engine="fast", size=size)
    best = float("inf")
    for _ in range(2):
        began = time.perf_counter()
        fast.paint(content, [style], params)
        best = min(best, time.perf_counter() - began)
    return pixels, best


# --- memory -----------------------------------------------------------------------------------------


def memory(gpu: str | None = None) -> dict[str, int | None]:
    """What this worker holds now (`base_bytes`) and the memory of the device it paints on
    (`device_bytes`; None where it cannot be read): resident memory and physical memory on a CPU; on a
    GPU (`gpu`, e.g. "GPU:0"), what TensorFlow holds there and the card's total as nvidia-smi says."""
    if gpu is not None:
        from pycasso._tf import tf

        return {"base_bytes": int(tf.config.experimental.get_memory_info(gpu)["current"]), "device_bytes": _gpu_total()}
    return {"base_bytes": _resident_bytes(), "device_bytes": physical_memory_bytes()}


def _resident_bytes() -> int | None:
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def _gpu_total() -> int | None:
    """The first visible GPU's total memory (nvidia-smi, in MiB); None where that cannot be asked."""
    visible = os.environ.get("CUDA_VISIBLE_DEVICES", "0").split(",")[0] or "0"
    try:
        out = subprocess.run(
            ["nvidia-smi", "--query-gpu=memory.total", "--format=csv,noheader,nounits", "-i", visible],
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout
        return int(float(out.split()[0]) * 2**20)
    except (OSError, subprocess.SubprocessError, ValueError, IndexError):
        return None


__all__ = ["SIZES", "calibrate", "memory"]
