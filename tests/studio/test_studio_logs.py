"""STUDIO_LOG_FORMAT=json: one JSON object a line, and a job's lines carry its id."""

from __future__ import annotations

import json
import sys

from studio_process import FAKE_WORKER, read_events


def test_json_logs_carry_the_job_id(studio_factory):
    studio = studio_factory([sys.executable, FAKE_WORKER], log_level="info", STUDIO_LOG_FORMAT="json")
    studio.wait_ready(30)
    job = studio.post_job({"size": 48, "iterations": 3}).json()
    read_events(studio.client, job["id"])
    studio.stop()
    raw = (studio.data_dir.parent / f"studio-{studio.port}.log").read_text()
    lines = [json.loads(line) for line in raw.splitlines() if line.startswith("{")]
    assert lines and len(lines) == len([line for line in raw.splitlines() if line.strip()]), raw  # all JSON
    assert {"time", "level", "service", "logger", "message"} <= set(lines[0])
    about_job = [line["message"] for line in lines if line.get("job") == job["id"]]
    assert any(m.startswith("started on worker 0") for m in about_job), lines
    assert any(m == "worker 0 finished it: done" for m in about_job), lines
    assert any(line["logger"].startswith("uvicorn") for line in lines)  # the server's own lines too
