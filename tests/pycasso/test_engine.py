"""The engine on tiny images: it paints, it is deterministic, it stops when asked."""

import threading
from typing import TYPE_CHECKING, Any

import numpy as np
import pytest

from painting.params import Params
from pycasso import imaging
from pycasso.errors import Cancelled, InvalidParams

if TYPE_CHECKING:  # the engine imports TensorFlow: the `engine` fixture imports it, when a test runs
    from pycasso.engine import Iterate

pytestmark = pytest.mark.slow
SMALL: dict[str, Any] = dict(size=48, preview_every=0)  # Params' fields, for Params(**SMALL, ...)


def run(engine, content, styles, **params):
    seen: list[Iterate] = []
    result = engine.paint(content, styles, Params(**{**SMALL, **params}), seen.append)
    return result, seen


def test_painting_lowers_the_loss_by_a_large_factor(engine, content_rgb, style_rgb):
    result, seen = run(engine, content_rgb, [style_rgb], iterations=20)
    assert result.image.dtype == np.uint8
    assert result.image.shape == (48, 64, 3)  # height = size, width follows the 60x80 photo
    assert [it.iteration for it in seen] == list(range(1, 21))
    assert result.iterations == 20 and result.evaluations >= 20
    assert result.loss.total < seen[0].loss.total / 10
    terms = result.loss
    assert terms.total == pytest.approx(terms.content + terms.style + terms.tv, rel=1e-5)
    assert not np.array_equal(result.image, imaging.resize(content_rgb, 48, 64))


def test_the_same_seed_gives_the_same_pixels_and_another_seed_does_not(engine, content_rgb, style_rgb):
    a, _ = run(engine, content_rgb, [style_rgb], iterations=5, init="noise", seed=7)
    b, _ = run(engine, content_rgb, [style_rgb], iterations=5, init="noise", seed=7)
    c, _ = run(engine, content_rgb, [style_rgb], iterations=5, init="noise", seed=8)
    assert np.array_equal(a.image, b.image)
    assert a.loss == b.loss
    assert not np.array_equal(a.image, c.image)


def test_a_cancel_from_another_thread_lands_within_one_iteration(engine, content_rgb, style_rgb):
    # An iteration is one compiled call (the optimiser runs inside it): the flag is read between them.
    stop = threading.Event()
    after_stop = []
    timer = threading.Timer(0.03, stop.set)  # fires from another thread, most likely mid-iteration

    def on_iterate(it):
        if stop.is_set():
            after_stop.append(it.iteration)
        if it.iteration == 2:
            timer.start()

    try:
        with pytest.raises(Cancelled) as info:
            engine.paint(content_rgb, [style_rgb], Params(size=96, iterations=500), on_iterate, should_stop=stop.is_set)
    finally:
        timer.cancel()
    assert stop.is_set()
    assert len(after_stop) <= 1  # at most the iteration under way when the flag went up
    assert info.value.image.shape == (96, 128, 3)
    assert 2 <= info.value.iterations < 500


def test_a_stop_before_the_first_iteration_evaluates_nothing(engine, content_rgb, style_rgb):
    seen: list[Iterate] = []
    with pytest.raises(Cancelled) as info:
        engine.paint(content_rgb, [style_rgb], Params(**SMALL, iterations=50), seen.append, should_stop=lambda: True)
    assert seen == []
    assert info.value.iterations == 0


def test_raising_cancelled_from_on_iterate_stops_the_run(engine, content_rgb, style_rgb):
    def on_iterate(it):
        if it.iteration == 3:
            raise Cancelled()

    with pytest.raises(Cancelled) as info:
        engine.paint(content_rgb, [style_rgb], Params(**SMALL, iterations=50), on_iterate)
    assert info.value.iterations == 3


def test_preserve_colors_keeps_the_photos_chroma(engine, content_rgb, style_rgb):
    result, _ = run(engine, content_rgb, [style_rgb], iterations=10, preserve_colors=True)
    photo = imaging.resize(content_rgb, 48, 64)
    painted_chroma = imaging.rgb_to_ycbcr(result.image)[..., 1:]
    photo_chroma = imaging.rgb_to_ycbcr(photo)[..., 1:]
    unclipped = (result.image > 2).all(axis=-1) & (result.image < 253).all(axis=-1)
    assert unclipped.mean() > 0.5
    assert np.abs(painted_chroma - photo_chroma)[unclipped].max() <= 2.0  # rounding only
    # ... while the luminance did change: the style was transferred
    assert np.abs(imaging.rgb_to_ycbcr(result.image)[..., 0] - imaging.rgb_to_ycbcr(photo)[..., 0]).mean() > 3


def test_without_preserve_colors_the_style_changes_the_colours(engine, content_rgb, style_rgb):
    result, _ = run(engine, content_rgb, [style_rgb], iterations=10)
    photo = imaging.resize(content_rgb, 48, 64)
    assert np.abs(imaging.rgb_to_ycbcr(result.image)[..., 1:] - imaging.rgb_to_ycbcr(photo)[..., 1:]).mean() > 3


def test_a_blend_that_weights_only_the_first_style_equals_painting_with_it_alone(engine, content_rgb, style_rgb):
    other = content_rgb[::-1]  # any second image
    alone, _ = run(engine, content_rgb, [style_rgb], iterations=4)
    blended, _ = run(engine, content_rgb, [style_rgb, other], iterations=4, style_blend=[1.0, 0.0])
    mixed, _ = run(engine, content_rgb, [style_rgb, other], iterations=4, style_blend=[1.0, 1.0])
    np.testing.assert_allclose(blended.image, alone.image, atol=1)
    assert np.abs(mixed.image.astype(int) - alone.image).mean() > 1


def test_a_blend_of_the_wrong_length_is_invalid(engine, content_rgb, style_rgb):
    with pytest.raises(InvalidParams, match="2 weights but there are 1"):
        engine.paint(content_rgb, [style_rgb], Params(**SMALL, style_blend=[1, 2]))


@pytest.mark.parametrize("init", ["noise", "style"])
def test_other_starting_images(engine, content_rgb, style_rgb, init):
    result, seen = run(engine, content_rgb, [style_rgb], iterations=5, init=init)
    from_content, _ = run(engine, content_rgb, [style_rgb], iterations=5)
    assert result.loss.total < seen[0].loss.total
    assert not np.array_equal(result.image, from_content.image)


def test_a_resumed_run_counts_on_from_its_start_iteration(engine, content_rgb, style_rgb):
    first, seen = run(engine, content_rgb, [style_rgb], iterations=10)
    more: list[Iterate] = []
    result = engine.paint(
        content_rgb,
        [style_rgb],
        Params(**SMALL, iterations=10),
        more.append,
        init_image=seen[5].image(),
        start_iteration=6,
    )
    assert [it.iteration for it in more] == [7, 8, 9, 10]
    assert result.iterations == 10
    assert result.loss.total < seen[5].loss.total


def test_style_scale_changes_the_result(engine, content_rgb, style_rgb):
    a, _ = run(engine, content_rgb, [style_rgb], iterations=4)
    b, _ = run(engine, content_rgb, [style_rgb], iterations=4, style_scale=2.0)
    assert not np.array_equal(a.image, b.image)


def test_coarse_to_fine_paints_every_pass_and_ends_at_the_requested_size(engine, content_rgb, style_rgb):
    params = Params(size=64, iterations=4, coarse_passes=1, coarse_iterations=3, init="content", preview_every=0)
    assert params.passes() == [(32, 3), (64, 4)]
    seen: list[Iterate] = []
    result = engine.paint(content_rgb, [style_rgb], params, seen.append)
    assert [it.iteration for it in seen] == list(range(1, 8)) and seen[-1].iterations == 7
    assert [it.size for it in seen] == [32] * 3 + [64] * 4
    assert seen[0].image().shape == (32, 43, 3)  # a coarse pass's preview is at its own size
    assert result.image.shape == (64, 85, 3) and result.iterations == 7
    # the full-size pass starts from the coarse result, not from the photo: a different painting
    single = engine.paint(content_rgb, [style_rgb], Params(size=64, iterations=4, init="content", preview_every=0))
    assert np.abs(result.image.astype(int) - single.image).mean() > 1


def test_a_resume_inside_the_full_size_pass_skips_the_coarse_one(engine, content_rgb, style_rgb):
    params = Params(size=64, iterations=4, coarse_passes=1, coarse_iterations=3, init="content", preview_every=0)
    seen: list[Iterate] = []
    start = imaging.resize(content_rgb, 64, 85)
    engine.paint(content_rgb, [style_rgb], params, seen.append, init_image=start, start_iteration=5)
    assert [(it.iteration, it.size) for it in seen] == [(6, 64), (7, 64)]


def test_tiles_cover_the_painting_exactly_once_after_blending():
    from pycasso.engine import blend_tile, plan_tiles

    for height, width, side, overlap in [(100, 150, 64, 16), (64, 64, 64, 16), (130, 70, 48, 32)]:
        tiles = plan_tiles(height, width, side, overlap)
        covered = np.zeros((height, width), bool)
        for top, left, h, w in tiles:
            assert h <= side and w <= side and top + h <= height and left + w <= width
            covered[top : top + h, left : left + w] = True
        assert covered.all()
        # Blending all-ones tiles over a canvas of zeros leaves ones: every pixel's tile weights sum
        # to 1 and nothing of the canvas under them is left.
        canvas = np.zeros((height, width, 1), np.float32)
        for index, (_, _, h, w) in enumerate(tiles):
            blend_tile(canvas, np.ones((h, w, 1), np.float32), tiles, index)
        np.testing.assert_allclose(canvas, 1.0, atol=1e-6)


def test_a_painting_larger_than_the_memory_budget_is_painted_in_tiles_without_seams(content_rgb, style_rgb):
    from painting.estimate import TILE_CANVAS_VECTORS, memory_bytes
    from pycasso.engine import Engine, overlap_for, plan_tiles, seam_contrast

    params = Params(size=160, iterations=8, init="content", preview_every=0)
    canvas = TILE_CANVAS_VECTORS * 160 * 213 * 3 * 4  # the full-size images a tiled pass keeps
    engine = Engine(memory_budget=memory_bytes(128, 128, params) + canvas)  # a whole 160×213 pass does not fit
    assert engine._tile_size(160, 213, params, engine.memory_budget) == 128
    seen: list[Iterate] = []
    result = engine.paint(content_rgb, [style_rgb], params, seen.append)
    assert result.image.shape == (160, 213, 3)
    assert [it.iteration for it in seen] == list(range(1, 9))
    assert seen[3].image().shape == (160, 213, 3)  # a preview mid-tile shows the whole painting
    across, inside = seam_contrast(result.image, plan_tiles(160, 213, 128, overlap_for(128)))
    assert across <= 1.5 * inside  # no edge where one tile ends


def test_a_memory_budget_that_holds_no_tile_is_refused(content_rgb, style_rgb):
    from pycasso.engine import Engine

    with pytest.raises(InvalidParams, match="memory budget"):
        Engine(memory_budget=1).paint(content_rgb, [style_rgb], Params(size=160, iterations=2))
