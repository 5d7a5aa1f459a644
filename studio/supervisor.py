"""The Pycasso worker processes, supervised like an OTP supervisor.

    supervisor = Supervisor(["python", "-m", "pycasso"], handler=jobs)
    await supervisor.start()
    supervisor.submit(job_id)            # FIFO; one job at a time per worker
    supervisor.cancel(job_id)            # "queued" (dropped here), "running" (sent on) or "unknown"
    supervisor.change_weights(job_id, w) # "running" (sent on to its worker), "queued" or "unknown"
    supervisor.ready, supervisor.not_ready_reason
    await supervisor.stop()              # close stdin, wait, then kill; never a zombie

Each worker slot runs one asyncio task: start the process, wait for `ready`, then take jobs from the
shared queue while reading the worker's messages. A thread per process blocks in
`port.read_message` and hands each message to the loop (`call_soon_threadsafe`), so the loop never
blocks on a pipe. A worker that dies is restarted; more than `max_restarts` in `restart_window_s`
stops the restarts and the supervisor reports not-ready with the reason. A ready worker is pinged
every `ping_interval_s`; one that has not answered within `ping_timeout_s` is killed as hung.
Once a worker is idle after starting, it is asked to time itself (`calibrate`; `calibration()` then
serves Studio's estimates): a job that arrives meanwhile stops that, and it is asked again when idle.

A worker's `models` message (no job: a training put a model in the models folder, and the worker
serves it now) updates what that worker said of its models and engines, so `models()` lists the new
one at once.

What a message means for a job is the handler's business (`studio.training_runner.Handlers`: a
painting job's `studio.runner.JobRunner`, a training's `TrainingRunner`): the supervisor only asks
it for a job's `paint` (or `train`) message, hands it the job's messages, and tells it when a job's
worker died (the handler says whether to run the job again) or was stopped cleanly. A training is a
job like any other here: the same queue, one job at a time per worker.

The handler stores what it is given, and storage can fail (a full or read-only disk, a database
gone). No such failure ends a slot or loses a job: a job that cannot be started is queued again
after `fault_retry_s`; an ending (`done`, `error`, `cancelled`) that cannot be stored is kept and
delivered again every `fault_retry_s` until it is (the worker meanwhile paints the next job); a
progress point that cannot be stored is dropped (the next one carries the painting on). Each failure
is logged with its reason, and `fault` says what is wrong (Studio is not ready) until a later
delivery works. A bug of Studio's own while serving a worker restarts that worker, like a crash.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import functools
import logging
import os
import subprocess
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Protocol, TypeVar

from httpapi.logs import about
from painting.errors import StorageUnavailable
from painting.estimate import Calibration
from pycasso import port
from studio.errors import WorkerCrashed

log = logging.getLogger("studio.supervisor")
TERMINAL = frozenset({"done", "error", "cancelled"})
T = TypeVar("T")


class JobHandler(Protocol):
    def paint_message(self, job_id: str) -> port.Message | None:
        """The `paint` (a training's: `train`) message that starts (or resumes) a job; None when it
        should not run any more."""

    def on_message(self, job_id: str, message: port.Message) -> None:
        """A worker's `progress` (a training's: `training`), `done`, `error` or `cancelled` message for
        the job it runs."""

    def on_worker_died(self, job_id: str) -> bool:
        """The job's worker died mid-run; return True to queue the job again (at the front)."""

    def on_stopped(self, job_id: str) -> None:
        """The job's worker was stopped cleanly (Studio is stopping): the job waits for the next start."""


class Supervisor:
    """Runs `workers` worker processes and hands them queued jobs one at a time, in order."""

    def __init__(
        self,
        command: list[str],
        *,
        handler: JobHandler,
        workers: int = 1,
        max_restarts: int = 3,
        restart_window_s: float = 60.0,
        ready_timeout_s: float = 180.0,
        ping_interval_s: float = 10.0,
        ping_timeout_s: float = 20.0,
        shutdown_timeout_s: float = 5.0,
        fault_retry_s: float = 5.0,
        devices: Sequence[str] = (),
        cpu_count: int | None = None,
        env: Mapping[str, str] | None = None,
        calibrate: bool = True,
    ) -> None:
        self.command = list(command)
        self.calibrate = calibrate  # ask each worker to time itself once it is idle (for estimates)
        self.devices = tuple(devices)
        self.env = dict(env or {})  # for every worker, e.g. PYCASSO_MODELS_DIR
        self.cpu_count = cpu_count if cpu_count is not None else (os.cpu_count() or 1)
        self.handler = handler
        self.max_restarts = max_restarts
        self.restart_window_s = restart_window_s
        self.ready_timeout_s = ready_timeout_s
        self.ping_interval_s = ping_interval_s
        self.ping_timeout_s = ping_timeout_s
        self.shutdown_timeout_s = shutdown_timeout_s
        self.fault_retry_s = fault_retry_s
        self.fault: str | None = None  # what storing failed on last, until a delivery works again
        self.restarts_total = 0  # worker processes that died and were started again (or given up on)
        self.faults_total = 0  # handler calls that failed (storage faults, mostly)
        self._queue: collections.deque[str] = collections.deque()
        self._slots = [_Slot(self, i) for i in range(workers)]
        self._stopping = False
        self._undelivered: dict[str, port.Message] = {}  # job -> its ending, not stored yet
        self._later: set[str] = set()  # jobs that could not start, waiting for fault_retry_s
        self._retrier: asyncio.Task | None = None

    # --- the public face ----------------------------------------------------------------------

    async def start(self) -> None:
        for slot in self._slots:
            slot.task = asyncio.create_task(slot.run(), name=f"studio-worker-{slot.index}")
        self._retrier = asyncio.create_task(self._retry_loop(), name="studio-fault-retry")

    @property
    def ready(self) -> bool:
        return self.fault is None and any(slot.ready for slot in self._slots)

    @property
    def not_ready_reason(self) -> str | None:
        if self.ready:
            return None
        if self.fault is not None:
            return self.fault
        reasons = [slot.failure for slot in self._slots if slot.failure]
        return reasons[0] if reasons else "the worker is starting (loading its model)"

    def worker_env(self, index: int) -> dict[str, str]:
        """What worker `index` is given besides Studio's own environment: its device, where
        `devices` names some (CUDA_VISIBLE_DEVICES: worker i gets device i, round robin); else, with
        several workers, its share of the CPU cores, so that N workers do not each start a thread per
        core. One worker and no devices: nothing (it uses whatever the machine has)."""
        if self.devices:
            return {**self.env, "CUDA_VISIBLE_DEVICES": self.devices[index % len(self.devices)]}
        if len(self._slots) == 1:
            return dict(self.env)
        threads = str(max(1, self.cpu_count // len(self._slots)))
        return {**self.env, "TF_NUM_INTRAOP_THREADS": threads, "OMP_NUM_THREADS": threads}

    @property
    def queued(self) -> int:
        return len(self._queue)

    @property
    def running(self) -> int:
        return sum(1 for slot in self._slots if slot.current is not None)

    @property
    def workers_ready(self) -> int:
        return sum(1 for slot in self._slots if slot.ready)

    def status(self) -> dict[str, object]:
        """Capacity and load: each worker (ready, what it said when ready, the job it paints), how many
        are ready, the queue, and what they can paint (`engines`, the usable `models`)."""
        return {
            "workers": [slot.describe() for slot in self._slots],
            "workers_ready": self.workers_ready,
            "running": self.running,
            "queued": self.queued,
            "ready": self.ready,
            "reason": self.not_ready_reason,
            "engines": self.engines(),
            "models": self.usable_models(),
        }

    def engines(self) -> dict[str, str]:
        """Each engine a worker has named: "ready" when any worker has it ready, else the first
        worker's reason why not; {} until a worker has said."""
        merged: dict[str, str] = {}
        for engines in self._engine_reports():
            for name, state in engines.items():
                if merged.get(name) != "ready" and (name not in merged or state == "ready"):
                    merged[name] = str(state)
        return merged

    def engine_problem(self, engine: str) -> str | None:
        """Why no worker here can paint with `engine`, or None when one can (or none has said yet:
        a worker still starting is given the benefit of the doubt)."""
        if not self._engine_reports():
            return None
        state = self.engines().get(engine)
        return None if state == "ready" else state or f"no worker here has the {engine} engine"

    def _engine_reports(self) -> list[dict[str, object]]:
        """The `engines` of each worker that said it when ready, in the workers' order."""
        said = [slot.said.get("engines") for slot in self._slots if slot.said]
        return [engines for engines in said if isinstance(engines, dict)]

    def builtin_sheet(self) -> bytes | None:
        """The fast engine's built-in styles as one PNG strip (a worker's, once one is ready with it)."""
        return next((slot.builtin_sheet for slot in self._slots if slot.builtin_sheet is not None), None)

    def models(self) -> list[dict[str, Any]] | None:
        """The generator models the workers serve (every worker reads the same folder), usable or not
        (each with its problem), as the worker that looked last said (a training that finished adds
        its model at once); None until a worker has said."""
        said = [(slot.models_said_at, slot.said.get("models")) for slot in self._slots]
        listed = [(at, models) for at, models in said if isinstance(models, list)]
        if not listed:
            return None
        _, models = max(listed, key=lambda pair: pair[0])
        return [m for m in models if isinstance(m, dict)]

    def devices_said(self) -> list[str]:
        """The device each worker said it runs on when ready ("CPU", or a GPU such as "/device:GPU:0"),
        for the workers that have said; a worker keeps its last word while it restarts."""
        return [str(slot.said["device"]) for slot in self._slots if isinstance(slot.said.get("device"), str)]

    def precisions_said(self) -> list[str]:
        """The arithmetic each worker said its exact engine runs in ("fp32" or "bf16"), for those that said."""
        return [str(slot.said["precision"]) for slot in self._slots if isinstance(slot.said.get("precision"), str)]

    def usable_models(self) -> list[str] | None:
        """The names of the generator models a job can paint with (those the workers mark `ok`);
        None until a worker has said."""
        found = self.models()
        return None if found is None else [str(m.get("name")) for m in found if m.get("ok") is True]

    def calibration(self) -> Calibration | None:
        """The timing to estimate with: the slowest calibrated worker's (a job may land on any of
        them); None until one has measured itself."""
        known = [slot.calibration for slot in self._slots if slot.calibration is not None]
        return max(known, key=lambda c: c.evaluation_seconds(400 * 533), default=None)

    def calibration_problem(self) -> str | None:
        """Why no worker could time itself, when one said so."""
        return next((slot.calibration_problem for slot in self._slots if slot.calibration_problem), None)

    def worker_memory(self) -> tuple[int | None, int | None]:
        """(the most any worker held when ready, the least memory of any worker's device), in bytes;
        None for what no worker has said."""
        said = [slot.said.get("memory") for slot in self._slots]
        reports = [m for m in said if isinstance(m, dict)]
        bases = [m["base_bytes"] for m in reports if isinstance(m.get("base_bytes"), int)]
        devices = [m["device_bytes"] for m in reports if isinstance(m.get("device_bytes"), int)]
        return max(bases, default=None), min(devices, default=None)

    def storage_works(self) -> None:
        """Storage was just seen to work (a delivery, or the readiness probe): clear the fault,
        unless an ending still waits to be stored."""
        if not self._undelivered:
            self.fault = None

    def submit(self, job_id: str, *, front: bool = False) -> None:
        """Queue a job; an idle worker takes it at once."""
        if job_id in self._queue or job_id in self._undelivered or any(slot.current == job_id for slot in self._slots):
            return
        if front:
            self._queue.appendleft(job_id)
        else:
            self._queue.append(job_id)
        for slot in self._slots:
            if slot.ready and slot.current is None:
                slot.wake()

    def cancel(self, job_id: str) -> str:
        """'queued': taken off the queue; 'running': a cancel was sent to its worker; else 'unknown'."""
        if job_id in self._queue:
            self._queue.remove(job_id)
            return "queued"
        for slot in self._slots:
            if slot.current == job_id:
                slot.send_soon(port.cancel(job_id))
                return "running"
        return "unknown"

    def change_weights(self, job_id: str, weights: dict[str, float]) -> str:
        """Send a job's new loss weights to the worker painting it: 'running'. Else 'queued' or
        'unknown', and nothing is sent: a job reads its params when it starts."""
        for slot in self._slots:
            if slot.current == job_id:
                slot.send_soon(port.weights(job_id, weights))
                return "running"
        return "queued" if job_id in self._queue else "unknown"

    async def stop(self) -> None:
        """Close every worker's stdin, wait up to `shutdown_timeout_s`, then kill; reap them all.

        Each job a worker was painting is handed back (`on_stopped`): a clean stop is not a crash.
        """
        self._stopping = True
        tasks = [slot.task for slot in self._slots if slot.task is not None]
        if self._retrier is not None:
            tasks.append(self._retrier)
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        for slot in self._slots:
            await slot.shut_down()
            job, slot.current = slot.current, None
            if job is not None:
                self._call("hand back the job it was painting", job, functools.partial(self.handler.on_stopped, job))
        self._deliver_undelivered()  # a last try, so a clean stop keeps what it can

    def _take(self) -> str | None:
        return self._queue.popleft() if self._queue else None

    # --- storage faults -----------------------------------------------------------------------

    def _call(self, what: str, job: str, call: Callable[[], T]) -> tuple[bool, T | None]:
        """Run a handler call: (True, its result), or on failure log it, record the fault, (False, None)."""
        try:
            with about(job=job):  # the handler's log lines carry the job's id
                result = call()
        except Exception as exc:  # storage faults above all, but a bug must not end a slot either
            self.fault = f"Studio cannot store its work: job {job}: could not {what}: {exc}"
            self.faults_total += 1
            log.error("job %s: could not %s: %s", job, what, exc, exc_info=not isinstance(exc, StorageUnavailable))
            return False, None
        self.storage_works()
        return True, result

    def start_failed(self, job: str) -> None:
        """The job could not be started (its record or images could not be read or written)."""
        self._later.add(job)
        asyncio.get_running_loop().call_later(self.fault_retry_s, self._retry_start, job)

    def _retry_start(self, job: str) -> None:
        if job in self._later and not self._stopping:
            self._later.discard(job)
            self.submit(job, front=True)

    def deliver(self, job: str, message: port.Message) -> None:
        """Hand a worker's message to the handler; an ending that cannot be stored is kept for later."""
        stored, _ = self._call(
            f"store its {message.type!r} message", job, lambda: self.handler.on_message(job, message)
        )
        if not stored and message.type in TERMINAL:
            self._undelivered[job] = message

    def _deliver_undelivered(self) -> None:
        for job, message in list(self._undelivered.items()):
            del self._undelivered[job]
            self.deliver(job, message)

    async def _retry_loop(self) -> None:
        while True:
            await asyncio.sleep(self.fault_retry_s)
            if self._undelivered:
                self._deliver_undelivered()


class _Slot:
    """One worker process and the job it runs."""

    def __init__(self, supervisor: Supervisor, index: int) -> None:
        self.sup = supervisor
        self.index = index
        self.task: asyncio.Task | None = None
        self.proc: subprocess.Popen | None = None
        self.ready = False
        self.failure: str | None = None
        self.current: str | None = None
        self.said: dict[str, object] = {}  # its `ready` message: version, backend, device, weights
        self.models_said_at = 0.0  # when it last listed its models (`ready`, or `models` after a training)
        self.builtin_sheet: bytes | None = None  # the fast engine's built-in styles, one PNG strip
        self.calibration: Calibration | None = None  # its timing, kept across restarts (the same device)
        self.calibration_problem: str | None = None  # why it has none, when it said
        self._calibrating = False  # a `calibrate` is out, not answered yet
        self._inbox: asyncio.Queue = asyncio.Queue()
        self._write_lock = asyncio.Lock()
        self._restarts: collections.deque[float] = collections.deque()
        self._ping_n = 0
        self._pong_due: float | None = None  # monotonic deadline of the outstanding ping
        self._kill_reason: str | None = None
        self._background: set[asyncio.Task] = set()

    def describe(self) -> dict[str, object]:
        pid = self.proc.pid if self.proc is not None else None
        return {
            "index": self.index,
            "pid": pid,
            "ready": self.ready,
            "job": self.current,
            **self.said,
            "failure": self.failure,
            "calibration": self.calibration.to_json() if self.calibration is not None else None,
            "calibration_problem": self.calibration_problem,
        }

    # --- the slot's life ----------------------------------------------------------------------

    async def run(self) -> None:
        while not self.sup._stopping:
            try:
                await self._serve()
            except Exception as exc:  # WorkerCrashed, or a bug of Studio's: never end the slot silently
                crash = exc if isinstance(exc, WorkerCrashed) else WorkerCrashed(f"Studio failed: {exc!r}")
                if not isinstance(exc, WorkerCrashed):
                    log.exception("worker %d: Studio failed while serving it; restarting the worker", self.index)
                self.ready = False
                status = await self._reap()
                log.warning("worker %d died (%s, exit status %s)", self.index, crash, status)
                job, self.current = self.current, None
                if job is not None:
                    self._job_lost(job)
                now = time.monotonic()
                self.sup.restarts_total += 1
                self._restarts.append(now)
                while self._restarts and now - self._restarts[0] > self.sup.restart_window_s:
                    self._restarts.popleft()
                if len(self._restarts) > self.sup.max_restarts:
                    self.failure = (
                        f"the worker died {len(self._restarts)} times within {self.sup.restart_window_s:g} s "
                        f"(last: {crash}, exit status {status}); restarts stopped"
                    )
                    log.error("%s", self.failure)
                    return

    async def _serve(self) -> None:
        self._start_process()
        await self._wait_ready()
        self.ready = True
        self.failure = None
        pinger = asyncio.create_task(self._ping_loop())
        try:
            while True:
                if self.current is None and (job := self.sup._take()) is not None:
                    await self._start_job(job)
                    continue
                await self._calibrate_when_idle()
                kind, message = await self._inbox.get()
                if kind == "eof":
                    why = self._kill_reason or message or "the worker closed its output"
                    raise WorkerCrashed(why, job=self.current)
                if kind == "msg":
                    self._handle(message)
        finally:
            pinger.cancel()

    def _start_process(self) -> None:
        self._inbox = asyncio.Queue()
        if self._calibrating:  # the last process died while timing itself: never ask again (no crash loop)
            self.calibration_problem = "the worker died while timing itself"
        self._calibrating = False
        self._pong_due = None
        self._kill_reason = None
        try:
            # Its own session: a Ctrl-C meant for Studio must not kill the worker before Studio stops it.
            self.proc = subprocess.Popen(
                self.sup.command,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                start_new_session=True,
                env={**os.environ, **self.sup.worker_env(self.index)},
            )
        except OSError as exc:
            self.proc = None
            raise WorkerCrashed(f"cannot start the worker: {exc}") from None
        loop = asyncio.get_running_loop()
        threading.Thread(
            target=_read_messages, args=(self.proc, self._inbox, loop), name=f"worker-{self.index}-reader", daemon=True
        ).start()

    async def _wait_ready(self) -> None:
        deadline = time.monotonic() + self.sup.ready_timeout_s
        while True:
            try:
                kind, message = await asyncio.wait_for(self._inbox.get(), deadline - time.monotonic())
            except TimeoutError:
                self._kill()
                limit = self.sup.ready_timeout_s
                raise WorkerCrashed(f"the worker did not load its model within {limit:g} s") from None
            if kind == "eof":
                raise WorkerCrashed(message or "the worker exited before it was ready")
            if kind == "msg" and message.type == "ready":
                log.info("worker %d ready: %s", self.index, message.fields)
                self.said = dict(message.fields)
                self.models_said_at = time.monotonic()
                sheets = message.blobs("builtin")
                self.builtin_sheet = sheets[0] if sheets else None
                return

    def _job_lost(self, job: str) -> None:
        """The worker died while painting `job`: the handler decides; if it cannot, try again later."""
        recorded, again = self.sup._call("record its worker's death", job, lambda: self.sup.handler.on_worker_died(job))
        if not recorded:
            self.sup.start_failed(job)
        elif again:
            self.sup.submit(job, front=True)

    async def _start_job(self, job: str) -> None:
        started, message = self.sup._call("start", job, lambda: self.sup.handler.paint_message(job))
        if not started:
            self.sup.start_failed(job)
            return
        if message is None:
            return
        self.current = job
        with about(job=job):
            log.info(
                "started on worker %d%s",
                self.index,
                f" from iteration {message.get('start_iteration')}" if message.get("start_iteration") else "",
            )
        await self._send(message)

    async def _calibrate_when_idle(self) -> None:
        """Ask an idle worker to time itself, once (again after a job interrupted it), unless it has."""
        wanted = self.sup.calibrate and self.calibration is None and self.calibration_problem is None
        if wanted and not self._calibrating and self.current is None and not self.sup._queue:
            self._calibrating = True
            await self._send(port.calibrate())

    def _calibrated(self, message: port.Message) -> None:
        self._calibrating = False
        if message.get("interrupted"):
            return  # a job came first: asked again when idle
        try:
            self.calibration = Calibration.from_json(message.get("calibration"))
        except ValueError as exc:
            self.calibration_problem = str(message.get("problem") or exc)[:500]
            log.warning("worker %d could not time itself: %s", self.index, self.calibration_problem)
            return
        log.info("worker %d timed itself in %.1f s", self.index, self.calibration.took_s)

    def _handle(self, message: port.Message) -> None:
        if message.type == "pong":
            self._pong_due = None
            return
        if message.type == "calibrated":
            self._calibrated(message)
            return
        if message.type == "models":  # a training put a model in the folder: the worker serves it now
            models, engines = message.get("models"), message.get("engines")
            if isinstance(models, list):
                self.said["models"] = models
                self.models_said_at = time.monotonic()
            if isinstance(engines, dict):
                self.said["engines"] = engines
            names = [m.get("name") for m in models if isinstance(m, dict)] if isinstance(models, list) else None
            log.info("worker %d: its models are now %s", self.index, names)
            if message.get("trained"):  # the others read the folder anew too, so any of them paints with it
                for slot in self.sup._slots:
                    if slot is not self and slot.ready:
                        slot.send_soon(port.rescan())
            return
        if message.job is None or message.job != self.current:
            if message.type == "error":
                log.warning("worker %d: %s", self.index, message.fields)
            return
        self.sup.deliver(message.job, message)
        if message.type in TERMINAL:
            with about(job=message.job):
                log.info("worker %d finished it: %s", self.index, message.type)
            self.current = None

    async def _ping_loop(self) -> None:
        while True:
            await asyncio.sleep(self.sup.ping_interval_s)
            if self._pong_due is not None:
                if time.monotonic() > self._pong_due:
                    self._kill_reason = f"the worker hung (no answer to a ping within {self.sup.ping_timeout_s:g} s)"
                    log.error("worker %d: %s; killing it", self.index, self._kill_reason)
                    self._kill()
                    return
                continue
            self._ping_n += 1
            self._pong_due = time.monotonic() + self.sup.ping_timeout_s
            await self._send(port.ping(self._ping_n))

    # --- talking to the process ---------------------------------------------------------------

    async def _send(self, message: port.Message) -> None:
        proc = self.proc
        if proc is None or proc.stdin is None:
            return
        async with self._write_lock:
            try:
                await asyncio.to_thread(port.write_message, proc.stdin, message)
            except (OSError, ValueError) as exc:  # the pipe broke: the reader reports the death
                log.warning("worker %d: cannot write: %s", self.index, exc)

    def send_soon(self, message: port.Message) -> None:
        task = asyncio.get_running_loop().create_task(self._send(message))
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    def wake(self) -> None:
        self._inbox.put_nowait(("wake", None))

    def _kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                self.proc.kill()

    async def _reap(self) -> int | None:
        """Kill the process if it still runs and wait for it (no zombie); its exit status."""
        proc, self.proc = self.proc, None
        if proc is None:
            return None
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
        status = await asyncio.to_thread(proc.wait)
        with contextlib.suppress(OSError):
            if proc.stdin is not None:
                proc.stdin.close()
        return status

    async def shut_down(self) -> None:
        self.ready = False
        proc = self.proc
        if proc is None:
            return
        with contextlib.suppress(OSError, ValueError):
            if proc.stdin is not None:
                proc.stdin.close()  # asks for a clean exit
        try:
            await asyncio.wait_for(asyncio.to_thread(proc.wait), self.sup.shutdown_timeout_s)
        except TimeoutError:
            log.warning("worker %d did not exit within %g s: killing it", self.index, self.sup.shutdown_timeout_s)
        await self._reap()


def _read_messages(proc: subprocess.Popen, inbox: asyncio.Queue, loop: asyncio.AbstractEventLoop) -> None:
    """The reader thread: every message from the worker's stdout into `inbox`, then ('eof', why)."""

    def put(item: tuple) -> None:
        with contextlib.suppress(RuntimeError):  # the loop is closed: nobody is listening any more
            loop.call_soon_threadsafe(inbox.put_nowait, item)

    why = None
    stdout = proc.stdout
    assert stdout is not None, "the worker is started with stdout=PIPE"
    with stdout:  # closed when the worker is done with: no file left for the garbage collector
        while True:
            try:
                message = port.read_message(stdout)
            except port.ProtocolError as exc:
                if exc.fatal:
                    why = f"the worker broke the protocol: {exc}"
                    with contextlib.suppress(ProcessLookupError):
                        proc.kill()
                    break
                log.warning("bad message from the worker: %s", exc)
                continue
            except (OSError, ValueError) as exc:
                why = f"cannot read from the worker: {exc}"
                break
            if message is None:
                break
            put(("msg", message))
    put(("eof", why))


__all__ = ["JobHandler", "Supervisor"]
