"""An estimate before Paint, and the memory budget that guards Studio's workers.

Studio runs for real with the fake worker, which answers `calibrate` at once with made-up figures
(tests/studio/fake_worker.py), so the answers can be checked against `painting.estimate` exactly.
"""

from __future__ import annotations

import sys
from typing import Any

import httpx

from painting.estimate import DEFAULT_BASE_BYTES, Calibration, estimate, largest_size, memory_bytes
from painting.params import Params

from studio_process import FAKE_WORKER
from support import refused


def calibrated(studio) -> bool:
    return all(w["calibration"] is not None for w in studio.client.get("/v1/status").json()["workers"])


def test_studio_estimates_seconds_and_memory_once_its_worker_has_timed_itself(fake_studio):
    fake_studio.wait(lambda: calibrated(fake_studio), 10, "calibrated")
    asked: dict[str, Any] = {"size": 400, "iterations": 80, "coarse_passes": 1, "coarse_iterations": 40}
    answer = fake_studio.client.post("/v1/estimate", json={"params": asked, "width": 640, "height": 480})
    assert answer.status_code == 200, answer.text
    body = answer.json()
    (worker,) = fake_studio.client.get("/v1/status").json()["workers"]
    timing = Calibration.from_json(worker["calibration"])
    expected = estimate(Params(**asked), 640, 480, timing, base_bytes=DEFAULT_BASE_BYTES)
    assert body["seconds"] == round(expected.seconds or 0, 2) and body["reason"] is None
    assert body["peak_bytes"] == expected.peak_bytes
    assert [(p["height"], p["width"], p["iterations"]) for p in body["passes"]] == [(200, 267, 40), (400, 533, 80)]
    budget = fake_studio.client.get("/v1/status").json()["memory_budget_bytes"]
    assert body["budget_bytes"] == budget and body["fits"] is True
    assert body["largest_size"] == largest_size(Params(**asked), 640, 480, budget, base_bytes=DEFAULT_BASE_BYTES)


def test_the_estimate_is_behind_the_token_and_refuses_what_no_job_could_be(fake_studio):
    anonymous = httpx.post(f"{fake_studio.url}/v1/estimate", json={"params": {}, "width": 64, "height": 48})
    assert anonymous.status_code == 401
    estimate_of = lambda body: fake_studio.client.post("/v1/estimate", json=body)  # noqa: E731
    refused(estimate_of({"params": {"size": 5000}, "width": 64, "height": 48}), 422, "size")
    refused(estimate_of({"params": {"size": 64}, "width": 2000, "height": 10}), 422, "content", "px wide")
    assert estimate_of({"params": {"engine": "fast"}, "width": 64, "height": 48}).json()["seconds"] > 0


def test_a_job_over_the_memory_budget_is_refused_with_its_estimate_and_the_size_that_fits(studio_factory):
    # A painting about 100 px tall fits whole; a larger one would need tiles of at least MIN_TILE (128 px),
    # which do not fit either: the budget refuses it.
    budget = DEFAULT_BASE_BYTES + memory_bytes(100, 133, Params())
    studio = studio_factory(
        [sys.executable, FAKE_WORKER], STUDIO_MEMORY_BUDGET_BYTES=str(budget), STUDIO_CALIBRATE="false"
    )
    studio.wait_ready(30)
    fits = largest_size(Params(), 64, 48, budget, base_bytes=DEFAULT_BASE_BYTES)
    assert fits is not None and 90 <= fits <= 110
    detail = refused(studio.post_job({"size": 400, "iterations": 2}), 422, "params: size", "533×400", "GB")
    assert f"budget of {budget / 1e9:.1f} GB" in detail and f"the largest size that fits is {fits} px" in detail
    assert not (studio.data_dir / "images").exists() or not any((studio.data_dir / "images").rglob("*.*"))
    assert studio.client.get("/v1/status").json()["queued"] == 0
    assert studio.post_job({"size": fits, "iterations": 2, "preview_every": 0}).status_code == 202
    # Without a timing the estimate still answers the memory, and says why it has no seconds.
    body = studio.client.post("/v1/estimate", json={"params": {"size": 400}, "width": 64, "height": 48}).json()
    assert body["seconds"] is None and "STUDIO_CALIBRATE" in body["reason"]
    assert (body["fits"], body["largest_size"], body["budget_bytes"]) == (False, fits, budget)
    assert studio.client.get("/v1/status").json()["workers"][0]["calibration"] is None
