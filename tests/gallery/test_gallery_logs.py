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
