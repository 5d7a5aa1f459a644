"""The engine's target cache: a remix reuses the style Grams and content features of an earlier
painting, paints exactly the same pixels as without the cache, and the cache stays within its bound."""

from typing import Any

import numpy as np
import pytest

from painting.params import Params
from pycasso import imaging
from pycasso.errors import InvalidParams

pytestmark = pytest.mark.slow
TINY: dict[str, Any] = dict(size=32, iterations=3, preview_every=0)  # Params' fields: 32×40 paintings
STYLE_ENTRY = 4 * (64**2 + 128**2 + 256**2 + 512**2 + 512**2)  # bytes of one style's Grams, default layers
CONTENT_ENTRY = 4 * 2 * 2 * 512  # block5_conv2 of a 32×40 painting: (1, 2, 2, 512) float32


@pytest.fixture(scope="module")
def photo() -> np.ndarray:
    from pycasso.examples import landscape

    return landscape(32, 40)  # (H, W, 3): the painting's own shape, so nothing is resized


@pytest.fixture(scope="module")
def styles() -> list[np.ndarray]:
    from pycasso.examples import swirls

    return [swirls(40, 40, seed=seed) for seed in (2, 3, 4)]


@pytest.fixture
def cached():
    """A fresh engine with the default cache bound (each test counts from zero)."""
    from pycasso.engine import Engine

    return Engine()


@pytest.fixture(scope="module")
def uncached():
    """An engine that keeps nothing: every painting computes its targets."""
    from pycasso.engine import Engine

    return Engine(cache_bytes=0)


def paint(engine, photo, styles, **params):
    return engine.paint(photo, styles, Params(**{**TINY, **params}))


def score(engine, photo, styles, **params):
    """`Engine.losses` of the photo itself: targets and one evaluation, no optimisation."""
    return engine.losses(photo, photo, styles, Params(**{**TINY, **params}))


def counts(engine) -> tuple[int, int]:
    stats = engine.cache_stats()
    return stats["hits"], stats["misses"]


@pytest.mark.parametrize("preserve_colors", [False, True])
def test_a_remix_hits_the_cache_and_paints_exactly_what_an_uncached_engine_paints(
    cached, uncached, photo, styles, preserve_colors
):
    paint(cached, photo, styles[:1], preserve_colors=preserve_colors)
    assert cached.cache_stats() == {"hits": 0, "misses": 2, "entries": 2, "bytes": STYLE_ENTRY + CONTENT_ENTRY}

    remix = dict(
        preserve_colors=preserve_colors,
        style_weight=30.0,
        content_weight=2.0,
        tv_weight=0.5,
        style_layers={
            "block1_conv1": 2.0,
            "block2_conv1": 1.0,
            "block3_conv1": 0.5,
            "block4_conv1": 1.0,
            "block5_conv1": 1.0,
        },
    )
    warm = paint(cached, photo, styles[:1], **remix)
    assert counts(cached) == (2, 2)  # the style's Grams and the photo's features, both from the cache
    cold = paint(uncached, photo, styles[:1], **remix)
    assert np.array_equal(warm.image, cold.image)
    assert warm.loss == cold.loss
    assert uncached.cache_stats()["entries"] == 0 and uncached.cache_stats()["bytes"] == 0


def test_another_style_misses_and_the_same_photo_hits(cached, photo, styles):
    paint(cached, photo, styles[:1])
    paint(cached, photo, styles[1:2])
    assert counts(cached) == (1, 3)
    assert cached.cache_stats()["entries"] == 3


def test_another_style_scale_resizes_the_style_and_misses(cached, photo, styles):
    score(cached, photo, styles[:1])
    score(cached, photo, styles[:1], style_scale=2.0)
    assert counts(cached) == (1, 3)
    score(cached, photo, styles[:1], style_scale=2.0)
    assert counts(cached) == (3, 3)


def test_another_set_of_style_layers_or_content_layer_misses(cached, photo, styles):
    score(cached, photo, styles[:1])
    score(cached, photo, styles[:1], style_layers={"block1_conv1": 1.0, "block2_conv1": 1.0})
    assert counts(cached) == (1, 3)
    score(cached, photo, styles[:1], content_layer="block4_conv2")
    assert counts(cached) == (2, 4)


def test_the_least_recently_used_entry_goes_first_and_the_bound_holds(photo, styles):
    from pycasso.engine import Engine

    bound = 2 * STYLE_ENTRY + 4 * CONTENT_ENTRY  # room for two styles and the photo
    engine = Engine(cache_bytes=bound)
    first, second, third = styles
    for style in (first, second, first, third):  # `first` used again: `second` is now the oldest
        score(engine, photo, [style])
        stats = engine.cache_stats()
        assert stats["bytes"] <= bound and stats["entries"] <= 3
    # the photo hit three times, `first` once; `third` pushed `second` out
    assert engine.cache_stats() == {"hits": 4, "misses": 4, "entries": 3, "bytes": 2 * STYLE_ENTRY + CONTENT_ENTRY}

    score(engine, photo, [first])
    score(engine, photo, [third])
    assert counts(engine) == (8, 4)
    score(engine, photo, [second])  # evicted: computed again, and `first` (now the oldest) goes
    assert counts(engine) == (9, 5)
    score(engine, photo, [first])
    assert counts(engine) == (10, 6)


def test_an_entry_larger_than_the_bound_is_not_kept(photo, styles):
    from pycasso.engine import Engine

    engine = Engine(cache_bytes=STYLE_ENTRY - 1)
    score(engine, photo, styles[:1])
    score(engine, photo, styles[:1])
    assert engine.cache_stats() == {"hits": 1, "misses": 3, "entries": 1, "bytes": CONTENT_ENTRY}


def test_two_blended_styles_give_the_same_losses_and_pixels_cached_or_not(cached, uncached, photo, styles):
    blend = dict(style_blend=[0.3, 0.7])
    cold = score(cached, photo, styles[:2], **blend)
    assert counts(cached) == (0, 3)
    warm = score(cached, photo, styles[:2], **blend)
    assert counts(cached) == (3, 3)
    assert warm == cold == score(uncached, photo, styles[:2], **blend)

    reweighted = dict(style_blend=[0.8, 0.2], style_weight=3.0)
    painted = paint(cached, photo, styles[:2], **reweighted)
    assert counts(cached) == (6, 3)
    plain = paint(uncached, photo, styles[:2], **reweighted)
    assert np.array_equal(painted.image, plain.image)
    assert painted.loss == plain.loss


def test_clear_cache_drops_the_entries_and_keeps_the_counters(cached, photo, styles):
    score(cached, photo, styles[:1])
    cached.clear_cache()
    assert cached.cache_stats() == {"hits": 0, "misses": 2, "entries": 0, "bytes": 0}
    score(cached, photo, styles[:1])
    assert counts(cached) == (0, 4)


def test_a_negative_bound_is_refused():
    from pycasso.engine import Engine

    with pytest.raises(ValueError, match="cache_bytes"):
        Engine(cache_bytes=-1)


def test_params_for_another_engine_are_invalid(cached, photo, styles):
    with pytest.raises(InvalidParams, match="gatys"):
        cached.paint(photo, styles[:1], Params(engine="fast", size=32))


def test_a_draft_start_without_a_draft_image_starts_from_the_photo(cached, photo, styles):
    draft = paint(cached, photo, styles[:1], init="draft")
    content = paint(cached, photo, styles[:1], init="content")
    assert np.array_equal(draft.image, content.image)


def test_a_draft_start_paints_from_the_given_init_image(cached, photo, styles):
    start = imaging.from_vgg(np.zeros((32, 40, 3), np.float32))  # the VGG mean colour: neither photo nor style
    given = cached.paint(photo, styles[:1], Params(**TINY, init="draft"), init_image=start)
    from_photo = paint(cached, photo, styles[:1], init="draft")
    also_given = cached.paint(photo, styles[:1], Params(**TINY, init="content"), init_image=start)
    assert not np.array_equal(given.image, from_photo.image)
    assert np.array_equal(given.image, also_given.image)
