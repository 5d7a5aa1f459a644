"""New loss weights while a job paints (issue 12): Studio for real with the fake worker, which takes
them at its next iteration like the real one and paints a style term of 0.2 × style_weight."""

from __future__ import annotations

import os
import signal
import sys
from collections.abc import Callable

from studio_process import FAKE_WORKER, read_events

DEFAULTS = {"content_weight": 1.0, "style_weight": 10.0, "tv_weight": 0.1}
LONG = {"size": 48, "iterations": 3000, "preview_every": 0}


def carrying(weights: dict) -> Callable[[dict], bool]:
    """A stop condition for read_events: the first event that carries these weights."""
    return lambda event: (event["data"].get("weights") or {}).get("style_weight") == weights["style_weight"]


def test_new_weights_reach_the_running_job_at_its_next_iteration(fake_studio):
    client = fake_studio.client
    job = fake_studio.post_job(LONG).json()
    first = read_events(client, job["id"], stop_after=lambda e: True)
    assert first[0]["data"]["weights"] == DEFAULTS  # a run's first point says what it paints with
    response = client.post(f"/v1/jobs/{job['id']}/weights", json={"style_weight": 50})
    assert response.status_code == 202, response.text
    body = response.json()
    assert body["params"]["style_weight"] == 50.0 and body["params"]["iterations"] == 3000
    assert [c["weights"] for c in body["weight_changes"]] == [{**DEFAULTS, "style_weight": 50.0}]
    events = read_events(client, job["id"], last_event_id=first[-1]["id"], stop_after=carrying({"style_weight": 50}))
    changed = events[-1]
    assert changed["data"]["weights"] == {**DEFAULTS, "style_weight": 50.0}
    assert changed["data"]["loss"]["style"] == 10.0  # the new objective from that iteration on
    assert all(e["data"]["loss"]["style"] == 2.0 and "weights" not in e["data"] for e in events[:-1])
    history = client.get(f"/v1/jobs/{job['id']}").json()["weight_changes"]
    assert [c["iteration"] for c in history] == [int(changed["id"])]
    # The same weights again change nothing and add no history.
    again = client.post(f"/v1/jobs/{job['id']}/weights", json={"style_weight": 50.0}).json()
    assert len(again["weight_changes"]) == 1
    # A reader that comes later is told where the change took effect too (replayed from the catalog).
    replayed = read_events(client, job["id"], last_event_id=str(int(changed["id"]) - 1), stop_after=lambda e: True)
    assert replayed[0]["data"]["weights"] == changed["data"]["weights"]
    assert client.post(f"/v1/jobs/{job['id']}/cancel").status_code == 202


def test_a_queued_job_starts_with_its_new_weights(fake_studio):
    client = fake_studio.client
    busy = fake_studio.post_job(LONG).json()
    read_events(client, busy["id"], stop_after=lambda e: True)  # the only worker is painting it
    queued = fake_studio.post_job({"size": 48, "iterations": 4, "preview_every": 0}).json()
    assert client.get(f"/v1/jobs/{queued['id']}").json()["state"] == "queued"
    response = client.post(f"/v1/jobs/{queued['id']}/weights", json={"style_weight": 30, "tv_weight": 0})
    assert response.status_code == 202 and response.json()["params"]["tv_weight"] == 0.0
    client.post(f"/v1/jobs/{busy['id']}/cancel")
    events = read_events(client, queued["id"])
    assert events[0]["data"]["weights"] == {"content_weight": 1.0, "style_weight": 30.0, "tv_weight": 0.0}
    assert [e["data"]["loss"]["style"] for e in events[:-1]] == [6.0] * 4
    final = client.get(f"/v1/jobs/{queued['id']}").json()
    assert final["state"] == "done" and [c["iteration"] for c in final["weight_changes"]] == [1]


def test_weights_are_refused_for_what_cannot_take_them_and_change_nothing(fake_studio):
    client = fake_studio.client
    job = fake_studio.post_job({"size": 48, "iterations": 2, "preview_every": 0}).json()
    read_events(client, job["id"])
    assert client.get(f"/v1/jobs/{job['id']}").json()["state"] == "done"
    late = client.post(f"/v1/jobs/{job['id']}/weights", json={"style_weight": 3})
    assert late.status_code == 409 and "has ended" in late.json()["detail"]
    assert client.get(f"/v1/jobs/{job['id']}").json()["weight_changes"] == []
    assert client.post("/v1/jobs/" + "0" * 32 + "/weights", json={"style_weight": 3}).status_code == 404
    assert client.post("/v1/jobs/not-an-id/weights", json={"style_weight": 3}).status_code == 404
    running = fake_studio.post_job(LONG).json()
    for bad in ({}, {"style_weight": -1}, {"style_weight": "10"}, {"size": 64}, [3], {"tv_weight": 2e6}):
        refused = client.post(f"/v1/jobs/{running['id']}/weights", json=bad)
        assert refused.status_code == 422, (bad, refused.text)
        assert isinstance(refused.json()["detail"], str)
    assert client.post(f"/v1/jobs/{running['id']}/weights", content=b"style_weight=3").status_code == 422
    fast = fake_studio.post_job({"engine": "fast", "size": 48}).json()
    refused = client.post(f"/v1/jobs/{fast['id']}/weights", json={"style_weight": 3})
    assert refused.status_code in (409, 422)  # done already, or refused for its engine
    described = client.get(f"/v1/jobs/{running['id']}").json()
    assert described["params"]["style_weight"] == 10.0 and described["weight_changes"] == []
    client.post(f"/v1/jobs/{running['id']}/cancel")


def test_a_job_resumed_after_its_worker_crashed_paints_with_the_latest_weights(studio_factory):
    studio = studio_factory([sys.executable, FAKE_WORKER], FAKE_SECONDS_PER_ITERATION="0.05")
    studio.wait_ready(30)
    job = studio.post_job({"size": 48, "iterations": 400, "preview_every": 5}).json()
    first = read_events(studio.client, job["id"], stop_after=lambda e: int(e["id"]) >= 6)
    assert studio.client.post(f"/v1/jobs/{job['id']}/weights", json={"style_weight": 40}).status_code == 202
    read_events(studio.client, job["id"], last_event_id=first[-1]["id"], stop_after=carrying({"style_weight": 40}))
    (pid,) = studio.worker_pids()
    os.kill(pid, signal.SIGKILL)

    def state() -> dict:
        return studio.client.get(f"/v1/jobs/{job['id']}").json()

    studio.wait(lambda: state()["attempts"] == 2, 30, "resumed")
    crashed_at = state()["iteration"]
    assert state()["params"]["style_weight"] == 40.0
    # Past where the first run stopped, the resumed run paints with them (the style term is 0.2 × 40).
    studio.wait(lambda: state()["iteration"] > crashed_at + 2, 30, "painting past the crash")
    assert state()["loss"]["style"] == 8.0
    assert [(c["iteration"] is not None, c["weights"]["style_weight"]) for c in state()["weight_changes"]] == [
        (True, 40.0)
    ]
    studio.client.post(f"/v1/jobs/{job['id']}/cancel")
