"""Trainings in Gallery: uploads checked before anything is stored, sent to Studio and followed there.

Gallery runs for real on loopback; Studio is a mock (`httpx.MockTransport`) that answers
/v1/trainings as the contract says, so each test decides what Studio says and when, and sees what
Gallery sent it.
"""

from __future__ import annotations

import asyncio
import email.parser
import email.policy
import io
import json
import os
import tarfile
import zipfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import httpx
from PIL import Image
from websockets.sync.client import connect
from websockets.typing import Origin

from gallery.owners import OWNER_COOKIE
from painting.catalog import Catalog

from support import png, wait_for

STUDIO = "http://studio.invalid"
OPERATOR = "operator-token-0123456789"
SAMPLE_1, SAMPLE_2 = png(16, 16, (10, 200, 10)), png(16, 16, (200, 10, 200))
TINY = {"kind": "cyclegan", "steps": 6, "image_size": 16, "filters": 4, "sample_every": 2}


def images(n: int, colour: tuple[int, int, int] = (200, 80, 40)) -> list[bytes]:
    return [png(20 + i, 18, colour) for i in range(n)]


def noisy(width: int, height: int) -> bytes:
    """A PNG of random pixels: about 3 bytes a pixel, whatever the compression."""
    buf = io.BytesIO()
    Image.frombytes("RGB", (width, height), os.urandom(width * height * 3)).save(buf, format="PNG")
    return buf.getvalue()


def zipped(files: Iterable[tuple[str, bytes]]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as archive:
        for name, data in files:
            archive.writestr(name, data)
    return buf.getvalue()


def sse(*events: tuple[str, str, dict[str, Any]]) -> bytes:
    return b"".join(f"id: {i}\nevent: {kind}\ndata: {json.dumps(data)}\n\n".encode() for i, kind, data in events)


def progress(step: int, sample: str | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {
        "step": step,
        "steps": 6,
        "losses": {"generator": 3.0 / step, "discriminator": 0.5, "cycle": 2.0 / step, "identity": 1.0},
        "seconds_per_step": 0.25,
        "checkpoint_step": step - step % 2,
    }
    if sample is not None:
        body["sample_image"] = sample
    return body


class MockStudio:
    """Studio's training API, scripted: `refusal` answers POST /v1/trainings; `streams` are the event
    stream bodies served in turn (by the Last-Event-ID asked, when keyed so); `hold` keeps a stream
    open until the training is cancelled there."""

    def __init__(self) -> None:
        self.requests: list[tuple[str, str, dict[str, str]]] = []
        self.submitted: list[dict[str, Any]] = []
        self.refusal: tuple[int, str] | None = None
        self.streams: dict[str | None, bytes] = {}
        self.hold = False
        self.cancelled: set[str] = set()
        self.images = {"s1": SAMPLE_1, "s2": SAMPLE_2}
        self.engines: dict[str, dict[str, str]] = {}  # by host; unlisted: gatys and model ready
        self.hosts: list[str] = []  # where each training was sent
        self.away = False  # cancels and deletes answer 503 (Studio is away) while set

    def seen(self, method: str, path: str) -> list[dict[str, str]]:
        return [headers for m, p, headers in self.requests if (m, p) == (method, path)]

    async def __call__(self, request: httpx.Request) -> httpx.Response:
        method, path = request.method, request.url.path
        self.requests.append((method, path, dict(request.headers)))
        if path == "/v1/status":
            engines = self.engines.get(request.url.host, {"gatys": "ready", "model": "ready"})
            return httpx.Response(200, json={"ready": True, "engines": engines})
        if method == "POST" and path == "/v1/trainings":
            await request.aread()
            if self.refusal is not None:
                return httpx.Response(self.refusal[0], json={"detail": self.refusal[1]})
            self.submitted.append(_parts(request))
            self.hosts.append(request.url.host)
            params = json.loads(self.submitted[-1]["params"])
            return httpx.Response(202, json={"id": "tr-1", "state": "queued", "kind": params["kind"], "params": params})
        if path == "/v1/trainings/tr-1/events":
            cursor = request.headers.get("last-event-id")
            body = self.streams.get(cursor, b"")
            if self.hold:
                return httpx.Response(200, headers={"content-type": "text/event-stream"}, content=self._held(body))
            return httpx.Response(200, headers={"content-type": "text/event-stream"}, content=body)
        if self.away and path.startswith("/v1/trainings/tr-1") and method in ("POST", "DELETE"):
            return httpx.Response(503, json={"detail": "away"})
        if method == "POST" and path == "/v1/trainings/tr-1/cancel":
            self.cancelled.add("tr-1")
            return httpx.Response(200, json={"id": "tr-1", "state": "cancelled"})
        if method == "DELETE" and path == "/v1/trainings/tr-1":
            return httpx.Response(204)
        if path.startswith("/v1/images/") and path.rsplit("/", 1)[1] in self.images:
            return httpx.Response(200, content=self.images[path.rsplit("/", 1)[1]])
        return httpx.Response(404, json={"detail": "Not Found"})

    async def _held(self, first: bytes):
        yield first
        while "tr-1" not in self.cancelled:
            await asyncio.sleep(0.02)
            yield b": keep-alive\n\n"
        yield sse(("99", "cancelled", {}))


def _parts(request: httpx.Request) -> dict[str, Any]:
    """A multipart request's fields: `params` as text, each file part's zip opened to its member names."""
    head = f"Content-Type: {request.headers['content-type']}\r\n\r\n".encode()
    message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(head + request.content)
    found: dict[str, Any] = {"key": request.headers.get("idempotency-key"), "files": {}}
    for part in message.iter_parts():
        name = part.get_param("name", header="content-disposition")
        data = part.get_payload(decode=True)
        assert isinstance(data, bytes)
        if name == "params":
            found["params"] = data.decode()
        else:
            with zipfile.ZipFile(io.BytesIO(data)) as archive:
                found["files"][name] = archive.namelist()
    return found


def post_training(
    client: httpx.Client,
    params: dict[str, Any] | None = None,
    **collections: bytes | list[bytes] | list[tuple[str, bytes]],
) -> httpx.Response:
    files: list[tuple[str, tuple[str, bytes, str]]] = []
    for name, given in collections.items():
        if isinstance(given, bytes):
            files.append((name, (f"{name}.zip", given, "application/zip")))
            continue
        for i, item in enumerate(given):
            filename, data = item if isinstance(item, tuple) else (f"{name}-{i}.png", item)
            files.append((name, (filename, data, "image/png")))
    data = {} if params is None else {"params": json.dumps(params)}
    return client.post("/api/trainings", files=files, data=data)


def training(gallery, training_id: str) -> dict[str, Any]:
    response = gallery.client.get(f"/api/trainings/{training_id}")
    assert response.status_code == 200, response.text
    return response.json()


def wait_training(gallery, training_id: str, statuses: set[str], timeout: float = 15) -> dict[str, Any]:
    last: dict[str, Any] = {}

    def reached() -> dict[str, Any] | None:
        last.update(training(gallery, training_id))
        return last if last["status"] in statuses else None

    try:
        return wait_for(reached, timeout, f"in {statuses}")  # type: ignore[return-value]
    except AssertionError as exc:
        raise AssertionError(f"{exc}; last seen: {last}") from None


def stored_sets(gallery) -> list[str]:
    root = Path(gallery.settings.data_dir) / "trainings"
    return sorted(p.name for p in root.iterdir()) if root.is_dir() else []


def test_uploads_gallery_cannot_use_are_refused_before_anything_is_stored(gallery_factory):
    studio = MockStudio()
    gallery = gallery_factory(STUDIO, transport=httpx.MockTransport(studio), max_training_files=6)
    client = gallery.client
    four = images(4)

    def refused(response: httpx.Response, status: int, *words: str) -> None:
        assert response.status_code == status, response.text
        detail = response.json()["detail"]
        assert all(w in detail for w in words), detail

    refused(
        post_training(client, {"kind": "cyclegan", "latent_dim": 8}, photos=four, paintings=four), 422, "latent_dim"
    )
    refused(post_training(client, {"steps": 0}, photos=four, paintings=four), 422, "steps")
    sixteen = zipped((f"{i}.png", d) for i, d in enumerate(images(16)))
    refused(post_training(client, {"kind": "dcgan", "image_size": 24}, images=sixteen), 422, "image_size")
    refused(post_training(client, TINY, photos=four), 422, "paintings: missing")
    refused(post_training(client, TINY, photos=four, paintings=four, images=four), 422, "images:")
    refused(
        post_training(client, TINY, photos=images(2), paintings=four),
        422,
        "photos: at least 4 readable images are needed, 2 found",
    )
    unreadable = [*((f"{i}.png", d) for i, d in enumerate(four)), ("notes.txt", b"not an image at all")]
    refused(
        post_training(client, TINY, photos=four, paintings=unreadable),
        422,
        "paintings: 1 of 5 files is not an image we can read",
        "'notes.txt'",
    )
    escaping = zipped([("ok.png", four[0]), ("../escape.png", four[1]), *((f"{i}.png", d) for i, d in enumerate(four))])
    refused(post_training(client, TINY, photos=escaping, paintings=four), 422, "photos:", "'..'")
    refused(post_training(client, TINY, photos=b"PK? not really an archive" * 40, paintings=four), 422, "neither a zip")
    too_many = zipped((f"{i}.png", d) for i, d in enumerate(images(7)))
    refused(post_training(client, TINY, photos=too_many, paintings=four), 413, "photos:", "more than 6 files")

    assert client.get("/api/trainings").json() == {"items": []}
    assert stored_sets(gallery) == []
    assert studio.seen("POST", "/v1/trainings") == []


def test_the_upload_has_a_body_cap_of_its_own(gallery_factory):
    studio = MockStudio()
    gallery = gallery_factory(
        STUDIO, transport=httpx.MockTransport(studio), max_body_bytes=30_000, max_training_body_bytes=120_000
    )
    painting = gallery.post_painting({"size": 48}, content=noisy(100, 100), styles=[noisy(50, 50)])
    assert painting.status_code == 413  # over max_body_bytes (about 37 KB): the paintings' cap is unchanged
    some = [noisy(50, 50) for _ in range(4)]  # about 7.5 KB each, as they cannot be compressed
    ok = post_training(gallery.client, TINY, photos=some, paintings=some)
    assert ok.status_code == 201, ok.text  # about 60 KB: over the paintings' cap, within the trainings'
    over = post_training(gallery.client, TINY, photos=[noisy(60, 60) for _ in range(10)], paintings=some)
    assert over.status_code == 413 and "over 120000 bytes" in over.json()["detail"]


def test_a_training_is_sent_followed_and_done_with_its_samples_copied(gallery_factory):
    studio = MockStudio()
    studio.streams[None] = sse(
        ("1", "progress", progress(2, "s1")),
        ("2", "progress", progress(4, "s2")),
        ("3", "progress", progress(6)),
        ("4", "done", {"model": "tiny-monet", "sample_image": "s2"}),
    )
    gallery = gallery_factory(STUDIO, transport=httpx.MockTransport(studio))
    schema = gallery.client.get("/api/training-schema").json()
    assert schema["properties"]["steps"]["maximum"] == gallery.settings.max_training_steps
    assert schema["x-collections"]["cyclegan"] == [
        {"name": "photos", "min_images": 4},
        {"name": "paintings", "min_images": 4},
    ]

    ws_url = gallery.url.replace("http", "ws") + "/ws"
    with connect(ws_url, origin=Origin(gallery.origin)) as socket:
        photos = zipped((f"photo-{i}.png", d) for i, d in enumerate(images(5)))
        created = post_training(
            gallery.client, {**TINY, "name": "tiny-monet"}, photos=photos, paintings=images(4, (20, 40, 220))
        )
        assert created.status_code == 201, created.text
        body = created.json()
        assert (body["status"], body["kind"], body["model"], body["counts"]) == (
            "queued",
            "cyclegan",
            "tiny-monet",
            {"photos": 5, "paintings": 4},
        )
        assert body["mine"] is True and body["params"]["batch_size"] == 1 and body["params"]["identity_weight"] == 5.0
        done = wait_training(gallery, body["id"], {"done"})
        events: list[dict[str, Any]] = []
        while not events or events[-1]["type"] != "training.done":
            events.append(json.loads(socket.recv(timeout=5)))

    sent = studio.submitted[0]
    assert sent["key"] == body["id"]  # Idempotency-Key: the training id
    assert json.loads(sent["params"]) == body["params"]  # resolved, with the model's name
    assert sent["files"] == {
        "photos": [f"{i:04d}.png" for i in range(1, 6)],
        "paintings": [f"{i:04d}.png" for i in range(1, 5)],
    }
    assert stored_sets(gallery) == []  # Studio has them now: Gallery's copy is gone

    assert [e["type"] for e in events] == [
        "training.created",
        "training.running",
        "training.progress",
        "training.progress",
        "training.progress",
        "training.done",
    ]
    first = events[2]
    assert (first["step"], first["steps"], first["seconds_per_step"]) == (2, 6, 0.25)
    assert first["losses"] == {"generator": 1.5, "discriminator": 0.5, "cycle": 1.0, "identity": 1.0}
    assert gallery.client.get(f"/api/images/{first['sample_image']}").content == SAMPLE_1
    assert events[4]["sample_image"] is None  # no new sample with step 6
    assert events[-1]["model"] == "tiny-monet"

    assert (done["step"], done["steps"], done["model"], done["checkpoint_step"]) == (6, 6, "tiny-monet", 6)
    assert gallery.client.get(f"/api/images/{done['sample_image']}").content == SAMPLE_2
    assert [p["step"] for p in done["progress"]] == [2, 4, 6]
    assert done["progress"][1]["losses"]["cycle"] == 0.5
    assert studio.seen("GET", "/v1/trainings/tr-1/events")[0].get("last-event-id") is None
    listed = gallery.client.get("/api/trainings").json()["items"]
    assert [t["id"] for t in listed] == [body["id"]] and "progress" not in listed[0]


def test_only_its_browser_or_the_operator_may_cancel_or_delete_and_studio_is_told(gallery_factory):
    studio = MockStudio()
    studio.streams[None] = sse(("1", "progress", progress(2, "s1")))
    studio.hold = True  # the stream stays open until Studio has cancelled it
    gallery = gallery_factory(STUDIO, transport=httpx.MockTransport(studio), operator_token=OPERATOR)
    created = post_training(gallery.client, {"kind": "dcgan", "steps": 50}, images=images(16))
    assert created.status_code == 201, created.text
    assert created.headers["set-cookie"].startswith(f"{OWNER_COOKIE}=")
    training_id = created.json()["id"]
    wait_for(lambda: training(gallery, training_id)["step"] == 2, 10, "at step 2")
    url = f"/api/trainings/{training_id}"

    with httpx.Client(base_url=gallery.url, timeout=30) as stranger:
        assert stranger.get(url).json()["mine"] is False  # a public gallery: anyone may watch
        for method, path in (("POST", "/cancel"), ("DELETE", "")):
            response = stranger.request(method, url + path)
            assert response.status_code == 403, response.text
            assert "Only the browser that started this training" in response.json()["detail"]
    assert training(gallery, training_id)["status"] == "running"

    cancelled = gallery.client.post(url + "/cancel")
    assert cancelled.status_code == 200 and cancelled.json()["status"] == "cancelled"
    wait_for(lambda: studio.seen("POST", "/v1/trainings/tr-1/cancel"), 10, "cancel forwarded")
    assert gallery.client.post(url + "/cancel").json()["status"] == "cancelled"  # again: nothing changes

    with httpx.Client(base_url=gallery.url, timeout=30, headers={"Authorization": f"Bearer {OPERATOR}"}) as operator:
        assert operator.delete(url).status_code == 204
    wait_for(lambda: studio.seen("DELETE", "/v1/trainings/tr-1"), 10, "delete forwarded")
    assert gallery.client.get(url).status_code == 404
    assert gallery.client.get("/api/trainings").json() == {"items": []}


def test_a_training_cancelled_before_studio_has_it_is_never_sent(gallery_factory):
    gallery = gallery_factory("http://127.0.0.1:9")  # nothing listens: it waits for Studio
    created = post_training(gallery.client, TINY, photos=images(4), paintings=images(4)).json()
    wait_training(gallery, created["id"], {"waiting_for_studio"})
    assert stored_sets(gallery) == [created["id"]]
    assert gallery.client.post(f"/api/trainings/{created['id']}/cancel").json()["status"] == "cancelled"
    wait_for(lambda: stored_sets(gallery) == [], 10, "its images removed")
    assert gallery.client.delete(f"/api/trainings/{created['id']}").status_code == 204


def test_studio_refusing_fails_the_training_with_its_words(gallery_factory):
    studio = MockStudio()
    words = (
        "This Studio has no GPU: one cyclegan step would take about 41.5 s here (6 steps: 4 min). "
        "Set STUDIO_ALLOW_CPU_TRAINING=true to train on its CPU anyway."
    )
    studio.refusal = (422, words)
    gallery = gallery_factory(STUDIO, transport=httpx.MockTransport(studio))
    created = post_training(gallery.client, TINY, photos=images(4), paintings=images(4))
    assert created.status_code == 201
    failed = wait_training(gallery, created.json()["id"], {"failed"})
    assert failed["error"] == f"Studio refused the training (422): {words}"
    wait_for(lambda: stored_sets(gallery) == [], 10, "its images removed")


def test_a_restarted_gallery_follows_on_from_its_cursor_without_sending_again(gallery_factory):
    studio = MockStudio()
    studio.streams[None] = sse(("1", "progress", progress(2, "s1")))  # then the stream ends, again and again
    first = gallery_factory(STUDIO, transport=httpx.MockTransport(studio), name="restarted")
    training_id = post_training(first.client, TINY, photos=images(4), paintings=images(4)).json()["id"]
    wait_for(lambda: len(studio.seen("GET", "/v1/trainings/tr-1/events")) >= 2, 10, "following from its cursor")
    first.stop()

    studio.streams["1"] = sse(("2", "progress", progress(4, "s2")), ("3", "done", {"model": "m"}))
    studio.requests.clear()
    second = gallery_factory(STUDIO, transport=httpx.MockTransport(studio), name="restarted")
    done = wait_training(second, training_id, {"done"})
    assert studio.seen("POST", "/v1/trainings") == []  # the same Studio training, not a new one
    assert studio.seen("GET", "/v1/trainings/tr-1/events")[0]["last-event-id"] == "1"
    assert [p["step"] for p in done["progress"]] == [2, 4]
    assert second.client.get(f"/api/images/{done['sample_image']}").content == SAMPLE_2


def test_a_private_gallery_shows_each_browser_only_its_trainings_and_their_samples(gallery_factory):
    studio = MockStudio()
    studio.streams[None] = sse(("1", "progress", progress(2, "s1")), ("2", "failed", {"error": "out of memory"}))
    gallery = gallery_factory(STUDIO, transport=httpx.MockTransport(studio), private=True)
    tar = io.BytesIO()
    with tarfile.open(fileobj=tar, mode="w:gz") as archive:
        for i, data in enumerate(images(16)):
            info = tarfile.TarInfo(f"cars/{i}.png")
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    created = post_training(gallery.client, {"kind": "dcgan", "steps": 10}, images=tar.getvalue())
    assert created.status_code == 201, created.text
    failed = wait_training(gallery, created.json()["id"], {"failed"})
    assert failed["error"] == "out of memory" and failed["sample_image"]
    assert gallery.client.get(f"/api/images/{failed['sample_image']}").status_code == 200
    with httpx.Client(base_url=gallery.url, timeout=30) as stranger:
        assert stranger.get("/api/trainings").json() == {"items": []}
        assert stranger.get(f"/api/trainings/{failed['id']}").status_code == 404
        assert stranger.get(f"/api/images/{failed['sample_image']}").status_code == 404
    assert [t["id"] for t in gallery.client.get("/api/trainings").json()["items"]] == [failed["id"]]


def test_with_a_pool_a_training_goes_to_the_first_studio_that_can_train(gallery_factory):
    studio = MockStudio()
    studio.engines["paints.invalid"] = {"gatys": "ready", "fast": "ready"}  # no models folder: cannot train
    studio.streams[None] = sse(("1", "done", {"model": "m"}))
    pool = [{"url": "http://paints.invalid", "name": "paints"}, {"url": "http://trains.invalid", "name": "trains"}]
    gallery = gallery_factory(STUDIO, transport=httpx.MockTransport(studio), studios=pool)
    created = post_training(gallery.client, TINY, photos=images(4), paintings=images(4)).json()
    wait_training(gallery, created["id"], {"done"})
    assert studio.hosts == ["trains.invalid"]


def test_a_cancel_studio_did_not_hear_is_kept_and_told_after_a_restart(gallery_factory):
    studio = MockStudio()
    studio.streams[None] = sse(("1", "progress", progress(2, "s1")))
    first = gallery_factory(STUDIO, transport=httpx.MockTransport(studio), name="kept")
    training_id = post_training(first.client, TINY, photos=images(4), paintings=images(4)).json()["id"]
    wait_for(lambda: training(first, training_id)["step"] == 2, 10, "at step 2")
    studio.away = True
    assert first.client.post(f"/api/trainings/{training_id}/cancel").json()["status"] == "cancelled"
    wait_for(lambda: studio.seen("POST", "/v1/trainings/tr-1/cancel"), 10, "the cancel tried")
    first.stop()  # Studio never confirmed it
    with Catalog.open(None, first.settings.data_dir, scope="gallery", migrate=False) as catalog:
        assert catalog.remote_actions(target="training") == [("tr-1", "cancel")]  # stored, not only in memory
    studio.away = False
    second = gallery_factory(STUDIO, transport=httpx.MockTransport(studio), name="kept")
    wait_for(lambda: "tr-1" in studio.cancelled, 10, "the cancel told after the restart")
    with Catalog.open(None, second.settings.data_dir, scope="gallery", migrate=False) as catalog:
        wait_for(lambda: catalog.remote_actions(target="training") == [], 10, "the intent dropped once confirmed")
