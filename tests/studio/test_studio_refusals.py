"""Studio refuses early: a job it cannot paint is answered 4xx with one sentence, and stores nothing.

Studio runs for real in a subprocess with the fake worker (tests/studio/fake_worker.py), as in test_api.
"""

from __future__ import annotations

import json

import httpx
import pytest

from support import phone_photo, png, refused

SMALL = {"size": 48, "iterations": 2, "preview_every": 0}


def _stored_files(studio) -> set[str]:
    root = studio.data_dir / "images"
    return {p.name for p in root.rglob("*") if p.is_file()} if root.exists() else set()


def post(
    studio, params: dict | str, *, content: bytes | None = None, styles: int = 1, extra: dict[str, str] | None = None
):
    files = [("content", ("c.png", content if content is not None else png(64, 48), "image/png"))]
    files += [("style", ("s.png", png(8, 8, (20, 40, 220)), "image/png"))] * styles
    text = params if isinstance(params, str) else json.dumps(params)
    return studio.client.post("/v1/jobs", files=files, data={"params": text, **(extra or {})})


@pytest.mark.parametrize(
    ("content", "params", "words"),
    [
        (png(2000, 10), {"size": 64}, ["content", "2000×10", "12800 px wide", "8192"]),
        (png(10, 2000), {"size": 48}, ["content", "10×2000", "1 px wide", "32"]),
        (phone_photo(400, 20), {"size": 64}, ["content", "20×400", "3 px wide"]),  # shown 20 wide, 400 tall
    ],
    ids=["too-wide", "too-narrow", "phone-photo-upright-too-narrow"],
)
def test_a_photo_whose_painting_cannot_have_that_shape_is_refused_and_nothing_stored(
    fake_studio, content, params, words
):
    before = _stored_files(fake_studio)
    refused(post(fake_studio, {**SMALL, **params}, content=content), 422, *words)
    assert _stored_files(fake_studio) == before


def test_the_shape_rule_reads_a_phone_photo_upright(fake_studio):
    # stored 20 wide and 400 tall (3 px wide if read as stored), shown 400 wide and 20 tall: 1280 px wide
    response = post(fake_studio, {**SMALL, "size": 64}, content=phone_photo(20, 400))
    assert response.status_code == 202, response.text


def test_bad_params_json_names_params_once(fake_studio):
    detail = refused(post(fake_studio, "{not json"), 422, "params: ", "JSON")
    assert "params: params" not in detail


@pytest.mark.parametrize(
    ("params", "field"),
    [({"size": "64"}, "size"), ({"preserve_colors": "yes"}, "preserve_colors"), ({"seed": 1.0}, "seed")],
)
def test_numbers_as_strings_and_booleans_as_words_are_refused_naming_the_field(fake_studio, params, field):
    before = _stored_files(fake_studio)
    refused(post(fake_studio, {**SMALL, **params}), 422, f"params: {field}")
    assert _stored_files(fake_studio) == before


@pytest.mark.parametrize("count", [9, 30])
def test_too_many_styles_is_one_422_whatever_the_count(fake_studio, count):
    before = _stored_files(fake_studio)
    detail = refused(post(fake_studio, SMALL, styles=count), 422, "style", "at most 8")
    assert "Maximum number of files" not in detail
    assert _stored_files(fake_studio) == before


def test_too_many_form_fields_is_422(fake_studio):
    refused(post(fake_studio, SMALL, extra={f"extra{i}": "x" for i in range(20)}), 422)


def test_a_multipart_body_without_a_boundary_is_422(fake_studio):
    response = fake_studio.client.post("/v1/jobs", content=b"--x--", headers={"content-type": "multipart/form-data"})
    refused(response, 422)


def test_framework_refusals_have_the_same_shape(fake_studio):
    refused(fake_studio.client.get("/v1/nothing-here"), 404)
    refused(fake_studio.client.put("/v1/jobs"), 405)
    refused(fake_studio.client.get("/v1/jobs/x/events", headers={"Last-Event-ID": "seven"}), 404)


def test_the_openapi_document_is_served_behind_the_token(fake_studio):
    document = fake_studio.client.get("/v1/openapi.json")
    assert document.status_code == 200, document.text
    assert "/v1/jobs" in document.json()["paths"]
    with httpx.Client(base_url=fake_studio.url) as bare:
        refused(bare.get("/v1/openapi.json"), 401)
