"""Issue 16 in a real browser (Debian's Chromium, driven by Playwright; never `playwright install`).

A hostile page, served by a second loopback HTTP server on another port, runs a script that tries
what a page on another origin can do to a visitor's Gallery: create a painting with a `no-cors`
FormData POST, cancel and remix one, submit a form, send a beacon, and DELETE one. Gallery must
store and change nothing and answer 403 to every request the browser lets out. The same script run
on Gallery's own page works. Then the real page paints under Gallery's Content-Security-Policy with
no violation reported.
"""

from __future__ import annotations

import http.server
import re
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from PIL import Image
from starlette.types import Message, Receive, Scope, Send

from gallery.app import create_app
from gallery.settings import GallerySettings
from pycasso import examples

from support import free_port, png, wait_for

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]
FRONTEND = REPO / "frontend"
NO_STUDIO = "http://127.0.0.1:9"  # nothing listens there: paintings wait

sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed (pip install -e '.[dev]')")

# What a script on any page can send to another origin without the visitor doing anything. Each step
# says whether the browser let it out ("sent": no exception; a no-cors answer is opaque to the script).
ATTACK = """async ({gallery, id}) => {
  const steps = {};
  const png = await new Promise((resolve) => {
    const canvas = document.createElement("canvas");
    canvas.width = 64; canvas.height = 48;
    const ctx = canvas.getContext("2d");
    ctx.fillStyle = "#c85028"; ctx.fillRect(0, 0, 64, 48);
    canvas.toBlob(resolve, "image/png");
  });
  const attempt = async (name, url, options) => {
    try {
      const response = await fetch(gallery + url, options);
      steps[name] = response.type === "opaque" ? "sent" : response.status;
    } catch (error) {
      steps[name] = String(error);
    }
  };
  const form = new FormData();
  form.append("content", png, "c.png");
  form.append("style", png, "s.png");
  form.append("params", JSON.stringify({size: 48, iterations: 2}));
  await attempt("create", "/api/paintings", {method: "POST", mode: "no-cors", body: form});
  await attempt("create, no referrer", "/api/paintings", {
    method: "POST", mode: "no-cors", body: form, referrerPolicy: "no-referrer", credentials: "include",
  });
  await attempt("cancel", `/api/paintings/${id}/cancel`, {method: "POST", mode: "no-cors"});
  await attempt("remix", `/api/paintings/${id}/remix`, {
    method: "POST", mode: "no-cors", headers: {"Content-Type": "text/plain"},
    body: JSON.stringify({params: {size: 48, iterations: 2}}),
  });
  await attempt("delete", `/api/paintings/${id}`, {method: "DELETE"});
  await attempt("delete, no-cors", `/api/paintings/${id}`, {method: "DELETE", mode: "no-cors"});
  steps.beacon = navigator.sendBeacon(gallery + `/api/paintings/${id}/cancel`, form) ? "sent" : "refused";
  for (const policy of ["", "no-referrer"]) {  // a form posted into a hidden frame, with and without Referer
    const frame = document.createElement("iframe");
    frame.name = `sink${policy}`;
    document.body.append(frame);
    const loaded = new Promise((resolve) => frame.addEventListener("load", resolve, {once: true}));
    const element = document.createElement("form");
    element.method = "POST";
    element.action = gallery + `/api/paintings/${id}/cancel`;
    element.target = frame.name;
    if (policy) element.referrerPolicy = policy;
    document.body.append(element);
    element.submit();
    await loaded;
    steps[`form${policy ? ", " + policy : ""}`] = "sent";
  }
  return steps;
}"""


class Hostile:
    """A second HTTP server on loopback, another port: the attacker's site. It serves a blank page."""

    def __init__(self) -> None:
        class Page(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                body = b"<!doctype html><title>Win a prize</title><body></body>"
                self.send_response(200)
                self.send_header("Content-Type", "text/html")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Page)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(10)


@pytest.fixture
def hostile() -> Iterator[Hostile]:
    server = Hostile()
    yield server
    server.close()


class RecordedGallery:
    """A real Gallery (create_app) served by uvicorn on loopback, with what it answered to each
    request recorded as it left the app: the browser hides a no-cors answer (opaque, and Chromium's
    Opaque Response Blocking aborts it), so the server says what it answered."""

    def __init__(self, data_dir: Path) -> None:
        self.settings = GallerySettings(
            data_dir=data_dir, studio_url=NO_STUDIO, frontend_dir=FRONTEND, retry_initial_s=0.05, retry_max_s=0.3
        )
        self.answers: list[tuple[str, str, int]] = []
        app = create_app(self.settings)

        async def recorder(scope: Scope, receive: Receive, send: Send) -> None:
            async def recorded(message: Message) -> None:
                if message["type"] == "http.response.start":
                    self.answers.append((scope["method"], scope["path"], message["status"]))
                await send(message)

            await app(scope, receive, recorded if scope["type"] == "http" else send)

        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        config = uvicorn.Config(recorder, host="127.0.0.1", port=self.port, log_level="warning", ws="websockets-sansio")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.thread.start()
        wait_for(lambda: self.server.started, 30, "started")
        self.client = httpx.Client(base_url=self.url, timeout=30)

    def post_painting(self) -> str:
        files = [("content", ("c.png", png(64, 48), "image/png")), ("style", ("s.png", png(48, 48), "image/png"))]
        response = self.client.post("/api/paintings", files=files, data={"params": '{"size": 48, "iterations": 2}'})
        assert response.status_code == 201, response.text
        painting_id = response.json()["id"]
        # Settled (Studio is away): from now on only a request changes it.
        wait_for(lambda: (painting_id, "waiting_for_studio") in self.snapshot(), 30, "waiting for Studio")
        return painting_id

    def snapshot(self) -> list[tuple[str, str]]:
        items = self.client.get("/api/paintings?limit=500").json()["items"]
        return sorted((p["id"], p["status"]) for p in items)

    def stop(self) -> None:
        self.client.close()
        self.server.should_exit = True
        self.thread.join(30)
        assert not self.thread.is_alive(), "Gallery did not stop"


@pytest.fixture
def gallery(tmp_path) -> Iterator[RecordedGallery]:
    server = RecordedGallery(tmp_path / "gallery")
    yield server
    server.stop()


@pytest.mark.parametrize("site", ["localhost", "127.0.0.1"], ids=["cross-site", "same-site, another port"])
def test_a_page_on_another_origin_cannot_create_cancel_remix_or_delete(browser, hostile, gallery, site):
    victim = gallery.post_painting()
    before = gallery.snapshot()
    context = browser.new_context()
    page = context.new_page()
    page.goto(f"http://{site}:{hostile.port}/")
    gallery.answers.clear()
    steps = page.evaluate(ATTACK, {"gallery": gallery.url, "id": victim})
    wait_for(lambda: len(gallery.answers) >= 8, 10, "every request the browser let out answered")
    context.close()

    assert gallery.snapshot() == before, (steps, gallery.answers)  # nothing stored, nothing changed
    # The browser let these out (Chromium 156): two no-cors FormData POSTs, a no-cors cancel, a
    # no-cors remix (a JSON body as text/plain), the beacon and both forms; each was answered 403.
    assert all(steps[k] == "sent" for k in ("create", "create, no referrer", "cancel", "remix", "beacon")), steps
    writes = [(m, p, status) for m, p, status in gallery.answers if m not in ("GET", "HEAD", "OPTIONS")]
    assert sorted(p.rsplit("/", 1)[-1] for _, p, _ in writes) == sorted(
        ["paintings", "paintings", "cancel", "remix", "cancel", "cancel", "cancel"]
    ), gallery.answers
    assert all(status == 403 for _, _, status in writes), gallery.answers
    # A DELETE needs a CORS preflight, which Gallery does not grant (405): it never leaves the
    # browser; no-cors refuses the method outright.
    assert [a for a in gallery.answers if a[0] == "OPTIONS"] == [("OPTIONS", f"/api/paintings/{victim}", 405)]
    assert "TypeError" in steps["delete"] and "TypeError" in steps["delete, no-cors"], steps


def test_the_same_script_on_gallerys_own_page_works(browser, gallery):
    context = browser.new_context()
    page = context.new_page()
    page.goto(gallery.url)
    # The painting is this browser's own (its owner cookie lands in the context): only its owner may
    # cancel, remix or delete it, which gallery/owners.py checks after the origin.
    made = context.request.post(
        f"{gallery.url}/api/paintings",
        multipart={
            "content": {"name": "c.png", "mimeType": "image/png", "buffer": png(64, 48)},
            "style": {"name": "s.png", "mimeType": "image/png", "buffer": png(48, 48)},
            "params": '{"size": 48, "iterations": 2}',
        },
    )
    assert made.status == 201, made.text()
    victim = made.json()["id"]
    wait_for(lambda: (victim, "waiting_for_studio") in gallery.snapshot(), 30, "waiting for Studio")
    steps = page.evaluate(ATTACK, {"gallery": gallery.url, "id": victim})
    context.close()
    assert steps["create"] == 201 and steps["create, no referrer"] == 201, steps
    assert steps["cancel"] == 200 and steps["remix"] == 201 and steps["delete"] == 204, steps
    assert steps["delete, no-cors"].startswith("TypeError"), steps  # the browser's rule, whatever the origin
    assert victim not in [i for i, _ in gallery.snapshot()]


def png_file(path: Path, pixels) -> Path:
    Image.fromarray(pixels).save(path, format="PNG")
    return path


RECORD_VIOLATIONS = """
window.__violations = [];
document.addEventListener("securitypolicyviolation", (e) => {
  window.__violations.push(`${e.violatedDirective} ${e.blockedURI} ${e.sourceFile}:${e.lineNumber}`);
});
"""


def test_the_page_paints_under_its_content_security_policy_without_a_violation(
    browser, real_studio, gallery_factory, tmp_path
):
    gallery = gallery_factory(real_studio.url, frontend_dir=FRONTEND)
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    page.add_init_script(RECORD_VIOLATIONS)
    console: list[str] = []
    page.on("console", lambda m: console.append(m.text))
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))

    document = page.goto(gallery.url)
    assert document is not None
    policy = document.headers.get("content-security-policy", "")
    assert "default-src 'self'" in policy and "frame-ancestors 'none'" in policy, policy
    assert document.headers.get("x-frame-options") == "DENY"
    sync_api.expect(page.locator("#connection")).to_have_text("Live", timeout=10_000)  # /ws under connect-src
    content = png_file(tmp_path / "landscape.png", examples.landscape(60, 80))
    style = png_file(tmp_path / "swirls.png", examples.swirls(56, 56))
    page.set_input_files("#content-input", str(content))
    page.set_input_files("#style-input", str(style))
    sync_api.expect(page.locator("#content-thumbs img")).to_have_count(1)  # blob: thumbnails under img-src
    page.fill("#param-size", "48")
    page.fill("#param-iterations", "6")
    page.locator("#advanced summary").click()
    page.fill("#param-preview_every", "2")
    page.click("#paint-button")
    sync_api.expect(page.locator("#viewer-status")).to_have_text("Done", timeout=180_000)
    sync_api.expect(page.locator("#live-image")).to_have_attribute("src", re.compile("/api/images/"))
    sync_api.expect(page.locator("#cards .card .badge")).to_have_text("Done")
    # An inline script is refused: the policy is really in force.
    page.evaluate(
        """() => { const s = document.createElement("script"); s.textContent = "1"; document.head.append(s); }"""
    )
    page.wait_for_timeout(200)
    violations = page.evaluate("window.__violations")
    context.close()
    assert len(violations) == 1 and violations[0].startswith("script-src"), violations
    assert not [c for c in console if "Content Security Policy" in c and "script-src" not in c], console
    assert not errors, errors


# Swagger UI as /docs loads it, from a CDN this machine cannot reach: a stand-in with the same name
# that does what the real one does first (fetch the document), so the docs page's policy is tried.
SWAGGER_STUB = """
window.SwaggerUIBundle = function (options) {
  fetch(options.url).then((r) => r.json()).then((doc) => { document.body.dataset.loaded = doc.info.title; });
};
SwaggerUIBundle.presets = {apis: {}};
SwaggerUIBundle.SwaggerUIStandalonePreset = {};
"""


def test_the_docs_page_runs_under_its_own_policy(browser, gallery):
    context = browser.new_context()
    page = context.new_page()
    page.add_init_script(RECORD_VIOLATIONS)
    fetched: list[str] = []

    def cdn(route) -> None:
        fetched.append(route.request.url)
        if route.request.url.endswith(".js"):
            route.fulfill(status=200, content_type="text/javascript", body=SWAGGER_STUB)
        elif route.request.url.endswith(".css"):
            route.fulfill(status=200, content_type="text/css", body="body { margin: 0; }")
        else:
            route.fulfill(status=200, content_type="image/png", body=png(16, 16))

    page.route("https://cdn.jsdelivr.net/**", cdn)
    page.route("https://fastapi.tiangolo.com/**", cdn)
    page.goto(f"{gallery.url}/docs")
    sync_api.expect(page.locator("body")).to_have_attribute("data-loaded", "Deep Painting Gallery", timeout=10_000)
    violations = page.evaluate("window.__violations")
    context.close()
    assert any(u.endswith("swagger-ui-bundle.js") for u in fetched), fetched
    assert violations == [], violations
