"""A stand-in Pycasso worker for Studio's fault tests: the same protocol, no TensorFlow.

    python fake_worker.py [normal|crash_at_start|hang]

`normal` sends `ready`, then per job one `progress` frame every 20 ms (a preview every
`preview_every` iterations: the content image with the iteration written into it, so each preview
is a new image) and `done` (its result: the init image of a resumed run, else the first style).
`crash_at_start` exits with status 1 at once. `hang` sends `ready`, then never answers anything.
"""

from __future__ import annotations

import io
import os
import queue
import sys
import threading
import time

from PIL import Image

from painting.progress import ProgressPoint
from pycasso import port


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
            elif message.type == "paint":
                jobs.put(message)
        jobs.put(None)

    threading.Thread(target=read, daemon=True).start()
    device = os.environ.get("CUDA_VISIBLE_DEVICES") or f"CPU ({os.environ.get('OMP_NUM_THREADS', '?')} threads)"
    # FAKE_FAST: why this worker lacks the fast engine (unset: it has it).
    engines = {"gatys": "ready", "fast": os.environ.get("FAKE_FAST", "ready")}
    send(port.ready("fake", "none", device, "none", engines=engines))
    while (job := jobs.get()) is not None:
        params = job.get("params")
        content = job.blobs("content")[0]
        every = params.get("preview_every", 10)
        iterations = params.get("iterations", 1)  # the fast engine paints in one pass
        start = int(job.get("start_iteration", 0) or 0)
        for i in range(start + 1, iterations + 1):
            if job.job in cancelled:
                send(port.cancelled(job.job))
                break
            time.sleep(0.02)
            point = ProgressPoint(i, i, 100.0 / i, 1.0, 2.0, 0.5, 0.02 * i)
            preview = _preview(content, i) if every and i % every == 0 and i < iterations else None
            send(port.progress(job.job, iterations, point, preview))
        else:
            # The result is the init image of a resumed run, else the style: a test can see a resume.
            result = (job.blobs("init") or job.blobs("style"))[0]
            send(port.done(job.job, {"iterations": iterations}, result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
