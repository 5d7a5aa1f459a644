"""A stand-in Pycasso worker for Studio's fault tests: the same protocol, no TensorFlow.

    python fake_worker.py [normal|crash_at_start|hang]

`normal` sends `ready`, then per job one `progress` frame every 20 ms (a preview every
`preview_every` iterations: the content image with the iteration written into it, so each preview
is a new image) and `done` (its result: the init image of a resumed run, else the first style).
`crash_at_start` exits with status 1 at once. `hang` sends `ready`, then never answers anything.
Like the real worker it takes `weights` for its job at the next iteration: the first `progress` of a
run and the first after a change carry the weights in force, and its style term is 0.2 × style_weight.
`FAKE_SECONDS_PER_ITERATION` (default 0.02) slows it down for tests that act while a job paints.
It answers `calibrate` at once with `FAKE_CALIBRATION` (made-up figures; the variable, JSON, overrides).
`FAKE_MODELS` (JSON, a list of `ModelInfo.to_json()`-like objects) is the model list it says it serves
when ready (unset: it says none).

A `train` runs a made-up training: one `training` frame a step (every `FAKE_SECONDS_PER_ITERATION`),
its losses falling, a sample image (a 16 px square, its colour from the step) every `sample_every`
steps and at the last, `checkpoint` every `checkpoint_every`; then `models` (what it was told when
ready, plus the trained model, usable) and `done`. It reads nothing from the folders but checks that
the data folder holds the kind's collections (an `error` as the real worker's otherwise), writes no
model file, and starts each run at step 1.
"""

from __future__ import annotations

import io
import json
import os
import queue
import sys
import threading
import time

from PIL import Image

from painting.progress import ProgressPoint
from pycasso import port

# 0.05 s + 2 µs a pixel an evaluation: a 400×533 iteration takes about half a second.
FAKE_CALIBRATION = {"eval_s": 0.05, "eval_pixel_s": 2e-6, "setup_s": 0.2, "fast_s": 0.02, "fast_pixel_s": 1e-7}


def _preview(content: bytes, iteration: int) -> bytes:
    """The content image as a PNG with its first pixel set from the iteration: a distinct image each time."""
    with Image.open(io.BytesIO(content)) as im:
        rgb = im.convert("RGB")
    rgb.putpixel((0, 0), (iteration % 256, iteration // 256 % 256, 7))
    out = io.BytesIO()
    rgb.save(out, format="PNG")
    return out.getvalue()


def main() -> int:
    mode = sys.argv[1] if len(sys.argv) > 1 else "normal"
    if mode == "crash_at_start":
        print("fake worker: crashing at start-up", file=sys.stderr)
        return 1
    stdin, stdout = sys.stdin.buffer, sys.stdout.buffer
    lock = threading.Lock()
    jobs: queue.Queue = queue.Queue()
    cancelled: set[str | None] = set()
    new_weights: dict[str | None, dict[str, float]] = {}
    weights_lock = threading.Lock()

    def send(message: port.Message) -> None:
        with lock:
            port.write_message(stdout, message)

    def read() -> None:
        while (message := port.read_message(stdin)) is not None:
            if mode == "hang":
                continue
            if message.type == "ping":
                send(port.pong(message.get("n")))
            elif message.type == "cancel":
                cancelled.add(message.job)
            elif message.type == "weights":
                with weights_lock:
                    new_weights.setdefault(message.job, {}).update(message.get("weights") or {})
            elif message.type in ("paint", "train"):
                jobs.put(message)
            elif message.type == "calibrate":  # at once, with made-up figures (FAKE_CALIBRATION: JSON to send)
                send(port.calibrated(json.loads(os.environ.get("FAKE_CALIBRATION", "null")) or FAKE_CALIBRATION))
        jobs.put(None)

    threading.Thread(target=read, daemon=True).start()
    device = os.environ.get("CUDA_VISIBLE_DEVICES") or f"CPU ({os.environ.get('OMP_NUM_THREADS', '?')} threads)"
    # FAKE_FAST: why this worker lacks the fast engine (unset: it has it).
    engines = {"gatys": "ready", "fast": os.environ.get("FAKE_FAST", "ready")}
    models = json.loads(os.environ.get("FAKE_MODELS", "null"))  # unset: the `ready` names no models
    said = {"engines": engines, **({"models": models} if models is not None else {})}
    send(port.ready("fake", "none", device, "none", **said))
    pause = float(os.environ.get("FAKE_SECONDS_PER_ITERATION", "0.02"))
    while (job := jobs.get()) is not None:
        if job.type == "train":
            models = _train(job, send, cancelled, pause, models)
            continue
        params = job.get("params")
        content = job.blobs("content")[0]
        every = params.get("preview_every", 10)
        iterations = params.get("iterations", 1)  # the fast engine paints in one pass
        start = int(job.get("start_iteration", 0) or 0)
        weights = {
            "content_weight": float(params.get("content_weight", 1.0)),
            "style_weight": float(params.get("style_weight", 10.0)),
            "tv_weight": float(params.get("tv_weight", 0.1)),
        }
        for i in range(start + 1, iterations + 1):
            if job.job in cancelled:
                send(port.cancelled(job.job))
                break
            time.sleep(pause)
            with weights_lock:
                changed = new_weights.pop(job.job, None)
            weights.update(changed or {})
            carried = dict(weights) if changed or i == start + 1 else None
            style = 0.2 * weights["style_weight"]
            point = ProgressPoint(i, i, 100.0 / i, 1.0, style, 0.5, 0.02 * i, carried)
            preview = _preview(content, i) if every and i % every == 0 and i < iterations else None
            send(port.progress(job.job, iterations, point, preview))
        else:
            # The result is the init image of a resumed run, else the style: a test can see a resume.
            result = (job.blobs("init") or job.blobs("style"))[0]
            send(port.done(job.job, {"iterations": iterations}, result))
    return 0


def _sample(step: int) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (16, 16), (step * 7 % 256, 90, 200)).save(out, format="PNG")
    return out.getvalue()


def _train(job: port.Message, send, cancelled: set[str | None], pause: float, models: list | None) -> list | None:
    """One made-up training (see the module docstring); the model list afterwards."""
    kind, name, training = job.get("kind"), job.get("name"), str(job.job)
    wanted = ("photos", "paintings") if kind == "cyclegan" else ("images",)
    for folder in wanted:
        if not os.path.isdir(os.path.join(str(job.get("data")), folder)):
            send(port.error(training, "invalid_request", f"training: the training data has no {folder}/ folder"))
            return models
    steps = int((job.get("params") or {}).get("steps") or 1)
    every, checkpoint_every = int(job.get("sample_every")), int(job.get("checkpoint_every"))
    checkpoint = None
    for step in range(1, steps + 1):
        if training in cancelled:
            send(port.cancelled(training))
            return models
        time.sleep(pause)
        if step % checkpoint_every == 0 or step == steps:
            checkpoint = step
        sample = _sample(step) if step % every == 0 or step == steps else None
        losses = {"generator": 5.0 / step, "discriminator": 0.5, "cycle": 2.0 / step, "identity": 1.0 / step}
        send(port.training(training, step, steps, losses, pause, checkpoint=checkpoint, sample=sample))
    trained = {"name": name, "file": f"{name}.keras", "format": "keras", "value_range": [-1, 1], "input_size": None}
    trained |= {"kind": "image" if kind == "cyclegan" else "latent", "latent_dim": None if kind == "cyclegan" else 100}
    trained |= {"description": "fake", "problem": None, "ok": True}
    models = [m for m in models or [] if m.get("name") != name] + [trained]
    send(port.models(models, {"gatys": "ready", "fast": "ready", "model": "ready"}))
    stats = {"model": name, "file": f"{name}.keras", "steps": steps, "seconds": pause * steps}
    send(port.done(training, stats, _sample(steps)))
    return models


if __name__ == "__main__":
    sys.exit(main())
