"""Faults Gallery must ride out: Studio away longer than any fixed number of retries, an event
stream that keeps ending early, its own storage refusing writes, and disk that would only grow."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import os
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from painting.catalog import Catalog
from painting.fsck import fsck
from painting.images import ImageStore

import studio_process
from support import png, wait_for

STUDIO_AWAY = "http://127.0.0.1:9"  # nothing listens on the discard port: paintings wait


def sse(event_id: int, kind: str, data: dict) -> bytes:
    return f"id: {event_id}\nevent: {kind}\ndata: {json.dumps(data)}\n\n".encode()


def progress(i: int) -> bytes:
    loss = {"total": 10.0 / i, "content": 1.0, "style": 2.0, "tv": 0.5}
    data = {"job": "job-1", "iteration": i, "iterations": 50, "evaluations": i, "elapsed_s": 0.1, "loss": loss}
    return sse(i, "progress", data)


class AwayStudio:
    """Studio's /v1 API in a function: one job that makes no progress; DELETE fails while `away` is set."""

    def __init__(self) -> None:
        self.away = threading.Event()
        self.cancel_calls = 0
        self.done: list[str] = []  # what Studio was told and confirmed: "cancel" or "forget"

    async def __call__(self, request: httpx.Request) -> httpx.Response:
        path = request.url.path
        if request.method == "POST" and path == "/v1/jobs":
            return httpx.Response(202, json={"id": "job-1", "state": "queued"})
        if path == "/v1/jobs/job-1/events":
            await asyncio.sleep(0.3)
            return httpx.Response(200, headers={"content-type": "text/event-stream"}, content=b": keep-alive\n\n")
        action = {("POST", "/v1/jobs/job-1/cancel"): "cancel", ("DELETE", "/v1/jobs/job-1"): "forget"}.get(
            (request.method, path)
        )
        if action is not None:
            self.cancel_calls += 1
            if self.away.is_set():
                raise httpx.ConnectError("connection refused", request=request)
            self.done.append(action)
            return httpx.Response(202, json={"id": "job-1", "state": "cancelled"})
        return httpx.Response(404, json={"detail": "no such thing"})


STUDIO_ACTION = {"cancel": "cancel", "delete": "forget"}  # what Studio is told to do when a painting is ...


@pytest.mark.parametrize("action", ["cancel", "delete"])
def test_a_cancel_reaches_studio_however_long_it_is_away_and_across_a_restart(gallery_factory, action):
    studio = AwayStudio()
    gallery = gallery_factory("http://studio.invalid", transport=httpx.MockTransport(studio))
    painting = gallery.post_painting({"size": 48, "iterations": 50}).json()
    gallery.wait_status(painting["id"], {"running"}, 10)
    studio.away.set()
    if action == "cancel":
        assert gallery.client.post(f"/api/paintings/{painting['id']}/cancel").json()["status"] == "cancelled"
    else:
        assert gallery.client.delete(f"/api/paintings/{painting['id']}").status_code == 204
    wait_for(lambda: studio.cancel_calls > 12, 20, "retrying past the 8 tries it used to give up after")
    gallery.stop()  # and Gallery restarts while Studio is still away
    with Catalog.open(None, gallery.settings.data_dir, scope="gallery", migrate=False) as catalog:
        assert catalog.remote_actions() == [
            ("job-1", STUDIO_ACTION[action])
        ]  # the intent is stored, not only in memory
    again = gallery_factory("http://studio.invalid", transport=httpx.MockTransport(studio))
    time.sleep(0.5)
    studio.away.clear()  # Studio is back
    wait_for(lambda: studio.done == [STUDIO_ACTION[action]], 10, "the intent forwarded after the restart")
    with Catalog.open(None, again.settings.data_dir, scope="gallery", migrate=False) as catalog:
        wait_for(lambda: catalog.remote_actions() == [], 10, "the intent dropped once Studio confirmed")


def test_a_stream_that_ends_without_an_ending_is_retried_with_backoff(gallery_factory):
    connects = []

    async def handler(request: httpx.Request) -> httpx.Response:
        if request.method == "POST" and request.url.path == "/v1/jobs":
            return httpx.Response(202, json={"id": "job-1", "state": "queued"})
        if request.url.path == "/v1/jobs/job-1/events":
            connects.append(time.monotonic())
            return httpx.Response(200, headers={"content-type": "text/event-stream"}, content=progress(1))
        return httpx.Response(404, json={"detail": "no such thing"})

    gallery = gallery_factory("http://studio.invalid", transport=httpx.MockTransport(handler))
    painting = gallery.post_painting({"size": 48, "iterations": 50}).json()
    wait_for(lambda: connects, 10, "following the job")
    time.sleep(2.0)
    recent = [t for t in connects if t > connects[0] + 0.5]
    # Backoff from 0.05 s, capped at 0.3 s (the test settings): a handful a second, not a busy loop.
    assert len(recent) < 20, f"{len(recent)} reconnects in 1.5 s"
    assert gallery.painting(painting["id"])["status"] == "running"


def test_a_painting_whose_photo_is_gone_from_the_store_fails_instead_of_waiting_for_ever(gallery_factory):
    # A collection with no grace once removed a photo between its upload and its record: the
    # painting then stayed queued for ever, since its sender took the missing file for a delete.
    gallery = gallery_factory(STUDIO_AWAY)
    painting = gallery.post_painting({"size": 48, "iterations": 2}).json()
    gallery.wait_status(painting["id"], {"waiting_for_studio"}, 10)
    ImageStore(gallery.settings.data_dir / "images").delete(painting["content_image"])
    failed = gallery.wait_status(painting["id"], {"failed"}, 10)
    assert "missing from Gallery's store" in failed["error"]


@contextlib.contextmanager
def immutable(*paths: Path) -> Iterator[None]:
    if os.geteuid() != 0 or shutil.which("chattr") is None:
        message = "STORAGE FAULT TEST CANNOT RUN: needs root and chattr"
        pytest.fail(message) if os.environ.get("CI") else pytest.skip(message)
    subprocess.run(["chattr", "-R", "+i", *map(str, paths)], check=True)
    try:
        yield
    finally:
        subprocess.run(["chattr", "-R", "-i", *map(str, paths)], check=True)


@pytest.mark.parametrize("part", ["images", "catalog"])
def test_gallery_answers_503_and_is_not_ready_while_it_cannot_store(gallery_factory, part):
    gallery = gallery_factory(STUDIO_AWAY)
    assert gallery.post_painting({"size": 48, "iterations": 2}).status_code == 201
    data = gallery.settings.data_dir
    paths = [data / "images"] if part == "images" else [p for p in data.glob("catalog.sqlite3*")]
    with immutable(*paths):
        refused = gallery.post_painting({"size": 48, "iterations": 2}, content=png(50, 40, (1, 2, 3)))
        assert refused.status_code == 503, refused.text
        assert "cannot be written" in refused.json()["detail"]
        ready = gallery.client.get("/health/ready")
        assert ready.status_code == 503 and "cannot be written" in ready.json()["reason"]
    assert gallery.client.get("/health/ready").status_code == 200
    assert gallery.post_painting({"size": 48, "iterations": 2}).status_code == 201
    assert gallery.client.get("/api/paintings").json()["total"] == 2


def holds_only(store: ImageStore, ids: set[str]) -> bool:
    return set(store) == ids


def test_previews_are_collected_once_replaced_and_fsck_stays_clean(tmp_path, gallery_factory):
    gc = {"STUDIO_GC_INTERVAL_S": "0.3", "STUDIO_GC_GRACE_S": "0.3"}
    studio = studio_process.StudioProcess(tmp_path / "studio", [sys.executable, studio_process.FAKE_WORKER], **gc)
    try:
        studio.wait_ready(30)
        gallery = gallery_factory(studio.url, studio_token=studio_process.TOKEN, gc_interval_s=0.3, gc_grace_s=0.3)
        painting = gallery.post_painting({"size": 48, "iterations": 60, "preview_every": 1}).json()
        done = gallery.wait_status(painting["id"], {"done"}, 60)
        assert done["preview_image"] is None  # the result replaced it
        kept = {done["content_image"], done["result_image"], *(s["image_id"] for s in done["styles"])}
        for data_dir in (gallery.settings.data_dir, studio.data_dir):
            store = ImageStore(data_dir / "images")
            wait_for(functools.partial(holds_only, store, kept), 10, f"only the painting's images left in {data_dir}")
            with Catalog.open(None, data_dir, scope="gallery", migrate=False) as catalog:
                report = fsck(catalog, store)
                assert report.ok and report.unreferenced == 0, report
    finally:
        studio.stop()


def test_a_preview_studio_has_collected_since_is_skipped_not_fatal(gallery_factory):
    gone, result = "9" * 64, "8" * 64

    async def handler(request: httpx.Request) -> httpx.Response:
        path = request.url.path
        if request.method == "POST" and path == "/v1/jobs":
            return httpx.Response(202, json={"id": "job-1", "state": "queued"})
        if path == "/v1/jobs/job-1/events":
            data = json.loads(progress(1).decode().split("data: ", 1)[1])
            events = sse(1, "progress", {**data, "preview_image": gone}) + sse(2, "done", {"result_image": result})
            return httpx.Response(200, headers={"content-type": "text/event-stream"}, content=events)
        if path == f"/v1/images/{gone}":  # replaced by a later preview and collected while Gallery was behind
            return httpx.Response(404, json={"detail": "No image with that id."})
        if path == f"/v1/images/{result}":
            return httpx.Response(200, content=png(8, 8), headers={"content-type": "image/png"})
        return httpx.Response(404, json={"detail": "no such thing"})

    gallery = gallery_factory("http://studio.invalid", transport=httpx.MockTransport(handler))
    painting = gallery.post_painting({"size": 48, "iterations": 50}).json()
    done = gallery.wait_status(painting["id"], {"done", "failed"}, 10)
    assert (done["status"], done["error"], [p["iteration"] for p in done["progress"]]) == ("done", None, [1])
