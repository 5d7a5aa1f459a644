"""The rules the services refuse a request by, in `painting`: the painting's shape, strict params, the
upright size of a photo. Gallery and Studio apply them on upload; the engine applies the same ones."""

from __future__ import annotations

import pytest

from painting.images import ImageStore, inspect_image, upright_size
from painting.params import MAX_WIDTH, MIN_SIZE, Params, painting_shape, parse_params
from pycasso import imaging
from pycasso.errors import InvalidParams

from support import phone_photo, png


@pytest.mark.parametrize(
    ("width", "height", "size", "shape"),
    [
        (400, 300, 48, (48, 64)),
        (32, 400, 400, (400, 32)),  # exactly MIN_SIZE wide
        (8192, 4096, 4096, (4096, MAX_WIDTH)),  # exactly MAX_WIDTH wide
    ],
)
def test_a_paintable_photo_gets_its_shape(width, height, size, shape):
    assert painting_shape(width, height, size) == shape
    assert imaging.painting_shape((height, width, 3), size) == shape  # the engine's rule is this one


@pytest.mark.parametrize(
    ("width", "height", "size", "words"),
    [
        (2000, 10, 64, "2000×10 photo painted 64 px tall would be 12800 px wide"),
        (10, 2000, 48, "would be 1 px wide"),
        (31, 400, 400, "would be 31 px wide"),
        (8193, 4096, 4096, "would be 8193 px wide"),
        (0, 10, 48, "no pixels"),
    ],
)
def test_an_unpaintable_photo_is_refused_with_the_reason(width, height, size, words):
    with pytest.raises(ValueError, match=words) as refused:
        painting_shape(width, height, size)
    assert str(MIN_SIZE) in str(refused.value) or "no pixels" in words
    if width:
        with pytest.raises(InvalidParams) as engine:
            imaging.painting_shape((height, width, 3), size)
        assert str(engine.value) == str(refused.value)


@pytest.mark.parametrize(
    ("text", "field"),
    [
        ('{"size": "64"}', "size"),
        ('{"iterations": 4.0}', "iterations"),
        ('{"preserve_colors": "yes"}', "preserve_colors"),
        ('{"preserve_colors": 1}', "preserve_colors"),
        ('{"style_weight": "10"}', "style_weight"),
        ('{"style_blend": ["1", 2]}', "style_blend.0"),
        ('{"seed": true}', "seed"),
    ],
)
def test_params_are_strict_and_the_message_names_the_field(text, field):
    with pytest.raises(ValueError, match=rf"^{field}: "):
        parse_params(text)


def test_whole_numbers_are_fine_for_float_fields():
    params = parse_params('{"style_weight": 10, "tv_weight": 0, "style_blend": [2, 1], "style_scale": 1}')
    assert params.style_weight == 10.0 and params.style_blend == [2.0, 1.0]
    assert Params.model_validate(params.model_dump(mode="json")) == params  # a stored record reads back


@pytest.mark.parametrize(("text", "words"), [("{not json", "Invalid JSON"), ("[1, 2]", "Input should be an object")])
def test_an_error_about_the_whole_input_names_no_field(text, words):
    with pytest.raises(ValueError) as refused:
        parse_params(text)
    assert str(refused.value).startswith(words) and "params" not in str(refused.value)


@pytest.mark.parametrize(("orientation", "upright"), [(1, (40, 24)), (3, (40, 24)), (5, (24, 40)), (6, (24, 40))])
def test_the_upright_size_applies_the_exif_orientation(tmp_path, orientation, upright):
    photo = phone_photo(40, 24, orientation=orientation)
    assert upright_size(photo) == upright
    ref = inspect_image(photo)
    assert (ref.width, ref.height, ref.orientation, ref.upright) == (40, 24, orientation, upright)
    store = ImageStore(tmp_path / "images")
    assert store.ref(store.put(photo).id).upright == upright  # read back from the header of the stored file
    assert imaging.decode_image(photo).shape[:2] == upright[::-1]  # what the engine paints


def test_the_upright_size_of_what_is_not_an_image_is_unknown():
    assert upright_size(b"") is None
    assert upright_size(b"not an image") is None
    assert upright_size(png(5, 3)) == (5, 3)
