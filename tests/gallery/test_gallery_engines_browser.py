"""The engine choice in a real browser: Debian's Chromium driven by Playwright, against a real Gallery and
a real Studio with the real worker and two tiny generator models (`tint` repaints a photo, `dots` paints
from a seed). The fast engine paints (with style images, or ready-made styles picked from their
thumbnails), a latent model generates several pictures at once, an image model repaints a photo, and the
form shows only the fields of the engine chosen. Screenshots land in
out/screenshots/ for a person to look at.
"""

from __future__ import annotations

import re
import time
from pathlib import Path

import pytest
from PIL import Image

from pycasso import examples

import studio_process

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]
FRONTEND = REPO / "frontend"
SCREENSHOTS = REPO / "out" / "screenshots"

sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed (pip install -e '.[dev]')")
expect = sync_api.expect


@pytest.fixture(scope="module")
def studio(models_studio: studio_process.StudioProcess) -> studio_process.StudioProcess:
    return models_studio


@pytest.fixture
def gallery(studio, gallery_factory):
    return gallery_factory(studio.url, studio_token=studio_process.TOKEN, frontend_dir=FRONTEND)


@pytest.fixture
def page(browser):
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    yield page
    context.close()
    assert not errors, f"JavaScript errors on the page: {errors}"


@pytest.fixture
def photo(tmp_path: Path) -> Path:
    path = tmp_path / "landscape.png"
    Image.fromarray(examples.landscape(48, 64)).save(path)
    return path


@pytest.fixture
def style(tmp_path: Path) -> Path:
    path = tmp_path / "swirls.png"
    Image.fromarray(examples.swirls(48, 48)).save(path)
    return path


def open_page(page, gallery) -> None:
    page.goto(gallery.url)
    expect(page.locator("#connection")).to_have_text("Live", timeout=10_000)


def choose_model(page, name: str) -> None:
    page.select_option("#param-engine", "model")
    expect(page.locator(f"#param-model option[value='{name}']")).to_be_attached(timeout=10_000)  # from /api/models
    page.select_option("#param-model", name)


def image_src(painting: dict) -> re.Pattern[str]:
    return re.compile(re.escape(f"/api/images/{painting['result_image']}") + "$")


def wait_done(page, gallery, count: int = 1, timeout: float = 60) -> list[dict]:
    """The newest `count` paintings once all are done, as the API tells them; an AssertionError with the
    error of one that failed."""
    items: list[dict] = []

    def ended() -> bool:
        items[:] = gallery.client.get("/api/paintings").json()["items"]
        failed = [p for p in items if p["status"] in ("failed", "cancelled")]
        assert not failed, f"a painting ended badly: {failed}"
        return len(items) == count and all(p["status"] == "done" for p in items)

    deadline = time.monotonic() + timeout
    while not ended():
        assert time.monotonic() < deadline, f"not done within {timeout} s: {items}"
        page.wait_for_timeout(100)
    return items


def screenshot(page, name: str) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / name), full_page=True)


def test_the_form_shows_only_the_fields_of_the_engine_chosen(page, gallery_factory):
    gallery = gallery_factory("http://127.0.0.1:9", frontend_dir=FRONTEND)  # the form needs no Studio
    open_page(page, gallery)
    engine = page.locator("#param-engine")
    labels = engine.locator("option").all_inner_texts()
    assert labels == ["Exact (Gatys) — minutes", "Fast — a second", "Generator model"], labels
    explain = page.locator("#param-engine-help")
    expect(page.locator("#param-iterations")).to_be_visible()
    expect(page.locator("#param-strength")).to_be_hidden()
    gatys_text = explain.inner_text()

    engine.select_option("fast")
    expect(page.locator("#param-iterations")).to_be_hidden()
    expect(page.locator("#param-style_weight")).to_be_hidden()
    expect(page.locator("#param-strength")).to_be_visible()
    expect(explain).not_to_have_text(gatys_text)
    expect(page.locator("#content-drop")).to_be_visible()
    expect(page.locator("#style-drop")).to_be_visible()
    # Studio is away: no ready-made styles, and the page says why (and asks again when Fast is chosen again)
    expect(page.locator("#builtin-status-text")).to_contain_text("The ready-made styles are not available now: ")
    expect(page.locator("#builtin-retry")).to_be_visible()
    expect(page.locator("#builtin-grid button")).to_have_count(0)

    engine.select_option("model")  # Studio is away: the list is not known, and the page says why
    expect(page.locator("#param-model")).to_be_visible()
    expect(page.locator("#param-model-help")).to_contain_text("Studio cannot list its models now")
    expect(page.locator("#style-drop")).to_be_hidden()

    engine.select_option("gatys")
    expect(page.locator("#param-iterations")).to_be_visible()
    expect(page.locator("#param-style_weight")).to_be_visible()
    expect(page.locator("#param-strength")).to_be_hidden()
    expect(page.locator("#param-model")).to_be_hidden()
    expect(explain).to_have_text(gatys_text)


def test_the_fast_engine_paints_and_the_page_shows_its_result(page, gallery, photo, style):
    open_page(page, gallery)
    page.set_input_files("#content-input", str(photo))
    page.set_input_files("#style-input", str(style))
    page.select_option("#param-engine", "fast")
    page.fill("#param-size", "48")
    expect(page.locator("#paint-button")).to_have_text("Paint")
    page.click("#paint-button")
    [painting] = wait_done(page, gallery)
    expect(page.locator("#viewer-status")).to_have_text("Done")
    assert painting["params"]["engine"] == "fast", painting
    assert painting["iterations"] == 1 and painting["content_image"] and painting["styles"]
    expect(page.locator("#live-image")).to_have_attribute("src", image_src(painting))
    expect(page.locator("#cards .card img")).to_have_attribute("src", image_src(painting))
    expect(page.locator("#viewer-iteration")).to_contain_text("Fast engine")
    expect(page.locator("#loss-chart")).to_be_hidden()  # one step: no empty loss chart
    expect(page.locator("#viewer-inputs figure")).to_have_count(2)
    screenshot(page, "engines-fast.png")


def test_the_fast_engine_paints_with_ready_made_styles_picked_from_their_thumbnails(page, gallery, photo):
    open_page(page, gallery)
    page.set_input_files("#content-input", str(photo))
    page.select_option("#param-engine", "fast")
    tiles = page.locator("#builtin-grid button")
    expect(tiles).to_have_count(26, timeout=20_000)  # from /api/styles, once its strip of thumbnails has loaded
    expect(page.locator("#param-builtin_styles")).to_be_hidden()  # the picker stands for the raw weights
    positions = tiles.evaluate_all("els => els.map(e => getComputedStyle(e).backgroundPosition)")
    assert len(set(positions)) == 26, positions  # each shows its own part of the strip
    style_drop = page.locator("#style-drop")
    expect(style_drop).to_be_visible()
    page.locator("#advanced summary").click()
    blend = page.locator("#param-style_blend")  # the style images' blend: set aside with ready-made styles
    expect(blend).to_be_visible()

    chosen = [page.get_by_role("button", name=f"Built-in style {n}", exact=True) for n in (3, 12)]
    for tile in chosen:
        tile.click()
        expect(tile).to_have_attribute("aria-pressed", "true")
    expect(style_drop).to_be_hidden()  # no style images with ready-made styles
    expect(blend).to_be_hidden()
    expect(page.locator("#builtin-status-text")).to_have_text("2 chosen: an equal blend.")
    for tile in chosen:  # none chosen: the style images again
        tile.click()
    expect(style_drop).to_be_visible()
    expect(blend).to_be_visible()
    for tile in chosen:
        tile.click()
    expect(style_drop).to_be_hidden()
    expect(blend).to_be_hidden()
    expect(tiles.and_(page.locator("[aria-pressed='true']"))).to_have_count(2)

    page.fill("#param-size", "48")
    page.click("#paint-button")
    [painting] = wait_done(page, gallery)
    weights = painting["params"]["builtin_styles"]
    assert len(weights) == 26 and weights[2] == weights[11] > 0, weights
    assert [i for i, w in enumerate(weights) if w] == [2, 11], weights
    assert painting["content_image"] and painting["styles"] == [], painting
    expect(page.locator("#viewer-status")).to_have_text("Done")
    expect(page.locator("#live-image")).to_have_attribute("src", image_src(painting))
    expect(page.locator("#viewer-iteration")).to_contain_text("Fast engine")
    # The viewer shows the styles chosen as their thumbnails, and the parameters name them by number
    used = page.locator("#viewer-inputs .builtin-input")
    expect(used).to_have_count(2)
    expect(used.locator("figcaption")).to_have_text(["Ready-made style 3", "Ready-made style 12"])
    expect(page.locator("#viewer-inputs-title")).to_have_text("Photo and styles")
    used_tiles = used.locator(".builtin-input-tile")
    for tile in used_tiles.all():  # each a tile of the strip, as in the picker
        expect(tile).to_have_css("background-image", re.compile(r"/api/styles/sheet\.png"))
    used_positions = used_tiles.evaluate_all("els => els.map(e => getComputedStyle(e).backgroundPosition)")
    assert used_positions == [tiles.nth(n - 1).evaluate("e => getComputedStyle(e).backgroundPosition") for n in (3, 12)]
    params = page.locator("#viewer-params")
    expect(params.locator("dt", has_text="builtin styles").locator("xpath=following-sibling::dd[1]")).to_have_text(
        "styles 3, 12 (equal blend)"
    )
    screenshot(page, "engines-builtin.png")

    page.click("#remix-button")  # the remix brings its styles back into the picker; a reset takes them away
    expect(tiles.and_(page.locator("[aria-pressed='true']"))).to_have_count(2)
    for tile in chosen:
        expect(tile).to_have_attribute("aria-pressed", "true")
    page.click("#reset-button")
    page.select_option("#param-engine", "fast")
    expect(tiles.first).to_be_visible()
    expect(tiles.and_(page.locator("[aria-pressed='true']"))).to_have_count(0)


def test_a_latent_model_generates_several_pictures_from_consecutive_seeds(page, gallery):
    open_page(page, gallery)
    choose_model(page, "dots")
    expect(page.locator("#content-drop")).to_be_hidden()
    expect(page.locator("#style-drop")).to_be_hidden()
    expect(page.locator("#paint-button")).to_have_text("Generate")
    page.fill("#param-size", "48")
    page.fill("#param-seed", "5")
    page.fill("#count-input", "3")
    page.click("#paint-button")
    items = wait_done(page, gallery, 3)
    expect(page.locator("#cards .card .badge")).to_have_text(["Done"] * 3)
    assert all(p["content_image"] is None and not p["styles"] for p in items), items
    assert sorted(p["params"]["seed"] for p in items) == [5, 6, 7]
    assert len({p["result_image"] for p in items}) == 3  # another seed, another picture
    for painting in items:
        card = page.locator(f"#cards .card[data-id='{painting['id']}'] img")
        expect(card).to_have_attribute("src", image_src(painting))

    first = next(p for p in items if p["params"]["seed"] == 5)  # the page opens the first of the batch
    expect(page.locator("#live-image")).to_have_attribute("src", image_src(first))
    expect(page.locator("#viewer-iteration")).to_contain_text("Model dots · seed 5")
    expect(page.locator("#viewer-inputs-block")).to_be_hidden()  # no photo, no style: no broken thumbnails
    expect(page.locator("#loss-chart")).to_be_hidden()
    broken = page.locator("img[src]").evaluate_all("els => els.filter(e => e.complete && !e.naturalWidth).length")
    assert broken == 0
    screenshot(page, "engines-latent.png")


def test_an_image_model_repaints_a_photo_without_styles(page, gallery, photo):
    open_page(page, gallery)
    choose_model(page, "tint")
    expect(page.locator("#style-drop")).to_be_hidden()
    expect(page.locator("#content-drop")).to_be_visible()
    expect(page.locator("#count-field")).to_be_hidden()
    expect(page.locator("#paint-button")).to_have_text("Paint")
    page.fill("#param-size", "48")
    page.click("#paint-button")
    expect(page.locator("#alert")).to_contain_text("Choose a photo to paint.")
    page.set_input_files("#content-input", str(photo))
    page.click("#paint-button")
    [painting] = wait_done(page, gallery)
    expect(page.locator("#viewer-status")).to_have_text("Done")
    assert painting["params"]["model"] == "tint", painting
    assert painting["content_image"] and painting["styles"] == []
    expect(page.locator("#live-image")).to_have_attribute("src", image_src(painting))
    expect(page.locator("#viewer-inputs-title")).to_have_text("Photo")
    expect(page.locator("#viewer-iteration")).to_contain_text("Model tint")


def test_a_draft_is_shown_at_once_while_gatys_refines_it(page, gallery, photo, style):
    open_page(page, gallery)
    page.set_input_files("#content-input", str(photo))
    page.set_input_files("#style-input", str(style))
    page.fill("#param-size", "48")
    page.fill("#param-iterations", "1000")  # long enough to look at it before the end
    page.locator("#advanced summary").click()
    page.select_option("#param-init", "draft")
    page.fill("#param-preview_every", "0")  # no previews but the draft
    page.fill("#param-preview_seconds", "0")
    page.click("#paint-button")
    expect(page.locator("#live-label")).to_have_text("Draft (fast engine) — refining…", timeout=30_000)
    painting = gallery.client.get("/api/paintings").json()["items"][0]
    assert painting["preview_image"] and painting["status"] == "running", painting
    src = re.compile(re.escape(f"/api/images/{painting['preview_image']}") + "$")
    expect(page.locator("#live-image")).to_have_attribute("src", src)
    screenshot(page, "engines-draft.png")
    page.click("#cancel-button")
    expect(page.locator("#viewer-status")).to_have_text("Cancelled", timeout=30_000)
    expect(page.locator("#live-label")).to_be_hidden()
