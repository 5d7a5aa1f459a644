"""Benchmark of Studio's estimate (`painting.estimate`) against real paintings (not a test).

    .venv/bin/python bench/estimate.py [--sizes 256 400 600] [--iterations 25] [--coarse 0] [--json out.json]

For each size, ONE child process does what a Studio worker does: load the engines, report the memory it
holds (`ready`), time itself (`pycasso.calibration.calibrate`, as after `calibrate`), then paint the
generated pair (`pycasso.examples`, 4:3, drawn at the painting's shape) with the default params and
`--iterations` iterations, the fast engine's draft first (`init: draft`, as the worker paints it). It
compares the estimate made from its own calibration with the wall time of the draft and the painting,
and the estimated peak memory with its measured peak (VmHWM: the most resident memory it ever held).
A child per size keeps each peak its own. Target: the time within ±25 % at 256, 400 and 600 px.

The machine is shared and noisy: run it on a quiet machine, compare only figures from one run, and
note the engine version printed at the top (the engine is being rewritten: rerun it after).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
MARK = "ESTIMATE_CHILD_JSON "
TARGET = 0.25  # |estimated / measured - 1| at most


def _vm(key: str) -> int:
    with open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            if line.startswith(key + ":"):
                return int(line.split()[1]) * 1024
    return 0


def child(size: int, iterations: int, coarse: int) -> dict[str, Any]:
    """One size, in this process: calibrate, estimate, paint, measure."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    from painting.estimate import estimate
    from painting.params import Params
    from pycasso import imaging
    from pycasso.calibration import calibrate, memory
    from pycasso.engine import Engine
    from pycasso.examples import landscape, swirls
    from pycasso.fast import FastEngine, draft_for

    engine, fast = Engine(), FastEngine()
    base = memory()["base_bytes"] or 0  # what the worker says in `ready`
    calibration = calibrate(engine, fast)
    params = Params(size=size, iterations=iterations, coarse_passes=coarse, preview_every=0, preview_seconds=0.0)
    height, width = imaging.painting_shape((3, 4), size)
    content, style = landscape(height, width), swirls(height, width)
    predicted = estimate(params, width, height, calibration, base_bytes=base)
    started = time.perf_counter()
    draft = draft_for(fast, content, [style], params)
    result = engine.paint(content, [style], params, init_image=draft)
    seconds = time.perf_counter() - started
    return {
        "size": size,
        "height": height,
        "width": width,
        "iterations": result.iterations,
        "evaluations": result.evaluations,
        "estimated_s": predicted.seconds,
        "measured_s": seconds,
        "estimated_peak": predicted.peak_bytes,
        "measured_peak": _vm("VmHWM"),
        "base": base,
        "calibration": calibration.to_json(),
    }


def _engine_version() -> str:
    def git(*args: str) -> str:
        return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True).stdout.strip()

    commit = git("log", "-1", "--format=%h %s", "--", "pycasso/engine.py")[:70]
    dirty = " + uncommitted changes" if git("status", "--porcelain", "--", "pycasso/engine.py") else ""
    return f"pycasso/engine.py at {commit}{dirty}"


def run(sizes: list[int], iterations: int, coarse: int) -> list[dict[str, Any]]:
    rows = []
    for size in sizes:
        command = [sys.executable, __file__, "--child", str(size), "--iterations", str(iterations)]
        command += ["--coarse", str(coarse)]
        done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, check=False)
        found = [line for line in done.stdout.splitlines() if line.startswith(MARK)]
        if done.returncode != 0 or not found:
            raise SystemExit(f"the {size} px child failed ({done.returncode}):\n{done.stderr[-3000:]}")
        rows.append(json.loads(found[-1][len(MARK) :]))
        print(f"  {size} px done", file=sys.stderr, flush=True)
    return rows


def table(rows: list[dict[str, Any]]) -> str:
    mb = 2**20
    lines = [
        "| size | painting | est. s | measured s | ratio | est. peak MB | measured peak MB | ratio | evals/iter "
        "| calibration s |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        time_ratio = r["estimated_s"] / r["measured_s"]
        peak_ratio = r["estimated_peak"] / r["measured_peak"]
        ok = "" if abs(time_ratio - 1) <= TARGET else " ✗"
        lines.append(
            f"| {r['size']} | {r['width']}×{r['height']} | {r['estimated_s']:.1f} | {r['measured_s']:.1f} | "
            f"{time_ratio:.2f}{ok} | {r['estimated_peak'] / mb:.0f} | {r['measured_peak'] / mb:.0f} | "
            f"{peak_ratio:.2f} | {r['evaluations'] / max(1, r['iterations']):.2f} | {r['calibration']['took_s']:.1f} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[256, 400, 600])
    parser.add_argument("--iterations", type=int, default=25)
    parser.add_argument("--coarse", type=int, default=0, help="coarse passes (params.coarse_passes)")
    parser.add_argument("--json", type=Path, help="also write the rows here")
    parser.add_argument("--child", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child is not None:
        print(MARK + json.dumps(child(args.child, args.iterations, args.coarse)), flush=True)
        return 0
    print(f"{_engine_version()}; {os.cpu_count()} CPUs; {args.iterations} iterations, coarse passes {args.coarse}")
    rows = run(args.sizes, args.iterations, args.coarse)
    print(table(rows))
    c = rows[0]["calibration"]
    print(
        f"calibration (first child): {c['eval_s'] * 1e3:.1f} ms + {c['eval_pixel_s'] * 1e9:.1f} ns/px per evaluation, "
        f"set-up {c['setup_s']:.2f} s, points {c['points']}"
    )
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1))
    return 0 if all(abs(r["estimated_s"] / r["measured_s"] - 1) <= TARGET for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
