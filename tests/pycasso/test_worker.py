"""`python -m pycasso` as a real subprocess over real pipes."""

from __future__ import annotations

import contextlib
import io
import json
import queue
import subprocess
import sys
import threading
import time

import numpy as np
import pytest
from PIL import Image

from painting.estimate import Calibration
from pycasso import port
from pycasso.imaging import encode_png

from model_files import models_folder

pytestmark = pytest.mark.slow
TIMEOUT = 120  # seconds to wait for any one message (TensorFlow start-up included)


class WorkerProcess:
    """The worker behind its pipes; a thread reads its frames into a queue so waits can time out."""

    def __init__(self, *args: str) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "pycasso", *args],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        assert self.proc.stdin is not None and self.proc.stdout is not None and self.proc.stderr is not None
        self.stdin, self.stdout, self.stderr_pipe = self.proc.stdin, self.proc.stdout, self.proc.stderr
        self.messages: queue.Queue = queue.Queue()
        self.ready: port.Message | None = None  # the `ready` message, once the fixture has read it
        self.stderr = b""
        self._threads = [
            threading.Thread(target=self._read, daemon=True),
            threading.Thread(target=self._drain_stderr, daemon=True),
        ]
        for thread in self._threads:
            thread.start()

    def _read(self) -> None:
        try:
            while (msg := port.read_message(self.stdout)) is not None:
                self.messages.put(msg)
        except port.ProtocolError as exc:  # the test fails on this: stdout must carry frames only
            self.messages.put(exc)
        self.messages.put(None)

    def _drain_stderr(self) -> None:
        self.stderr = self.stderr_pipe.read()

    def send(self, message: port.Message) -> None:
        port.write_message(self.stdin, message)

    def send_raw(self, payload: bytes) -> None:
        port.write_frame(self.stdin, payload)
        self.stdin.flush()

    def next(self, timeout: float = TIMEOUT) -> port.Message | None:
        msg = self.messages.get(timeout=timeout)
        assert not isinstance(msg, Exception), f"worker wrote a bad frame: {msg}"
        return msg

    def until(self, *types: str, job: str | None = None) -> list[port.Message]:
        """Every message up to and including the first of `types` (for `job`, when given)."""
        seen = []
        while True:
            msg = self.next()
            assert msg is not None, f"worker closed its stdout; stderr:\n{self.stderr.decode()[-2000:]}"
            seen.append(msg)
            if msg.type in types and (job is None or msg.job == job):
                return seen

    def close(self) -> int:
        """Close stdin (the worker's cue to exit), wait for it, and release the pipes."""
        self.stdin.close()
        status = self.proc.wait(timeout=60)
        for thread in self._threads:
            thread.join(timeout=10)
        self.stdout.close()
        self.stderr_pipe.close()
        return status


@pytest.fixture(scope="module")
def worker():
    w = WorkerProcess()
    ready = w.next()
    assert ready is not None and ready.type == "ready", ready
    w.ready = ready
    yield w
    if w.proc.poll() is None:
        w.close()


@pytest.fixture(scope="module")
def pngs(content_rgb, style_rgb):
    return encode_png(content_rgb), encode_png(style_rgb)


def test_ready_describes_the_engine_and_ping_is_answered(worker):
    assert worker.ready.get("backend").startswith("tensorflow ")
    assert worker.ready.get("engines") == {
        "gatys": "ready",
        "fast": "ready",
        "model": "no models folder is set (STUDIO_MODELS_DIR)",
    }
    assert worker.ready.get("models") == []
    assert worker.ready.get("device") == "CPU"
    assert "sha256:" in worker.ready.get("weights")
    worker.send(port.ping(41))
    assert worker.until("pong")[-1].get("n") == 41


def test_a_painting_streams_progress_with_previews_then_the_result(worker, pngs):
    params = {"size": 48, "iterations": 6, "preview_every": 2, "preview_seconds": 0, "init": "content"}
    worker.send(port.paint("j-paint", params, pngs[0], [pngs[1]]))
    seen = worker.until("done", "error", job="j-paint")
    progress = [m for m in seen if m.type == "progress"]
    assert [m.get("iteration") for m in progress] == [1, 2, 3, 4, 5, 6]
    assert all(m.get("iterations") == 6 for m in progress)
    assert set(progress[0].get("loss")) == {"total", "content", "style", "tv"}
    assert [m.get("iteration") for m in progress if m.blobs("preview")] == [2, 4]
    preview = Image.open(io.BytesIO(progress[1].blobs("preview")[0]))
    assert (preview.format, preview.size) == ("PNG", (64, 48))
    done = seen[-1]
    assert done.type == "done", done
    result = Image.open(io.BytesIO(done.blobs("result")[0]))
    assert (result.format, result.size) == ("PNG", (64, 48))
    stats = done.get("stats")
    assert stats["iterations"] == 6 and stats["evaluations"] >= 6
    assert stats["loss"]["total"] == pytest.approx(progress[-1].get("loss")["total"])


def test_previews_also_follow_time_so_the_page_never_waits_long_for_a_new_image(worker, pngs):
    params = {"size": 48, "iterations": 4, "preview_every": 0, "preview_seconds": 0.001, "init": "content"}
    worker.send(port.paint("j-timed", params, pngs[0], [pngs[1]]))
    seen = worker.until("done", "error", job="j-timed")
    assert [m.get("iteration") for m in seen if m.type == "progress" and m.blobs("preview")] == [1, 2, 3]


def test_the_fast_engine_paints_in_one_pass(worker, pngs):
    worker.send(port.paint("j-fast", {"engine": "fast", "size": 48, "strength": 0.8}, pngs[0], [pngs[1]]))
    seen = worker.until("done", "error", job="j-fast")
    assert [m.type for m in seen] == ["done"], seen[-1].fields
    result = Image.open(io.BytesIO(seen[-1].blobs("result")[0]))
    assert (result.format, result.size) == ("PNG", (64, 48))
    assert seen[-1].get("stats")["iterations"] == 1


def test_the_built_in_styles_paint_without_a_style_image_and_ready_shows_them(worker, pngs):
    (sheet,) = worker.ready.blobs("builtin")
    strip = Image.open(io.BytesIO(sheet))
    assert (strip.format, strip.width % 26, strip.width // 26 > strip.height / 2) == ("PNG", 0, True)
    weights = [0.0] * 26
    weights[7] = 1.0
    worker.send(port.paint("j-builtin", {"engine": "fast", "size": 48, "builtin_styles": weights}, pngs[0], []))
    done = worker.until("done", "error", job="j-builtin")[-1]
    assert done.type == "done", done.fields
    assert Image.open(io.BytesIO(done.blobs("result")[0])).size == (64, 48)


def test_a_draft_is_shown_at_once_then_refined(worker, pngs):
    params = {"size": 48, "iterations": 3, "init": "draft", "preview_every": 0, "preview_seconds": 0}
    worker.send(port.paint("j-draft", params, pngs[0], [pngs[1]]))
    seen = worker.until("done", "error", job="j-draft")
    progress = [m for m in seen if m.type == "progress"]
    assert [m.get("iteration") for m in progress] == [0, 1, 2, 3]
    draft = Image.open(io.BytesIO(progress[0].blobs("preview")[0]))
    assert (draft.format, draft.size) == ("PNG", (64, 48))
    assert progress[0].get("loss")["total"] is None  # not scored: the curve starts at iteration 1
    assert seen[-1].type == "done"


def test_generator_models_are_listed_and_paint_with_and_without_a_photo(tmp_path, pngs):
    folder = models_folder(tmp_path / "models")
    (folder / "broken.onnx").write_bytes(b"not a model")
    worker = WorkerProcess("--models", str(folder))
    try:
        ready = worker.next()
        assert ready is not None and ready.type == "ready"
        assert ready.get("engines")["model"] == "ready"
        listed = {m["name"]: m for m in ready.get("models")}
        assert (listed["tint"]["kind"], listed["dots"]["kind"]) == ("image", "latent")
        assert not listed["broken"]["ok"] and listed["broken"]["problem"]
        worker.send(port.paint("j-tint", {"engine": "model", "model": "tint", "size": 48}, pngs[0], []))
        done = worker.until("done", "error", job="j-tint")[-1]
        assert done.type == "done", done.fields
        assert Image.open(io.BytesIO(done.blobs("result")[0])).size == (64, 48)
        worker.send(port.paint("j-dots", {"engine": "model", "model": "dots", "size": 40, "seed": 9}, None, []))
        done = worker.until("done", "error", job="j-dots")[-1]
        assert done.type == "done", done.fields
        assert Image.open(io.BytesIO(done.blobs("result")[0])).size == (40, 40)
        worker.send(port.paint("j-wrong", {"engine": "model", "model": "dots", "size": 40}, pngs[0], []))
        error = worker.until("done", "error", job="j-wrong")[-1]
        assert (error.type, error.get("code")) == ("error", "invalid_params")
    finally:
        worker.close()


def test_cancel_ends_a_running_job_promptly(worker, pngs):
    worker.send(port.paint("j-cancel", {"size": 96, "iterations": 1000}, pngs[0], [pngs[1]]))
    worker.until("progress", job="j-cancel")
    worker.send(port.cancel("j-cancel"))
    after = worker.until("cancelled", "done", "error", job="j-cancel")
    assert after[-1].type == "cancelled"
    # the cancel is read at once and checked between iterations: at most the iteration in flight reports
    assert len([m for m in after if m.type == "progress"]) <= 1


def test_a_queued_job_can_be_cancelled_before_it_starts(worker, pngs):
    worker.send(port.paint("j-long", {"size": 64, "iterations": 1000}, pngs[0], [pngs[1]]))
    worker.send(port.paint("j-queued", {"size": 48, "iterations": 3}, pngs[0], [pngs[1]]))
    worker.send(port.cancel("j-queued"))
    worker.until("progress", job="j-long")
    worker.send(port.cancel("j-long"))
    seen = worker.until("cancelled", job="j-queued")
    assert not [m for m in seen if m.job == "j-queued" and m.type == "progress"]
    assert any(m.type == "cancelled" and m.job == "j-long" for m in seen)


def test_a_malformed_frame_gets_an_error_frame_and_the_worker_carries_on(worker, pngs):
    worker.send_raw(b"{this is not json")
    error = worker.until("error")[-1]
    assert error.get("code") == "bad_frame" and "JSON" in error.get("message")
    worker.send_raw(json.dumps({"type": "paint"}).encode())
    assert worker.until("error")[-1].get("code") == "bad_frame"
    worker.send(port.paint("j-after", {"size": 48, "iterations": 2}, pngs[0], [pngs[1]]))
    assert worker.until("done", "error", job="j-after")[-1].type == "done"


@pytest.mark.parametrize(
    ("params", "content", "code", "words"),
    [
        ({"size": 48, "iterations": 0}, None, "invalid_params", "iterations"),
        ({"size": 48, "colour": "red"}, None, "invalid_params", "colour"),
        ({"size": 48}, b"GIF89a not really", "invalid_image", "content image"),
        ({"size": 48}, b"", "invalid_image", "empty"),
        ({"size": 48, "style_blend": [1, 2]}, None, "invalid_params", "style_blend"),
    ],
)
def test_bad_jobs_get_an_error_naming_the_problem(worker, pngs, params, content, code, words):
    worker.send(port.paint("j-bad", params, pngs[0] if content is None else content, [pngs[1]]))
    error = worker.until("error", "done", job="j-bad")[-1]
    assert (error.type, error.get("code")) == ("error", code)
    assert words in error.get("message")
    worker.send(port.ping(7))
    assert worker.until("pong")[-1].get("n") == 7


def test_resuming_from_an_init_image_continues_the_iteration_count(worker, pngs):
    init = encode_png(np.full((48, 64, 3), 128, np.uint8))
    worker.send(port.paint("j-resume", {"size": 48, "iterations": 5}, pngs[0], [pngs[1]], init=init, start_iteration=3))
    seen = worker.until("done", "error", job="j-resume")
    assert [m.get("iteration") for m in seen if m.type == "progress"] == [4, 5]
    assert seen[-1].type == "done"


@pytest.mark.parametrize(
    "raw",
    [
        json.dumps({"type": "paint", "job": "h1", "attachments": [["x"]]}).encode(),  # + one attachment frame below
        b"[" * 100_000 + b"]" * 100_000,
    ],
)
def test_hostile_headers_get_an_error_and_the_worker_still_answers(worker, raw):
    worker.send_raw(raw)
    if raw.startswith(b"{"):
        worker.send_raw(b"attachment")
    assert worker.until("error")[-1].get("code") == "bad_frame"
    worker.send(port.Message("ping", {"n": [[[[1]]]]}))  # an odd but JSON-able `n` is echoed
    assert worker.until("pong")[-1].get("n") == [[[[1]]]]


def test_a_non_integer_start_iteration_is_refused(worker, pngs):
    msg = port.paint("j-inf", {"size": 48, "iterations": 3}, pngs[0], [pngs[1]], init=pngs[0])
    msg.fields["start_iteration"] = float("inf")  # travels as null: not a whole number
    worker.send(msg)
    error = worker.until("error", "done", job="j-inf")[-1]
    assert error.get("code") == "invalid_request" and "start_iteration" in error.get("message")
    worker.send_raw(
        b'{"type":"paint","job":"j-inf2","start_iteration":1e999,"params":{"size":48},'
        b'"attachments":["content","style","init"]}'
    )
    for blob in (pngs[0], pngs[1], pngs[0]):
        worker.send_raw(blob)
    assert worker.until("error", "done", job="j-inf2")[-1].get("code") == "invalid_request"


def test_a_second_job_with_a_running_jobs_id_is_refused(worker, pngs):
    worker.send(port.paint("j-dup", {"size": 64, "iterations": 1000}, pngs[0], [pngs[1]]))
    worker.until("progress", job="j-dup")
    worker.send(port.paint("j-dup", {"size": 48, "iterations": 2}, pngs[0], [pngs[1]]))
    error = worker.until("error", job="j-dup")[-1]
    assert error.get("code") == "busy" and "already" in error.get("message")
    worker.send(port.cancel("j-dup"))
    assert worker.until("cancelled", "done", job="j-dup")[-1].type == "cancelled"


def test_cancel_of_an_unknown_job_is_an_error_not_a_crash(worker):
    worker.send(port.cancel("nobody"))
    error = worker.until("error")[-1]
    assert (error.job, error.get("code")) == ("nobody", "unknown_job")


def test_end_of_input_exits_cleanly():
    w = WorkerProcess()
    ready = w.next()
    assert ready is not None and ready.type == "ready"
    assert w.close() == 0
    assert w.next() is None  # stdout closed after nothing but frames


def test_end_of_input_during_a_painting_cancels_it_and_exits_cleanly(pngs):
    w = WorkerProcess()
    ready = w.next()
    assert ready is not None and ready.type == "ready"
    w.send(port.paint("j-eof", {"size": 96, "iterations": 1000}, pngs[0], [pngs[1]]))
    w.until("progress", job="j-eof")
    assert w.close() == 0
    assert w.until("cancelled", job="j-eof")[-1].type == "cancelled"
    assert w.next() is None


def test_new_weights_are_taken_at_the_next_iteration_and_the_progress_says_so(worker, pngs):
    params = {"size": 32, "iterations": 400, "preview_every": 0, "preview_seconds": 0, "init": "content"}
    worker.send(port.paint("j-weights", params, pngs[0], [pngs[1]]))
    first = worker.until("progress", job="j-weights")[-1]
    defaults = {"content_weight": 1.0, "style_weight": 10.0, "tv_weight": 0.1}
    assert first.get("iteration") == 1 and first.get("weights") == defaults  # a run's first point says
    worker.send(port.weights("j-weights", {"style_weight": 1000.0, "tv_weight": 0}))
    seen = worker.until("done", "error", job="j-weights")
    assert seen[-1].type == "done", seen[-1].fields
    progress = [m for m in seen if m.type == "progress"]
    changed = [m for m in progress if m.get("weights") is not None]
    assert len(changed) == 1, [m.fields for m in changed]  # only the first iteration under them says so
    at = changed[0].get("iteration")
    assert changed[0].get("weights") == {"content_weight": 1.0, "style_weight": 1000.0, "tv_weight": 0.0}
    before = [m.get("loss") for m in progress if m.get("iteration") < at]
    after = [m.get("loss") for m in progress if m.get("iteration") >= at]
    assert before and after and all(loss["tv"] > 0 for loss in before) and all(loss["tv"] == 0 for loss in after)
    assert after[0]["style"] > 10 * before[-1]["style"]  # the style term weighs 100 times more


def test_weights_for_a_queued_job_are_its_own_from_the_start_and_bad_ones_hurt_nothing(worker, pngs):
    params = {"size": 32, "iterations": 3, "preview_every": 0, "preview_seconds": 0, "init": "content"}
    worker.send(port.paint("j-w-running", {**params, "iterations": 40}, pngs[0], [pngs[1]]))
    worker.send(port.paint("j-w-queued", params, pngs[0], [pngs[1]]))
    worker.send(port.weights("j-w-queued", {"content_weight": 5.0}))
    worker.send(port.weights("j-w-running", {"style_weight": -1}))  # refused without naming the job: it paints on
    worker.send(port.weights("j-w-unknown", {"style_weight": 1}))  # ignored (logged)
    seen = worker.until("done", "error", job="j-w-queued")
    errors = [m for m in seen if m.type == "error"]
    assert [(m.job, m.get("code")) for m in errors] == [(None, "bad_frame")], [m.fields for m in errors]
    assert "style_weight" in errors[0].get("message")
    running = [m for m in seen if m.job == "j-w-running"]
    assert running[-1].type == "done"
    queued = [m for m in seen if m.job == "j-w-queued" and m.type == "progress"]
    assert queued[0].get("weights") == {"content_weight": 5.0, "style_weight": 10.0, "tv_weight": 0.1}
    assert [m.get("weights") for m in queued[1:]] == [None, None]


def test_calibrate_times_the_engines_and_a_job_comes_first(worker, pngs):
    memory = worker.ready.get("memory")
    assert 100 * 2**20 < memory["base_bytes"] < memory["device_bytes"]  # resident, and the machine's memory
    worker.send(port.calibrate())
    time.sleep(0.5)  # the calibration is under way (it takes seconds)
    params = {"size": 32, "iterations": 2, "preview_every": 0, "preview_seconds": 0, "init": "content"}
    worker.send(port.paint("j-after-calibrate", params, pngs[0], [pngs[1]]))
    seen = worker.until("done", "error", job="j-after-calibrate")
    assert seen[-1].type == "done", seen[-1].fields
    kinds = [m.type for m in seen]
    # the calibration stopped for the job (or, on a fast machine, had ended) before the job's first progress
    assert kinds.index("calibrated") < kinds.index("progress")
    stopped = seen[kinds.index("calibrated")]
    assert stopped.get("interrupted") or stopped.get("calibration") is not None
    if stopped.get("interrupted"):
        assert stopped.get("calibration") is None and "job" in stopped.get("problem")
        worker.send(port.calibrate())  # asked again once idle, as Studio does
        stopped = worker.until("calibrated")[-1]
    calibration = Calibration.from_json(stopped.get("calibration"))
    assert calibration.eval_pixel_s > 0 and calibration.fast_s is not None and len(calibration.points) == 2
    (p1, t1), (p2, t2) = calibration.points  # a 256 px evaluation costs more than a 128 px one
    assert p2 > p1 and t2 > t1 and calibration.evaluation_seconds(p2) > calibration.evaluation_seconds(p1)


def _training_set(root, kind: str) -> None:
    """A few tiny generated images in the folders a `train` message names: smooth photos and striped
    paintings (cyclegan), or small coloured squares (dcgan)."""
    rng = np.random.default_rng(0)
    folders = {"photos": 4, "paintings": 4} if kind == "cyclegan" else {"images": 16}
    for folder, count in folders.items():
        (root / folder).mkdir(parents=True)
        for i in range(count):
            y, x = np.mgrid[0:24, 0:24]
            if folder == "paintings":
                rgb = np.stack([(x // 3 % 2) * 200, (y // 4 % 2) * 150, np.full_like(x, 60)], -1)
            else:
                rgb = np.stack([x * 10, y * 10, np.full_like(x, 20 * i)], -1) + rng.integers(0, 20, (24, 24, 3))
            Image.fromarray(np.clip(rgb, 0, 255).astype(np.uint8)).save(root / folder / f"{i}.png")


def test_a_training_checkpoints_resumes_after_a_kill_and_serves_its_generator_at_once(tmp_path, pngs):
    data, checkpoints, models = tmp_path / "data", tmp_path / "checkpoints", tmp_path / "models"
    _training_set(data, "cyclegan")
    models.mkdir()
    params = {"steps": 8, "batch_size": 1, "image_size": 16, "filters": 4, "seed": 3}

    def train() -> port.Message:
        return port.train(
            "t-1",
            "cyclegan",
            params,
            data=str(data),
            checkpoints=str(checkpoints),
            name="tiny-monet",
            sample_every=2,
            checkpoint_every=4,
        )

    first = WorkerProcess("--models", str(models))
    try:
        ready = first.next()
        assert ready is not None and ready.type == "ready" and ready.get("engines")["model"] != "ready"
        first.send(train())
        seen = first.until("training", job="t-1")
        while seen[-1].get("checkpoint") != 4:
            seen = first.until("training", job="t-1")
        report = seen[-1]
        assert set(report.get("losses")) == {"generator", "discriminator", "cycle", "identity"}
        assert all(np.isfinite(v) for v in report.get("losses").values()) and report.get("steps") == 8
        first.proc.kill()  # mid-training, its checkpoint at step 4 on disk
    finally:
        with contextlib.suppress(BrokenPipeError):
            first.close()

    second = WorkerProcess("--models", str(models))
    try:
        assert second.next().type == "ready"  # type: ignore[union-attr]
        second.send(train())
        messages = second.until("done", "error", "cancelled", job="t-1")
        steps = [m.get("step") for m in messages if m.type == "training"]
        assert steps and steps[0] > 4 and steps[-1] == 8  # resumed from its checkpoint, not from step 1
        samples = [m for m in messages if m.type == "training" and m.blobs("sample")]
        assert [m.get("step") for m in samples] == [6, 8]
        assert Image.open(io.BytesIO(samples[-1].blobs("sample")[0])).size == (16, 16)
        listed = next(m for m in messages if m.type == "models")
        assert {m["name"]: m["ok"] for m in listed.get("models")} == {"tiny-monet": True}
        assert listed.get("engines")["model"] == "ready" and listed.get("trained") is True
        # Another worker on the folder is asked to read it anew (Studio sends `rescan` to the others).
        second.send(port.rescan())
        rescanned = second.until("models")[-1]
        assert [m["name"] for m in rescanned.get("models")] == ["tiny-monet"] and rescanned.get("trained") is False
        done = messages[-1]
        assert done.type == "done", done.fields
        assert done.get("stats")["model"] == "tiny-monet" and done.get("stats")["steps"] == 8
        # Served at once: the same worker paints a photo with it.
        second.send(port.paint("j-use", {"engine": "model", "model": "tiny-monet", "size": 32}, pngs[0], []))
        painted = second.until("done", "error", job="j-use")[-1]
        assert painted.type == "done", painted.fields
        assert Image.open(io.BytesIO(painted.blobs("result")[0])).size[1] == 32
        # A training whose data folder is missing is refused, and the worker carries on.
        second.send(
            port.train(
                "t-bad",
                "dcgan",
                {},
                data=str(tmp_path / "none"),
                checkpoints=str(tmp_path / "c2"),
                name="x",
                sample_every=1,
                checkpoint_every=1,
            )
        )
        refused = second.until("error", job="t-bad")[-1]
        assert "images/ folder" in refused.get("message")
    finally:
        second.close()
