"""The fast engine on tiny images: shapes, strength, blends, the style-vector cache, colour, determinism."""

from __future__ import annotations

import sys

import numpy as np
import pytest

from painting.params import Params
from pycasso import imaging
from pycasso.errors import EngineNotInstalled, InvalidImage, InvalidParams
from pycasso.examples import landscape, swirls
from pycasso.fast import BUILTIN_STYLES, FastEngine

pytest.importorskip("onnxruntime")


@pytest.fixture(scope="module")
def fast() -> FastEngine:
    return FastEngine()


@pytest.fixture(scope="module")
def photo() -> np.ndarray:
    return landscape(60, 80)


@pytest.fixture(scope="module")
def style() -> np.ndarray:
    return swirls(56, 56)


def other_style(seed: int = 5) -> np.ndarray:
    """A style no other test has painted with (the engine's cache is shared by the module)."""
    return swirls(40, 48, seed=seed)


def params(**fields) -> Params:
    return Params(**{"engine": "fast", "size": 36, **fields})


def distance(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.abs(a.astype(np.int16) - b.astype(np.int16)).mean())


def chroma(rgb: np.ndarray) -> np.ndarray:
    return imaging.rgb_to_ycbcr(rgb)[..., 1:]


@pytest.mark.parametrize(
    ("photo_hw", "size"),
    [((60, 80), 36), ((45, 37), 41), ((33, 101), 33), ((50, 50), 35), ((80, 45), 64)],
)
def test_the_painting_has_the_painting_shape_for_any_aspect(fast, style, photo_hw, size):
    content = landscape(*photo_hw)
    result = fast.paint(content, [style], params(size=size))
    assert result.image.dtype == np.uint8
    assert result.image.shape == (*imaging.painting_shape(content.shape, size), 3)


def test_a_draft_keeps_the_content_size_even_when_it_is_not_a_multiple_of_four(fast, photo, style):
    content = imaging.resize(photo, 37, 49)
    draft = fast.draft(content, [style], [1.0])
    assert draft.shape == (37, 49, 3) and draft.dtype == np.uint8
    assert distance(draft, content) > 5  # it is painted, not the photo


def test_strength_zero_stays_closer_to_the_photo_than_strength_one(fast, photo, style):
    content = imaging.resize(photo, 36, 48)
    weak = fast.paint(photo, [style], params(strength=0.0)).image
    half = fast.paint(photo, [style], params(strength=0.5)).image
    full = fast.paint(photo, [style], params(strength=1.0)).image
    assert distance(weak, content) < distance(half, content) < distance(full, content)


def test_a_blend_of_one_and_zero_paints_the_first_style_alone(fast, photo, style):
    alone = fast.paint(photo, [style], params()).image
    blended = fast.paint(photo, [style, other_style()], params(style_blend=[1.0, 0.0])).image
    assert np.array_equal(alone, blended)
    mixed = fast.paint(photo, [style, other_style()], params(style_blend=[1.0, 1.0])).image
    assert not np.array_equal(alone, mixed)
    assert np.array_equal(fast.draft(imaging.resize(photo, 36, 48), [style, other_style()], [3.0, 0.0]), alone)


def test_the_second_painting_with_a_style_takes_its_vector_from_the_cache(fast, photo):
    new_style = other_style(seed=11)
    misses, hits = fast.cache_misses, fast.cache_hits
    first = fast.paint(photo, [new_style], params())
    assert (fast.cache_misses, fast.cache_hits) == (misses + 1, hits)
    assert first.cached_styles == 0
    second = fast.paint(photo, [new_style], params())
    assert (fast.cache_misses, fast.cache_hits) == (misses + 1, hits + 1)
    assert second.cached_styles == 1
    assert np.array_equal(first.image, second.image)


def test_the_cache_is_bounded_and_forgets_the_least_recently_used():
    engine = FastEngine(cache_size=2)
    a, b, c = (other_style(seed) for seed in (21, 22, 23))
    for s in (a, b, a, c):  # a was used after b: b goes when c comes
        engine.style_vector(s)
    assert (engine.cache_misses, engine.cache_hits) == (3, 1)
    engine.style_vector(a)
    engine.style_vector(b)
    assert (engine.cache_misses, engine.cache_hits) == (4, 2)


def test_a_style_vector_is_a_read_only_float32_vector_of_100(fast, style):
    vector = fast.style_vector(style)
    assert vector.shape == (100,) and vector.dtype == np.float32
    assert not vector.flags.writeable
    assert np.array_equal(fast.style_vector(style.copy()), vector)  # keyed by content, not identity


def test_preserve_colors_keeps_the_photo_chroma(fast, photo, style):
    content = imaging.resize(photo, 36, 48)
    kept = fast.paint(photo, [style], params(preserve_colors=True)).image
    free = fast.paint(photo, [style], params()).image
    # the median: where the style's light is near black or white, uint8 clips the colour
    assert np.median(np.abs(chroma(kept) - chroma(content))) < 1.0
    assert np.median(np.abs(chroma(free) - chroma(content))) > 10.0
    assert distance(kept, content) > 5  # the light and texture are the style's


def test_builtin_styles_paint_at_the_painting_shape(fast, photo):
    weights = [0.0] * BUILTIN_STYLES
    weights[7] = 2.0
    image = fast.builtin(photo, weights, 41)
    assert image.shape == (41, 55, 3) and image.dtype == np.uint8
    other = fast.builtin(photo, [1.0] * BUILTIN_STYLES, 41)
    assert not np.array_equal(image, other)


@pytest.mark.parametrize("weights", [[1.0] * 25, [-1.0] + [1.0] * 25, [0.0] * BUILTIN_STYLES])
def test_builtin_refuses_weights_that_are_not_26_non_negative_numbers(fast, photo, weights):
    with pytest.raises(InvalidParams):
        fast.builtin(photo, weights, 41)


def test_two_engines_paint_the_same_pixels(fast, photo, style):
    again = FastEngine()
    p = params(strength=0.7, style_blend=[2.0, 1.0])
    styles = [style, other_style()]
    assert np.array_equal(fast.paint(photo, styles, p).image, again.paint(photo, styles, p).image)
    assert again.device == fast.device == "CPU"


def test_the_rewritten_graph_paints_what_the_plain_float_graph_paints(fast, photo, style):
    plain = FastEngine(variant="float-plain")
    content = imaging.resize(photo, 37, 51)
    assert np.abs(fast.draft(content, [style], [1]).astype(int) - plain.draft(content, [style], [1])).max() <= 1


def test_a_blend_of_the_wrong_length_is_refused(fast, photo, style):
    with pytest.raises(InvalidParams, match="style_blend has 2 weights"):
        fast.paint(photo, [style], params(style_blend=[1.0, 1.0]))
    with pytest.raises(InvalidParams):
        fast.draft(imaging.resize(photo, 36, 48), [style], [1.0, 1.0])
    with pytest.raises(InvalidParams):
        fast.paint(photo, [], params())


def test_parameters_for_another_engine_are_refused(fast, photo, style):
    with pytest.raises(InvalidParams, match="'gatys'"):
        fast.paint(photo, [style], Params(size=36))


def test_an_array_that_is_not_an_rgb_image_is_refused(fast, photo, style):
    with pytest.raises(InvalidImage, match="style 1"):
        fast.paint(photo, [style.astype(np.float32)], params())
    with pytest.raises(InvalidImage, match="content"):
        fast.paint(photo[..., 0], [style], params())


def test_stats_look_like_the_gatys_engine_s_without_a_loss(fast, photo, style):
    stats = fast.paint(photo, [style], params()).stats()
    assert stats["iterations"] == stats["evaluations"] == 1
    assert stats["seconds"] >= 0 and "loss" not in stats
    assert set(stats) >= {"iterations", "evaluations", "seconds", "seconds_per_evaluation"}


def test_a_missing_model_folder_is_engine_not_installed(tmp_path):
    with pytest.raises(EngineNotInstalled, match="arbitrary_predict.onnx"):
        FastEngine(models_dir=tmp_path)


def test_a_damaged_model_file_is_engine_not_installed(tmp_path):
    for name in ("arbitrary_predict.onnx", "arbitrary_transform.onnx", "multistyle26.onnx"):
        (tmp_path / name).write_bytes(b"not a network")
    with pytest.raises(EngineNotInstalled, match="cannot be read"):
        FastEngine(models_dir=tmp_path)


def test_a_missing_onnxruntime_is_engine_not_installed(monkeypatch):
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # `import onnxruntime` now fails
    with pytest.raises(EngineNotInstalled, match="onnxruntime is missing"):
        FastEngine()


def test_a_provider_this_onnxruntime_lacks_is_skipped_and_the_device_says_what_runs():
    engine = FastEngine(providers=["NoSuchExecutionProvider"], cache_size=0)
    assert engine.device == "CPU"
