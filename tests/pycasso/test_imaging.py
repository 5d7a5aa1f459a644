"""Decoding inputs the way people's files come: 16-bit, transparent, rotated by the camera, odd shapes."""

import io

import numpy as np
import pytest
from PIL import Image

from pycasso import imaging
from pycasso.errors import InvalidImage, InvalidParams


def encode(image: Image.Image, fmt: str = "PNG", **options) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **options)
    return buffer.getvalue()


def test_a_16_bit_grey_png_is_scaled_to_8_bits_not_clipped():
    ramp = np.linspace(0, 65535, 48 * 64).reshape(48, 64).astype(np.uint16)
    rgb = imaging.decode_image(encode(Image.fromarray(ramp)))
    assert rgb.shape == (48, 64, 3) and rgb.dtype == np.uint8
    assert abs(rgb.mean() - 127.5) < 2 and (rgb == 255).mean() < 0.01


def test_transparency_is_laid_on_white():
    rgba = np.zeros((8, 8, 4), np.uint8)
    rgba[..., 0] = 255
    rgba[:, 4:, 3] = 255  # right half opaque red, left half fully transparent (red underneath)
    rgb = imaging.decode_image(encode(Image.fromarray(rgba, "RGBA")))
    assert rgb[0, 0].tolist() == [255, 255, 255] and rgb[0, 7].tolist() == [255, 0, 0]


def test_the_cameras_orientation_tag_is_applied():
    landscape = Image.fromarray(np.zeros((20, 40, 3), np.uint8))
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90° clockwise to display"
    rgb = imaging.decode_image(encode(landscape, "JPEG", exif=exif.tobytes()))
    assert rgb.shape[:2] == (40, 20)


def test_cmyk_jpegs_and_palette_pngs_become_rgb():
    cmyk = Image.new("CMYK", (10, 6), (0, 255, 255, 0))  # red in CMYK
    rgb = imaging.decode_image(encode(cmyk, "JPEG"))
    assert rgb.shape == (6, 10, 3) and rgb[3, 5, 0] > 200 and rgb[3, 5, 1] < 60
    palette = Image.new("P", (5, 5), 3)
    assert imaging.decode_image(encode(palette)).shape == (5, 5, 3)


def test_other_formats_are_refused_by_name():
    with pytest.raises(InvalidImage, match="GIF"):
        imaging.decode_image(encode(Image.new("RGB", (4, 4)), "GIF"), what="photo")


@pytest.mark.parametrize(("shape", "size"), [((2000, 10, 3), 48), ((40, 2000, 3), 400)])
def test_a_photo_too_narrow_or_too_wide_for_the_size_is_invalid(shape, size):
    with pytest.raises(InvalidParams, match="wide"):
        imaging.painting_shape(shape, size)
    assert imaging.painting_shape((300, 400, 3), 48) == (48, 64)
