"""Studio with the real `python -m pycasso` worker (TensorFlow) on tiny images."""

from __future__ import annotations

import io
import os
import signal
import sys
import time
from collections.abc import Iterator

import pytest
from PIL import Image

from studio_process import StudioProcess, read_events

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def studio(tmp_path_factory) -> Iterator[StudioProcess]:
    studio = StudioProcess(tmp_path_factory.mktemp("real") / "data", [sys.executable, "-m", "pycasso"])
    studio.wait_ready(180)
    yield studio
    studio.stop()


def test_the_idle_worker_times_itself_and_studio_then_estimates_a_painting(studio):
    def timing() -> dict | None:
        return studio.client.get("/v1/status").json()["workers"][0]["calibration"]

    studio.wait(lambda: timing() is not None, 120, "calibrated")
    calibration = timing()
    assert calibration is not None and calibration["eval_pixel_s"] > 0 and calibration["fast_s"] is not None
    small = {"params": {"size": 48, "iterations": 4}, "width": 64, "height": 48}
    answer = studio.client.post("/v1/estimate", json=small)
    body = answer.json()
    assert answer.status_code == 200 and 0 < body["seconds"] < 60 and body["fits"] and body["largest_size"] > 48, body
    memory = studio.client.get("/v1/status").json()["workers"][0]["memory"]
    assert body["peak_bytes"] > memory["base_bytes"] > 100 * 2**20  # the worker's own memory, plus the painting's


def test_a_job_from_post_to_done_through_the_event_stream(studio):
    job = studio.post_job({"size": 48, "iterations": 4, "preview_every": 2, "init": "content"}, key="real-1").json()
    assert studio.post_job({"size": 48, "iterations": 4}, key="real-1").json()["id"] == job["id"]
    first = read_events(studio.client, job["id"], stop_after=lambda e: int(e["id"]) >= 2)
    rest = read_events(studio.client, job["id"], last_event_id=first[-1]["id"])
    events = first + rest
    assert [e["event"] for e in events] == ["progress"] * 4 + ["done"]
    assert [int(e["id"]) for e in events] == [1, 2, 3, 4, 5]
    assert events[1]["data"]["preview_image"] is not None
    assert all(e["data"]["loss"]["total"] > 0 for e in events[:4])
    final = studio.client.get(f"/v1/jobs/{job['id']}").json()
    assert final["state"] == "done" and final["result_image"] == events[-1]["data"]["result_image"]
    image = Image.open(io.BytesIO(studio.client.get(f"/v1/images/{final['result_image']}").content))
    assert (image.format, image.size) == ("PNG", (64, 48))


def test_cancel_reaches_the_worker(studio):
    job = studio.post_job({"size": 96, "iterations": 1000, "preview_every": 0}).json()
    first = read_events(studio.client, job["id"], stop_after=lambda e: True)
    started = time.monotonic()
    assert studio.client.post(f"/v1/jobs/{job['id']}/cancel").status_code == 202
    events = read_events(studio.client, job["id"], last_event_id=first[-1]["id"], timeout=30)
    assert events[-1]["event"] == "cancelled" and time.monotonic() - started < 10
    assert studio.client.get(f"/v1/jobs/{job['id']}").json()["state"] == "cancelled"


def test_sigkilled_worker_is_restarted_and_the_job_resumes_from_its_preview(studio):
    job = studio.post_job({"size": 48, "iterations": 16, "preview_every": 4}).json()
    seen = read_events(studio.client, job["id"], stop_after=lambda e: int(e["id"]) >= 5)
    (pid,) = studio.worker_pids()
    os.kill(pid, signal.SIGKILL)
    rest = read_events(studio.client, job["id"], last_event_id=seen[-1]["id"], timeout=180)
    assert rest[-1]["event"] == "done", rest[-1]
    final = studio.client.get(f"/v1/jobs/{job['id']}").json()
    assert final["state"] == "done" and final["attempts"] == 2 and final["iteration"] == 16
    (new_pid,) = studio.worker_pids()
    assert new_pid != pid
    studio.wait_ready(10)
