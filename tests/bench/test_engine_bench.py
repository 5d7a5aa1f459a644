"""Smoke test of bench/engine.py at a tiny size: the pieces run and the report is well formed.

It asserts structure and finite numbers only, never a timing (the machine is shared and noisy).
"""

from __future__ import annotations

import importlib.util
import math
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow  # imports TensorFlow and loads VGG19

BENCH = Path(__file__).resolve().parents[2] / "bench" / "engine.py"


def _load_bench():
    name = "deep_painting_bench_engine"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, BENCH)
        assert spec is not None and spec.loader is not None, BENCH
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module  # dataclasses look their module up here
        spec.loader.exec_module(module)
    return sys.modules[name]


def _finite(value) -> bool:
    return isinstance(value, int | float) and math.isfinite(value)


def test_tiny_benchmark_report_is_well_formed(tmp_path):
    bench = _load_bench()
    report = bench.run_benchmark(sizes=[48], evals=4, loss_evals=4, bf16=True, out=tmp_path, short_iterations=2)

    (row,) = report["rows"]
    assert (row["size"], row["height"], row["width"]) == (48, 48, 64)
    for key in (
        "gflop_per_eval",
        "best_conv_gflops",
        "floor_s",
        "engine_s",
        "loss_fn_s",
        "reference_s",
        "engine_setup_s",
        "engine_over_floor",
        "engine_over_reference",
    ):
        assert _finite(row[key]), (key, row[key])
    assert _finite(row["overhead_s"]) and _finite(report["loss"]["reference_unclipped"]["total"])
    assert row["engine_s"] > 0 and row["floor_s"] > 0 and row["reference_s"] > 0
    assert set(row["conv_gflops"]) == set(bench.RATE_LAYERS)

    loss = report["loss"]
    assert loss["engine_evaluations"] == 4 and loss["reference_evaluations"] == 4
    assert _finite(loss["ratio"]) and loss["ratio"] > 0
    for name in ("engine", "reference"):
        assert _finite(loss[name]["total"])
        assert Path(loss["images"][name]).is_file()

    b16 = report["bf16"]
    assert b16["fpmath"] == "BF16"
    assert _finite(b16["sizes"][48]["s_per_eval"]) and _finite(b16["mean_abs_diff"])
    assert _finite(b16["fp32_rerun_mean_abs_diff"])
    assert all(Path(p).is_file() for p in b16["images"].values())

    assert [t["target"] for t in report["targets"]] == [bench.TARGET_FLOOR, bench.TARGET_SPEED, bench.TARGET_LOSS]
    assert all(_finite(t["value"]) and isinstance(t["pass"], bool) for t in report["targets"])

    table = bench.format_table(report)
    assert "Targets:" in table and ("PASS" in table or "MISS" in table)
    assert "48×64" in table


def test_shapes_and_flops_match_the_brief():
    bench = _load_bench()
    assert bench.shape_for(256) == (256, 341)
    assert bench.shape_for(400) == (400, 533)
    assert bench.eval_flops(400, 533) == pytest.approx(2 * 157.19e9, rel=0.01)
