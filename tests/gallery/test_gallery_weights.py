"""New loss weights while a painting runs (issue 12), through Gallery: with a real Studio and the fake
worker (its style term is 0.2 × style_weight), and with a Studio that is away (httpx.MockTransport)."""

from __future__ import annotations

import json
import os
import signal
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from websockets.sync.client import connect

from painting.catalog import Catalog

import studio_process
from support import wait_for

DEFAULTS = {"content_weight": 1.0, "style_weight": 10.0, "tv_weight": 0.1}
LONG = {"size": 48, "iterations": 400, "preview_every": 5, "init": "content"}


@pytest.fixture
def studio(tmp_path: Path) -> Iterator[studio_process.StudioProcess]:
    running = studio_process.StudioProcess(
        tmp_path / "studio", [sys.executable, studio_process.FAKE_WORKER], FAKE_SECONDS_PER_ITERATION="0.03"
    )
    try:
        running.wait_ready(30)
        yield running
    finally:
        running.stop()


def test_new_weights_reach_the_painting_mark_its_curve_and_survive_a_worker_crash(studio, gallery_factory):
    gallery = gallery_factory(studio.url, studio_token=studio_process.TOKEN)
    events: list[dict] = []
    with connect(gallery.url.replace("http", "ws") + "/ws", origin=gallery.origin, open_timeout=10) as ws:
        threading.Thread(target=lambda: events.extend(json.loads(m) for m in ws), daemon=True).start()
        painting = gallery.post_painting(LONG).json()
        url = f"/api/paintings/{painting['id']}"
        wait_for(lambda: gallery.painting(painting["id"])["iteration"] >= 3, 30, "painting")
        response = gallery.client.post(url + "/weights", json={"style_weight": 50})
        assert response.status_code == 202, response.text
        body = response.json()
        assert body["params"]["style_weight"] == 50.0 and body["mine"] is True
        assert [c["weights"] for c in body["weight_changes"]] == [{**DEFAULTS, "style_weight": 50.0}]

        def applied() -> int | None:
            return gallery.painting(painting["id"])["weight_changes"][0]["iteration"]

        at = wait_for(applied, 30, "the change marked where it took effect")
        assert isinstance(at, int)
        curve = {p["iteration"]: p["loss"]["style"] for p in gallery.painting(painting["id"])["progress"]}
        assert curve[at] == 10.0 and curve[at - 1] == 2.0  # the next iteration paints the new objective
        # The page heard of it twice: the change, and the point where it took effect.
        wait_for(lambda: any(e.get("weights") for e in events if e["type"] == "painting.progress"), 10, "the point")
        changes = [e for e in events if e["type"] == "painting.weights"]
        assert len(changes) == 1 and changes[0]["params"]["style_weight"] == 50.0
        assert changes[0]["weight_changes"][0]["weights"]["style_weight"] == 50.0
        # The worker dies: the resumed run paints with the latest weights, from its last preview.
        (pid,) = studio.worker_pids()
        os.kill(pid, signal.SIGKILL)
        done = gallery.wait_status(painting["id"], {"done", "failed"}, 60)
    assert done["status"] == "done", done
    assert done["params"]["style_weight"] == 50.0 and done["weight_changes"][0]["iteration"] == at
    assert all(p["loss"]["style"] == 10.0 for p in done["progress"] if p["iteration"] >= at)


def test_weights_are_refused_to_strangers_after_the_end_and_out_of_range(studio, gallery_factory):
    gallery = gallery_factory(studio.url, studio_token=studio_process.TOKEN)
    painting = gallery.post_painting(LONG).json()
    url = f"/api/paintings/{painting['id']}/weights"
    with httpx.Client(base_url=gallery.url, timeout=30) as stranger:
        refused = stranger.post(url, json={"style_weight": 3})
        assert refused.status_code == 403 and "Only the browser" in refused.json()["detail"]
    for bad in ({}, {"style_weight": -1}, {"style_weight": "3"}, {"size": 32}, {"tv_weight": 1e9}, [1]):
        assert gallery.client.post(url, json=bad).status_code == 422, bad
    assert gallery.client.post("/api/paintings/" + "0" * 32 + "/weights", json={"tv_weight": 1}).status_code == 404
    assert gallery.client.post(f"/api/paintings/{painting['id']}/cancel").json()["status"] == "cancelled"
    late = gallery.client.post(url, json={"style_weight": 3})
    assert late.status_code == 409 and "has ended" in late.json()["detail"]
    kept = gallery.painting(painting["id"])
    assert kept["params"]["style_weight"] == 10.0 and kept["weight_changes"] == []


class AwayStudio:
    """Studio's /v1 in a function: one job that paints nothing; its weights route fails while `away`."""

    def __init__(self) -> None:
        self.away = threading.Event()
        self.submitted: list[dict] = []
        self.weights: list[dict] = []  # what Studio took
        self.tries = 0

    def __call__(self, request: httpx.Request) -> httpx.Response:
        path = request.url.path
        if request.method == "POST" and path == "/v1/jobs":
            if self.away.is_set():
                raise httpx.ConnectError("connection refused", request=request)
            params = next(p for p in request.content.split(b"\r\n\r\n")[1:] if p.startswith(b"{"))
            self.submitted.append(json.loads(params.split(b"\r\n")[0]))
            return httpx.Response(202, json={"id": "job-1", "state": "queued"})
        if path == "/v1/jobs/job-1/events":
            return httpx.Response(200, headers={"content-type": "text/event-stream"}, content=b": keep-alive\n\n")
        if request.method == "POST" and path == "/v1/jobs/job-1/weights":
            self.tries += 1
            if self.away.is_set():
                raise httpx.ConnectError("connection refused", request=request)
            self.weights.append(json.loads(request.content))
            return httpx.Response(202, json={"id": "job-1", "state": "running"})
        return httpx.Response(404, json={"detail": "no such thing"})


def test_a_change_reaches_a_studio_that_was_away_with_the_latest_weights_across_a_restart(gallery_factory):
    studio = AwayStudio()
    gallery = gallery_factory("http://studio.invalid", transport=httpx.MockTransport(studio))
    painting = gallery.post_painting(LONG).json()
    gallery.wait_status(painting["id"], {"running"}, 10)
    studio.away.set()
    url = f"/api/paintings/{painting['id']}/weights"
    assert gallery.client.post(url, json={"style_weight": 20}).status_code == 202  # stored: Studio's turn later
    assert gallery.client.post(url, json={"tv_weight": 0.5}).status_code == 202
    wait_for(lambda: studio.tries > 3, 10, "retrying")
    gallery.stop()
    with Catalog.open(None, gallery.settings.data_dir, scope="gallery", migrate=False) as catalog:
        assert catalog.remote_actions() == [("job-1", "weights")]  # the intent is stored, not only in memory
    again = gallery_factory("http://studio.invalid", transport=httpx.MockTransport(studio))
    studio.away.clear()
    latest = {"content_weight": 1.0, "style_weight": 20.0, "tv_weight": 0.5}
    wait_for(lambda: studio.weights == [latest], 10, "the latest weights, once")
    with Catalog.open(None, again.settings.data_dir, scope="gallery", migrate=False) as catalog:
        wait_for(lambda: catalog.remote_actions() == [], 10, "the intent dropped once Studio took it")
    assert [c["weights"] for c in again.painting(painting["id"])["weight_changes"]] == [
        {**DEFAULTS, "style_weight": 20.0},
        latest,
    ]


def test_a_painting_not_sent_yet_goes_to_studio_with_its_new_weights(gallery_factory):
    studio = AwayStudio()
    studio.away.set()
    gallery = gallery_factory("http://studio.invalid", transport=httpx.MockTransport(studio))
    painting = gallery.post_painting(LONG).json()
    gallery.wait_status(painting["id"], {"waiting_for_studio"}, 10)
    response = gallery.client.post(f"/api/paintings/{painting['id']}/weights", json={"content_weight": 4})
    assert response.status_code == 202 and response.json()["status"] == "waiting_for_studio"
    studio.away.clear()
    gallery.wait_status(painting["id"], {"running"}, 10)
    assert [p["content_weight"] for p in studio.submitted] == [4.0]
    assert studio.weights == []  # nothing else to tell
