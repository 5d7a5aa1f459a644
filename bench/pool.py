"""Benchmark: how many paintings a minute a pool of three Studios and two Gallery replicas paints. Not a test.

    .venv/bin/python bench/pool.py [--paintings 200] [--workers-per-studio 1] [--worker standin|fast]
                                   [--seconds-per-iteration 0.05] [--out pool.json] [--keep]

It starts the pool of docker-compose.pool.yml for real, on loopback, each part a subprocess with its
data in a temp folder: a throw-away PostgreSQL (tests/postgres_server.py), three Studios (`python -m
studio`, --workers-per-studio workers each) and two Gallery replicas (`python -m gallery`,
GALLERY_REPLICAS=true) sharing that database and one data folder, each listing the three Studios
(GALLERY_STUDIOS). The worker is the stand-in (tests/studio/fake_worker.py: the real protocol, no
engine, FAKE_SECONDS_PER_ITERATION a step; paintings of 10 iterations) or the real one (`python -m
pycasso`, paintings with engine fast).

1. Reference: one painting alone on studio-1, through Studio's own API (POST /v1/jobs, then its event
   stream until `done`), before any Gallery runs: the median of REFERENCE_RUNS after a warm-up. The
   pool's capacity is its workers / that many seconds: what it would paint with no overhead at all.
2. Load: a WebSocket on each replica's /ws (Origin: its own page's), then --paintings small paintings
   posted alternately to the two replicas (--concurrency POSTs in flight), as people would; then wait
   until each has ended, reading the shared catalog every POLL_S (and the WebSockets' events).

It prints one table: paintings, done, failed, the wall time (first POST to last ending), paintings a
minute, the capacity, throughput as a fraction of it, and the median and 95th percentile of Paint →
first progress (from a POST to the first `painting.progress` either WebSocket carries for that
painting; a painting without progress, as the fast engine paints, counts its `painting.done`). Below
it: how many jobs each Studio painted, how many endings each WebSocket saw (with replicas every one
sees every painting's events), for how many paintings one carried the first progress (the
percentiles' count), and a WebSocket Gallery closed before the end. On 2 cores the pool's ten-odd
processes share the CPU: compare only figures from one run, on one machine.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import re
import secrets
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import httpx
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed
from websockets.typing import Origin

REPO = Path(__file__).resolve().parents[1]
TESTS = REPO / "tests"
sys.path.insert(0, str(TESTS))  # the tests' throw-away PostgreSQL and process helpers

from postgres_server import PostgresServer, start_postgres  # noqa: E402
from support import alive, descendants, free_port, png, terminate  # noqa: E402

STUDIOS = ("studio-1", "studio-2", "studio-3")
REPLICAS = ("gallery-a", "gallery-b")
FAKE_WORKER = TESTS / "studio" / "fake_worker.py"
STANDIN_ITERATIONS = 10
REFERENCE_RUNS = 3  # after one warm-up
STUDIO_READY_S = 300.0  # the real worker loads TensorFlow and VGG19: well under this on 2 cores
CALIBRATED_S = 120.0  # then times itself (tens of seconds on 2 cores; the stand-in answers at once)
GALLERY_READY_S = 60.0
POLL_S = 0.5  # reading the catalog while waiting for the end
FINAL = ("done", "failed", "cancelled")


def params_for(worker: str) -> dict[str, Any]:
    """A small painting's params: 64 px tall, 10 stand-in iterations (a preview every 5), or the fast engine."""
    if worker == "fast":
        return {"engine": "fast", "size": 64}
    return {"size": 64, "iterations": STANDIN_ITERATIONS, "preview_every": 5}


def painting_files() -> list[tuple[str, tuple[str, bytes, str]]]:
    """The multipart files of one painting: a 64×48 photo and a 48×48 style (Pillow-made PNGs)."""
    return [
        ("content", ("c.png", png(64, 48), "image/png")),
        ("style", ("s.png", png(48, 48, (20, 40, 220)), "image/png")),
    ]


def percentile(values: list[float], q: float) -> float:
    """The q-th percentile (0-100) of `values`, interpolated between the nearest ranks; nan when empty."""
    if not values:
        return math.nan
    ordered = sorted(values)
    rank = (len(ordered) - 1) * q / 100
    low, high = math.floor(rank), math.ceil(rank)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


# ---------------------------------------------------------------- the processes


class Service:
    """`python -m MODULE --host 127.0.0.1 --port P` in a subprocess, its output in `folder/NAME.log`."""

    def __init__(self, name: str, module: str, env: dict[str, str], folder: Path) -> None:
        self.name = name
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = folder / f"{name}.log"
        command = [sys.executable, "-m", module, "--host", "127.0.0.1", "--port", str(self.port)]
        with open(self.log_path, "wb") as log:  # the child keeps its own copy of the descriptor
            self.proc = subprocess.Popen(
                [*command, "--log-level", "warning"], env=env, stdout=log, stderr=subprocess.STDOUT, cwd=folder
            )

    def output(self, chars: int = 3000) -> str:
        return self.log_path.read_text(errors="replace")[-chars:]

    def wait_until(self, condition: Callable[[], bool], timeout: float, what: str) -> None:
        """Poll `condition` (HTTP errors count as not yet) until true; exit with the log when the process
        ends or `timeout` passes first."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise SystemExit(f"{self.name} exited with status {self.proc.returncode}:\n{self.output()}")
            try:
                if condition():
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        raise SystemExit(f"{self.name} was not {what} within {timeout:.0f} s:\n{self.output()}")

    def stop(self) -> None:
        """SIGTERM it (Studio stops its workers), then SIGKILL whatever it left behind."""
        below = descendants(self.proc.pid)
        terminate(self.proc)
        for pid in below:
            if alive(pid):
                os.kill(pid, signal.SIGKILL)


@dataclass
class Pool:
    """The running pool: its folder, database, Studios and Gallery replicas, and the Studios' token."""

    folder: Path
    token: str
    postgres: PostgresServer | None = None
    database_url: str = ""
    studios: list[Service] = field(default_factory=list)
    galleries: list[Service] = field(default_factory=list)

    def start_studios(self, worker: str, workers: int, seconds_per_iteration: float) -> None:
        command = [sys.executable, str(FAKE_WORKER)] if worker == "standin" else [sys.executable, "-m", "pycasso"]
        for name in STUDIOS:
            env = {
                **os.environ,
                "TF_CPP_MIN_LOG_LEVEL": "2",
                "STUDIO_DATA_DIR": str(self.folder / name),
                "STUDIO_TOKEN": self.token,
                "STUDIO_WORKER_COMMAND": json.dumps(command),
                "STUDIO_WORKERS": str(workers),
                "FAKE_SECONDS_PER_ITERATION": str(seconds_per_iteration),
            }
            self.studios.append(Service(name, "studio", env, self.folder))
        for studio in self.studios:
            with self.studio_client(studio) as client:

                def all_ready(client: httpx.Client = client) -> bool:
                    slots = client.get("/v1/status").json()["workers"]
                    return len(slots) == workers and all(slot["ready"] for slot in slots)

                studio.wait_until(all_ready, STUDIO_READY_S, f"ready with {workers} workers")
        # A worker times itself once idle (for Studio's estimates): let every one finish first, so that
        # none shares the CPU with the reference painting; a Studio that never does is only slower to choose.
        deadline = time.monotonic() + CALIBRATED_S
        for studio in self.studios:
            with self.studio_client(studio) as client:
                while time.monotonic() < deadline:
                    slots = client.get("/v1/status").json()["workers"]
                    if all(slot.get("calibration") or slot.get("calibration_problem") for slot in slots):
                        break
                    time.sleep(0.5)

    def start_galleries(self, paintings: int) -> None:
        studios = [{"url": s.url, "token": self.token, "name": s.name} for s in self.studios]
        for name in REPLICAS:
            env = {
                **os.environ,
                "GALLERY_DATA_DIR": str(self.folder / "gallery-data"),  # one folder: the shared volume
                "GALLERY_DATABASE_URL": self.database_url,
                "GALLERY_REPLICAS": "true",
                "GALLERY_REPLICA_NAME": name,
                "GALLERY_STUDIOS": json.dumps(studios),
                "GALLERY_STUDIO_POLL_S": "0.5",
                # One client posts them all, at once: the caps on paintings must not refuse any.
                "GALLERY_MAX_UNFINISHED": str(paintings + 10),
                "GALLERY_MAX_UNFINISHED_PER_CLIENT": str(paintings + 10),
                "GALLERY_MAX_CREATIONS_PER_MINUTE": str(max(1000, 10 * paintings)),
            }
            gallery = Service(name, "gallery", env, self.folder)
            self.galleries.append(gallery)

            def ready(url: str = gallery.url) -> bool:
                return httpx.get(f"{url}/health/ready", timeout=5, trust_env=False).status_code == 200

            # One at a time: the first creates the schema in the empty database.
            gallery.wait_until(ready, GALLERY_READY_S, "ready")

    def studio_client(self, studio: Service) -> httpx.Client:
        auth = {"Authorization": f"Bearer {self.token}"}
        return httpx.Client(base_url=studio.url, headers=auth, timeout=60, trust_env=False)

    def stop(self) -> None:
        for service in [*self.galleries, *self.studios]:
            try:
                service.stop()
            except Exception as exc:  # stop the rest whatever one does
                print(f"stopping {service.name}: {exc!r}", file=sys.stderr)
        if self.postgres is not None:
            self.postgres.stop()


# ---------------------------------------------------------------- the reference: one painting alone


def studio_job_seconds(client: httpx.Client, params: dict[str, Any]) -> float:
    """Post one job to Studio and follow its event stream to the end: seconds from the POST to `done`."""
    started = time.perf_counter()
    response = client.post("/v1/jobs", files=painting_files(), data={"params": json.dumps(params)})
    if response.status_code != 202:
        raise SystemExit(f"Studio refused the reference job: {response.status_code} {response.text[:500]}")
    job = response.json()["id"]
    with client.stream("GET", f"/v1/jobs/{job}/events") as events:
        for line in events.iter_lines():
            if line.startswith("event:"):
                kind = line.partition(":")[2].strip()
                if kind == "done":
                    return time.perf_counter() - started
                if kind != "progress":
                    raise SystemExit(f"the reference job ended {kind}: {client.get(f'/v1/jobs/{job}').text[:500]}")
    raise SystemExit("Studio's event stream ended before the reference job did")


def reference(pool: Pool, params: dict[str, Any]) -> list[float]:
    """Seconds of REFERENCE_RUNS paintings alone on studio-1, after one warm-up."""
    with pool.studio_client(pool.studios[0]) as client:
        studio_job_seconds(client, params)
        return [studio_job_seconds(client, params) for _ in range(REFERENCE_RUNS)]


def studio_jobs_done(pool: Pool) -> dict[str, int]:
    """Jobs each Studio has done (its `studio_jobs{status="done"}` metric)."""
    counts = {}
    for studio in pool.studios:
        with pool.studio_client(studio) as client:
            text = client.get("/v1/metrics").text
        found = re.search(r'^studio_jobs\{status="done"\} ([0-9.e+]+)$', text, re.MULTILINE)
        counts[studio.name] = int(float(found[1])) if found else 0
    return counts


# ---------------------------------------------------------------- the load


@dataclass
class Painting:
    id: str
    replica: str
    posted_at: float  # perf_counter() when its POST was sent
    answered_s: float  # the POST's own time
    first_progress_at: float | None = None
    status: str | None = None
    ended_at: float | None = None


@dataclass
class Load:
    paintings: dict[str, Painting] = field(default_factory=dict)
    refused: list[str] = field(default_factory=list)
    endings_seen: dict[str, int] = field(default_factory=dict)  # per replica's WebSocket
    closed: dict[str, str] = field(default_factory=dict)  # a replica's WebSocket that closed before the end: how
    first_progress: dict[str, float] = field(default_factory=dict)  # painting id -> when, either socket
    ended: dict[str, tuple[str, float]] = field(default_factory=dict)  # painting id -> (status, when)
    started_at: float = 0.0
    timed_out: bool = False


async def listen(socket: ClientConnection, replica: str, load: Load) -> None:
    """Note each painting's first progress and its end, as this replica's WebSocket tells them."""
    try:
        async for text in socket:
            now = time.perf_counter()
            event = json.loads(text)
            kind, painting_id = str(event.get("type", "")), str(event.get("id", ""))
            if kind == "painting.progress":
                load.first_progress.setdefault(painting_id, now)
            elif kind.removeprefix("painting.") in FINAL:
                load.endings_seen[replica] = load.endings_seen.get(replica, 0) + 1
                load.ended.setdefault(painting_id, (kind.removeprefix("painting."), now))
                if kind == "painting.done":  # the first sign of a painting that sends no progress (engine fast)
                    load.first_progress.setdefault(painting_id, now)
    except ConnectionClosed:
        pass
    load.closed[replica] = (
        f"closed {time.perf_counter() - load.started_at:.1f} s in, code {socket.close_code} {socket.close_reason or ''}"
    ).strip()


async def catalog_statuses(client: httpx.AsyncClient, url: str) -> dict[str, str]:
    """Every painting's status, from one replica (the catalog is the replicas' shared one)."""
    statuses: dict[str, str] = {}
    offset = 0
    while True:
        page = (await client.get(f"{url}/api/paintings", params={"limit": 500, "offset": offset})).json()
        statuses.update({item["id"]: item["status"] for item in page["items"]})
        offset += len(page["items"])
        if not page["items"] or offset >= page["total"]:
            return statuses


async def run_load(
    galleries: list[Service], count: int, params: dict[str, Any], concurrency: int, timeout: float
) -> Load:
    load = Load(endings_seen={g.name: 0 for g in galleries})
    sockets = []
    for gallery in galleries:
        ws_url = gallery.url.replace("http://", "ws://", 1) + "/ws"
        sockets.append(await connect(ws_url, origin=Origin(gallery.url), proxy=None, max_queue=None))
    listeners = [asyncio.create_task(listen(s, g.name, load)) for s, g in zip(sockets, galleries, strict=True)]
    gate = asyncio.Semaphore(concurrency)
    data = {"params": json.dumps(params)}
    try:
        async with httpx.AsyncClient(timeout=60, trust_env=False) as client:

            async def post(index: int) -> None:
                gallery = galleries[index % len(galleries)]
                async with gate:
                    sent = time.perf_counter()
                    response = await client.post(f"{gallery.url}/api/paintings", files=painting_files(), data=data)
                    answered = time.perf_counter() - sent
                if response.status_code != 201:
                    load.refused.append(f"{gallery.name}: {response.status_code} {response.text[:200]}")
                    return
                painting_id = response.json()["id"]
                load.paintings[painting_id] = Painting(painting_id, gallery.name, sent, answered)

            load.started_at = time.perf_counter()
            await asyncio.gather(*(post(i) for i in range(count)))
            deadline = load.started_at + timeout
            while True:
                statuses = await catalog_statuses(client, galleries[0].url)
                now = time.perf_counter()
                for painting_id, status in statuses.items():
                    if status in FINAL:
                        load.ended.setdefault(painting_id, (status, now))  # a WebSocket's earlier word stands
                if all(p in load.ended for p in load.paintings):
                    break
                if now > deadline:
                    load.timed_out = True
                    break
                await asyncio.sleep(POLL_S)
    finally:
        for task in listeners:
            task.cancel()
        for socket in sockets:
            await socket.close()
    for painting in load.paintings.values():
        painting.first_progress_at = load.first_progress.get(painting.id)
        if painting.id in load.ended:
            painting.status, painting.ended_at = load.ended[painting.id]
    return load


# ---------------------------------------------------------------- the report


@dataclass
class Result:
    paintings: int
    done: int
    failed: int
    other: int  # refused, cancelled or unfinished at the timeout
    wall_s: float
    per_minute: float
    capacity_per_minute: float
    of_capacity: float
    first_progress_p50_s: float
    first_progress_p95_s: float
    first_progress_seen: int  # paintings whose first progress a WebSocket carried (the percentiles' count)
    reference_s: float


def summarise(load: Load, count: int, workers: int, reference_s: float) -> Result:
    paintings = list(load.paintings.values())
    done = sum(p.status == "done" for p in paintings)
    failed = sum(p.status == "failed" for p in paintings)
    ends = [p.ended_at for p in paintings if p.ended_at is not None]
    wall = (max(ends) - load.started_at) if ends else math.nan
    firsts = [p.first_progress_at - p.posted_at for p in paintings if p.first_progress_at is not None]
    per_minute = done / wall * 60 if ends and wall > 0 else 0.0
    capacity = workers * 60 / reference_s
    return Result(
        paintings=count,
        done=done,
        failed=failed,
        other=count - done - failed,
        wall_s=wall,
        per_minute=per_minute,
        capacity_per_minute=capacity,
        of_capacity=per_minute / capacity,
        first_progress_p50_s=percentile(firsts, 50),
        first_progress_p95_s=percentile(firsts, 95),
        first_progress_seen=len(firsts),
        reference_s=reference_s,
    )


def table(result: Result) -> str:
    columns = "{:>9} {:>5} {:>6} {:>8} {:>11} {:>14} {:>11} {:>15} {:>15}"
    header = columns.format(
        "paintings",
        "done",
        "failed",
        "wall s",
        "paintings/min",
        "capacity/min",
        "of capacity",
        "p50 1st prog.",
        "p95 1st prog.",
    )
    row = columns.format(
        result.paintings,
        result.done,
        result.failed,
        f"{result.wall_s:.1f}",
        f"{result.per_minute:.0f}",
        f"{result.capacity_per_minute:.0f}",
        f"{result.of_capacity:.0%}",
        f"{result.first_progress_p50_s:.2f} s",
        f"{result.first_progress_p95_s:.2f} s",
    )
    return f"{header}\n{row}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--paintings", type=int, default=200, help="paintings to post (default 200)")
    parser.add_argument("--workers-per-studio", type=int, default=1, help="STUDIO_WORKERS of each Studio (default 1)")
    parser.add_argument(
        "--worker",
        choices=("standin", "fast"),
        default="standin",
        help="the stand-in, or the real worker's fast engine",
    )
    parser.add_argument(
        "--seconds-per-iteration",
        type=float,
        default=0.05,
        help=f"the stand-in's speed (FAKE_SECONDS_PER_ITERATION; {STANDIN_ITERATIONS} iterations a painting)",
    )
    parser.add_argument("--concurrency", type=int, default=4, help="POSTs in flight at once (default 4)")
    parser.add_argument("--timeout", type=float, default=900.0, help="seconds to wait for every painting to end")
    parser.add_argument("--out", type=Path, help="also write the results and each painting's timings here (JSON)")
    parser.add_argument("--keep", action="store_true", help="keep the temp folder (data, each process's log)")
    args = parser.parse_args(argv)
    if args.paintings < 1 or args.workers_per_studio < 1 or args.concurrency < 1:
        parser.error("--paintings, --workers-per-studio and --concurrency must be at least 1")

    folder = Path(tempfile.mkdtemp(prefix="bench-pool-"))
    pool = Pool(folder, token=secrets.token_hex(24))
    params = params_for(args.worker)
    workers = len(STUDIOS) * args.workers_per_studio
    try:
        postgres, why = start_postgres()
        if postgres is None:
            raise SystemExit(f"no PostgreSQL: {why}")
        pool.postgres = postgres
        pool.database_url = postgres.url(postgres.create_database())
        started = time.monotonic()
        pool.start_studios(args.worker, args.workers_per_studio, args.seconds_per_iteration)
        print(
            f"{len(STUDIOS)} Studios × {args.workers_per_studio} {args.worker} workers ready in "
            f"{time.monotonic() - started:.0f} s",
            flush=True,
        )
        runs = reference(pool, params)
        reference_s = statistics.median(runs)
        print(f"reference: one painting alone on {STUDIOS[0]}: {', '.join(f'{r:.2f}' for r in runs)} s", flush=True)
        pool.start_galleries(args.paintings)
        print(f"{len(REPLICAS)} Gallery replicas ready; posting {args.paintings} paintings", flush=True)
        load = asyncio.run(run_load(pool.galleries, args.paintings, params, args.concurrency, args.timeout))
        jobs = studio_jobs_done(pool)
        jobs[STUDIOS[0]] -= REFERENCE_RUNS + 1
    finally:
        pool.stop()
        if args.keep:
            print(f"kept {folder}")
        else:
            shutil.rmtree(folder, ignore_errors=True)

    result = summarise(load, args.paintings, workers, reference_s)
    what = (
        f"{args.seconds_per_iteration} s/iteration × {STANDIN_ITERATIONS}"
        if args.worker == "standin"
        else "engine fast"
    )
    print()
    print(
        f"Pool: {len(STUDIOS)} Studios × {args.workers_per_studio} workers ({args.worker}, {what}, "
        f"{params['size']} px), {len(REPLICAS)} Gallery replicas on PostgreSQL; {os.cpu_count()} CPUs"
    )
    print(f"capacity = {workers} workers / {reference_s:.3g} s (one painting alone, median of {REFERENCE_RUNS})")
    print(table(result))
    print(f"jobs per Studio: {', '.join(f'{name} {n}' for name, n in jobs.items())}")
    seen = ", ".join(f"{name} {n}/{len(load.paintings)}" for name, n in load.endings_seen.items())
    print(f"endings each WebSocket saw: {seen}; first progress seen for {result.first_progress_seen}")
    for name, how in load.closed.items():
        print(f"{name}'s WebSocket {how}")
    if load.refused:
        print(f"{len(load.refused)} POSTs refused, e.g. {load.refused[0]}")
    if load.timed_out:
        print(f"timed out after {args.timeout:.0f} s with {result.other} paintings unfinished")
    if args.out:
        report = {
            "config": {**vars(args), "out": str(args.out), "params": params, "workers": workers},
            "reference_runs_s": runs,
            "result": asdict(result),
            "jobs_per_studio": jobs,
            "endings_seen": load.endings_seen,
            "refused": load.refused,
            "paintings": [
                {
                    "id": p.id,
                    "replica": p.replica,
                    "post_s": p.answered_s,
                    "first_progress_s": None if p.first_progress_at is None else p.first_progress_at - p.posted_at,
                    "status": p.status,
                    "ended_s": None if p.ended_at is None else p.ended_at - p.posted_at,
                }
                for p in load.paintings.values()
            ],
        }
        args.out.write_text(json.dumps(report, indent=1, default=str))
    return 0 if result.done == args.paintings else 1


if __name__ == "__main__":
    sys.exit(main())
