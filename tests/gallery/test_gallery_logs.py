"""Gallery's log lines about a painting carry its id and its Studio job's, as text or JSON."""

from __future__ import annotations

import json
import logging

import httpx

from httpapi.logs import ContextIds, JsonFormatter, TextFormatter


def test_a_paintings_lines_carry_its_id_and_its_jobs(gallery_factory, caplog):
    async def studio(request: httpx.Request) -> httpx.Response:
        if request.method == "POST" and request.url.path == "/v1/jobs":
            return httpx.Response(202, json={"id": "job-7", "state": "queued"})
        if request.url.path == "/v1/jobs/job-7/events":
            body = b'id: 1\nevent: failed\ndata: {"job": "job-7", "error": "boom"}\n\n'
            return httpx.Response(200, headers={"content-type": "text/event-stream"}, content=body)
        return httpx.Response(404, json={"detail": "no"})

    handler = caplog.handler
    handler.addFilter(ContextIds())
    caplog.set_level(logging.INFO, logger="gallery.dispatcher")
    gallery = gallery_factory("http://studio.invalid", transport=httpx.MockTransport(studio))
    painting = gallery.post_painting({"size": 48, "iterations": 3}).json()
    gallery.wait_status(painting["id"], {"failed"}, 10)
    mine = [r for r in caplog.records if getattr(r, "painting", None) == painting["id"]]
    assert [r.getMessage() for r in mine] == ["sent to Studio as job job-7", "ended: failed (boom)"]
    assert mine[-1].job == "job-7"
    as_json = json.loads(JsonFormatter("gallery").format(mine[-1]))
    assert (as_json["painting"], as_json["job"], as_json["level"], as_json["service"]) == (
        painting["id"],
        "job-7",
        "info",
        "gallery",
    )
    assert TextFormatter("gallery").format(mine[-1]).endswith(f"[painting={painting['id']} job=job-7]")


def test_with_a_pool_the_lines_name_the_studio_of_the_job_too(gallery_factory, caplog):
    """Two Studios (one answered by a mock transport per host): the busy one is passed over, and the
    painting's lines carry the name of the one it went to."""

    async def studios(request: httpx.Request) -> httpx.Response:
        host, path = request.url.host, request.url.path
        if path == "/v1/status":
            busy = 5 if host == "busy.invalid" else 0
            return httpx.Response(
                200,
                json={
                    "ready": True,
                    "workers_ready": 1,
                    "running": 1 if busy else 0,
                    "queued": busy,
                    "engines": {"gatys": "ready"},
                    "models": [],
                },
            )
        if path == "/v1/estimate":
            return httpx.Response(200, json={"seconds": 2.0, "fits": True, "largest_size": 2048})
        if request.method == "POST" and path == "/v1/jobs":
            return httpx.Response(202, json={"id": f"job-{host[:4]}", "state": "queued"})
        if path.endswith("/events"):
            body = b'id: 1\nevent: failed\ndata: {"error": "boom"}\n\n'
            return httpx.Response(200, headers={"content-type": "text/event-stream"}, content=body)
        return httpx.Response(404, json={"detail": "no"})

    caplog.handler.addFilter(ContextIds())
    caplog.set_level(logging.INFO, logger="gallery.dispatcher")
    pool = [{"url": "http://busy.invalid", "name": "busy"}, {"url": "http://idle.invalid", "name": "idle"}]
    gallery = gallery_factory("http://unused.invalid", transport=httpx.MockTransport(studios), studios=pool)
    painting = gallery.post_painting({"size": 48, "iterations": 3}).json()
    gallery.wait_status(painting["id"], {"failed"}, 10)
    mine = [r for r in caplog.records if getattr(r, "painting", None) == painting["id"]]
    assert [r.getMessage() for r in mine] == ["sent to Studio idle as job job-idle", "ended: failed (boom)"]
    assert (mine[-1].job, mine[-1].studio) == ("job-idle", "idle")
    assert json.loads(JsonFormatter("gallery").format(mine[-1]))["studio"] == "idle"
    assert TextFormatter("gallery").format(mine[-1]).endswith(f"[painting={painting['id']} job=job-idle studio=idle]")
