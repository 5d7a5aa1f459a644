"""The supervisor's fault handling, with Studio for real and the fake worker (plus Jobs and JobRunner in-process)."""

from __future__ import annotations

import os
import signal
import sys

from painting.catalog import Catalog
from painting.images import ImageStore
from painting.progress import ProgressPoint
from painting.records import Status
from studio.events import JobEvents
from studio.jobs import Jobs
from studio.runner import JobRunner

from studio_process import FAKE_WORKER, read_events
from support import png


def _kill_worker_after(studio, job_id: str, iteration: int) -> list[dict]:
    """Follow a job until `iteration`, then SIGKILL its worker; the events read so far."""
    events = read_events(studio.client, job_id, stop_after=lambda e: int(e["id"]) >= iteration)
    (pid,) = studio.worker_pids()
    os.kill(pid, signal.SIGKILL)
    return events


def test_worker_crashing_at_start_stops_restarts_and_reports_not_ready(studio_factory):
    studio = studio_factory([sys.executable, FAKE_WORKER, "crash_at_start"], STUDIO_MAX_RESTARTS="3")
    studio.wait(lambda: "restarts stopped" in studio.client.get("/health/ready").text, 30, "given up")
    response = studio.client.get("/health/ready")
    assert response.status_code == 503
    reason = response.json()["reason"]
    assert "4 times" in reason and "exit status 1" in reason
    assert studio.worker_pids() == []  # nothing left running, no zombie either
    assert studio.client.get("/health/live").status_code == 200


def test_killed_worker_is_restarted_and_the_job_resumes_from_its_preview(studio_factory):
    studio = studio_factory([sys.executable, FAKE_WORKER])
    studio.wait_ready(30)
    preview = png(64, 48, (1, 2, 3))
    job = studio.post_job({"size": 48, "iterations": 60, "preview_every": 5}, content=preview).json()
    seen = _kill_worker_after(studio, job["id"], 10)
    rest = read_events(studio.client, job["id"], last_event_id=seen[-1]["id"])
    ids = [int(e["id"]) for e in seen + rest]
    assert ids == sorted(set(ids)) and rest[-1]["event"] == "done"  # nothing twice, in order
    final = studio.client.get(f"/v1/jobs/{job['id']}").json()
    assert final["state"] == "done" and final["attempts"] == 2 and final["iteration"] == 60
    # The fake worker answers a resumed run with its init image: the preview went back in.
    assert final["result_image"] == seen[-1]["data"]["preview_image"] is not None
    assert studio.worker_pids() != []


def test_a_job_whose_worker_dies_twice_fails(studio_factory):
    studio = studio_factory([sys.executable, FAKE_WORKER])
    studio.wait_ready(30)
    job = studio.post_job({"size": 48, "iterations": 400, "preview_every": 5}).json()
    _kill_worker_after(studio, job["id"], 6)
    studio.wait_ready(30)
    studio.wait(lambda: studio.client.get(f"/v1/jobs/{job['id']}").json()["iteration"] > 10, 30, "resumed")
    (pid,) = studio.worker_pids()
    os.kill(pid, signal.SIGKILL)
    studio.wait(lambda: studio.client.get(f"/v1/jobs/{job['id']}").json()["state"] == "failed", 30, "failed")
    final = studio.client.get(f"/v1/jobs/{job['id']}").json()
    assert final["error"] == "worker crashed twice"
    assert read_events(studio.client, job["id"])[-1]["event"] == "failed"


def test_hung_worker_is_killed_and_restarts_stop(studio_factory):
    studio = studio_factory(
        [sys.executable, FAKE_WORKER, "hang"],
        STUDIO_PING_INTERVAL_S="0.1",
        STUDIO_PING_TIMEOUT_S="0.3",
        STUDIO_MAX_RESTARTS="1",
    )
    studio.wait(lambda: "restarts stopped" in studio.client.get("/health/ready").text, 30, "given up")
    response = studio.client.get("/health/ready")
    assert response.status_code == 503 and "hung" in response.json()["reason"]
    assert studio.worker_pids() == []


def test_studio_restart_keeps_results_and_requeues_unfinished_jobs(studio_factory):
    studio = studio_factory([sys.executable, FAKE_WORKER], STUDIO_SHUTDOWN_TIMEOUT_S="1")
    studio.wait_ready(30)
    done = studio.post_job({"size": 48, "iterations": 3}).json()
    read_events(studio.client, done["id"])
    running = studio.post_job({"size": 48, "iterations": 120, "preview_every": 0}).json()
    read_events(studio.client, running["id"], stop_after=lambda e: True)
    assert studio.stop() in (0, -signal.SIGTERM)  # uvicorn re-raises the signal after a clean shutdown
    again = studio_factory([sys.executable, FAKE_WORKER])
    assert again.client.get(f"/v1/jobs/{done['id']}").json()["state"] == "done"
    events = read_events(again.client, running["id"])
    assert events[-1]["event"] == "done"


def test_paint_message_resumes_from_the_last_preview(tmp_path):
    catalog = Catalog.open(None, tmp_path, scope="studio")
    images = ImageStore(tmp_path / "images")
    events = JobEvents(catalog)
    jobs = Jobs(catalog, images, events, cancel_running=lambda job_id: "unknown")
    runner = JobRunner(catalog, images, events)
    record, created = jobs.create(png(40, 30), [png(30, 30, (0, 0, 255))], '{"size": 48, "iterations": 50}')
    assert created and record.status == Status.QUEUED
    first = runner.paint_message(record.id)
    assert first is not None and first.blobs("init") == [] and "start_iteration" not in first.fields
    preview = images.put(png(40, 30, (9, 9, 9))).id
    for i in range(1, 14):
        point = ProgressPoint(i, i, 1.0, 1.0, 1.0, 1.0, 0.1 * i)
        catalog.record_progress(record.id, point, preview_image=preview if i == 10 else None)
    assert runner.on_worker_died(record.id) is True
    resumed = runner.paint_message(record.id)
    assert resumed is not None
    assert resumed.blobs("init") == [images.read(preview)] and resumed.get("start_iteration") == 10
    assert runner.on_worker_died(record.id) is False
    assert catalog.get(record.id).error == "worker crashed twice"
    assert runner.paint_message(record.id) is None
    catalog.close()


def test_cli_refuses_a_public_address_without_a_token(monkeypatch, capsys):
    from studio.cli import main

    monkeypatch.delenv("STUDIO_TOKEN", raising=False)
    assert main(["--host", "0.0.0.0", "--port", "0"]) == 2
    assert "without a token" in capsys.readouterr().err


def test_studio_subcommand_is_registered():
    from deep_painting.cli import SUBCOMMANDS

    assert SUBCOMMANDS["studio"][0] == "studio.cli:main"
