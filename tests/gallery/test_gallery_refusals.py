"""Gallery refuses early: a request it cannot paint is answered 4xx with one sentence, and stores nothing.

Gallery runs for real (uvicorn on loopback, SQLite in a tmp folder); no Studio listens, so an accepted
painting just waits. Every refusal is `{"detail": "<one sentence>"}` with 413, 415 or 422.
"""

from __future__ import annotations

import json

import pytest

from support import phone_photo, png, refused

NO_STUDIO = "http://127.0.0.1:9"  # nothing listens there: the dispatcher just waits
SMALL = {"size": 48, "iterations": 2, "preview_every": 0}


@pytest.fixture
def gallery(gallery_factory):
    return gallery_factory(NO_STUDIO)


@pytest.mark.parametrize(
    ("content", "params", "words"),
    [
        (png(2000, 10), {"size": 64}, ["content", "2000×10", "12800 px wide", "8192"]),  # a strip too wide
        (png(10, 2000), {"size": 48}, ["content", "10×2000", "1 px wide", "32"]),  # and one too narrow
        # stored 400 wide and 20 tall, shown (EXIF orientation 6) 20 wide and 400 tall: 3 px wide at 64
        (phone_photo(400, 20), {"size": 64}, ["content", "20×400", "3 px wide"]),
    ],
    ids=["too-wide", "too-narrow", "phone-photo-upright-too-narrow"],
)
def test_a_photo_whose_painting_cannot_have_that_shape_is_refused_and_nothing_stored(gallery, content, params, words):
    before = gallery.stored()
    response = gallery.post_painting(params, content=content)
    refused(response, 422, *words)
    assert gallery.stored() == before


def test_the_shape_rule_reads_a_phone_photo_upright(gallery):
    # stored 20 wide and 400 tall (3 px wide at 64 if read as stored), shown 400 wide and 20 tall: 1280 px wide
    response = gallery.post_painting({**SMALL, "size": 64}, content=phone_photo(20, 400))
    assert response.status_code == 201, response.text


def test_a_remix_at_a_size_the_photo_cannot_take_is_refused_and_nothing_stored(gallery):
    created = gallery.post_painting({**SMALL, "size": 32}, content=png(200, 10))  # 640 px wide
    assert created.status_code == 201, created.text
    before = gallery.stored()
    response = gallery.client.post(f"/api/paintings/{created.json()['id']}/remix", json={"params": {"size": 500}})
    refused(response, 422, "content", "200×10", "10000 px wide")
    assert gallery.stored() == before
    ok = gallery.client.post(f"/api/paintings/{created.json()['id']}/remix", json={"params": {"size": 48}})
    assert ok.status_code == 201, ok.text


@pytest.mark.parametrize(
    ("query", "words"),
    [
        ("offset=9223372036854775808", ["offset"]),  # 2**63: SQLite cannot take it
        ("offset=1000000001", ["offset", "1000000000"]),
        ("offset=-1", ["offset"]),
        ("limit=0", ["limit"]),
        ("limit=501", ["limit", "500"]),
        ("limit=ten", ["limit"]),
    ],
)
def test_list_query_numbers_out_of_bounds_are_422_with_one_sentence(gallery, query, words):
    refused(gallery.client.get(f"/api/paintings?{query}"), 422, *words)
    assert gallery.client.get("/health/live").status_code == 200  # the connection and the app are fine


def test_the_openapi_document_states_the_offset_bound(gallery):
    parameters = gallery.client.get("/openapi.json").json()["paths"]["/api/paintings"]["get"]["parameters"]
    offset = next(p for p in parameters if p["name"] == "offset")
    assert offset["schema"]["maximum"] == 10**9 and offset["schema"]["minimum"] == 0


def test_bad_params_json_names_params_once(gallery):
    detail = refused(gallery.post_painting("{not json"), 422, "params: ", "JSON")
    assert "params: params" not in detail


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"size": "64"}, "size"),
        ({"iterations": "4"}, "iterations"),
        ({"style_weight": "10"}, "style_weight"),
        ({"preserve_colors": "yes"}, "preserve_colors"),
        ({"preserve_colors": 1}, "preserve_colors"),
        ({"size": 64.0}, "size"),
    ],
)
def test_numbers_as_strings_and_booleans_as_words_are_refused_naming_the_field(gallery, params, field):
    before = gallery.stored()
    refused(gallery.post_painting({**SMALL, **params}), 422, f"params: {field}")
    assert gallery.stored() == before


def test_ints_are_still_fine_for_float_fields(gallery):
    response = gallery.post_painting({**SMALL, "style_weight": 10, "tv_weight": 0, "style_scale": 1})
    assert response.status_code == 201, response.text
    assert response.json()["params"]["style_weight"] == 10.0


def test_a_remix_with_a_number_as_a_string_is_refused(gallery):
    created = gallery.post_painting(SMALL).json()
    response = gallery.client.post(f"/api/paintings/{created['id']}/remix", json={"params": {"size": "64"}})
    refused(response, 422, "params: size")


@pytest.mark.parametrize("count", [9, 30])
def test_too_many_styles_is_one_422_whatever_the_count(gallery, count):
    before = gallery.stored()
    detail = refused(gallery.post_painting(SMALL, styles=[png(8, 8)] * count), 422, "style", "at most 8")
    assert "Maximum number of files" not in detail
    assert gallery.stored() == before


def test_too_many_form_fields_is_422(gallery):
    files = [("content", ("c.png", png(64, 48), "image/png")), ("style", ("s.png", png(8, 8), "image/png"))]
    data = {"params": json.dumps(SMALL), **{f"extra{i}": "x" for i in range(20)}}
    refused(gallery.client.post("/api/paintings", files=files, data=data), 422)


def test_a_multipart_body_without_a_boundary_is_422(gallery):
    response = gallery.client.post("/api/paintings", content=b"--x--", headers={"content-type": "multipart/form-data"})
    refused(response, 422)


def test_framework_refusals_have_the_same_shape(gallery):
    refused(gallery.client.get("/api/paintings?limit=ten"), 422, "limit")
    refused(gallery.client.get("/api/nothing-here"), 404)
    refused(gallery.client.put("/api/paintings"), 405)
    refused(gallery.client.post("/api/paintings/" + "a" * 32 + "/remix", content=b"{"), 404)


def test_a_remix_body_nested_too_deep_is_422_not_500(gallery):
    created = gallery.post_painting(SMALL).json()
    deep = b"[" * 100_000 + b"]" * 100_000  # Python's json gives up (RecursionError) long before the body cap
    response = gallery.client.post(
        f"/api/paintings/{created['id']}/remix", content=deep, headers={"content-type": "application/json"}
    )
    refused(response, 422, "body")
