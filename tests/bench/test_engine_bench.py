"""Smoke test of bench/engine.py at tiny sizes: every section runs and its report is well formed.

It asserts structure, finite numbers and the accounting (one timed step per iteration), never a
timing (the machine is shared and noisy). Reproducibility is asserted: it holds at any size.
"""

from __future__ import annotations

import importlib.util
import json
import math
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow  # imports TensorFlow, loads VGG19, starts two child processes

BENCH = Path(__file__).resolve().parents[2] / "bench" / "engine.py"
SECTIONS = ("optimiser", "host", "setup", "coarse", "precision", "repro", "tiles")


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


def _tiny(bench, out: Path):
    return bench.Config(
        sizes=(64,),
        checkpoints=(2, 4),
        main_size=64,
        coarse_schedules=((1, 2),),  # 32 px, then 64
        coarse_budget=4,
        precision_sizes=(64,),
        precision_checkpoints=(2,),
        repro_size=64,
        repro_iterations=2,
        warmup_size=48,
        keras=True,
        keras_evals=2,
        tiles_size=160,  # 160×213 in 128 px tiles
        tiles_iterations=2,
        out=out,
    )


def test_tiny_benchmark_report_is_well_formed(tmp_path):
    bench = _load_bench()
    report = bench.run_benchmark(_tiny(bench, tmp_path))
    sections = report["sections"]
    assert set(sections) == {*SECTIONS, "keras"}
    for name, section in sections.items():
        for t in section["targets"]:
            assert isinstance(t["pass"], bool) and t["op"] in ("<=", ">="), (name, t)
            assert _finite(t["value"]) or t["value"] == math.inf, (name, t)

    (row,) = sections["optimiser"]["rows"]
    assert (row["size"], row["height"], row["width"]) == (64, 64, 85)
    assert set(row["checkpoints"]) == {2, 4}
    for c in row["checkpoints"].values():
        assert all(_finite(c[k]) for k in ("ingraph", "scipy", "ingraph_uint8", "scipy_uint8", "ingraph_s", "scipy_s"))
    assert [t["what"] for t in sections["optimiser"]["targets"]] == [
        "in-graph / scipy loss, 2 it at 64 px",
        "in-graph / scipy loss, 4 it at 64 px",
    ]
    assert (tmp_path / "optimiser_64_4it_scipy.png").is_file()

    host = sections["host"]
    assert host["iterations"] == 3 and _finite(host["host_s_median"]) and host["host_s_median"] >= 0
    setup = sections["setup"]["sizes"][64]
    assert all(_finite(v) for v in setup.values()) and setup["to_first_step_s"] > setup["first_evaluation_s"]

    coarse = sections["coarse"]
    (schedule,) = coarse["schedules"]
    assert schedule["passes"] == [[32, 2], [64, 4]]
    assert 1 <= schedule["full_iterations"] <= 4
    # The last pass's own losses are full-size ones: Engine.losses on its (uint8) image agrees.
    assert schedule["first_full_loss"] == pytest.approx(schedule["first_full_scored_uint8"], rel=0.05)
    assert Path(coarse["image"]).is_file()

    (prec,) = sections["precision"]["rows"]
    assert _finite(prec["bf16_s_per_it"]) and prec["bf16_iterations"] == 3
    assert sections["precision"]["winner"] in ("fp32", "bf16")

    repro = sections["repro"]
    assert repro["max_abs_diff"] <= 1, repro
    assert all(Path(p).is_file() for p in repro["images"])

    text = bench.format_report(report)
    for header in ("1. Optimiser", "2. Host-side", "3. Set-up", "4. Coarse-to-fine", "5. Precision", "6. Repro"):
        assert header in text
    assert text.count("target:") == sum(len(s["targets"]) for s in sections.values())
    json.dumps(bench._jsonable(report), allow_nan=False)  # bench.json is strict JSON


def test_timed_engine_logs_one_step_per_iteration(tmp_path):
    bench = _load_bench()
    engine = bench.TimedEngine()
    run = bench.paint_run(engine, bench.bench_params(48, 3), keep=lambda i: i == 2)
    assert [m.iteration for m in run.marks] == [1, 2, 3]
    assert len(run.log.steps) == 3 and len(run.log.starts) == 1 and run.log.targets_s > 0
    assert set(run.kept) == {2} and run.kept[2].image().shape == (48, 64, 3)
    assert len(run.host_times()) == 2


def test_first_reaching_bisects_a_falling_curve():
    bench = _load_bench()
    losses = [10.0, 8.0, 5.0, 5.0, 3.0, 1.0]  # iterations 1..6
    assert bench._first_reaching(6, lambda i: losses[i - 1], 5.0) == 3
    assert bench._first_reaching(6, lambda i: losses[i - 1], 10.0) == 1
    assert bench._first_reaching(6, lambda i: losses[i - 1], 0.5) is None


def test_shapes_and_flops_match_the_brief():
    bench = _load_bench()
    assert bench.shape_for(256) == (256, 341)
    assert bench.shape_for(400) == (400, 533)
    assert bench.eval_flops(400, 533) == pytest.approx(2 * 157.19e9, rel=0.01)
    short = bench.Config.short()
    assert short.sizes == (256,) and set(short.precision_checkpoints) <= set(short.checkpoints)
