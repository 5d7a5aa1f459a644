"""The Train section in a real browser: Debian's Chromium driven by Playwright, against a real Gallery
and a real Studio whose worker is the real Pycasso one, training a tiny CycleGAN on the CPU (allowed
by STUDIO_ALLOW_CPU_TRAINING) from images the test makes. A screenshot lands in out/screenshots/.
"""

from __future__ import annotations

import io
import sys
import zipfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np
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
def training_studio(tmp_path_factory: pytest.TempPathFactory) -> Iterator[studio_process.StudioProcess]:
    """A real Studio that trains on its CPU and puts what it trains in an empty models folder."""
    root = tmp_path_factory.mktemp("training-studio")
    models = root / "models"
    models.mkdir()
    running = studio_process.StudioProcess(
        root / "studio",
        [sys.executable, "-m", "pycasso"],
        STUDIO_MODELS_DIR=str(models),
        STUDIO_ALLOW_CPU_TRAINING="true",
    )
    try:
        running.wait_ready(180)
        yield running
    finally:
        running.stop()


@pytest.fixture
def page(browser):
    context = browser.new_context(viewport={"width": 1280, "height": 1000})
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    yield page
    context.close()
    assert not errors, f"JavaScript errors on the page: {errors}"


def png_bytes(pixels: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, format="PNG")
    return buf.getvalue()


def make_collections(folder: Path) -> tuple[Path, list[Path], Path]:
    """Five photos in one zip, four paintings as files, and a zip of only two paintings (too few)."""
    photos = folder / "photos.zip"
    with zipfile.ZipFile(photos, "w") as archive:
        for i in range(5):
            archive.writestr(f"holiday/photo-{i}.png", png_bytes(examples.landscape(40 + 4 * i, 48, seed=i + 1)))
    paintings = []
    for i in range(4):
        path = folder / f"painting-{i}.png"
        path.write_bytes(png_bytes(examples.swirls(44, 40 + 4 * i, seed=i + 10)))
        paintings.append(path)
    too_few = folder / "two-paintings.zip"
    with zipfile.ZipFile(too_few, "w") as archive:
        for i in range(2):
            archive.writestr(f"p{i}.png", paintings[i].read_bytes())
    return photos, paintings, too_few


def test_train_watch_and_paint_with_it(page, training_studio, gallery_factory, tmp_path):
    gallery = gallery_factory(training_studio.url, studio_token=studio_process.TOKEN, frontend_dir=FRONTEND)
    photos, paintings, too_few = make_collections(tmp_path)
    page.goto(gallery.url)
    expect(page.locator("#connection")).to_have_text("Live", timeout=10_000)
    page.click("#tab-train")
    expect(page.locator("#train-section")).to_be_visible()
    expect(page.locator("#paint-section")).to_be_hidden()
    expect(page.locator("#trainings-empty")).to_be_visible()
    # The form is built from the schema: the kind's drop zones and fields, each with its range.
    expect(page.locator("#train-photos-drop")).to_be_visible()
    expect(page.locator("#train-paintings-drop")).to_be_visible()
    expect(page.locator("#train-param-latent_dim")).to_have_count(0)  # a dcgan's field
    expect(page.locator("#train-param-steps")).to_have_attribute("max", str(gallery.settings.max_training_steps))
    expect(page.locator("#train-param-filters-help")).to_contain_text("(4–128)")

    page.set_input_files("#train-photos-input", str(photos))
    expect(page.locator("#train-photos-drop .collection-summary")).to_contain_text("An archive: photos.zip")
    page.click("#train-button")  # no paintings yet: said in words, nothing sent
    expect(page.locator("#train-error")).to_have_text(
        "Paintings: choose an archive of them (zip, tar) or at least 4 images."
    )
    page.set_input_files("#train-paintings-input", str(too_few))
    page.fill("#train-param-steps", "6")
    page.fill("#train-param-image_size", "16")
    page.fill("#train-param-filters", "4")
    page.fill("#train-param-sample_every", "2")
    page.fill("#train-param-name", "tiny-monet")
    page.click("#train-button")  # Gallery's own check, before anything is stored: a 422 in words
    expect(page.locator("#train-error")).to_have_text(
        "Could not start the training: paintings: at least 4 readable images are needed, 2 found."
    )
    assert gallery.client.get("/api/trainings").json() == {"items": []}

    page.set_input_files("#train-paintings-input", [str(p) for p in paintings])
    expect(page.locator("#train-paintings-drop .collection-summary")).to_contain_text("4 images")
    expect(page.locator("#train-paintings-drop .thumbs img")).to_have_count(4)
    page.click("#train-button")
    expect(page.locator("#training-view")).to_be_visible(timeout=15_000)
    expect(page.locator("#train-error")).to_be_hidden()
    expect(page.locator("#training-title")).to_have_text("tiny-monet · CycleGAN")
    expect(page.locator("#training-list .training-row")).to_have_count(1)

    steps_seen, samples_seen, widths = set(), set(), set()
    chart = page.locator("#training-chart")

    def watched() -> str:
        steps_seen.add(page.locator("#training-step").inner_text())
        samples_seen.add(page.locator("#training-sample").get_attribute("src"))
        widths.add(page.locator("#training-progress-fill").evaluate("e => e.style.width"))
        return page.locator("#training-status").inner_text()

    waited_ms = 0
    while (status := watched()) != "Done":
        assert status not in ("Failed", "Cancelled"), page.locator("#training-error").inner_text()
        assert waited_ms < 240_000, f"the training did not finish; saw {sorted(steps_seen)}"
        page.wait_for_timeout(50)
        waited_ms += 50
    watched()
    expect(page.locator("#training-step")).to_have_text("Step 6 / 6")
    expect(page.locator("#training-progress-fill")).to_have_attribute("style", "width: 100%;")
    assert len(steps_seen) >= 2, steps_seen  # step x / 6 changed while we watched
    assert len(widths) >= 2, widths
    assert len(samples_seen - {None}) >= 2, samples_seen  # the sample was replaced as training went on
    assert chart.get_attribute("data-series") == "generator discriminator cycle identity"
    assert int(chart.get_attribute("data-points") or 0) >= 2
    expect(page.locator("#training-speed")).to_contain_text("a step")
    expect(page.locator("#training-cancel")).to_be_hidden()
    expect(page.locator("#training-generate")).to_be_hidden()
    expect(page.locator("#training-model-note")).to_contain_text(
        "Its model, “tiny-monet”, is on the painting server now"
    )

    training = gallery.client.get("/api/trainings").json()["items"][0]
    assert (training["status"], training["model"], training["counts"]) == (
        "done",
        "tiny-monet",
        {"photos": 5, "paintings": 4},
    )
    progress = gallery.client.get(f"/api/trainings/{training['id']}").json()["progress"]
    steps = [p["step"] for p in progress]  # the worker reports the steps with a sample, and others now and then
    assert steps == sorted(set(steps)) and steps[-1] == 6 and len(steps) >= 3, steps
    losses = [p["losses"]["cycle"] for p in progress]
    assert len(set(losses)) > 1, losses  # the losses move
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / "train.png"), full_page=True)
    page.set_viewport_size({"width": 390, "height": 844})  # a phone
    page.screenshot(path=str(SCREENSHOTS / "train-phone.png"), full_page=True)
    page.set_viewport_size({"width": 1280, "height": 1000})

    page.click("#training-paint")  # the painting form, with the trained model chosen
    expect(page.locator("#paint-section")).to_be_visible()
    expect(page.locator("#train-section")).to_be_hidden()
    expect(page.locator("#param-engine")).to_have_value("model")
    expect(page.locator("#param-model")).to_have_value("tiny-monet", timeout=15_000)
    expect(page.locator("#content-drop")).to_be_visible()  # a cyclegan repaints a photo
    expect(page.locator("#paint-button")).to_have_text("Paint")
    page.screenshot(path=str(SCREENSHOTS / "train-paint-with-it.png"))
