"""Benchmark of the engine's target cache: the start-up of a remix, cold and warm (not a test).

    .venv/bin/python bench/style_cache.py [--sizes 256 400] [--repeats 5] [--short]

A remix paints the same photo and style as an earlier painting with other weights. For each size
(4:3 landscape, the generated pair of `pycasso.examples` drawn at the painting's shape, as in
bench/engine.py) ONE engine, warmed up first (its network and loss traced at that shape), alternates:

- cold: the cache emptied (`Engine.clear_cache`), then a painting: the photo's features and the
  style's Grams go through the network, as they did before there was a cache;
- warm: the same photo and style again with other weights: both targets come from the cache.

Start-up is timed from the `paint` call to the start of the first loss evaluation (the set-up:
resizing, targets, weights, the starting image) and to the first `on_iterate` (the first L-BFGS
iteration's evaluations on top). Medians of --repeats; warm/cold is the ratio of the medians.
Timings on a shared machine are noisy: compare only numbers from the same run.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # before TensorFlow is imported

import numpy as np  # noqa: E402

from painting.params import Params  # noqa: E402
from pycasso import imaging  # noqa: E402
from pycasso.engine import Engine, Iterate  # noqa: E402
from pycasso.examples import landscape, swirls  # noqa: E402

# (content, style, tv) weights: the remix alternates between the two, so each painting has other
# weights than the one before.
WEIGHTS: tuple[tuple[float, float, float], ...] = ((1.0, 10.0, 0.1), (2.0, 30.0, 0.5))


def shape_for(size: int) -> tuple[int, int]:
    """(height, width) of a 4:3 landscape painting `size` pixels tall: 256 -> 256×341, 400 -> 400×533."""
    return imaging.painting_shape((3, 4), size)


def pair(size: int) -> tuple[np.ndarray, np.ndarray]:
    """The generated content and style images, both drawn at the painting's shape."""
    h, w = shape_for(size)
    return landscape(h, w), swirls(h, w)


@dataclass(frozen=True)
class StartUp:
    prepare_s: float  # the engine's set-up before the optimiser: sizes, targets (cached or not), weights
    first_evaluation_s: float  # paint call -> start of the first loss evaluation
    first_iterate_s: float  # paint call -> the first on_iterate
    hits: int  # cache hits and misses during this painting
    misses: int


def time_start_up(
    engine: Engine, content: np.ndarray, style: np.ndarray, weights: tuple[float, float, float]
) -> StartUp:
    """Paint one iteration and time its start-up (the engine's `_problem` and optimiser start are
    wrapped to time the set-up and see the first evaluation start; nothing else changes)."""
    content_weight, style_weight, tv_weight = weights
    params = Params(
        size=content.shape[0],
        iterations=1,
        preview_every=0,
        content_weight=content_weight,
        style_weight=style_weight,
        tv_weight=tv_weight,
    )
    prepare_s: list[float] = []
    evaluation_starts: list[float] = []
    iterates: list[float] = []
    original_optimiser, original_problem = engine._optimiser, engine._problem

    def timed_problem(*args, **kwargs):
        start = time.perf_counter()
        problem = original_problem(*args, **kwargs)
        prepare_s.append(time.perf_counter() - start)
        return problem

    def timed_optimiser(content_layer, style_layers):
        optimiser = original_optimiser(content_layer, style_layers)
        start = optimiser.start

        class Timed:  # the optimiser, with its first evaluation (`start`) timed
            objective = optimiser.objective
            step = optimiser.step

            @staticmethod
            def start(*args):
                evaluation_starts.append(time.perf_counter())
                return start(*args)

        return Timed()

    def on_iterate(_it: Iterate) -> None:
        iterates.append(time.perf_counter())

    before = engine.cache_stats()
    # Instance attributes shadowing the methods on purpose: they time, nothing else changes.
    engine._optimiser = timed_optimiser  # type: ignore[method-assign]
    engine._problem = timed_problem  # type: ignore[method-assign]
    try:
        started = time.perf_counter()
        engine.paint(content, [style], params, on_iterate)
    finally:
        del engine._optimiser, engine._problem
    after = engine.cache_stats()
    return StartUp(
        prepare_s=prepare_s[0],
        first_evaluation_s=evaluation_starts[0] - started,
        first_iterate_s=iterates[0] - started,
        hits=after["hits"] - before["hits"],
        misses=after["misses"] - before["misses"],
    )


def _median(values: Sequence[float]) -> float:
    return float(statistics.median(values))


def measure(engine: Engine, size: int, repeats: int, log=lambda _msg: None) -> dict[str, Any]:
    """Cold and warm start-ups of a remix at `size`, `repeats` of each, interleaved."""
    content, style = pair(size)
    log(f"{size} px: warming up (traces at this shape)")
    engine.clear_cache()
    time_start_up(engine, content, style, WEIGHTS[0])
    time_start_up(engine, content, style, WEIGHTS[1])
    cold: list[StartUp] = []
    warm: list[StartUp] = []
    for i in range(repeats):
        engine.clear_cache()
        cold.append(time_start_up(engine, content, style, WEIGHTS[i % 2]))
        warm.append(time_start_up(engine, content, style, WEIGHTS[(i + 1) % 2]))
        log(
            f"{size} px, repeat {i + 1}/{repeats}: to 1st evaluation cold {cold[-1].first_evaluation_s:.3f} s, "
            f"warm {warm[-1].first_evaluation_s:.3f} s"
        )
    # every cold painting missed both targets and every warm one found both
    assert all((s.hits, s.misses) == (0, 2) for s in cold), cold
    assert all((s.hits, s.misses) == (2, 0) for s in warm), warm
    h, w = shape_for(size)
    row: dict[str, Any] = {"size": size, "height": h, "width": w, "repeats": repeats}
    for name, runs in (("cold", cold), ("warm", warm)):
        row[f"{name}_prepare_s"] = _median([s.prepare_s for s in runs])
        row[f"{name}_evaluation_s"] = _median([s.first_evaluation_s for s in runs])
        row[f"{name}_iterate_s"] = _median([s.first_iterate_s for s in runs])
    return row


def format_table(rows: list[dict[str, Any]], engine_load_s: float) -> str:
    columns = (("prepare", "set-up"), ("evaluation", "to 1st evaluation"), ("iterate", "to 1st on_iterate"))
    out = [
        f"Target cache: start-up of a remix (same photo and style, other weights); {os.cpu_count()} CPUs; "
        f"engine load {engine_load_s:.1f} s",
        "",
        "{:>14}".format("") + "".join(f" | {title:^26}" for _, title in columns),
        "{:>5} {:>8}".format("size", "H×W") + " | {:>7} {:>7} {:>10}".format("cold s", "warm s", "warm/cold") * 3,
    ]
    for r in rows:
        line = f"{r['size']:>5} {r['height']}×{r['width']:<4}"
        for key, _ in columns:
            cold, warm = r[f"cold_{key}_s"], r[f"warm_{key}_s"]
            line += f" | {cold:>7.3f} {warm:>7.3f} {warm / cold:>10.3f}"
        out.append(line)
    out.append(
        "(seconds from the paint call, medians of "
        + ", ".join(f"{r['repeats']} at {r['size']} px" for r in rows)
        + ";\n cold: an emptied cache; warm: the same photo and style painted just before with other weights;"
        "\n set-up: Engine._problem, i.e. targets and weights, before the optimiser starts)"
    )
    return "\n".join(out)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[256, 400], help="painting heights (4:3)")
    parser.add_argument("--repeats", type=int, default=5, help="cold and warm paintings per size (>= 3)")
    parser.add_argument("--short", action="store_true", help="a quick look: 128 px, 3 repeats")
    args = parser.parse_args(argv)
    sizes, repeats = ([128], 3) if args.short else (args.sizes, args.repeats)
    if repeats < 3:
        parser.error("--repeats must be 3 or more (the table shows medians)")
    t0 = time.perf_counter()
    engine = Engine()
    engine_load_s = time.perf_counter() - t0
    rows = [
        measure(engine, size, repeats, log=lambda msg: print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr))
        for size in sizes
    ]
    print(format_table(rows, engine_load_s))
    return 0


if __name__ == "__main__":
    sys.exit(main())
