"""A phone's photo (an MPO JPEG turned by its EXIF orientation tag) goes through Gallery, Studio and
the engine: the one image rule in `painting.images` accepts it everywhere, and the painting is upright."""

from __future__ import annotations

import io

import pytest
from PIL import Image

from painting.catalog import Catalog

from support import phone_photo

pytestmark = pytest.mark.slow


def test_a_phone_photo_is_painted_upright_end_to_end(real_studio, gallery_factory):
    gallery = gallery_factory(real_studio.url)
    photo = phone_photo(40, 24)  # stored 40 wide, 24 tall; shown 24 wide, 40 tall
    response = gallery.post_painting(
        {"size": 64, "iterations": 2, "preview_every": 0, "style_weight": 0.01, "init": "content"}, content=photo
    )
    assert response.status_code == 201, response.text
    created = response.json()
    done = gallery.wait_status(created["id"], {"done", "failed"})
    assert done["status"] == "done", done["error"]

    served = gallery.client.get(f"/api/images/{done['content_image']}")
    assert served.headers["content-type"] == "image/jpeg"
    stored = Image.open(io.BytesIO(served.content))  # stored upright, without its EXIF or second frame
    assert (stored.format, stored.size, dict(stored.getexif()), getattr(stored, "n_frames", 1)) == (
        "JPEG",
        (24, 40),
        {},
        1,
    )
    with Catalog.open(None, real_studio.data_dir, scope="studio", migrate=False) as studio_jobs:
        job = studio_jobs.find_by_idempotency_key(created["id"])
        assert job is not None and job.content_image == done["content_image"]

    result = Image.open(io.BytesIO(gallery.client.get(f"/api/images/{done['result_image']}").content))
    assert result.size == (38, 64)  # (width, height): turned as the tag says, so taller than wide
    top, bottom = result.getpixel((19, 6)), result.getpixel((19, 57))
    assert isinstance(top, tuple) and isinstance(bottom, tuple)
    assert top[0] > top[2] and bottom[2] > bottom[0]  # the red half on top, the blue half below
