"""The three engines through Gallery and a real Studio with the real worker: fast, a Gatys painting
that starts from a draft, and generator models (one repaints a photo, one paints from a seed)."""

from __future__ import annotations

import io
import json

import pytest
from PIL import Image

import studio_process
from support import png

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def studio(models_studio: studio_process.StudioProcess) -> studio_process.StudioProcess:
    return models_studio


@pytest.fixture
def gallery(studio, gallery_factory):
    return gallery_factory(studio.url, studio_token=studio_process.TOKEN)


def post(gallery, params: dict, *, content: bytes | None = None, styles: list[bytes] | None = None):
    files = [("content", ("c.png", content, "image/png"))] if content is not None else []
    files += [("style", ("s.png", s, "image/png")) for s in styles or []]
    return gallery.client.post("/api/paintings", files=files or None, data={"params": json.dumps(params)})


def test_a_fast_painting_is_done_in_one_step(gallery):
    created = post(gallery, {"engine": "fast", "size": 48, "strength": 0.7}, content=png(64, 48), styles=[png(40, 40)])
    assert created.status_code == 201, created.text
    assert created.json()["iterations"] == 1
    done = gallery.wait_status(created.json()["id"], {"done"}, 60)
    assert done["iteration"] == 1 and done["progress"] == []
    image = gallery.client.get(f"/api/images/{done['result_image']}")
    assert image.status_code == 200 and image.headers["content-type"] == "image/png"


def test_a_gatys_painting_from_a_draft_shows_the_draft_first(gallery):
    params = {"size": 48, "iterations": 3, "init": "draft", "preview_every": 0, "preview_seconds": 0}
    created = post(gallery, params, content=png(64, 48), styles=[png(40, 40, (200, 40, 40))])
    assert created.status_code == 201, created.text
    done = gallery.wait_status(created.json()["id"], {"done"}, 120)
    assert [p["iteration"] for p in done["progress"]] == [0, 1, 2, 3]
    assert done["progress"][0]["loss"]["total"] is None  # the draft is shown, not scored
    assert all(p["loss"]["total"] > 0 for p in done["progress"][1:])


def test_the_built_in_styles_are_listed_with_thumbnails_and_paint_without_a_style_upload(gallery):
    listed = gallery.client.get("/api/styles").json()
    assert (listed["known"], listed["count"], listed["sheet"]) == (True, 26, "/api/styles/sheet.png")
    sheet = gallery.client.get(listed["sheet"])
    assert sheet.status_code == 200 and sheet.headers["content-type"] == "image/png"
    width, height = listed["tile"]
    assert Image.open(io.BytesIO(sheet.content)).size == (26 * width, height)
    weights = [0.0] * 26
    weights[3] = weights[12] = 0.5
    created = post(gallery, {"engine": "fast", "size": 48, "builtin_styles": weights}, content=png(64, 48))
    assert created.status_code == 201, created.text
    assert gallery.wait_status(created.json()["id"], {"done"}, 60)["result_image"]
    both = post(gallery, {"engine": "fast", "builtin_styles": weights}, content=png(64, 48), styles=[png(40, 40)])
    assert both.status_code == 422 and "not both" in both.json()["detail"]


def test_gallery_lists_studios_models_with_the_reason_a_file_is_refused(gallery):
    listed = gallery.client.get("/api/models").json()
    assert listed["known"] is True
    models = {m["name"]: m for m in listed["models"]}
    assert (models["tint"]["kind"], models["dots"]["kind"]) == ("image", "latent")
    assert models["broken"]["ok"] is False and models["broken"]["problem"]


def test_a_latent_model_paints_from_a_seed_alone_and_an_image_model_repaints_a_photo(gallery):
    before = gallery.stored()[1]
    made = [post(gallery, {"engine": "model", "model": "dots", "size": 40, "seed": seed}) for seed in (1, 2)]
    assert [r.status_code for r in made] == [201, 201], [r.text for r in made]
    assert gallery.stored()[1] == before  # nothing uploaded
    done = [gallery.wait_status(r.json()["id"], {"done"}, 60) for r in made]
    assert all(d["content_image"] is None and d["styles"] == [] for d in done)
    assert done[0]["result_image"] != done[1]["result_image"]  # another seed, another image
    for name in ("tint", "sketch", "sketch-h5"):  # ONNX, and Keras in both of its formats
        repainted = post(gallery, {"engine": "model", "model": name, "size": 48}, content=png(64, 48))
        assert repainted.status_code == 201, repainted.text
        assert gallery.wait_status(repainted.json()["id"], {"done"}, 60)["result_image"], name


@pytest.mark.parametrize(
    ("params", "files", "words"),
    [
        (
            {"engine": "model", "model": "nope"},
            {},
            "Studio has no model 'nope' (it has: dots, sketch, sketch-h5, tint)",
        ),
        ({"engine": "model", "model": "broken"}, {}, "params: model: broken cannot be used:"),
        ({"engine": "model", "model": "dots"}, {"content": True}, "content: the model dots paints from a seed alone"),
        ({"engine": "model", "model": "tint"}, {}, "content: the model tint repaints a photo"),
        ({"engine": "model", "model": "tint"}, {"content": True, "style": True}, "style: a generator model takes no"),
        ({"engine": "fast"}, {"content": True}, "style: missing part"),
        ({"engine": "fast", "strength": -0.1}, {"content": True, "style": True}, "strength: Input should be greater"),
        ({"engine": "gatys"}, {}, "content: missing part"),
    ],
)
def test_the_wrong_images_for_an_engine_are_refused_and_nothing_is_stored(gallery, params, files, words):
    before = gallery.stored()
    response = post(
        gallery,
        params,
        content=png(64, 48) if files.get("content") else None,
        styles=[png(40, 40)] if files.get("style") else [],
    )
    assert response.status_code == 422, response.text
    assert words in response.json()["detail"]
    assert gallery.stored() == before


def test_studio_refuses_a_model_job_it_cannot_paint_even_when_gallery_could_not_check(studio):
    # Gallery takes a model painting while Studio is away; Studio then checks it on arrival.
    refused = studio.client.post(
        "/v1/jobs", data={"params": json.dumps({"engine": "model", "model": "dots"})}, files=_content()
    )
    assert refused.status_code == 422
    assert refused.json()["detail"] == "content: the model dots paints from a seed alone: send no photo"


def _content() -> list[tuple[str, tuple[str, bytes, str]]]:
    return [("content", ("c.png", png(64, 48), "image/png"))]
