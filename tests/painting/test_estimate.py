"""The estimate model (`painting.estimate`): pure arithmetic, no engine."""

from __future__ import annotations

import subprocess
import sys

import pytest

from painting.estimate import (
    FAST_BYTES_PER_PIXEL,
    Calibration,
    activation_bytes,
    estimate,
    largest_size,
    memory_bytes,
)
from painting.params import MAX_SIZE, MAX_WIDTH, MIN_SIZE, Params

CAL = Calibration(eval_s=0.05, eval_pixel_s=5e-6, setup_s=0.3, fast_s=0.02, fast_pixel_s=1e-7)


def test_memory_grows_with_size_and_with_deeper_layers():
    params = Params()
    sizes = [MIN_SIZE, 64, 128, 256, 400, 600, 1000, MAX_SIZE]
    memory = [memory_bytes(s, round(s * 4 / 3), params) for s in sizes]
    assert memory == sorted(memory) and len(set(memory)) == len(memory)
    shallow = Params(content_layer="block2_conv2", style_layers={"block1_conv1": 1.0, "block2_conv1": 1.0})
    assert memory_bytes(400, 533, shallow) < memory_bytes(400, 533, params)
    # VGG19 keeps about 322 floats a pixel up to block5_conv2: 1.29 kB
    assert activation_bytes(400, 533, "block5_conv2") / (400 * 533) == pytest.approx(1288, rel=0.01)


def test_a_large_style_scale_makes_the_style_forward_pass_the_peak():
    assert memory_bytes(256, 341, Params(style_scale=4.0)) > 2 * memory_bytes(256, 341, Params())


def test_the_time_is_the_sum_of_the_passes_each_growing_with_pixels_and_iterations():
    single = estimate(Params(init="content"), 640, 480, CAL)
    coarse = estimate(Params(init="content", coarse_passes=2, coarse_iterations=50), 640, 480, CAL)
    assert [(p.height, p.width, p.iterations) for p in coarse.passes] == [
        (100, 133, 50),
        (200, 267, 50),
        (400, 533, 100),
    ]
    assert coarse.seconds == pytest.approx(sum(p.seconds or 0 for p in coarse.passes))
    assert coarse.passes[-1] == single.passes[0]
    seconds = [p.seconds or 0.0 for p in coarse.passes]
    assert 0 < seconds[0] < seconds[1] < seconds[2]
    # a coarse pass does not raise the peak: the full-size pass holds the most
    assert coarse.peak_bytes == single.peak_bytes == coarse.passes[-1].memory_bytes
    assert single.seconds is not None
    longer = estimate(Params(init="content", iterations=200), 640, 480, CAL)
    assert longer.seconds == pytest.approx(single.seconds + 100 * 1.1 * (0.05 + 5e-6 * 400 * 533))
    # the fast engine's draft comes first
    drafted = estimate(Params(), 640, 480, CAL)
    assert drafted.seconds == pytest.approx(single.seconds + 0.02 + 1e-7 * 400 * 533)


def test_without_a_calibration_there_is_memory_but_no_time():
    found = estimate(Params(init="content"), 640, 480, None, base_bytes=10**9)
    assert found.seconds is None and "not measured" in (found.reason or "")
    assert found.peak_bytes == 10**9 + memory_bytes(400, 533, Params())
    # the fast engine's draft keeps its memory (onnxruntime's arena) while the painting runs
    drafted = estimate(Params(), 640, 480, None, base_bytes=10**9)
    assert drafted.peak_bytes == found.peak_bytes + FAST_BYTES_PER_PIXEL * 400 * 533
    assert found.to_json()["passes"][0]["seconds"] is None


def test_the_fast_and_model_engines_are_one_pass():
    fast = estimate(Params(engine="fast", size=512), 640, 480, CAL)
    assert len(fast.passes) == 1 and fast.seconds == pytest.approx(0.02 + 1e-7 * 512 * 683)
    latent = estimate(Params(engine="model", model="dcgan", size=64), None, None, CAL)
    assert (latent.passes[0].height, latent.passes[0].width) == (64, 64) and latent.seconds == 1.0


def test_a_shape_the_rule_refuses_is_a_value_error():
    with pytest.raises(ValueError, match="px wide"):
        estimate(Params(size=64), 2000, 10, CAL)


@pytest.mark.parametrize("params", [Params(), Params(coarse_passes=2), Params(style_scale=3.0), Params(engine="fast")])
@pytest.mark.parametrize(("width", "height"), [(640, 480), (480, 640), (3000, 1000)])
def test_the_largest_size_is_the_last_one_whose_peak_fits(params, width, height):
    base = 500 * 2**20
    for budget in (base + 200 * 2**20, 2 * 2**30, 6 * 2**30):
        size = largest_size(params, width, height, budget, base_bytes=base)
        assert size is not None
        fits = estimate(
            params.model_copy(update={"size": size}), width, height, None, base_bytes=base, budget_bytes=budget
        )
        assert fits.peak_bytes <= budget
        if size < MAX_SIZE and width * (size + 1) / height < MAX_WIDTH:  # one more px would not fit
            bigger = params.model_copy(update={"size": size + 1})
            over = estimate(bigger, width, height, None, base_bytes=base, budget_bytes=budget)
            assert over.peak_bytes > budget


def test_no_size_fits_a_budget_below_the_smallest_painting():
    assert largest_size(Params(), 640, 480, 10 * 2**20, base_bytes=0) is None
    assert largest_size(Params(), 640, 480, 10**12) == MAX_SIZE


def test_a_calibration_reads_back_what_it_wrote_and_refuses_nonsense():
    again = Calibration.from_json(CAL.to_json())
    assert again == CAL
    bad: object
    for bad in (None, [], {"eval_s": "fast", "eval_pixel_s": 1e-6}, {"eval_s": -1, "eval_pixel_s": 0}, {"eval_s": 1}):
        with pytest.raises(ValueError, match="calibration"):
            Calibration.from_json(bad)


def test_the_model_imports_no_tensorflow():
    code = "import sys, painting.estimate; assert 'tensorflow' not in sys.modules and 'pycasso' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)
