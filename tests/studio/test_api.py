"""Studio's HTTP API against a real Studio process whose worker is the fake one (fast)."""

from __future__ import annotations

import hashlib
import struct
import sys
import zlib

import httpx

from studio_process import FAKE_WORKER, TOKEN, read_events
from support import png

MULTIPART = {"Content-Type": "multipart/form-data; boundary=b"}


def _stored_files(studio) -> set[str]:
    root = studio.data_dir / "images"
    return {p.name for p in root.rglob("*") if p.is_file()} if root.exists() else set()


def _bomb_png(width: int, height: int) -> bytes:
    """A PNG header declaring width x height pixels, with next to no pixel data behind it."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 16)) + chunk(b"IEND", b"")


def test_job_runs_to_done_through_the_event_stream(fake_studio):
    response = fake_studio.post_job({"size": 48, "iterations": 6, "preview_every": 2})
    assert response.status_code == 202, response.text
    job = response.json()
    assert job["state"] in {"queued", "running"} and job["iterations"] == 6
    events = read_events(fake_studio.client, job["id"])
    assert [e["event"] for e in events] == ["progress"] * 6 + ["done"]
    assert [int(e["id"]) for e in events] == [1, 2, 3, 4, 5, 6, 7]
    assert events[1]["data"]["preview_image"] and events[0]["data"]["preview_image"] is None
    final = fake_studio.client.get(f"/v1/jobs/{job['id']}").json()
    assert final["state"] == "done" and final["iteration"] == 6 and final["loss"]["total"] > 0
    assert final["result_image"] == events[-1]["data"]["result_image"]
    image = fake_studio.client.get(f"/v1/images/{final['result_image']}")
    assert image.status_code == 200 and image.headers["content-type"] == "image/png"
    assert image.content[:8] == b"\x89PNG\r\n\x1a\n"


def test_last_event_id_replays_only_what_was_missed(fake_studio):
    job = fake_studio.post_job({"size": 48, "iterations": 8, "preview_every": 0}).json()
    first = read_events(fake_studio.client, job["id"], stop_after=lambda e: int(e["id"]) >= 3)
    assert [int(e["id"]) for e in first] == [1, 2, 3]
    rest = read_events(fake_studio.client, job["id"], last_event_id=first[-1]["id"])
    assert [int(e["id"]) for e in rest] == [4, 5, 6, 7, 8, 9]
    assert rest[-1]["event"] == "done"
    again = read_events(fake_studio.client, job["id"], last_event_id="9")  # finished, nothing missed
    assert again == []


def test_repeated_idempotency_key_returns_the_same_job(fake_studio):
    a = fake_studio.post_job({"size": 48, "iterations": 2}, key="painting-42")
    b = fake_studio.post_job({"size": 48, "iterations": 2}, key="painting-42")
    assert a.status_code == b.status_code == 202
    assert a.json()["id"] == b.json()["id"]
    c = fake_studio.post_job({"size": 48, "iterations": 2}, key="painting-43")
    assert c.json()["id"] != a.json()["id"]


def test_cancel_a_running_job(fake_studio):
    job = fake_studio.post_job({"size": 48, "iterations": 2000, "preview_every": 0}).json()
    first = read_events(fake_studio.client, job["id"], stop_after=lambda e: True)
    response = fake_studio.client.post(f"/v1/jobs/{job['id']}/cancel")
    assert response.status_code == 202
    events = read_events(fake_studio.client, job["id"], last_event_id=first[-1]["id"], timeout=10)
    assert events[-1]["event"] == "cancelled"
    assert fake_studio.client.get(f"/v1/jobs/{job['id']}").json()["state"] == "cancelled"
    assert fake_studio.client.post(f"/v1/jobs/{job['id']}/cancel").json()["state"] == "cancelled"


def test_forgetting_a_job_deletes_it_and_its_images(fake_studio):
    content = png(50, 40, (3, 141, 59))
    job = fake_studio.post_job({"size": 48, "iterations": 2000, "preview_every": 0}, content=content).json()
    read_events(fake_studio.client, job["id"], stop_after=lambda e: True)  # running
    content_id = hashlib.sha256(content).hexdigest()
    assert fake_studio.client.get(f"/v1/images/{content_id}").status_code == 200
    assert fake_studio.client.delete(f"/v1/jobs/{job['id']}").status_code == 204
    assert fake_studio.client.get(f"/v1/jobs/{job['id']}").status_code == 404
    assert fake_studio.client.delete(f"/v1/jobs/{job['id']}").status_code == 404
    # The photo is gone at once once nothing refers to it (the grace period protects only images
    # stored moments ago; this module's Studio uses none).
    assert fake_studio.client.get(f"/v1/images/{content_id}").status_code == 404
    assert not any(p.name == content_id for p in (fake_studio.data_dir / "images").rglob("*"))


def test_auth_failures(fake_studio):
    bare = httpx.Client(base_url=fake_studio.url)
    assert bare.get("/v1/jobs/" + "0" * 32).status_code == 401
    wrong = bare.get("/v1/jobs/" + "0" * 32, headers={"Authorization": "Bearer " + TOKEN[:-1] + "x"})
    assert wrong.status_code == 401 and wrong.headers["www-authenticate"] == "Bearer"
    assert bare.get("/v1/jobs/" + "0" * 32, headers={"Authorization": TOKEN}).status_code == 401
    assert bare.post("/v1/jobs", files={"content": ("c.png", png(8, 8))}).status_code == 401
    assert bare.get("/health/live").status_code == 200  # health needs no token
    ready = bare.get("/health/ready").json()
    assert ready == {"status": "ready"}  # and says nothing about the configuration
    bare.close()


def test_unknown_job_and_image_are_404(fake_studio):
    assert fake_studio.client.get("/v1/jobs/" + "0" * 32).status_code == 404
    assert fake_studio.client.get("/v1/jobs/not-an-id").status_code == 404
    assert fake_studio.client.delete("/v1/jobs/" + "0" * 32).status_code == 404
    assert fake_studio.client.post("/v1/jobs/" + "0" * 32 + "/cancel").status_code == 404
    assert fake_studio.client.get("/v1/jobs/" + "0" * 32 + "/events").status_code == 404
    assert fake_studio.client.get("/v1/images/" + "0" * 64).status_code == 404
    assert fake_studio.client.get("/v1/images/..%2f..%2fetc%2fpasswd").status_code == 404


def test_bad_requests_store_nothing(fake_studio):
    before = _stored_files(fake_studio)
    client = fake_studio.client
    good = ("g.png", png(40, 30), "image/png")
    style = ("s.png", png(30, 30), "image/png")
    cases = [
        ({"style": style}, {"params": "{}"}, 422, "content"),
        ({"content": good}, {"params": "{}"}, 422, "style"),
        ({"content": ("t.png", b"just some text", "image/png"), "style": style}, {}, 415, "content"),
        ({"content": ("b.png", _bomb_png(5000, 5000), "image/png"), "style": style}, {}, 413, "megapixels"),
        ({"content": good, "style": style}, {"params": '{"size": 1}'}, 422, "size"),
        ({"content": good, "style": style}, {"params": '{"colour": "red"}'}, 422, "colour"),
        ({"content": good, "style": style}, {"params": "not json"}, 422, "params"),
    ]
    for files, data, status, word in cases:
        response = client.post("/v1/jobs", files=files, data=data)
        assert response.status_code == status, (files.keys(), data, response.text)
        assert word in response.json()["detail"], response.text
    too_big = client.post("/v1/jobs", content=b"x" * 3_000_000, headers=MULTIPART)
    assert too_big.status_code == 413
    assert _stored_files(fake_studio) == before


def test_health_ready_and_live(fake_studio):
    assert fake_studio.client.get("/health/live").json() == {"status": "live"}
    assert fake_studio.client.get("/health/ready").status_code == 200


def test_chunked_body_over_the_cap_is_413(fake_studio):
    """No Content-Length: the body is counted as it streams in, and refused once over the cap."""
    before = _stored_files(fake_studio)

    def chunks():
        yield b'--b\r\nContent-Disposition: form-data; name="content"; filename="c.png"\r\n\r\n'
        for _ in range(40):
            yield b"y" * 100_000

    response = fake_studio.client.post("/v1/jobs", content=chunks(), headers=MULTIPART)
    assert response.status_code == 413
    assert _stored_files(fake_studio) == before


def test_a_fast_job_is_one_step_and_its_status_names_the_engines(fake_studio):
    job = fake_studio.post_job({"engine": "fast", "size": 48, "strength": 0.5}).json()
    assert job["iterations"] == 1 and job["params"] == {
        "engine": "fast",
        "size": 48,
        "strength": 0.5,
        "style_blend": None,
        "preserve_colors": False,
        "builtin_styles": None,
    }
    events = read_events(fake_studio.client, job["id"])
    assert [e["event"] for e in events] == ["progress", "done"]
    workers = fake_studio.client.get("/v1/status").json()["workers"]
    assert workers[0]["engines"] == {"gatys": "ready", "fast": "ready"}


def test_a_job_for_an_engine_no_worker_has_is_refused_and_stores_nothing(studio_factory):
    studio = studio_factory([sys.executable, FAKE_WORKER], FAKE_FAST="onnxruntime is not installed")
    studio.wait_ready(30)
    refused = studio.post_job({"engine": "fast", "size": 48})
    assert refused.status_code == 422
    assert refused.json()["detail"] == (
        "params: engine: this Studio cannot paint with fast: onnxruntime is not installed"
    )
    assert not [p for p in (studio.data_dir / "images").rglob("*") if p.is_file()]
    assert studio.post_job({"size": 48, "iterations": 2}).status_code == 202  # Gatys still paints
