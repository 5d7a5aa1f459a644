"""Gallery's API and WebSocket against a real Studio with the real Pycasso worker, on tiny images."""

from __future__ import annotations

import json
import threading

import pytest
from websockets.exceptions import InvalidStatus
from websockets.sync.client import connect
from websockets.typing import Origin

from painting.catalog import Catalog
from painting.records import Status

pytestmark = pytest.mark.slow

SMALL = {"size": 48, "iterations": 4, "preview_every": 2, "init": "content"}  # no draft: iterations 1..4


class Listener:
    """Collects /ws events in a thread until a `painting.done|failed|cancelled` for `until_id`."""

    def __init__(self, gallery) -> None:
        # Entered as a context manager: websockets deprecates using connect() bare.
        self.ws = connect(gallery.url.replace("http", "ws") + "/ws", origin=gallery.origin, open_timeout=10).__enter__()
        self.events: list[dict] = []
        self.until_id: str | None = None
        self.finished = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        try:
            for message in self.ws:
                event = json.loads(message)
                self.events.append(event)
                if event["id"] == self.until_id and event["type"] in {
                    "painting.done",
                    "painting.failed",
                    "painting.cancelled",
                    "painting.deleted",
                }:
                    self.finished.set()
        except Exception as exc:  # the socket closed
            self.events.append({"type": "listener.error", "id": None, "error": repr(exc)})

    def wait(self, timeout: float = 120) -> list[dict]:
        assert self.finished.wait(timeout), self.events
        return [e for e in self.events if e["id"] == self.until_id]

    def close(self) -> None:
        self.ws.close()
        self.thread.join(10)


@pytest.fixture
def gallery(real_studio, gallery_factory):
    return gallery_factory(real_studio.url)


def test_a_painting_from_post_to_done_seen_by_get_and_by_the_websocket(gallery, images):
    listener = Listener(gallery)
    try:
        response = gallery.post_painting(SMALL)
        assert response.status_code == 201, response.text
        created = response.json()
        listener.until_id = created["id"]
        assert created["status"] == "queued" and created["progress"] == []
        assert response.headers["location"] == f"/api/paintings/{created['id']}"
        events = listener.wait()
    finally:
        listener.close()
    kinds = [e["type"] for e in events]
    assert kinds[0] == "painting.created" and kinds[-1] == "painting.done"
    progress = [e for e in events if e["type"] == "painting.progress"]
    assert [e["iteration"] for e in progress] == [1, 2, 3, 4]
    assert all(e["iterations"] == 4 and e["loss"]["total"] > 0 and e["elapsed_s"] >= 0 for e in progress)
    assert progress[1]["preview_image"] is not None
    assert all(len(json.dumps(e)) < 1500 for e in events)  # small: ids and params, never bytes

    final = gallery.painting(created["id"])
    assert final["status"] == "done" and final["result_image"] == events[-1]["result_image"]
    assert [p["iteration"] for p in final["progress"]] == [1, 2, 3, 4]
    assert set(final["progress"][0]["loss"]) == {"total", "content", "style", "tv"}

    image = gallery.client.get(f"/api/images/{final['result_image']}")
    assert image.status_code == 200 and image.headers["content-type"] == "image/png"
    assert image.headers["cache-control"] == "public, max-age=31536000, immutable"
    assert gallery.client.get(f"/api/images/{progress[1]['preview_image']}").status_code == 200
    assert gallery.client.get(f"/api/images/{final['content_image']}").status_code == 200

    listing = gallery.client.get("/api/paintings", params={"limit": 10}).json()
    assert listing["total"] == 1 and listing["items"][0]["id"] == created["id"]

    # Remix: a new painting with the same images and other parameters.
    remix = gallery.client.post(
        f"/api/paintings/{created['id']}/remix", json={"params": {"size": 48, "iterations": 3, "style_weight": 50}}
    )
    assert remix.status_code == 201, remix.text
    again = remix.json()
    assert again["id"] != created["id"] and again["content_image"] == final["content_image"]
    assert again["styles"] == final["styles"] and again["params"]["style_weight"] == 50
    done = gallery.wait_status(again["id"], {"done"})
    assert [p["iteration"] for p in done["progress"]] == [0, 1, 2, 3]  # the default start: a draft at 0
    listing = gallery.client.get("/api/paintings").json()
    assert listing["total"] == 2 and [p["id"] for p in listing["items"]] == [again["id"], created["id"]]
    bad = gallery.client.post(f"/api/paintings/{created['id']}/remix", json={"params": {"size": 1}})
    assert bad.status_code == 422 and "size" in bad.json()["detail"]


def test_cancel_and_delete_reach_studio(gallery, real_studio, wait_for):
    created = gallery.post_painting({"size": 96, "iterations": 1000, "preview_every": 0}).json()
    gallery.wait_status(created["id"], {"running"}, 60)
    wait_for(lambda: gallery.painting(created["id"])["iteration"] >= 1, 120, "painting")
    cancelled = gallery.client.post(f"/api/paintings/{created['id']}/cancel")
    assert cancelled.status_code == 200 and cancelled.json()["status"] == "cancelled"
    with Catalog.open(None, real_studio.data_dir, scope="studio", migrate=False) as studio_jobs:
        wait_for(lambda: studio_jobs.count(statuses={Status.RUNNING, Status.QUEUED}) == 0, 30, "cancelled in Studio")
    assert gallery.painting(created["id"])["status"] == "cancelled"

    listener = Listener(gallery)
    try:
        listener.until_id = created["id"]
        assert gallery.client.delete(f"/api/paintings/{created['id']}").status_code == 204
        assert listener.wait(10)[-1]["type"] == "painting.deleted"
    finally:
        listener.close()
    assert gallery.client.get(f"/api/paintings/{created['id']}").status_code == 404
    assert gallery.client.delete(f"/api/paintings/{created['id']}").status_code == 404


@pytest.mark.parametrize(
    ("make_request", "status", "words"),
    [
        (lambda g, i: g.post_painting(SMALL, content=b"not an image at all"), 415, "content"),
        (lambda g, i: g.post_painting(SMALL, styles=[i["bomb"]()]), 413, "style"),
        (lambda g, i: g.post_painting({"size": 5}), 422, "size"),
        (lambda g, i: g.post_painting({"iterations": "many"}), 422, "iterations"),
        (lambda g, i: g.post_painting("{not json"), 422, "params"),
        (lambda g, i: g.post_painting(SMALL, styles=[]), 422, "style"),
        (lambda g, i: g.post_painting(SMALL, styles=[i["png"](8, 8)] * 9), 422, "style"),
        (lambda g, i: g.post_painting({"style_blend": [1, 2]}), 422, "style_blend"),
        (lambda g, i: g.post_painting({"engine": "fast", "iterations": 5}), 422, "iterations: does not apply"),
        (lambda g, i: g.post_painting({"engine": "model"}), 422, "model: the model engine needs"),
        (
            lambda g, i: g.client.post(
                "/api/paintings", content=b"x" * 3_000_000, headers={"content-type": "multipart/form-data; boundary=x"}
            ),
            413,
            "body",
        ),
    ],
    ids=[
        "not-an-image",
        "bomb",
        "size-range",
        "iterations-type",
        "params-json",
        "no-style",
        "too-many-styles",
        "blend-mismatch",
        "field-of-another-engine",
        "model-without-name",
        "body-too-large",
    ],
)
def test_bad_requests_are_refused_and_store_nothing(real_studio, gallery_factory, images, make_request, status, words):
    gallery = gallery_factory(real_studio.url, max_body_bytes=2_000_000)
    before = gallery.stored()
    response = make_request(gallery, images)
    assert response.status_code == status, response.text
    assert words in response.json()["detail"]
    assert gallery.stored() == before


def test_unknown_ids_are_404(gallery):
    for path in [
        "/api/paintings/" + "a" * 32,
        "/api/paintings/nope",
        "/api/images/" + "b" * 64,
        "/api/images/..%2Fetc",
    ]:
        assert gallery.client.get(path).status_code == 404, path
    assert gallery.client.post("/api/paintings/" + "a" * 32 + "/cancel").status_code == 404
    assert gallery.client.post("/api/paintings/" + "a" * 32 + "/remix", json={}).status_code == 404


def test_the_params_schema_has_defaults_ranges_and_descriptions(gallery):
    schema = gallery.client.get("/api/params/schema").json()
    size = schema["properties"]["size"]
    assert {"default", "description"} <= set(size) and ("maximum" in size or "exclusiveMaximum" in size)
    assert gallery.client.get("/docs").status_code == 200
    assert "/api/paintings" in gallery.client.get("/openapi.json").json()["paths"]


@pytest.mark.parametrize("origin", ["http://evil.example", "null", None])
def test_websocket_from_another_origin_is_refused(gallery, origin):
    with pytest.raises(InvalidStatus) as refused, connect(gallery.url.replace("http", "ws") + "/ws", origin=origin):
        pass
    assert refused.value.response.status_code == 403


def test_websocket_from_an_allowed_origin_is_accepted(real_studio, gallery_factory):
    gallery = gallery_factory(real_studio.url, allowed_origins=["https://paint.example"])
    with connect(gallery.url.replace("http", "ws") + "/ws", origin=Origin("https://paint.example"), open_timeout=10):
        pass
    with connect(gallery.url.replace("http", "ws") + "/ws", origin=Origin(gallery.origin), open_timeout=10):
        pass  # its own page, always
    other = Origin("https://elsewhere.example")
    with pytest.raises(InvalidStatus), connect(gallery.url.replace("http", "ws") + "/ws", origin=other):
        pass


def test_gallery_restarted_mid_painting_picks_it_up_from_its_studio_job(real_studio, gallery_factory, wait_for):
    first = gallery_factory(real_studio.url)
    created = first.post_painting({"size": 48, "iterations": 30, "preview_every": 5, "init": "content"}).json()
    wait_for(lambda: first.painting(created["id"])["iteration"] >= 1, 120, "painting")
    first.stop()
    with Catalog.open(None, first.settings.data_dir, migrate=False, scope="gallery") as catalog:
        record = catalog.get(created["id"])
    assert record.status == Status.RUNNING and record.remote_id is not None

    second = gallery_factory(real_studio.url, name="gallery")  # the same data folder
    done = second.wait_status(created["id"], {"done"}, 180)
    assert [p["iteration"] for p in done["progress"]] == list(range(1, 31))
    with Catalog.open(None, real_studio.data_dir, scope="studio", migrate=False) as studio_jobs:
        assert len([r for r in studio_jobs.newest(limit=500) if r.idempotency_key == created["id"]]) == 1
