"""Studio's /v1/metrics: Prometheus text with its jobs, queue, workers, restarts and timings."""

from __future__ import annotations

import os
import signal
import sys

import httpx
from prometheus_client.parser import text_string_to_metric_families

from studio_process import FAKE_WORKER, StudioProcess, read_events


def samples(studio: StudioProcess) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    response = studio.client.get("/v1/metrics")
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/plain")
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(response.text)
        for s in family.samples
    }


def test_metrics_count_jobs_iterations_requests_and_restarts(studio_factory):
    studio = studio_factory([sys.executable, FAKE_WORKER])
    studio.wait_ready(30)
    done = studio.post_job({"size": 48, "iterations": 20, "preview_every": 0}).json()
    read_events(studio.client, done["id"])
    running = studio.post_job({"size": 48, "iterations": 2000, "preview_every": 0}).json()
    read_events(studio.client, running["id"], stop_after=lambda e: int(e["id"]) >= 3)
    (pid,) = [w["pid"] for w in studio.client.get("/v1/status").json()["workers"]]
    os.kill(pid, signal.SIGKILL)
    studio.wait(lambda: samples(studio)[("studio_worker_restarts_total", ())] >= 1, 20, "the restart counted")
    studio.wait_ready(30)

    got = samples(studio)
    assert got[("studio_jobs", (("status", "done"),))] == 1
    assert got[("studio_workers_ready", ())] == 1 and got[("studio_queue_depth", ())] == 0
    assert got[("studio_iteration_seconds_count", ())] >= 19  # every iteration after the first of a run
    assert got[("studio_storage_faults_total", ())] == 0
    posted = ("studio_http_requests_total", (("method", "POST"), ("route", "/v1/jobs"), ("status", "202")))
    assert got[posted] == 2
    by_template = ("studio_http_request_seconds_count", (("method", "GET"), ("route", "/v1/jobs/{job_id}/events")))
    assert got[by_template] >= 2  # labelled by the route's template, not by each job's path
    assert httpx.get(f"{studio.url}/v1/metrics").status_code == 401  # behind the token
