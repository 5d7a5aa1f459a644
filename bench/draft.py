"""Benchmark: does a Gatys painting that starts from the fast engine's draft (`init: draft`) reach a
given loss sooner than one that starts from the photo (`init: content`)? Not a test.

    .venv/bin/python bench/draft.py [--sizes 256 400] [--iterations 200] [--out out/bench-draft]

For each size (a 4:3 landscape: the generated pair of `pycasso.examples`, drawn at the painting's
shape), in ONE process so that the runs share the machine's state:

1. `content`: `Engine.paint` from the photo, recording the full-size Gatys loss (the function the
   engine minimises, default weights) after every iteration and the wall time since `paint` began;
2. `draft`: the fast engine's stylisation of the photo (its time counted), then `Engine.paint` from it;
3. the table: the loss after 25/50/100/200 iterations for both, and the wall time each needs to reach
   the `content` run's final loss (the draft's time includes making the draft). Ratios < 1 favour
   the draft. The final images and the draft are saved under --out, to look at side by side.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # before TensorFlow is imported

import numpy as np  # noqa: E402

from painting.params import Params  # noqa: E402
from pycasso import imaging  # noqa: E402
from pycasso.engine import Engine, Iterate  # noqa: E402
from pycasso.examples import landscape, swirls  # noqa: E402
from pycasso.fast import FastEngine  # noqa: E402

CHECKPOINTS = (25, 50, 100, 200)


def run(
    engine: Engine, content: np.ndarray, style: np.ndarray, params: Params, init: np.ndarray | None, lead_s: float
) -> tuple[list[tuple[int, float, float]], np.ndarray]:
    """[(iteration, seconds since the start, total loss)] of one run, and its final image."""
    curve: list[tuple[int, float, float]] = []
    began = time.perf_counter()

    def on_iterate(it: Iterate) -> None:
        curve.append((it.iteration, lead_s + time.perf_counter() - began, it.loss.total))

    result = engine.paint(content, [style], params, on_iterate, init_image=init)
    return curve, result.image


def loss_at(curve: list[tuple[int, float, float]], iteration: int) -> float:
    for i, _, loss in curve:
        if i == iteration:
            return loss
    return float("nan")


def seconds_to(curve: list[tuple[int, float, float]], target: float) -> float:
    for _, seconds, loss in curve:
        if loss <= target:
            return seconds
    return float("inf")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[256, 400])
    parser.add_argument("--iterations", type=int, default=200)
    parser.add_argument("--out", type=Path, default=Path("out/bench-draft"))
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    checkpoints = [c for c in CHECKPOINTS if c <= args.iterations]

    engine = Engine()
    fast = FastEngine()
    rows = []
    for size in args.sizes:
        height, width = imaging.painting_shape((3, 4), size)
        content, style = landscape(height, width), swirls(height, width)
        params = Params(size=size, iterations=args.iterations, preview_every=0, preview_seconds=0)
        engine.paint(content, [style], params.model_copy(update={"iterations": 2}))  # trace and warm up
        fast.draft(content, [style], [1.0])  # warm the fast engine
        plain, plain_image = run(engine, content, style, params, None, 0.0)

        t = time.perf_counter()
        draft = fast.draft(content, [style], [1.0])
        draft_s = time.perf_counter() - t
        drafted, drafted_image = run(engine, content, style, params, draft, draft_s)

        for name, image in (("content", plain_image), ("draft-start", draft), ("draft", drafted_image)):
            (args.out / f"{size}-{name}.png").write_bytes(imaging.encode_png(image))
        target = plain[-1][2]
        rows.append((size, draft_s, plain, drafted, target))

    print(f"Gatys loss from the photo (content) and from the fast draft (draft); {args.iterations} iterations")
    header = "| size | init | " + " | ".join(f"loss @{c}" for c in checkpoints) + " | s to content's final loss |"
    print(header)
    print("|" + "---|" * (header.count("|") - 1))
    for size, draft_s, plain, drafted, target in rows:
        for name, curve in (("content", plain), (f"draft ({draft_s:.2f} s)", drafted)):
            losses = " | ".join(f"{loss_at(curve, c):.4g}" for c in checkpoints)
            print(f"| {size} | {name} | {losses} | {seconds_to(curve, target):.1f} |")
        ratio = seconds_to(drafted, target) / max(seconds_to(plain, target), 1e-9)
        print(
            f"| {size} | draft/content | "
            + " | ".join(f"{loss_at(drafted, c) / loss_at(plain, c):.2f}" for c in checkpoints)
            + f" | {ratio:.2f} |"
        )
    print(f"images: {args.out}/<size>-content.png, -draft-start.png, -draft.png")
    return 0


if __name__ == "__main__":
    sys.exit(main())
