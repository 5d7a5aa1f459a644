"""Gallery forwards Studio's estimate to the page, and a painting Studio refuses for memory fails with why.

Studio runs for real with the fake worker (tests/studio/fake_worker.py: it times itself at once, with
made-up figures) and a memory budget that takes a painting about 150 px tall.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from painting.estimate import DEFAULT_BASE_BYTES, estimate, largest_size, memory_bytes
from painting.params import Params

import studio_process
from support import refused

FRONTEND = Path(__file__).resolve().parents[2] / "frontend"
SCREENSHOTS = FRONTEND.parent / "out" / "screenshots"
BUDGET = DEFAULT_BASE_BYTES + memory_bytes(150, 200, Params())
FITS = largest_size(Params(), 64, 48, BUDGET, base_bytes=DEFAULT_BASE_BYTES)


@pytest.fixture(scope="module")
def small_studio(tmp_path_factory: pytest.TempPathFactory) -> Iterator[studio_process.StudioProcess]:
    running = studio_process.StudioProcess(
        tmp_path_factory.mktemp("small-studio") / "data",
        [sys.executable, studio_process.FAKE_WORKER],
        STUDIO_TOKEN="gallery-test-token-0123456789",  # the token the Gallery fixtures send
        STUDIO_MEMORY_BUDGET_BYTES=str(BUDGET),
    )
    running.client.headers["Authorization"] = "Bearer gallery-test-token-0123456789"
    running.wait_ready(30)
    running.wait(lambda: running.client.get("/v1/status").json()["workers"][0]["calibration"], 10, "timed")
    yield running
    running.stop()


def test_the_page_gets_studios_estimate_and_gallerys_own_caps_apply(gallery_factory, small_studio):
    gallery = gallery_factory(small_studio.url, max_size=512, max_iterations=500)
    body = {"params": {"size": 100, "iterations": 50}, "width": 64, "height": 48, "styles": 1}
    answer = gallery.client.post("/api/estimate", json=body)
    assert answer.status_code == 200, answer.text
    found = answer.json()
    assert found == {**small_studio.client.post("/v1/estimate", json=body).json(), "known": True}
    assert found["seconds"] > 0 and found["fits"] and found["largest_size"] == FITS
    refused(gallery.client.post("/api/estimate", json={**body, "params": {"size": 1000}}), 422, "at most 512 px")
    refused(gallery.client.post("/api/estimate", json={**body, "width": 2000, "height": 10}), 422, "px wide")


def test_without_studio_the_estimate_is_unknown_not_an_error(gallery_factory):
    gallery = gallery_factory("http://127.0.0.1:9")
    answer = gallery.client.post("/api/estimate", json={"params": {}, "width": 64, "height": 48})
    assert answer.status_code == 200 and answer.json()["known"] is False and answer.json()["reason"]


def test_a_painting_over_studios_memory_budget_fails_at_once_saying_what_fits(gallery_factory, small_studio):
    gallery = gallery_factory(small_studio.url)
    created = gallery.post_painting({"size": 400, "iterations": 5})
    assert created.status_code == 201, created.text
    failed = gallery.wait_status(created.json()["id"], {"failed", "done"}, timeout=30)
    assert failed["status"] == "failed", failed
    assert "budget" in failed["error"] and f"the largest size that fits is {FITS} px" in failed["error"]


def test_the_form_shows_the_estimate_beside_paint_as_the_size_changes(browser, gallery_factory, small_studio):
    from playwright.sync_api import expect

    gallery = gallery_factory(small_studio.url, frontend_dir=FRONTEND)
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.goto(gallery.url)
    line = page.locator("#paint-estimate")
    # The default 400 px is more than this Studio's memory budget takes: said at once, with what fits.
    peak = estimate(Params(), 4, 3, None, base_bytes=DEFAULT_BASE_BYTES, budget_bytes=BUDGET).peak_bytes  # a 4:3 photo
    expect(line).to_have_text(
        f"Too large: it needs about {peak / 1e9:.1f} GB of memory: at most {FITS} px on this Studio"
    )
    page.fill("#param-size", "100")
    expect(line).to_have_text(re.compile(r"^about \d+(\.\d)? s on this Studio$"))
    page.fill("#param-iterations", "1000")
    expect(line).to_have_text(re.compile(r"^about \d+ min \d\d s on this Studio$"))
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.locator("#paint-form .actions").screenshot(path=str(SCREENSHOTS / "estimate-beside-paint.png"))
    page.fill("#param-iterations", "0")  # nothing to estimate until it is valid again: no old figure
    expect(line).to_be_hidden()
    context.close()
    assert not errors, errors
