"""Trainings (issue 15) through a real Studio process: the refusals, which store nothing, and a run
with the fake worker (fast); then the real `python -m pycasso` worker training a tiny CycleGAN that
is killed, resumes from its checkpoint, finishes, and paints at once; and a cancel that keeps the
checkpoint, then a delete that removes everything but the model."""

from __future__ import annotations

import io
import json
import os
import signal
import sys
import tarfile
import zipfile
from collections.abc import Callable, Iterator

import httpx
import pytest
from PIL import Image

from studio_process import FAKE_WORKER, StudioProcess, read_events
from support import png

TINY = {"kind": "cyclegan", "image_size": 16, "filters": 4}


def _image(i: int, size: tuple[int, int] = (24, 20)) -> bytes:
    """A small PNG with a gradient and a colour of its own, so the images of a collection differ."""
    image = Image.new("RGB", size, ((37 * i) % 256, (91 * i + 40) % 256, (53 * i + 120) % 256))
    for x in range(size[0]):
        image.putpixel((x, x % size[1]), (255 - x * 8, x * 8, 128))
    out = io.BytesIO()
    image.save(out, format="PNG")
    return out.getvalue()


def _zip(members: dict[str, bytes]) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return out.getvalue()


def _photos_zip(n: int = 4) -> bytes:
    return _zip({f"holiday/photo-{i}.png": _image(i) for i in range(n)})


def _paintings(n: int = 5) -> list[tuple[str, tuple[str, bytes, str]]]:
    return [("paintings", (f"painting-{i}.png", _image(100 + i, (20, 20)), "image/png")) for i in range(n)]


def post_training(
    client: httpx.Client,
    params: dict | str,
    files: list[tuple[str, tuple[str, bytes, str]]],
    *,
    key: str | None = None,
) -> httpx.Response:
    text = params if isinstance(params, str) else json.dumps(params)
    headers = {"Idempotency-Key": key} if key else {}
    return client.post("/v1/trainings", files=files, data={"params": text}, headers=headers, timeout=60)


def a_cyclegan(params: dict) -> list[tuple[str, tuple[str, bytes, str]]]:
    """Photos as one zip, paintings as many files."""
    return [("photos", ("photos.zip", _photos_zip(), "application/zip")), *_paintings()]


def training_events(
    client: httpx.Client,
    training_id: str,
    *,
    last_event_id: str | None = None,
    stop_after: Callable[[dict], object] | None = None,
    timeout: float = 180,
) -> list[dict]:
    """A training's SSE events as {id, event, data}, until an ending or `stop_after(event)`."""
    headers = {"Last-Event-ID": last_event_id} if last_event_id is not None else {}
    events: list[dict] = []
    current: dict = {}
    path = f"/v1/trainings/{training_id}/events"
    with client.stream("GET", path, headers=headers, timeout=timeout) as response:
        assert response.status_code == 200, response.read()
        assert response.headers["content-type"].startswith("text/event-stream")
        for line in response.iter_lines():
            if line.startswith(":"):
                continue
            if line == "":
                if current:
                    current["data"] = json.loads(current["data"])
                    events.append(current)
                    if current["event"] != "progress" or (stop_after and stop_after(current)):
                        break
                current = {}
                continue
            name, _, value = line.partition(": ")
            current[name] = value
    return events


def _stored(studio: StudioProcess) -> tuple[set[str], set[str]]:
    """The trainings Studio lists, and everything in its trainings folder (temp folders too)."""
    listed = {t["id"] for t in studio.client.get("/v1/trainings").json()["trainings"]}
    root = studio.data_dir / "trainings"
    return listed, {p.name for p in root.iterdir()} if root.exists() else set()


@pytest.fixture(scope="module")
def fake_training_studio(tmp_path_factory: pytest.TempPathFactory) -> Iterator[StudioProcess]:
    folder = tmp_path_factory.mktemp("fake-trainings")
    (folder / "models").mkdir()
    studio = StudioProcess(
        folder / "data",
        [sys.executable, FAKE_WORKER],
        STUDIO_MODELS_DIR=str(folder / "models"),
        STUDIO_ALLOW_CPU_TRAINING="true",
        STUDIO_MAX_TRAINING_FILES="20",
        STUDIO_MAX_BODY_BYTES="200000",  # a painting's body; a training's has its own cap
        STUDIO_MAX_TRAINING_UPLOAD_BYTES="2000000",
        STUDIO_GC_GRACE_S="0",
    )
    studio.wait_ready(30)
    yield studio
    studio.stop()


def test_refused_trainings_store_nothing(fake_training_studio):
    studio = fake_training_studio
    before = _stored(studio)
    photos = ("photos", ("photos.zip", _photos_zip(), "application/zip"))
    too_few = [("photos", (f"p{i}.png", _image(i), "image/png")) for i in range(3)]
    unreadable = _zip({**{f"p{i}.png": _image(i) for i in range(4)}, "notes.txt": b"just some text"})
    escaping = _zip({**{f"p{i}.png": _image(i) for i in range(4)}, "../../evil.png": _image(9)})
    too_many = _zip({f"p{i}.png": _image(i) for i in range(21)})
    cases: list[tuple[dict | str, list, int, str]] = [
        ("not json", [photos, *_paintings()], 422, "params"),
        ({**TINY, "latent_dim": 8}, [photos, *_paintings()], 422, "latent_dim: does not apply to a cyclegan"),
        ({**TINY, "image_size": 18}, [photos, *_paintings()], 422, "multiple of 4"),
        ({**TINY, "kind": "vae"}, [photos, *_paintings()], 422, "kind"),
        (TINY, [*too_few, *_paintings()], 422, "photos: at least 4 readable images are needed, 3 found"),
        (TINY, [("photos", ("p.zip", unreadable, "application/zip")), *_paintings()], 422, "1 of 5 files is not"),
        (TINY, [("photos", ("p.zip", escaping, "application/zip")), *_paintings()], 422, "'..'"),
        (TINY, [photos], 422, "paintings: missing"),
        (TINY, [photos, *_paintings(), ("images", ("i.png", _image(1), "image/png"))], 422, "takes photos and"),
        (TINY, [("photos", ("p.zip", too_many, "application/zip")), *_paintings()], 413, "more than 20 files"),
        ({**TINY, "name": "Bad Name"}, [photos, *_paintings()], 422, "name"),
    ]
    for params, files, status, words in cases:
        response = post_training(studio.client, params, files)
        assert response.status_code == status, (params, response.text)
        assert words in response.json()["detail"], response.text
    assert _stored(studio) == before


def test_a_tar_of_unreadable_images_is_refused_with_a_count(fake_training_studio):
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w:gz") as archive:
        for i, data in enumerate([_image(1), b"\x89PNG broken", b"", _image(2)]):
            info = tarfile.TarInfo(f"p{i}.png")
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    before = _stored(fake_training_studio)
    response = post_training(
        fake_training_studio.client, TINY, [("photos", ("p.tgz", out.getvalue(), "application/gzip")), *_paintings()]
    )
    assert response.status_code == 422
    assert response.json()["detail"].startswith("photos: 2 of 4 files are not images we can read:"), response.text
    assert _stored(fake_training_studio) == before


def _noise(side: int) -> bytes:
    out = io.BytesIO()
    Image.frombytes("RGB", (side, side), os.urandom(side * side * 3)).save(out, format="PNG")
    return out.getvalue()


def test_a_training_upload_has_a_body_cap_of_its_own(fake_training_studio):
    studio = fake_training_studio
    big_job = studio.post_job({"size": 48, "iterations": 2}, content=_noise(300))  # over 200 kB
    assert big_job.status_code == 413
    files = [(name, (f"{i}.png", _noise(100), "image/png")) for name in ("photos", "paintings") for i in range(4)]
    taken = post_training(studio.client, {**TINY, "steps": 2}, files)  # about 240 kB
    assert taken.status_code == 202, taken.text
    before = _stored(studio)
    too_big = post_training(studio.client, TINY, [*files, ("photos", ("huge.png", _noise(900), "image/png"))])
    assert too_big.status_code == 413 and "over 2000000 bytes" in too_big.json()["detail"]
    assert _stored(studio) == before
    training_events(studio.client, taken.json()["id"])  # done: the worker is free again


def test_a_training_on_the_fake_worker_streams_and_its_model_is_listed_at_once(fake_training_studio):
    studio = fake_training_studio
    params = {**TINY, "steps": 6, "sample_every": 2, "checkpoint_every": 3, "name": "fake-monet"}
    created = post_training(studio.client, params, a_cyclegan(params), key="train-1")
    assert created.status_code == 202, created.text
    training = created.json()
    assert training["state"] in {"queued", "running"} and training["steps"] == 6 and training["kind"] == "cyclegan"
    assert training["counts"] == {"photos": 4, "paintings": 5}
    assert training["model"] == {"name": "fake-monet", "ready": False}
    assert training["params"]["batch_size"] == 1 and training["params"]["identity_weight"] == 5.0  # resolved
    again = post_training(studio.client, params, a_cyclegan(params), key="train-1")
    assert again.status_code == 202 and again.json()["id"] == training["id"]
    folder = studio.data_dir / "trainings" / training["id"]
    assert sorted(p.name for p in (folder / "data" / "photos").iterdir()) == [f"0000{i}.png" for i in range(4)]
    assert len(list((folder / "data" / "paintings").iterdir())) == 5

    first = training_events(studio.client, training["id"], stop_after=lambda e: int(e["id"]) >= 2)
    rest = training_events(studio.client, training["id"], last_event_id=first[-1]["id"])
    events = first + rest
    assert [e["event"] for e in events] == ["progress"] * 6 + ["done"]
    assert [int(e["id"]) for e in events] == [1, 2, 3, 4, 5, 6, 7]
    progress = [e["data"] for e in events[:6]]
    assert [p["step"] for p in progress] == [1, 2, 3, 4, 5, 6] and all(p["steps"] == 6 for p in progress)
    assert set(progress[0]["losses"]) == {"generator", "discriminator", "cycle", "identity"}
    assert [p["checkpoint_step"] for p in progress] == [None, None, 3, 3, 3, 6]
    assert [p["sample_image"] is not None for p in progress] == [False, True, False, True, False, True]
    done = events[-1]["data"]
    assert done["model"] == "fake-monet" and done["sample_image"]
    assert studio.client.get(f"/v1/images/{done['sample_image']}").status_code == 200
    # The worker said so with its `models` message: listed at once, and a job may use it.
    models = studio.client.get("/v1/models").json()["models"]
    assert {m["name"]: m["ok"] for m in models}["fake-monet"] is True
    assert "fake-monet" in studio.client.get("/v1/status").json()["models"]
    final = studio.client.get(f"/v1/trainings/{training['id']}").json()
    assert final["state"] == "done" and final["step"] == 6 and final["attempts"] == 1
    assert final["model"] == {"name": "fake-monet", "ready": True} and final["sample_image"] == done["sample_image"]
    assert studio.client.get("/v1/trainings").json()["trainings"][0]["id"] == training["id"]
    assert training_events(studio.client, training["id"], last_event_id="7") == []  # nothing missed
    # The name is taken now (the fake worker writes no file: an unfinished training would refuse it too).
    job = studio.post_job({"engine": "model", "model": "fake-monet", "size": 32})
    assert job.json()["detail"] == "style: a generator model takes no style images"  # the model is known


def test_cancel_stops_a_training_and_delete_removes_it(fake_training_studio):
    studio = fake_training_studio
    params = {**TINY, "steps": 100_000, "sample_every": 1000, "checkpoint_every": 5}
    training = post_training(studio.client, params, a_cyclegan(params)).json()
    again = post_training(studio.client, {**params, "name": training["model"]["name"]}, a_cyclegan(params))
    assert again.status_code == 422 and "a training under way" in again.json()["detail"]
    seen = training_events(studio.client, training["id"], stop_after=lambda e: True)
    cancelled = studio.client.post(f"/v1/trainings/{training['id']}/cancel")
    assert cancelled.status_code == 202
    events = training_events(studio.client, training["id"], last_event_id=seen[-1]["id"], timeout=30)
    assert events[-1]["event"] == "cancelled"
    assert studio.client.get(f"/v1/trainings/{training['id']}").json()["state"] == "cancelled"
    folder = studio.data_dir / "trainings" / training["id"]
    assert (folder / "checkpoints").is_dir()  # kept (the fake worker writes none; the real test looks inside)
    assert studio.client.delete(f"/v1/trainings/{training['id']}").status_code == 204
    assert studio.client.get(f"/v1/trainings/{training['id']}").status_code == 404
    assert studio.client.delete(f"/v1/trainings/{training['id']}").status_code == 404
    assert studio.client.get(f"/v1/trainings/{training['id']}/events").status_code == 404
    assert studio.client.post(f"/v1/trainings/{training['id']}/cancel").status_code == 404
    assert not folder.exists()
    assert studio.client.get("/v1/trainings/not-an-id").status_code == 404


def test_a_cpu_studio_refuses_to_train_with_the_seconds_a_step_would_take(studio_factory, tmp_path):
    (tmp_path / "models").mkdir()
    cpu = studio_factory([sys.executable, FAKE_WORKER], name="cpu", STUDIO_MODELS_DIR=str(tmp_path / "models"))
    cpu.wait_ready(30)
    cpu.wait(lambda: cpu.client.get("/v1/status").json()["workers"][0]["calibration"], 30, "calibrated")
    refused = post_training(cpu.client, {"kind": "cyclegan"}, a_cyclegan({}))
    assert refused.status_code == 422
    # The fake worker's calibration: 2 µs a pixel -> 1.2e6 / 2e-6 * 0.6 FLOP/s (fp32); 1.8e12 FLOP a step.
    assert refused.json()["detail"] == (
        "This Studio has no GPU: a cyclegan step at 256 px (batch 1) would take about 5.0 s here "
        "(2000 steps: about 2.8 h). Set STUDIO_ALLOW_CPU_TRAINING=true to train anyway."
    )
    assert _stored(cpu) == (set(), set())
    # The same Studio with its worker on a GPU (the fake worker names its device after CUDA_VISIBLE_DEVICES).
    gpu = studio_factory(
        [sys.executable, FAKE_WORKER], name="gpu", STUDIO_MODELS_DIR=str(tmp_path / "models"), STUDIO_DEVICES='["0"]'
    )
    gpu.wait_ready(30)
    taken = post_training(gpu.client, {**TINY, "steps": 2}, a_cyclegan({}))
    assert taken.status_code == 202, taken.text


def test_a_studio_without_a_models_folder_refuses_to_train(studio_factory):
    studio = studio_factory([sys.executable, FAKE_WORKER], STUDIO_ALLOW_CPU_TRAINING="true")
    studio.wait_ready(30)
    refused = post_training(studio.client, TINY, a_cyclegan({}))
    assert refused.status_code == 422 and "STUDIO_MODELS_DIR" in refused.json()["detail"]
    assert _stored(studio) == (set(), set())


def test_a_training_survives_studio_restarts_and_stray_folders_are_swept(studio_factory, tmp_path):
    """A clean stop hands the training back (queued, no crash); a Studio killed outright left it
    running, which counts as a crash; each start queues it again, and sweeps folders no training owns."""
    (tmp_path / "models").mkdir()
    env = {"STUDIO_MODELS_DIR": str(tmp_path / "models"), "STUDIO_ALLOW_CPU_TRAINING": "true"}
    first = studio_factory([sys.executable, FAKE_WORKER], **env)
    first.wait_ready(30)
    params = {**TINY, "steps": 100_000, "sample_every": 1000}
    training = post_training(first.client, params, a_cyclegan(params)).json()
    training_events(first.client, training["id"], stop_after=lambda e: True)
    assert first.stop() in (0, -signal.SIGTERM)  # a clean stop, as Ctrl-C on serve does
    root = first.data_dir / "trainings"
    (root / ".incoming-0123-abcd").mkdir()  # a Studio killed while it wrote a training's folder
    (root / ("f" * 32)).mkdir()  # one killed between the folder and the record
    second = studio_factory([sys.executable, FAKE_WORKER], **env)  # the same data folder
    second.wait_ready(30)
    assert {p.name for p in root.iterdir()} == {training["id"]}
    after_stop = training_events(second.client, training["id"], last_event_id="0", stop_after=lambda e: True)
    assert after_stop[-1]["event"] == "progress"
    state = second.client.get(f"/v1/trainings/{training['id']}").json()
    assert state["state"] == "running" and state["attempts"] == 1  # a clean stop is no crash
    second.proc.kill()  # no clean stop: it stays `running` in the catalog
    second.proc.wait()
    third = studio_factory([sys.executable, FAKE_WORKER], **env)  # the same data folder
    third.wait_ready(30)
    third.wait(lambda: third.client.get(f"/v1/trainings/{training['id']}").json()["attempts"] == 2, 30, "resumed")
    assert third.client.post(f"/v1/trainings/{training['id']}/cancel").status_code == 202
    third.wait(lambda: third.client.get(f"/v1/trainings/{training['id']}").json()["state"] == "cancelled", 30, "done")


# --- the real worker -----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def real_training_studio(tmp_path_factory: pytest.TempPathFactory) -> Iterator[StudioProcess]:
    folder = tmp_path_factory.mktemp("real-trainings")
    (folder / "models").mkdir()
    studio = StudioProcess(
        folder / "data",
        [sys.executable, "-m", "pycasso"],
        log_level="info",  # the worker's lines (it logs where a training resumes) go to the same log
        STUDIO_MODELS_DIR=str(folder / "models"),
        STUDIO_ALLOW_CPU_TRAINING="true",
        STUDIO_CALIBRATE="false",  # the trainings start at once; nothing here estimates
    )
    studio.wait_ready(180)
    yield studio
    studio.stop()


def _log(studio: StudioProcess) -> str:
    studio.log.flush()
    return (studio.data_dir.parent / f"studio-{studio.port}.log").read_text(errors="replace")


@pytest.mark.slow
def test_a_real_training_resumes_after_a_kill_finishes_and_its_model_paints_at_once(real_training_studio):
    studio = real_training_studio
    # 40 ms a step here: enough steps that the kill lands mid-run, wherever the checkpoint is.
    params = {**TINY, "steps": 40, "sample_every": 2, "checkpoint_every": 4, "name": "tiny-monet"}
    training = post_training(studio.client, params, a_cyclegan(params)).json()
    before = training_events(studio.client, training["id"], stop_after=lambda e: e["data"]["checkpoint_step"])
    assert all(e["event"] == "progress" for e in before), before[-1]
    last = before[-1]["data"]
    assert set(last["losses"]) == {"generator", "discriminator", "cycle", "identity"}
    assert all(isinstance(v, float) for v in last["losses"].values())
    assert last["sample_image"] is not None and last["step"] % 2 == 0
    (pid,) = studio.worker_pids()
    os.kill(pid, signal.SIGKILL)  # mid-training, its checkpoint on disk

    after = training_events(studio.client, training["id"], last_event_id=before[-1]["id"])
    assert after[-1]["event"] == "done", after[-1]
    progress = [e["data"] for e in after[:-1]]
    assert progress and progress[0]["step"] > last["step"] and progress[-1]["step"] == 40
    resumed = [line for line in _log(studio).splitlines() if "training resumed at step" in line]
    assert resumed and f"job {training['id']}: training resumed at step" in resumed[-1], resumed
    at = int(resumed[-1].split("training resumed at step ")[1].split()[0])
    assert at >= last["checkpoint_step"] and at % 4 == 0  # from its checkpoint, not from step 0
    # Served at once: listed the moment it is done, and a job paints with it.
    models = {m["name"]: m for m in studio.client.get("/v1/models").json()["models"]}
    assert models["tiny-monet"]["ok"] and models["tiny-monet"]["kind"] == "image"
    final = studio.client.get(f"/v1/trainings/{training['id']}").json()
    assert final["state"] == "done" and final["attempts"] == 2 and final["step"] == 40
    assert final["model"] == {"name": "tiny-monet", "ready": True} and final["losses"]["generator"] > 0
    sample = Image.open(io.BytesIO(studio.client.get(f"/v1/images/{final['sample_image']}").content))
    assert sample.size == (16, 16)
    files = [("content", ("c.png", png(64, 48, (30, 120, 200)), "image/png"))]
    job = studio.client.post(
        "/v1/jobs", files=files, data={"params": json.dumps({"engine": "model", "model": "tiny-monet", "size": 32})}
    )
    assert job.status_code == 202, job.text
    painted = read_events(studio.client, job.json()["id"])
    assert painted[-1]["event"] == "done", painted[-1]
    result = studio.client.get(f"/v1/images/{painted[-1]['data']['result_image']}").content
    assert Image.open(io.BytesIO(result)).size[1] == 32


@pytest.mark.slow
def test_a_cancelled_real_training_keeps_its_checkpoint_and_delete_removes_it(real_training_studio):
    studio = real_training_studio
    params = {**TINY, "steps": 100_000, "sample_every": 1000, "checkpoint_every": 4}
    training = post_training(studio.client, params, a_cyclegan(params)).json()
    seen = training_events(studio.client, training["id"], stop_after=lambda e: e["data"]["checkpoint_step"])
    assert studio.client.post(f"/v1/trainings/{training['id']}/cancel").status_code == 202
    events = training_events(studio.client, training["id"], last_event_id=seen[-1]["id"], timeout=60)
    assert events[-1]["event"] == "cancelled"
    folder = studio.data_dir / "trainings" / training["id"]
    checkpoints = [p.name for p in (folder / "checkpoints").iterdir()]
    assert len(checkpoints) == 1 and checkpoints[0].startswith("step-"), checkpoints
    assert int(checkpoints[0].removeprefix("step-")) >= seen[-1]["data"]["checkpoint_step"]
    assert studio.client.delete(f"/v1/trainings/{training['id']}").status_code == 204
    assert studio.client.get(f"/v1/trainings/{training['id']}").status_code == 404
    assert not folder.exists()
