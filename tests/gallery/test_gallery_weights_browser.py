"""The page changes a painting's loss weights while it paints (issue 12): Chromium against a real
Gallery and Studio with the fake worker (fast and TensorFlow-free; its style term is 0.2 × style_weight)."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

import studio_process
from support import png

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]
FRONTEND = REPO / "frontend"
SCREENSHOTS = REPO / "out" / "screenshots"

sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed (pip install -e '.[dev]')")


@pytest.fixture
def studio(tmp_path: Path) -> Iterator[studio_process.StudioProcess]:
    running = studio_process.StudioProcess(
        tmp_path / "studio", [sys.executable, studio_process.FAKE_WORKER], FAKE_SECONDS_PER_ITERATION="0.1"
    )
    try:
        running.wait_ready(30)
        yield running
    finally:
        running.stop()


def test_the_viewer_changes_the_weights_marks_the_chart_and_lists_the_history(browser, studio, gallery_factory):
    gallery = gallery_factory(studio.url, studio_token=studio_process.TOKEN, frontend_dir=FRONTEND)
    context = browser.new_context(viewport={"width": 1280, "height": 1000})
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    try:
        page.goto(gallery.url)
        sync_api.expect(page.locator("#connection")).to_have_text("Live", timeout=10_000)
        # The painting is made by the API from this browser (the page shares its owner cookie).
        created = page.request.post(
            f"{gallery.url}/api/paintings",
            multipart={
                "content": {"name": "c.png", "mimeType": "image/png", "buffer": png(64, 48)},
                "style": {"name": "s.png", "mimeType": "image/png", "buffer": png(48, 48, (20, 40, 220))},
                "params": '{"size": 48, "iterations": 300, "preview_every": 0, "init": "content"}',
            },
        )
        assert created.status == 201, created.text()
        painting = created.json()
        page.goto(f"{gallery.url}/#painting/{painting['id']}")
        form = page.locator("#weights-form")
        sync_api.expect(form).to_be_visible(timeout=10_000)
        style = page.locator("#weight-style_weight")
        sync_api.expect(style).to_have_value("10")
        sync_api.expect(page.locator("#weights-apply")).to_be_disabled()
        # The slider is on a log scale: its far right is 1e6, and the number follows it.
        page.locator("#weights-form [data-weight='content_weight'] input[type=range]").fill("6")
        sync_api.expect(page.locator("#weight-content_weight")).to_have_value("1000000")
        page.locator("#weights-form [data-weight='content_weight'] input[type=range]").fill("0")
        sync_api.expect(page.locator("#weight-content_weight")).to_have_value("1")
        style.fill("100")
        page.click("#weights-apply")
        sync_api.expect(page.locator("#weights-status")).to_contain_text("Applied", timeout=10_000)
        history = page.locator("#viewer-weight-history li")
        sync_api.expect(history).to_have_count(1)
        sync_api.expect(history.first).to_contain_text("From iteration", timeout=15_000)
        sync_api.expect(history.first).to_contain_text("style 100")
        at = gallery.painting(painting["id"])["weight_changes"][0]["iteration"]
        sync_api.expect(page.locator("#loss-chart")).to_have_attribute("data-marks", str(at), timeout=10_000)
        params = page.locator("#viewer-params")
        sync_api.expect(params).to_contain_text("style weight100")
        # Out of range: said in words, nothing sent.
        style.fill("-3")
        page.click("#weights-apply")
        sync_api.expect(page.locator("#weights-status")).to_contain_text("Style: enter a number from 0 to 1000000")
        assert len(gallery.painting(painting["id"])["weight_changes"]) == 1
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(SCREENSHOTS / "gallery-weights.png"), full_page=True)
        # Once it has ended, the weights can no longer be changed: the panel goes.
        page.click("#cancel-button")
        sync_api.expect(form).to_be_hidden(timeout=10_000)
        assert not errors, errors
    finally:
        context.close()
