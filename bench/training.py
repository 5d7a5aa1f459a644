"""Benchmark of the training engine (issue 15): seconds per step of the real architectures (not a test).

    .venv/bin/python bench/training.py [--steps 5] [--kinds cyclegan dcgan] [--short]

For each case it makes a `pycasso.training.Trainer` on made-up images (`pycasso.examples`: landscapes
as photos, swirls as paintings), takes 2 warm-up steps (the first traces and compiles the step), then
times --steps steps one by one, and reports the median, with the parameter count, the first step's
time, and what one checkpoint costs (seconds and bytes on disk: the worker writes them during a run).

Full mode, the papers' settings:
- cyclegan: 256 px crops, batch 1, filters 64, 9 residual blocks (two generators, two PatchGANs);
- dcgan: 32 px images, batch 128, filters 64, latent 100.
`--short`: cyclegan at 128 px with filters 32 (6 blocks), dcgan at 32 px, batch 32, filters 32.

Everything runs in one process; on a shared machine compare only numbers from the same run.
"""

from __future__ import annotations

import argparse
import importlib
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # before TensorFlow is imported

import numpy as np  # noqa: E402

from pycasso._tf import tf  # noqa: E402  (pycasso's TF settings: one inter-op thread, for reproducibility)
from pycasso.examples import landscape, swirls  # noqa: E402
from pycasso.training import KINDS, Trainer  # noqa: E402

WARMUP = 2


@dataclass(frozen=True)
class Case:
    kind: str
    params: dict[str, Any]

    @property
    def label(self) -> str:
        return f"{self.kind} {self.params['image_size']} px, batch {self.params['batch_size']}"


def cases(short: bool) -> list[Case]:
    if short:
        return [
            Case("cyclegan", {"image_size": 128, "batch_size": 1, "filters": 32}),
            Case("dcgan", {"image_size": 32, "batch_size": 32, "filters": 32}),
        ]
    return [
        Case("cyclegan", {"image_size": 256, "batch_size": 1, "filters": 64}),
        Case("dcgan", {"image_size": 32, "batch_size": 128, "filters": 64, "latent_dim": 100}),
    ]


@dataclass(frozen=True)
class Row:
    case: Case
    parameters: dict[str, int]
    create_s: float
    first_step_s: float
    step_s: list[float]
    checkpoint_s: float
    checkpoint_bytes: int
    sample_s: float

    @property
    def median_s(self) -> float:
        return float(statistics.median(self.step_s))

    @property
    def steps_per_hour(self) -> float:
        return 3600.0 / self.median_s


def images_for(kind: str) -> tuple[list[np.ndarray], list[np.ndarray] | None]:
    """Made-up training data: 4:3 landscapes (photos) and square swirls (paintings)."""
    photos = [landscape(300, 400, seed=s) for s in range(1, 5)]
    if kind == "dcgan":
        return photos + [swirls(160, 160, seed=s) for s in range(2, 6)], None
    return photos, [swirls(320, 320, seed=s) for s in range(2, 5)]


def _timed(call: Callable[[], Any]) -> tuple[float, Any]:
    started = time.perf_counter()
    result = call()
    return time.perf_counter() - started, result


def measure(case: Case, steps: int, log: Callable[[str], None]) -> Row:
    photos, paintings = images_for(case.kind)
    with tempfile.TemporaryDirectory(prefix="bench-training-") as folder:
        create_s, trainer = _timed(
            lambda: Trainer.create(case.kind, {**case.params, "steps": 10_000}, photos, paintings, folder)
        )
        log(f"{case.label}: made in {create_s:.1f} s; {WARMUP} warm-up steps, then {steps} timed")
        first_step_s, _ = _timed(trainer.step)
        for _ in range(WARMUP - 1):
            trainer.step()
        times = []
        for _ in range(steps):
            seconds, losses = _timed(trainer.step)
            times.append(seconds)
            log(f"  step {trainer.step_index}: {seconds:.3f} s { ({k: round(v, 3) for k, v in losses.items()}) }")
        sample_s, _ = _timed(trainer.sample)
        checkpoint_s, path = _timed(trainer.checkpoint)
        size = sum(p.stat().st_size for p in Path(path).iterdir())
        return Row(case, trainer.parameter_counts(), create_s, first_step_s, times, checkpoint_s, size, sample_s)


def format_table(rows: Sequence[Row], machine: dict[str, Any]) -> str:
    out = [
        f"Training benchmark: {machine['cpus']} CPUs, TensorFlow {machine['tensorflow']}, Keras {machine['keras']}, "
        f"device {machine['device']}; 1-min load average {machine['load'][0]:.1f} before, "
        f"{machine['load'][1]:.1f} after",
        f"(seconds per step: median of the timed steps after {WARMUP} warm-up steps; parameters: generator / all "
        "networks; the first step traces and compiles)",
        "",
        "{:>8} {:>5} {:>5} {:>7} {:>19} {:>8} {:>8} {:>8} {:>10} {:>9} {:>10}".format(
            "kind",
            "size",
            "batch",
            "filters",
            "parameters",
            "first s",
            "s/step",
            "min s",
            "steps/hour",
            "ckpt s",
            "ckpt MB",
        ),
    ]
    for r in rows:
        generator = r.parameters.get("G_AB", r.parameters.get("G", 0))
        counts = f"{generator / 1e6:.2f}M / {sum(r.parameters.values()) / 1e6:.2f}M"
        p = r.case.params
        out.append(
            f"{r.case.kind:>8} {p['image_size']:>5} {p['batch_size']:>5} {p['filters']:>7} {counts:>19} "
            f"{r.first_step_s:>8.2f} {r.median_s:>8.3f} {min(r.step_s):>8.3f} {r.steps_per_hour:>10.0f} "
            f"{r.checkpoint_s:>9.2f} {r.checkpoint_bytes / 1e6:>10.1f}"
        )
    return "\n".join(out)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--steps", type=int, default=5, help="timed steps per case (after 2 warm-up steps)")
    parser.add_argument("--kinds", nargs="+", choices=KINDS, default=list(KINDS), help="which recipes to time")
    parser.add_argument("--short", action="store_true", help="smaller networks and images: a quick check")
    args = parser.parse_args(argv)
    if args.steps < 1:
        parser.error("--steps must be at least 1")

    def log(message: str) -> None:
        print(message, file=sys.stderr, flush=True)

    keras = importlib.import_module("keras")
    load_before = os.getloadavg()[0]
    rows = [measure(case, args.steps, log) for case in cases(args.short) if case.kind in args.kinds]
    gpus = tf.config.list_physical_devices("GPU")
    machine = {
        "cpus": os.cpu_count(),
        "tensorflow": tf.__version__,
        "keras": keras.__version__,
        "device": gpus[0].name if gpus else "CPU",
        "load": (load_before, os.getloadavg()[0]),
    }
    print(format_table(rows, machine))
    return 0


if __name__ == "__main__":
    sys.exit(main())
