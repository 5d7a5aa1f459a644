"""Several workers per Studio: each on its own device (or its share of the CPU), two jobs painting at
once, and one worker's crash leaving the other's job alone. Studio runs for real with fake workers."""

from __future__ import annotations

import os
import signal
import sys

from studio_process import FAKE_WORKER, StudioProcess


def status(studio: StudioProcess) -> dict:
    response = studio.client.get("/v1/status")
    assert response.status_code == 200, response.text
    return response.json()


def job(studio: StudioProcess, job_id: str) -> dict:
    return studio.client.get(f"/v1/jobs/{job_id}").json()


def test_two_workers_paint_two_jobs_at_once_and_a_crash_touches_only_its_own(studio_factory):
    studio = studio_factory([sys.executable, FAKE_WORKER], STUDIO_WORKERS="2", STUDIO_DEVICES='["0", "1"]')
    studio.wait(lambda: all(w["ready"] for w in status(studio)["workers"]), 30, "both workers ready")
    assert sorted(w["device"] for w in status(studio)["workers"]) == ["0", "1"]  # CUDA_VISIBLE_DEVICES each
    first, second = (studio.post_job({"size": 48, "iterations": 300, "preview_every": 5}).json() for _ in range(2))
    studio.wait(lambda: status(studio)["running"] == 2, 10, "both painting at once")
    studio.wait(lambda: job(studio, first["id"])["iteration"] >= 10, 20, "painting")
    (victim,) = [w for w in status(studio)["workers"] if w["job"] == first["id"]]
    os.kill(victim["pid"], signal.SIGKILL)
    studio.wait(lambda: job(studio, second["id"])["state"] == "done", 30, "the other job done")
    studio.wait(lambda: job(studio, first["id"])["state"] == "done", 30, "the crashed one resumed and done")
    assert (job(studio, first["id"])["attempts"], job(studio, second["id"])["attempts"]) == (2, 1)
    assert status(studio)["queued"] == 0 and status(studio)["memory_budget_bytes"] > 0


def test_cpu_workers_share_the_cores_out(studio_factory):
    studio = studio_factory([sys.executable, FAKE_WORKER], STUDIO_WORKERS="2")
    studio.wait(lambda: all(w["ready"] for w in status(studio)["workers"]), 30, "both workers ready")
    share = max(1, (os.cpu_count() or 1) // 2)
    assert [w["device"] for w in status(studio)["workers"]] == [f"CPU ({share} threads)"] * 2
    assert studio.client.get("/v1/status", headers={"Authorization": "Bearer wrong"}).status_code == 401
