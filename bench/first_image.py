"""Benchmark: how long after clicking Paint does the page show the painting's first image? Not a test.

    .venv/bin/python bench/first_image.py [--runs 5] [--size 400] [--keep]

It runs the whole service on this host as people do: `deep-painting serve` as a subprocess on a free
port, with its data folder in a temp dir, and headless Chromium (Debian's `chromium`, driven by
Playwright as the browser tests drive it). Each run opens the page afresh, chooses a 533×400 photo and
a 400×400 style image (`pycasso.examples.landscape` / `swirls`), sets the engine, and clicks Paint; the
page itself times the click and each image the painting view shows (its `src` set, decoded, and a frame
drawn). The first image of the painting is the first one that is not the photo:

- fast: the result;
- gatys, init draft: the fast engine's draft (iteration 0), shown at once while Gatys refines it;
- gatys, init content: the first preview (default preview settings: every 10 iterations or 2.5 s).

Unfinished Gatys paintings are cancelled after each run, and the next run waits SETTLE_S for the worker
to stop (it does at the end of an iteration), so that every run finds the one worker idle. Each
scenario has one warm-up run (the first run also pays for loading the fast networks and the style's
targets), then the median, minimum and maximum of --runs. "POST" is the median time from the click to
Gallery's answer to the upload. Target (the issue's): fast ≤ 1.5 s at 400 px.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from PIL import Image
from playwright.sync_api import Page, expect, sync_playwright

from pycasso.examples import landscape, swirls

REPO = Path(__file__).resolve().parents[1]
SERVE = [str(REPO / ".venv" / "bin" / "deep-painting"), "serve"]
TARGETS = {"fast": 1.5}  # seconds from the click to the first image, median, at 400 px
STUDIO_READY_S = 300.0  # TensorFlow and the weights load on 2 cores in well under this
FIRST_IMAGE_S = 120.0  # the Gatys preview at 400 px on a slow CPU comes within this
SETTLE_S = 5.0  # after a cancel: the worker stops at its next iteration's end (seconds at 400 px on a CPU)
# As the browser tests start it (tests/gallery/conftest.py): no sandbox in a container, no GPU.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]

# In the page, before the click: time the click and every image the painting view shows.
WATCH = """() => {
  const img = document.querySelector("#live-image");
  window.__bench = { click: null, shown: [] };
  document.querySelector("#paint-button").addEventListener("click", () => {
    if (window.__bench.click === null) window.__bench.click = performance.now();
  }, { capture: true });
  new MutationObserver(() => {
    if (!img.getAttribute("src")) return;
    const src = new URL(img.src).pathname; // the page sets absolute URLs: compare paths
    img.decode().catch(() => null).then(() => requestAnimationFrame(() => {
      window.__bench.shown.push({ src, at: performance.now() });
    }));
  }).observe(img, { attributes: true, attributeFilter: ["src"] });
}"""

# The POST's answer, from the page's resource timings.
POST_ANSWERED = """() => {
  const posts = performance.getEntriesByType("resource").filter((e) => {
    const url = new URL(e.name);
    return e.initiatorType === "fetch" && url.pathname === "/api/paintings" && !url.search;
  });
  return posts.length ? posts[posts.length - 1].responseEnd : null;
}"""


@dataclass(frozen=True)
class Scenario:
    name: str
    engine: str
    init: str | None = None  # gatys only

    @property
    def what(self) -> str:
        return {"fast": "the result", "draft": "the draft"}.get(self.init or self.engine, "the first preview")


SCENARIOS = [
    Scenario("fast", "fast"),
    Scenario("gatys init=draft", "gatys", "draft"),
    Scenario("gatys init=content", "gatys", "content"),
]


@dataclass
class Timing:
    first_image_s: float
    post_s: float | None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Service:
    """`deep-painting serve` in a subprocess, with its data and log in `folder`."""

    def __init__(self, folder: Path) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = folder / "serve.log"
        self.log = open(self.log_path, "wb")  # noqa: SIM115 - closed in stop()
        environ = {
            **os.environ,
            "TF_CPP_MIN_LOG_LEVEL": "2",
            # Every run is one more painting from this browser: the caps on paintings must not refuse it.
            "GALLERY_MAX_CREATIONS_PER_MINUTE": "1000",
            "GALLERY_MAX_UNFINISHED_PER_CLIENT": "100",
        }
        command = [*SERVE, "--host", "127.0.0.1", "--port", str(self.port), "--data-dir", str(folder / "data")]
        self.proc = subprocess.Popen(command, env=environ, stdout=self.log, stderr=subprocess.STDOUT, cwd=folder)

    def output(self) -> str:
        self.log.flush()
        return self.log_path.read_text(errors="replace")

    def wait_ready(self) -> None:
        """Until Studio's worker has loaded (serve says so) and Gallery answers."""
        deadline = time.monotonic() + STUDIO_READY_S
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise SystemExit(f"deep-painting serve exited:\n{self.output()[-3000:]}")
            if "Studio is ready" in self.output():
                try:
                    if httpx.get(f"{self.url}/health/ready", timeout=5).status_code == 200:
                        return
                except httpx.TransportError:
                    pass
            time.sleep(0.25)
        raise SystemExit(f"Studio was not ready within {STUDIO_READY_S:.0f} s:\n{self.output()[-3000:]}")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)  # serve stops Gallery, then Studio and its worker
            try:
                self.proc.wait(60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()


def one_run(page: Page, url: str, scenario: Scenario, size: int, photo: Path, style: Path) -> Timing:
    """Open the page, fill the form for `scenario`, click Paint, and time the painting's first image."""
    page.goto(url)
    expect(page.locator("#connection")).to_have_text("Live", timeout=30_000)
    page.set_input_files("#content-input", str(photo))
    page.set_input_files("#style-input", str(style))
    page.select_option("#param-engine", scenario.engine)
    page.fill("#param-size", str(size))
    if scenario.init is not None:
        page.locator("#advanced summary").click()
        page.select_option("#param-init", scenario.init)
    page.evaluate(WATCH)
    page.click("#paint-button")
    page.wait_for_function("() => location.hash.startsWith('#painting/')", timeout=30_000)
    painting_id = page.evaluate("() => location.hash").rsplit("/", 1)[-1]
    painting = httpx.get(f"{url}/api/paintings/{painting_id}", timeout=30).json()
    photo_src = f"/api/images/{painting['content_image']}"
    # The first image shown that is not the photo (which the view shows until the painting has one).
    first: dict[str, Any] = page.wait_for_function(
        """(photo) => {
          const b = window.__bench;
          if (document.querySelector("#viewer-status").dataset.status === "failed") return { failed: true };
          const hit = b.shown.find((s) => s.src !== photo);
          return hit ? { at: hit.at - b.click } : null;
        }""",
        arg=photo_src,
        timeout=FIRST_IMAGE_S * 1000,
        polling=20,
    ).json_value()
    if first.get("failed"):
        error = httpx.get(f"{url}/api/paintings/{painting_id}", timeout=30).json().get("error")
        raise SystemExit(f"{scenario.name}: the painting failed: {error}")
    post_end = page.evaluate(POST_ANSWERED)
    click = page.evaluate("() => window.__bench.click")
    if page.locator("#cancel-button").is_visible():  # a Gatys painting still running: free the worker
        page.click("#cancel-button")
        expect(page.locator("#viewer-status")).to_have_text(re.compile("Cancelled|Done"), timeout=60_000)
        time.sleep(SETTLE_S)
    return Timing(first["at"] / 1000, (post_end - click) / 1000 if post_end is not None else None)


def table(results: dict[str, list[Timing]]) -> str:
    """The scenarios' timings as a plain-text table, one row each."""
    columns = "{:<20} {:<18} {:>8} {:>7} {:>7} {:>7} {:>7}  {}"
    lines = [columns.format("scenario", "first image", "median", "min", "max", "POST", "target", "verdict")]
    for scenario in SCENARIOS:
        timings = results[scenario.name]
        firsts = [t.first_image_s for t in timings]
        posts = [t.post_s for t in timings if t.post_s is not None]
        median = statistics.median(firsts)
        target = TARGETS.get(scenario.name)
        lines.append(
            columns.format(
                scenario.name,
                scenario.what,
                f"{median:.2f} s",
                f"{min(firsts):.2f} s",
                f"{max(firsts):.2f} s",
                f"{statistics.median(posts):.2f} s" if posts else "–",
                f"≤ {target:.1f} s" if target is not None else "–",
                "" if target is None else "ok" if median <= target else "MISSED",
            )
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5, help="timed runs per scenario, after one warm-up (≥ 5)")
    parser.add_argument("--size", type=int, default=400, help="painting height in pixels (photo: 4:3, as tall)")
    parser.add_argument("--keep", action="store_true", help="keep the temp folder (data, serve.log)")
    args = parser.parse_args(argv)
    chromium = shutil.which("chromium")
    if chromium is None:
        raise SystemExit("chromium is missing: bash scripts/system-deps.sh")

    folder = Path(tempfile.mkdtemp(prefix="bench-first-image-"))
    height, width = args.size, round(args.size * 4 / 3)
    photo, style = folder / "landscape.png", folder / "swirls.png"
    Image.fromarray(landscape(height, width)).save(photo)
    Image.fromarray(swirls(400, 400)).save(style)

    service = Service(folder)
    results: dict[str, list[Timing]] = {}
    try:
        started = time.monotonic()
        service.wait_ready()
        print(f"serve ready in {time.monotonic() - started:.0f} s at {service.url}; {width}×{height} photo", flush=True)
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
            page = browser.new_context(viewport={"width": 1280, "height": 900}).new_page()
            for scenario in SCENARIOS:
                one_run(page, service.url, scenario, args.size, photo, style)  # warm-up
                results[scenario.name] = []
                for i in range(args.runs):
                    timing = one_run(page, service.url, scenario, args.size, photo, style)
                    results[scenario.name].append(timing)
                    print(f"  {scenario.name:<20} run {i + 1}: {timing.first_image_s:.2f} s", flush=True)
            browser.close()
    finally:
        service.stop()
        if args.keep:
            print(f"kept {folder}")
        else:
            shutil.rmtree(folder, ignore_errors=True)

    print()
    print(f"Click on Paint → first image of the painting on the page, {width}×{height}, median of {args.runs}")
    print(table(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
