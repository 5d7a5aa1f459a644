"""The page in a real browser: Debian's Chromium driven by Playwright, against a real Gallery, Studio
and Pycasso worker on loopback. Screenshots land in out/screenshots/ for a person to look at.

Never runs `playwright install`: the browser is the system's `chromium` (scripts/system-deps.sh).
"""

from __future__ import annotations

import io
import threading
from pathlib import Path

import pytest
import uvicorn
from PIL import Image

from gallery.app import create_app
from pycasso import examples

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]
FRONTEND = REPO / "frontend"
SCREENSHOTS = REPO / "out" / "screenshots"

sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed (pip install -e '.[dev]')")


@pytest.fixture
def page(browser):
    context = browser.new_context(viewport={"width": 1280, "height": 900}, accept_downloads=True)
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.errors = errors
    yield page
    context.close()
    assert not errors, f"JavaScript errors on the page: {errors}"


def png_file(path: Path, pixels) -> Path:
    Image.fromarray(pixels).save(path, format="PNG")
    return path


def start_painting(page, gallery, tmp_path: Path, *, iterations: int, preview_every: int) -> None:
    content = png_file(tmp_path / "landscape.png", examples.landscape(60, 80))
    style = png_file(tmp_path / "swirls.png", examples.swirls(56, 56))
    page.goto(gallery.url)
    sync_api.expect(page.locator("#connection")).to_have_text("Live", timeout=10_000)
    page.set_input_files("#content-input", str(content))
    page.set_input_files("#style-input", str(style))
    sync_api.expect(page.locator("#content-thumbs img")).to_have_count(1)
    sync_api.expect(page.locator("#style-thumbs img")).to_have_count(1)
    page.fill("#param-size", "48")
    page.fill("#param-iterations", str(iterations))
    page.locator("#advanced summary").click()
    sync_api.expect(page.locator("#param-preview_every")).to_be_visible()
    page.fill("#param-preview_every", str(preview_every))
    page.click("#paint-button")
    sync_api.expect(page.locator("#viewer")).to_be_visible(timeout=10_000)
    sync_api.expect(page.locator("#cards .card")).to_have_count(1)


def test_paint_watch_and_download_in_the_browser(page, real_studio, gallery_factory, tmp_path):
    gallery = gallery_factory(real_studio.url, frontend_dir=FRONTEND)
    page.goto(gallery.url)
    # The form is built from the schema: essentials visible, the rest folded under "Advanced".
    sync_api.expect(page.locator("#param-size")).to_be_visible()
    sync_api.expect(page.locator("#param-preserve_colors")).to_be_visible()
    sync_api.expect(page.locator("#param-tv_weight")).to_be_hidden()
    # A readable error, not a crash, when the photo is missing.
    page.click("#paint-button")
    sync_api.expect(page.locator("#alert")).to_contain_text("Choose a photo")

    start_painting(page, gallery, tmp_path, iterations=12, preview_every=2)
    iteration = page.locator("#viewer-iteration")
    sync_api.expect(iteration).to_have_text("Iteration 0 / 12", timeout=10_000)
    first_src = page.locator("#live-image").get_attribute("src")  # the photo, until a preview arrives
    seen_texts, seen_srcs, widths = set(), set(), set()

    def progressed() -> bool:
        seen_texts.add(iteration.inner_text())
        seen_srcs.add(page.locator("#live-image").get_attribute("src"))
        widths.add(page.locator("#viewer-progress-fill").evaluate("e => e.style.width"))
        return page.locator("#viewer-status").inner_text() == "Done"

    deadline_ms = 180_000
    waited = 0
    while not progressed():
        assert waited < deadline_ms, f"the painting did not finish; saw {sorted(seen_texts)}"
        assert page.locator("#viewer-status").inner_text() not in ("Failed", "Cancelled")
        page.wait_for_timeout(50)
        waited += 50
    progressed()
    assert len(seen_texts) >= 2, seen_texts  # iteration x / 12 changed while we watched
    assert len(widths) >= 2, widths  # the progress bar moved
    assert len(seen_srcs - {first_src, None}) >= 2, seen_srcs  # at least one preview, then the result
    sync_api.expect(iteration).to_have_text("Iteration 12 / 12")
    sync_api.expect(page.locator("#viewer-progress-fill")).to_have_attribute("style", "width: 100%;")
    sync_api.expect(page.locator("#cards .card .badge")).to_have_text("Done")

    painting = gallery.client.get("/api/paintings").json()["items"][0]
    assert painting["status"] == "done"
    assert page.locator("#live-image").get_attribute("src").endswith(f"/api/images/{painting['result_image']}")
    # The loss curve has one point per iteration after the draft (iteration 0, the default start), no duplicates.
    iterations = [p["iteration"] for p in gallery.painting(painting["id"])["progress"]]
    assert iterations == list(range(13))

    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / "gallery-done.png"), full_page=True)
    with page.expect_download() as info:
        page.click("#download-link")
    download = info.value
    saved = tmp_path / "download.png"
    download.save_as(saved)
    data = saved.read_bytes()
    assert data.startswith(b"\x89PNG\r\n\x1a\n")
    with Image.open(io.BytesIO(data)) as image:
        assert image.height == 48 and abs(image.width - 64) <= 1, image.size  # 60x80 photo at height 48

    page.set_viewport_size({"width": 390, "height": 844})  # a phone
    page.screenshot(path=str(SCREENSHOTS / "gallery-phone.png"), full_page=True)


def restart(gallery) -> None:
    """Stop the Gallery server and start a new app on the same port and data dir."""
    gallery.server.should_exit = True
    gallery.thread.join(30)
    assert not gallery.thread.is_alive(), "Gallery did not stop"
    config = uvicorn.Config(
        create_app(gallery.settings), host="127.0.0.1", port=gallery.port, log_level="warning", ws="websockets-sansio"
    )
    gallery.server = uvicorn.Server(config)
    gallery.thread = threading.Thread(target=gallery.server.run, daemon=True)
    gallery.thread.start()
    for _ in range(600):
        if gallery.server.started:
            return
        threading.Event().wait(0.05)
    raise AssertionError("Gallery did not start again")


def test_the_page_recovers_when_gallery_restarts_mid_painting(page, real_studio, gallery_factory, tmp_path):
    gallery = gallery_factory(real_studio.url, frontend_dir=FRONTEND)
    start_painting(page, gallery, tmp_path, iterations=40, preview_every=5)
    iteration = page.locator("#viewer-iteration")
    page.wait_for_function(
        "() => !/^Iteration 0 /.test(document.querySelector('#viewer-iteration').textContent)", timeout=120_000
    )
    restart(gallery)
    sync_api.expect(page.locator("#connection")).to_have_text("Live", timeout=15_000)
    sync_api.expect(page.locator("#viewer-status")).to_have_text("Done", timeout=180_000)
    sync_api.expect(iteration).to_have_text("Iteration 40 / 40")
    sync_api.expect(page.locator("#download-link")).to_be_visible()
    painting_id = gallery.client.get("/api/paintings").json()["items"][0]["id"]
    assert gallery.painting(painting_id)["status"] == "done"
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / "gallery-after-restart.png"), full_page=True)


def test_the_form_knows_the_deployments_limits_and_a_429_is_said_in_words(page, gallery_factory, tmp_path):
    gallery = gallery_factory(
        "http://127.0.0.1:9", frontend_dir=FRONTEND, max_size=256, max_iterations=50, max_unfinished_per_client=1
    )
    page.goto(gallery.url)
    sync_api.expect(page.locator("#param-size")).to_have_attribute("max", "256")
    sync_api.expect(page.locator("#param-iterations")).to_have_attribute("max", "50")
    start_painting(page, gallery, tmp_path, iterations=5, preview_every=1)  # Studio is away: it waits
    sync_api.expect(page.locator("#delete-button")).to_be_visible()  # the browser's own painting
    page.click("#paint-button")  # a second one, over this browser's cap of one at a time
    alert = page.locator("#alert")
    sync_api.expect(alert).to_contain_text("Could not start the painting: You have 1 painting waiting or under way")
    page.screenshot(path=str(tmp_path / "limits.png"))
