"""Gallery under load, for real: many WebSocket clients and a burst of paintings, on loopback only.

Both tests drive the real Gallery (uvicorn in a thread), the real Studio and the real Pycasso worker
with tiny paintings, and are bounded in count (100 sockets, 20 paintings) and in time.
"""

from __future__ import annotations

import asyncio
import json
import time

import httpx
import pytest
from websockets.asyncio.client import connect

from painting.catalog import Catalog
from painting.records import Status

from support import png

pytestmark = pytest.mark.slow

CLIENTS = 100
PAINTINGS = 20
TERMINAL = {"painting.done", "painting.failed", "painting.cancelled", "painting.deleted"}


def ws_url(gallery) -> str:
    return gallery.url.replace("http", "ws", 1) + "/ws"


@pytest.fixture
def gallery(real_studio, gallery_factory):
    return gallery_factory(real_studio.url)


def hub_of(gallery):
    """The Hub of the Gallery app uvicorn serves (config.app is the FastAPI app given to it)."""
    return gallery.server.config.app.state.gallery.hub


async def _listen(ws, events: list[dict], painting_id: asyncio.Future) -> None:
    """Collect every event until the terminal event of the painting `painting_id` resolves to."""
    async for message in ws:
        event = json.loads(message)
        events.append(event)
        if event["type"] in TERMINAL and painting_id.done() and event["id"] == painting_id.result():
            return


async def _hundred_clients_see_one_painting(gallery, params: dict, timeout: float) -> tuple[str, list[list[dict]]]:
    deadline = time.monotonic() + timeout
    sockets = []
    try:
        for _ in range(CLIENTS):  # one by one: 100 handshakes at once only tests the listen backlog
            sockets.append(
                await connect(ws_url(gallery), origin=gallery.origin, open_timeout=30, close_timeout=5, max_queue=None)
            )
        hub = hub_of(gallery)
        while hub.connections < CLIENTS:  # every connection has its queue before the painting exists
            assert time.monotonic() < deadline, f"only {hub.connections} of {CLIENTS} sockets registered"
            await asyncio.sleep(0.05)
        assert hub.connections == CLIENTS

        painting_id: asyncio.Future = asyncio.get_running_loop().create_future()
        per_client: list[list[dict]] = [[] for _ in sockets]
        listeners = [
            asyncio.create_task(_listen(ws, events, painting_id))
            for ws, events in zip(sockets, per_client, strict=True)
        ]
        response = await asyncio.to_thread(gallery.post_painting, params)
        assert response.status_code == 201, response.text
        painting_id.set_result(response.json()["id"])
        done, pending = await asyncio.wait(listeners, timeout=max(1.0, deadline - time.monotonic()))
        for task in pending:
            task.cancel()
        unfinished = [i for i, t in enumerate(listeners) if t in pending]
        assert not unfinished, (
            f"{len(unfinished)} clients did not see the end, e.g. #{unfinished[0]}: "
            f"{[e['type'] for e in per_client[unfinished[0]]]}"
        )
        for task in done:
            task.result()  # a socket closed early (e.g. 'not keeping up') raises here
        return painting_id.result(), per_client
    finally:
        await asyncio.gather(*(ws.close() for ws in sockets), return_exceptions=True)


def test_a_hundred_websocket_clients_each_get_every_event_of_a_painting_once_and_in_order(gallery, wait_for):
    iterations = 5
    params = {"size": 40, "iterations": iterations, "preview_every": 1, "init": "content"}
    started = time.monotonic()
    painting_id, per_client = asyncio.run(_hundred_clients_see_one_painting(gallery, params, timeout=120))
    elapsed = time.monotonic() - started

    expected = [
        ("painting.created", None),
        *(("painting.progress", i) for i in range(1, iterations + 1)),
        ("painting.done", None),
    ]
    reference = [e for e in per_client[0] if e["id"] == painting_id]
    for n, events in enumerate(per_client):
        mine = [e for e in events if e["id"] == painting_id]
        assert len(mine) == len(events), f"client {n} got events of other paintings: {events}"
        # Studio may be slow to answer under load: a `waiting` notice is allowed, nothing else extra.
        seen = [
            (e["type"], e.get("iteration") if e["type"] == "painting.progress" else None)
            for e in mine
            if e["type"] != "painting.waiting"
        ]
        assert seen == expected, f"client {n}: {seen}"
        assert mine == reference, f"client {n} saw other event bodies than client 0"  # same JSON, same order
        texts = [json.dumps(e, sort_keys=True) for e in mine]
        assert len(set(texts)) == len(texts), f"client {n} got a duplicate event"

    progress = [e for e in reference if e["type"] == "painting.progress"]
    assert all(e["iterations"] == iterations for e in progress)
    # a preview at every iteration but the last (pycasso/worker.py sends the result instead of it)
    assert [bool(e["preview_image"]) for e in progress] == [True] * (iterations - 1) + [False]
    final = gallery.painting(painting_id)
    assert final["status"] == "done" and final["result_image"] == reference[-1]["result_image"]
    assert [p["iteration"] for p in final["progress"]] == list(range(1, iterations + 1))
    assert elapsed < 120
    wait_for(lambda: hub_of(gallery).connections == 0, 30, "every closed socket released by the hub")


async def _submit_all(gallery, count: int) -> list[httpx.Response]:
    style = png(32, 32, (20, 40, 220))
    params = json.dumps({"size": 32, "iterations": 2, "preview_every": 1, "init": "content"})

    async def one(client: httpx.AsyncClient, n: int) -> httpx.Response:
        content = png(40, 32, (10 * n % 256, 80, 40))  # distinct content per painting
        files = [("content", ("c.png", content, "image/png")), ("style", ("s.png", style, "image/png"))]
        return await client.post("/api/paintings", files=files, data={"params": params})

    limits = httpx.Limits(max_connections=count, max_keepalive_connections=count)
    async with httpx.AsyncClient(base_url=gallery.url, timeout=60, limits=limits) as client:
        return await asyncio.gather(*(one(client, n) for n in range(count)))


async def _burst(gallery, count: int, timeout: float) -> tuple[list[httpx.Response], list[dict]]:
    """Submit `count` paintings at once while one WebSocket client watches; its events."""
    events: list[dict] = []
    async with connect(ws_url(gallery), origin=gallery.origin, open_timeout=30, max_queue=None) as ws:
        while hub_of(gallery).connections < 1:
            await asyncio.sleep(0.05)
        responses = await _submit_all(gallery, count)
        ids = {r.json()["id"] for r in responses if r.status_code == 201}
        ended: set[str] = set()

        async def watch() -> None:
            async for message in ws:
                event = json.loads(message)
                events.append(event)
                if event["type"] in TERMINAL:
                    ended.add(event["id"])
                    if ids <= ended:
                        return

        try:
            await asyncio.wait_for(watch(), timeout)
        except TimeoutError:
            pytest.fail(f"only {len(ended & ids)} of {len(ids)} paintings ended within {timeout} s")
    return responses, events


def test_twenty_paintings_submitted_at_once_all_get_done_once_with_one_studio_job_each(real_studio, gallery):
    with Catalog.open(None, real_studio.data_dir, scope="studio", migrate=False) as studio_jobs:
        studio_before = studio_jobs.count()

    started = time.monotonic()
    responses, events = asyncio.run(_burst(gallery, PAINTINGS, timeout=300))
    elapsed = time.monotonic() - started

    assert [r.status_code for r in responses] == [201] * PAINTINGS, [r.text for r in responses if r.status_code != 201]
    ids = [r.json()["id"] for r in responses]
    assert len(set(ids)) == PAINTINGS

    # The WebSocket saw each painting created once and done once, nothing failed.
    for kind in ("painting.created", "painting.done"):
        seen = [e["id"] for e in events if e["type"] == kind]
        assert sorted(seen) == sorted(ids), f"{kind}: {len(seen)} events for {len(set(seen))} paintings"
    assert not [e for e in events if e["type"] in {"painting.failed", "painting.cancelled", "painting.deleted"}]

    # The API: exactly these 20, each done with a result image that can be fetched.
    listing = gallery.client.get("/api/paintings", params={"limit": 50}).json()
    assert listing["total"] == PAINTINGS and len(listing["items"]) == PAINTINGS
    assert sorted(p["id"] for p in listing["items"]) == sorted(ids)
    for painting_id in ids:
        painting = gallery.painting(painting_id)
        assert painting["status"] == "done" and painting["result_image"], painting
        assert [p["iteration"] for p in painting["progress"]] == [1, 2]
        image = gallery.client.get(f"/api/images/{painting['result_image']}")
        assert image.status_code == 200 and image.content[:8] == b"\x89PNG\r\n\x1a\n"

    # Gallery's side: 20 distinct Studio job ids, stored with the painting.
    with Catalog.open(None, gallery.settings.data_dir, scope="gallery", migrate=False) as catalog:
        remote = {painting_id: catalog.get(painting_id).remote_id for painting_id in ids}
    assert None not in remote.values() and len(set(remote.values())) == PAINTINGS

    # Studio's side: exactly 20 new jobs, one per painting (keyed by the painting id), all done.
    with Catalog.open(None, real_studio.data_dir, scope="studio", migrate=False) as studio_jobs:
        assert studio_jobs.count() - studio_before == PAINTINGS
        for painting_id, job_id in remote.items():
            job = studio_jobs.find_by_idempotency_key(painting_id)
            assert job is not None and job.id == job_id and job.status == Status.DONE, (painting_id, job)
    for job_id in remote.values():
        described = real_studio.client.get(f"/v1/jobs/{job_id}")
        assert described.status_code == 200 and described.json()["state"] == "done", described.text
    assert elapsed < 300
