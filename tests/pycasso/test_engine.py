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


def watch_evaluations(engine, monkeypatch, before_each):
    """Call `before_each()` as every loss evaluation of `engine` starts (the engine's compiled loss is wrapped)."""
    compile_loss = engine._loss_fn

    def watched_loss_fn(*key):
        fn = compile_loss(*key)

        def evaluate(*args):
            before_each()
            return fn(*args)

        return evaluate

    monkeypatch.setattr(engine, "_loss_fn", watched_loss_fn)


def test_a_cancel_from_another_thread_lands_within_one_evaluation(engine, content_rgb, style_rgb, monkeypatch):
    stop = threading.Event()
    started_after_stop = []
    watch_evaluations(engine, monkeypatch, lambda: started_after_stop.append(stop.is_set()))
    timer = threading.Timer(0.03, stop.set)  # fires from another thread, most likely mid-evaluation

    def on_iterate(it):
        if it.iteration == 2:
            timer.start()

    try:
        with pytest.raises(Cancelled) as info:
            engine.paint(content_rgb, [style_rgb], Params(size=96, iterations=500), on_iterate, should_stop=stop.is_set)
    finally:
        timer.cancel()
    assert stop.is_set()
    # the flag is read before every evaluation: at most one can start in the instant it is set
    assert sum(started_after_stop) <= 1
    assert info.value.image.shape == (96, 128, 3)
    assert 2 <= info.value.iterations < 500


def test_the_stop_flag_is_read_before_every_evaluation_not_only_between_iterations(
    engine, content_rgb, style_rgb, monkeypatch
):
    # Raise the flag during the very first evaluation (at the starting image, before any iteration
    # ends): only the check before each evaluation can stop the line search from evaluating again.
    stop = threading.Event()
    started = []

    def count_and_raise_the_flag():
        started.append(1)
        stop.set()

    watch_evaluations(engine, monkeypatch, count_and_raise_the_flag)
    with pytest.raises(Cancelled) as info:
        engine.paint(content_rgb, [style_rgb], Params(**SMALL, iterations=50), should_stop=stop.is_set)
    assert len(started) == 1
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
