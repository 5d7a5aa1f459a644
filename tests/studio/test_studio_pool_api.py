"""What a pool of Studios needs of each one: `GET /v1/status` says its capacity (workers, engines,
models, the largest painting it fits, how fast it paints), and `POST /v1/jobs` takes a painting begun
on another Studio (`init`, its latest preview, and `start_iteration`) and starts it there.

Studio runs for real with two fake workers (tests/studio/fake_worker.py); one lacks the fast engine.
"""

from __future__ import annotations

import io
import json
import sys
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from PIL import Image

from painting.catalog import Catalog
from painting.estimate import DEFAULT_BASE_BYTES, largest_size
from painting.params import Params
from studio.supervisor import Supervisor

from studio_process import FAKE_WORKER, StudioProcess, read_events
from support import png, refused

BUDGET = 3 * 2**30
MODELS = [
    {"name": "horse2zebra", "kind": "image", "ok": True, "problem": None},
    {"name": "broken", "kind": "image", "ok": False, "problem": "not an ONNX file"},
]
NO_FAST = "onnxruntime is missing"
# Worker 0 (CUDA_VISIBLE_DEVICES=0) says it lacks the fast engine, worker 1 has it.
WORKER = [
    "bash",
    "-c",
    f'if [ "$CUDA_VISIBLE_DEVICES" = 0 ]; then export FAKE_FAST="{NO_FAST}"; fi; exec "$0" "$1"',
    sys.executable,
    FAKE_WORKER,
]
RESUMABLE = {"size": 48, "iterations": 60, "preview_every": 10}


@pytest.fixture(scope="module")
def studio(tmp_path_factory: pytest.TempPathFactory) -> Iterator[StudioProcess]:
    studio = StudioProcess(
        tmp_path_factory.mktemp("pool") / "data",
        WORKER,
        STUDIO_WORKERS="2",
        STUDIO_DEVICES='["0", "1"]',
        STUDIO_MEMORY_BUDGET_BYTES=str(BUDGET),
        STUDIO_MAX_IMAGE_PIXELS=str(1_000_000),
        STUDIO_GC_GRACE_S="0",
        FAKE_MODELS=json.dumps(MODELS),
    )
    studio.wait(lambda: status(studio)["workers_ready"] == 2, 30, "both workers ready")
    yield studio
    studio.stop()


def status(studio: StudioProcess) -> dict[str, Any]:
    response = studio.client.get("/v1/status")
    assert response.status_code == 200, response.text
    return response.json()


def post(
    studio: StudioProcess,
    params: dict[str, Any],
    *,
    init: bytes | None = None,
    start: str | list[str] | None = None,
    styles: int = 1,
    key: str | None = None,
) -> httpx.Response:
    files = [("content", ("c.png", png(64, 48), "image/png"))]
    files += [("style", ("s.png", png(8, 8, (20, 40, 220)), "image/png"))] * styles
    if init is not None:
        files.append(("init", ("i.png", init, "image/png")))
    data: dict[str, Any] = {"params": json.dumps(params)}
    if start is not None:
        data["start_iteration"] = start
    headers = {"Idempotency-Key": key} if key else {}
    return studio.client.post("/v1/jobs", files=files, data=data, headers=headers)


def stored(studio: StudioProcess) -> tuple[int, set[str]]:
    """How many jobs the catalog holds, and the files of the image store."""
    with Catalog.open(None, studio.data_dir, scope="studio", migrate=False) as catalog:
        jobs = catalog.count()
    root = studio.data_dir / "images"
    return jobs, {p.name for p in root.rglob("*") if p.is_file()}


def idle(studio: StudioProcess) -> None:
    studio.wait(lambda: (lambda s: s["running"] == 0 and s["queued"] == 0)(status(studio)), 30, "idle")


def pixels(data: bytes) -> bytes:
    with Image.open(io.BytesIO(data)) as im:
        return im.convert("RGB").tobytes()


def test_status_says_what_a_dispatcher_needs(studio):
    studio.wait(lambda: status(studio)["iteration_seconds_512"] is not None, 30, "timed by its workers")
    found = status(studio)
    assert found["workers_ready"] == 2 and len(found["workers"]) == 2
    assert {"running", "queued", "ready", "reason", "memory_budget_bytes"} <= set(found)
    assert found["ready"] is True and found["reason"] is None
    assert found["engines"] == {"gatys": "ready", "fast": "ready"}  # worker 1 has fast, though worker 0 lacks it
    assert found["models"] == ["horse2zebra"]  # the usable ones only
    assert found["memory_budget_bytes"] == BUDGET
    expected = largest_size(Params(), 1600, 1200, BUDGET, base_bytes=DEFAULT_BASE_BYTES)
    assert expected is not None and expected > 0 and found["largest_size"] == expected
    # The fake worker's timing: 0.05 s + 2 µs a pixel an evaluation, 1.1 evaluations an iteration.
    assert found["iteration_seconds_512"] == pytest.approx(1.1 * (0.05 + 2e-6 * 512 * 683), abs=1e-3)


def test_a_job_with_init_starts_at_start_iteration_and_paints_on_from_the_init_image(studio):
    init = png(64, 48, (1, 2, 3))
    response = post(studio, RESUMABLE, init=init, start="40")
    assert response.status_code == 202, response.text
    job = response.json()
    assert job["iteration"] == 40 and job["iterations"] == 60 and job["preview_image"]
    events = read_events(studio.client, job["id"])
    progress = [e["data"]["iteration"] for e in events if e["event"] == "progress"]
    assert progress == list(range(41, 61))  # never an iteration <= 40
    assert all(int(e["id"]) > 40 for e in events) and events[-1]["event"] == "done"
    done = studio.client.get(f"/v1/jobs/{job['id']}").json()
    assert done["state"] == "done" and done["iteration"] == 60
    # The fake worker's result is the init image it was given: the init the job was stored with.
    assert done["result_image"] == job["preview_image"]
    result = studio.client.get(f"/v1/images/{done['result_image']}")
    assert result.status_code == 200 and pixels(result.content) == pixels(init)


def test_the_form_takes_the_photo_every_style_and_an_init(studio):
    response = post(studio, RESUMABLE, init=png(64, 48, (1, 2, 3)), start="55", styles=8)
    assert response.status_code == 202, response.text
    assert response.json()["iteration"] == 55
    idle(studio)


def test_a_resume_sent_again_with_its_idempotency_key_is_the_same_job(studio):
    first = post(studio, RESUMABLE, init=png(64, 48, (4, 5, 6)), start="0", key="painting-7")
    assert first.status_code == 202, first.text
    jobs, _ = stored(studio)
    again = post(studio, RESUMABLE, init=png(64, 48, (4, 5, 6)), start="0", key="painting-7")
    assert again.status_code == 202 and again.json()["id"] == first.json()["id"]
    assert stored(studio)[0] == jobs
    idle(studio)


@pytest.mark.parametrize(
    ("params", "init", "start", "status_code", "words"),
    [
        (RESUMABLE, png(64, 48), None, 422, ["start_iteration: needed with init"]),
        (RESUMABLE, None, "40", 422, ["init: needed with start_iteration"]),
        (RESUMABLE, png(64, 48), "60", 422, ["start_iteration", "less than the job's 60 iterations", "got 60"]),
        (
            {**RESUMABLE, "size": 64, "coarse_passes": 1, "coarse_iterations": 10},  # 70 in all
            png(64, 48),
            "70",
            422,
            ["start_iteration", "70 iterations"],
        ),
        (RESUMABLE, png(64, 48), "-1", 422, ["start_iteration", "0 or more"]),
        (RESUMABLE, png(64, 48), "4.5", 422, ["start_iteration: must be a whole number"]),
        (RESUMABLE, png(64, 48), "forty", 422, ["start_iteration: must be a whole number"]),
        (RESUMABLE, png(64, 48), "", 422, ["start_iteration: must be a whole number"]),
        (RESUMABLE, png(64, 48), ["1", "2"], 422, ["start_iteration: give exactly one"]),
        ({"engine": "fast", "size": 48}, png(64, 48), "0", 422, ["init: only the gatys engine resumes from an image"]),
        # The init passes the photo's checks, with the photo's statuses.
        (RESUMABLE, b"just some text", "40", 415, ["init: ", "not an image"]),
        (RESUMABLE, png(1200, 900), "40", 413, ["init: ", "megapixels"]),
    ],
    ids=[
        "init-alone",
        "start-alone",
        "start-at-the-end",
        "start-past-the-coarse-passes",
        "negative",
        "fraction",
        "words",
        "empty",
        "twice",
        "fast-engine",
        "not-an-image",
        "over-the-pixel-cap",
    ],
)
def test_a_resume_studio_cannot_start_is_refused_and_nothing_is_stored(studio, params, init, start, status_code, words):
    idle(studio)
    before = stored(studio)
    refused(post(studio, params, init=init, start=start), status_code, *words)
    assert stored(studio) == before


def test_the_form_documents_init_and_start_iteration(studio):
    document = studio.client.get("/v1/openapi.json").json()
    form = document["paths"]["/v1/jobs"]["post"]["requestBody"]["content"]["multipart/form-data"]["schema"]
    assert form["properties"]["init"]["format"] == "binary"
    assert form["properties"]["start_iteration"]["type"] == "integer"
    assert "init" not in form["required"] and "start_iteration" not in form["required"]


def test_engines_merge_over_the_workers():
    supervisor = Supervisor(["true"], handler=None, workers=3)  # type: ignore[arg-type]  # never started
    assert supervisor.engines() == {} and supervisor.engine_problem("fast") is None  # nobody has said
    saids: list[dict[str, object]] = [
        {"engines": {"gatys": "ready", "fast": "no onnxruntime"}},
        {"engines": {"gatys": "out of memory", "fast": "no networks", "model": "ready"}},
        {},  # still starting
    ]
    for slot, said in zip(supervisor._slots, saids, strict=True):
        slot.said = said
    assert supervisor.engines() == {"gatys": "ready", "fast": "no onnxruntime", "model": "ready"}
    assert supervisor.engine_problem("fast") == "no onnxruntime" and supervisor.engine_problem("gatys") is None
    assert supervisor.engine_problem("other") == "no worker here has the other engine"
