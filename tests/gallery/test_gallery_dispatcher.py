"""Studio faults, driven through `httpx.MockTransport`: Gallery waits, retries, and loses nothing."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import AsyncIterator

import httpx
import pytest

from gallery.dispatcher import backoff_s

PREVIEW = "p" * 64
RESULT = "r" * 64


def sse(event_id: int, kind: str, data: dict) -> bytes:
    return f"id: {event_id}\nevent: {kind}\ndata: {json.dumps(data)}\n\n".encode()


def progress(i: int) -> bytes:
    data = {
        "job": "job-1",
        "iteration": i,
        "iterations": 3,
        "evaluations": i + 1,
        "elapsed_s": 0.1 * i,
        "loss": {"total": 10.0 / i, "content": 1.0, "style": 2.0, "tv": 0.5},
        "preview_image": PREVIEW if i == 2 else None,
    }
    return sse(i, "progress", data)


EVENTS = [progress(1), progress(2), progress(3), sse(4, "done", {"job": "job-1", "result_image": RESULT})]


class BrokenStream(httpx.AsyncByteStream):
    """Some events, then the connection resets."""

    def __init__(self, chunks: list[bytes]) -> None:
        self.chunks = chunks

    async def __aiter__(self) -> AsyncIterator[bytes]:
        for chunk in self.chunks:
            yield chunk
        raise httpx.ReadError("connection reset by peer")


class FakeStudio:
    """Studio's /v1 API in a function; `fault` answers every call until `released` is set."""

    def __init__(self, png: bytes, fault: str | None = None, reset_after: int | None = None) -> None:
        self.png = png
        self.fault = fault
        self.reset_after = reset_after
        self.released = threading.Event()
        if fault is None:
            self.released.set()
        self.keys: list[str] = []
        self.cursors: list[str | None] = []
        self.cancelled: list[str] = []
        self.forgotten: list[str] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        assert request.headers["authorization"].startswith("Bearer ")
        if not self.released.is_set():
            if self.fault == "connect":
                raise httpx.ConnectError("connection refused", request=request)
            if self.fault == "timeout":
                raise httpx.ReadTimeout("timed out", request=request)
            return httpx.Response(503, json={"detail": "not ready"})
        path = request.url.path
        if request.method == "POST" and path == "/v1/jobs":
            self.keys.append(request.headers["idempotency-key"])
            return httpx.Response(202, json={"id": "job-1", "state": "queued"})
        if path == "/v1/jobs/job-1/events":
            cursor = request.headers.get("last-event-id")
            self.cursors.append(cursor)
            after = int(cursor) if cursor else 0
            chunks = EVENTS[after:]
            if self.reset_after is not None and len(self.cursors) == 1:
                return httpx.Response(
                    200, headers={"content-type": "text/event-stream"}, stream=BrokenStream(chunks[: self.reset_after])
                )
            return httpx.Response(200, headers={"content-type": "text/event-stream"}, content=b"".join(chunks))
        if request.method == "POST" and path == "/v1/jobs/job-1/cancel":
            self.cancelled.append("job-1")
            return httpx.Response(202, json={"id": "job-1", "state": "cancelled"})
        if request.method == "DELETE" and path == "/v1/jobs/job-1":
            self.forgotten.append("job-1")
            return httpx.Response(204)
        if path.startswith("/v1/images/"):
            return httpx.Response(200, content=self.png, headers={"content-type": "image/png"})
        return httpx.Response(404, json={"detail": "no such thing"})


def _finished_cleanly(gallery, studio: FakeStudio, painting_id: str) -> None:
    done = gallery.wait_status(painting_id, {"done"}, 30)
    assert [p["iteration"] for p in done["progress"]] == [1, 2, 3]
    # Done: the result replaces the last preview, which is then no longer kept (gc collects it).
    assert done["preview_image"] is None and done["result_image"] is not None and done["error"] is None
    assert studio.keys and set(studio.keys) == {painting_id}  # every send carried the painting id
    result = gallery.client.get(f"/api/images/{done['result_image']}")
    assert result.status_code == 200 and result.content == studio.png


@pytest.mark.parametrize("fault", ["connect", "timeout", "503"])
def test_studio_away_the_painting_waits_then_finishes(gallery_factory, images, fault):
    studio = FakeStudio(images["png"](16, 16), fault=fault)
    gallery = gallery_factory("http://studio.invalid", transport=httpx.MockTransport(studio))
    created = gallery.post_painting({"size": 48, "iterations": 3}).json()
    waiting = gallery.wait_status(created["id"], {"waiting_for_studio"}, 10)
    assert waiting["error"]  # the status says why
    studio.released.set()
    _finished_cleanly(gallery, studio, created["id"])
    assert len(studio.keys) == 1


def test_a_reset_event_stream_resumes_from_the_last_event_id(gallery_factory, images):
    studio = FakeStudio(images["png"](16, 16), reset_after=2)
    gallery = gallery_factory("http://studio.invalid", transport=httpx.MockTransport(studio))
    created = gallery.post_painting({"size": 48, "iterations": 3}).json()
    _finished_cleanly(gallery, studio, created["id"])
    assert studio.cursors == [None, "2"] and studio.keys == [created["id"]]


def test_a_job_studio_lost_is_sent_again(gallery_factory, images):
    studio = FakeStudio(images["png"](16, 16))
    lost = {"count": 0}

    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/v1/jobs/job-1/events" and lost["count"] == 0:
            lost["count"] += 1
            return httpx.Response(404, json={"detail": "no job with that id"})
        return studio(request)

    gallery = gallery_factory("http://studio.invalid", transport=httpx.MockTransport(handler))
    created = gallery.post_painting({"size": 48, "iterations": 3}).json()
    _finished_cleanly(gallery, studio, created["id"])
    assert studio.keys == [created["id"]] * 2


def test_studio_refusing_the_painting_fails_it(gallery_factory, images):
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(422, json={"detail": "params: size too big for this GPU"})

    gallery = gallery_factory("http://studio.invalid", transport=httpx.MockTransport(handler))
    created = gallery.post_painting({"size": 48, "iterations": 3}).json()
    failed = gallery.wait_status(created["id"], {"failed"}, 10)
    assert "size too big" in failed["error"]


@pytest.mark.parametrize("status", [401, 403])
def test_a_refused_token_makes_the_painting_wait_not_fail(gallery_factory, images, status):
    studio = FakeStudio(images["png"](16, 16))
    wrong_token = threading.Event()
    wrong_token.set()

    def handler(request: httpx.Request) -> httpx.Response:
        if wrong_token.is_set():
            return httpx.Response(status, json={"detail": "missing or wrong bearer token"})
        return studio(request)

    gallery = gallery_factory("http://studio.invalid", transport=httpx.MockTransport(handler))
    created = gallery.post_painting({"size": 48, "iterations": 3}).json()
    waiting = gallery.wait_status(created["id"], {"waiting_for_studio"}, 10)
    assert "token" in waiting["error"] and "GALLERY_STUDIO_TOKEN" in waiting["error"]
    time.sleep(0.5)  # several retries, all refused: still waiting, not failed
    assert gallery.painting(created["id"])["status"] == "waiting_for_studio"
    wrong_token.clear()  # the operator fixed the token
    _finished_cleanly(gallery, studio, created["id"])


def test_cancelling_a_running_painting_cancels_its_studio_job(gallery_factory, images):
    studio = FakeStudio(images["png"](16, 16))
    hold = threading.Event()

    async def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/v1/jobs/job-1/events":
            while not hold.is_set():  # a job that makes no progress yet
                await asyncio.sleep(0.02)
            return httpx.Response(200, headers={"content-type": "text/event-stream"}, content=b": keep-alive\n\n")
        return studio(request)

    gallery = gallery_factory("http://studio.invalid", transport=httpx.MockTransport(handler))
    created = gallery.post_painting({"size": 48, "iterations": 3}).json()
    gallery.wait_status(created["id"], {"running"}, 10)
    assert gallery.client.post(f"/api/paintings/{created['id']}/cancel").json()["status"] == "cancelled"
    hold.set()  # the stream now answers: the dispatcher sees the painting ended and lets go of it
    deadline = time.monotonic() + 5
    while not studio.cancelled and time.monotonic() < deadline:
        time.sleep(0.05)
    assert studio.cancelled == ["job-1"]
    time.sleep(0.3)  # whatever the stream still brings must not revive it
    after = gallery.painting(created["id"])
    assert (after["status"], after["result_image"]) == ("cancelled", None)
    assert studio.keys == [created["id"]]  # sent once, never again after the cancel


def test_backoff_is_capped_exponential_with_jitter():
    assert [backoff_s(n, initial_s=0.5, max_s=30, rng=lambda: 1.0) for n in range(8)] == [0.5, 1, 2, 4, 8, 16, 30, 30]
    assert backoff_s(3, initial_s=0.5, max_s=30, rng=lambda: 0.25) == 1.0
    assert backoff_s(10_000, initial_s=0.5, max_s=30, rng=lambda: 1.0) == 30


def test_deleting_a_running_painting_has_studio_forget_its_job(gallery_factory, images):
    studio = FakeStudio(images["png"](16, 16))

    async def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/v1/jobs/job-1/events":
            await asyncio.sleep(0.5)
            return httpx.Response(200, headers={"content-type": "text/event-stream"}, content=b": keep-alive\n\n")
        return studio(request)

    gallery = gallery_factory("http://studio.invalid", transport=httpx.MockTransport(handler))
    created = gallery.post_painting({"size": 48, "iterations": 3}).json()
    gallery.wait_status(created["id"], {"running"}, 10)
    assert gallery.client.delete(f"/api/paintings/{created['id']}").status_code == 204
    deadline = time.monotonic() + 5
    while not studio.forgotten and time.monotonic() < deadline:
        time.sleep(0.05)
    assert studio.forgotten == ["job-1"] and studio.cancelled == []  # stopped and deleted there too
    assert gallery.client.get(f"/api/paintings/{created['id']}").status_code == 404
    assert studio.keys == [created["id"]]  # not sent again after the delete
