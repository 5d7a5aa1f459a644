"""An upload is stored upright and without metadata: no location, no camera, no second frame."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from PIL import Image, ImageCms

from painting.errors import InvalidImage
from painting.images import ImageStore

from support import phone_photo

GPS_IFD, MAKE, MODEL, SERIAL, ORIENTATION = 0x8825, 0x010F, 0x0110, 0xA431, 0x0112


def camera_exif(orientation: int = 1) -> bytes:
    exif = Image.Exif()
    exif[MAKE], exif[MODEL], exif[SERIAL], exif[ORIENTATION] = "PhoneMaker", "Phone 15", "SN-0042", orientation
    exif.get_ifd(GPS_IFD).update({1: "N", 2: (52.0, 31.0, 12.0), 3: "E", 4: (13.0, 24.0, 36.0)})
    return exif.tobytes()


def encoded(fmt: str, size: tuple[int, int] = (30, 20), **options: object) -> bytes:
    image = Image.new("RGB", size, (10, 200, 30))
    image.paste((200, 10, 30), (0, 0, size[0] // 2, size[1]))  # left half red
    out = io.BytesIO()
    image.save(out, format=fmt, **options)
    return out.getvalue()


def stored_image(store: ImageStore, data: bytes) -> Image.Image:
    (ref,) = store.put_all([("content", data)])
    stored = store.read(ref.id)
    assert ref.size == len(stored)
    image = Image.open(io.BytesIO(stored))
    assert (ref.width, ref.height) == image.size
    return image


@pytest.fixture
def store(tmp_path: Path) -> ImageStore:
    return ImageStore(tmp_path / "images")


@pytest.mark.parametrize("fmt", ["JPEG", "WEBP", "PNG"])
def test_location_and_camera_are_dropped(store: ImageStore, fmt: str) -> None:
    options: dict[str, object] = {"exif": camera_exif()} if fmt == "PNG" else {"exif": camera_exif(), "quality": 95}
    data = encoded(fmt, (30, 20), **options)
    assert b"PhoneMaker" in data and b"SN-0042" in data  # what the test sends does carry them
    image = stored_image(store, data)
    assert dict(image.getexif()) == {} and "exif" not in image.info
    raw = store.read(store.put_all([("content", data)])[0].id)
    assert b"PhoneMaker" not in raw and b"SN-0042" not in raw and b"Phone 15" not in raw
    assert image.format == fmt and image.size == (30, 20)


def test_xmp_and_comments_are_dropped_too(store: ImageStore) -> None:
    xmp = b'<x:xmpmeta xmlns:x="adobe:ns:meta/"><exif:GPSLatitude>52,31N</exif:GPSLatitude></x:xmpmeta>'
    data = encoded("JPEG", quality=95, xmp=xmp, comment=b"shot at home")
    assert b"GPSLatitude" in data and b"shot at home" in data
    (ref,) = store.put_all([("content", data)])
    raw = store.read(ref.id)
    assert b"GPSLatitude" not in raw and b"shot at home" not in raw


@pytest.mark.parametrize("orientation", [3, 6, 8])
def test_the_orientation_is_applied_to_the_pixels(store: ImageStore, orientation: int) -> None:
    image = stored_image(store, encoded("JPEG", exif=camera_exif(orientation), quality=95))
    assert image.size == ((30, 20) if orientation == 3 else (20, 30))
    red = {3: (25, 10), 6: (10, 3), 8: (10, 26)}[orientation]  # where the left (red) half went
    pixel = image.convert("RGB").getpixel(red)
    assert isinstance(pixel, tuple) and pixel[0] > 150 and pixel[1] < 80


def test_a_phone_mpo_becomes_one_upright_jpeg(store: ImageStore) -> None:
    image = stored_image(store, phone_photo(40, 24))
    assert (image.format, image.size, getattr(image, "n_frames", 1)) == ("JPEG", (24, 40), 1)


def test_a_heic_photo_is_accepted_and_stored_as_an_upright_jpeg(store: ImageStore) -> None:
    heic = encoded("HEIF", (40, 24), exif=camera_exif(6), quality=90)
    assert heic[4:12] == b"ftypheic"
    image = stored_image(store, heic)
    assert (image.format, image.size, dict(image.getexif())) == ("JPEG", (24, 40), {})


def test_a_colour_profile_is_converted_to_srgb_and_dropped(store: ImageStore) -> None:
    srgb = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    image = stored_image(store, encoded("PNG", icc_profile=srgb))
    assert "icc_profile" not in image.info
    pixel = image.convert("RGB").getpixel((2, 2))
    assert isinstance(pixel, tuple) and abs(pixel[0] - 200) <= 2 and abs(pixel[1] - 10) <= 2


def test_a_clean_image_is_stored_byte_for_byte(store: ImageStore) -> None:
    for data in (encoded("PNG"), encoded("JPEG", quality=90)):
        (ref,) = store.put_all([("content", data)])
        assert store.read(ref.id) == data  # nothing to clean: no second generation of loss


def test_other_formats_are_still_refused_by_name(store: ImageStore) -> None:
    with pytest.raises(InvalidImage, match="This is a GIF file; PNG, JPEG, WEBP and HEIC are accepted"):
        store.put_all([("content", encoded("GIF"))])
