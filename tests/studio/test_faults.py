"""Faults Studio must ride out without losing a job: storage that stops taking writes (an immutable
folder, a full disk, PostgreSQL gone), a crash inside a resumed run's repeated iterations, a clean
restart, and a stop while event streams are open. Studio runs for real with the fake worker.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from painting.catalog import Catalog
from painting.fsck import fsck
from painting.images import ImageStore
from painting.progress import ProgressPoint
from studio.events import JobEvents
from studio.jobs import Jobs
from studio.runner import CRASHED_TWICE, IMAGES_MISSING, JobRunner

from postgres_server import start_postgres
from studio_process import FAKE_WORKER, StudioProcess, read_events
from support import png

FAST_RETRY = {"STUDIO_FAULT_RETRY_S": "0.2", "STUDIO_PING_INTERVAL_S": "0.5"}


def cannot_run(reason: str) -> None:
    """Skip loudly on a developer's machine; under CI (root, with chattr and mount), fail."""
    if os.environ.get("CI"):
        pytest.fail(reason)
    pytest.skip(reason)


def full_log(studio: StudioProcess) -> str:
    return (studio.data_dir.parent / f"studio-{studio.port}.log").read_text(errors="replace")


def is_done(studio: StudioProcess, job_id: str) -> bool:
    return job_state(studio, job_id)["state"] == "done"


def job_state(studio: StudioProcess, job_id: str) -> dict:
    return studio.client.get(f"/v1/jobs/{job_id}").json()


def ready(studio: StudioProcess) -> tuple[int, str]:
    response = studio.client.get("/health/ready")
    return response.status_code, response.json().get("reason") or ""


@contextlib.contextmanager
def immutable(*paths: Path) -> Iterator[None]:
    """`chattr -R +i`: not even root may write there, until the block ends."""
    if os.geteuid() != 0 or shutil.which("chattr") is None:
        cannot_run("STORAGE FAULT TEST CANNOT RUN: needs root and chattr to make the data folder unwritable")
    done = subprocess.run(["chattr", "-R", "+i", *map(str, paths)], capture_output=True, text=True, check=False)
    if done.returncode != 0:
        cannot_run(f"STORAGE FAULT TEST CANNOT RUN: chattr +i failed: {done.stderr.strip()}")
    try:
        yield
    finally:
        subprocess.run(["chattr", "-R", "-i", *map(str, paths)], check=True)


# --- storage that stops taking writes ---------------------------------------------------------


def _paint_through_a_fault(
    studio: StudioProcess, fault: contextlib.AbstractContextManager, what: str, database_url: str | None = None
) -> None:
    """A job runs into the fault and a second is posted during it; both finish once storage is back."""
    studio.wait_ready(30)
    first = studio.post_job({"size": 48, "iterations": 150, "preview_every": 5}).json()
    studio.wait(lambda: job_state(studio, first["id"])["iteration"] >= 10, 30, "painting")
    with fault:
        studio.wait(lambda: ready(studio)[0] == 503, 15, "not ready while it cannot store")
        assert what in ready(studio)[1]
        time.sleep(3.5)  # the fake worker finishes the first job meanwhile: its ending must wait
    studio.wait(lambda: ready(studio)[0] == 200, 30, "ready again once storage works")
    second = studio.post_job({"size": 48, "iterations": 20, "preview_every": 5}).json()
    for job_id in (first["id"], second["id"]):
        studio.wait(functools.partial(is_done, studio, job_id), 30, "done")
        assert read_events(studio.client, job_id)[-1]["event"] == "done"
    assert job_state(studio, first["id"])["iteration"] == 150
    with Catalog.open(database_url, studio.data_dir, scope="studio", migrate=False) as catalog:
        report = fsck(catalog, ImageStore(studio.data_dir / "images"))
    assert report.ok, report.problems


def test_an_unwritable_image_store_pauses_studio_and_it_recovers(studio_factory):
    studio = studio_factory([sys.executable, FAKE_WORKER], **FAST_RETRY)
    _paint_through_a_fault(studio, immutable(studio.data_dir / "images"), "image store cannot be written")
    # A preview it could not store is said, not silently dropped (the result's bytes were stored already).
    assert "could not store its 'progress' message: The image store cannot be written" in full_log(studio)


def test_an_unwritable_catalog_pauses_studio_and_it_recovers(studio_factory):
    studio = studio_factory([sys.executable, FAKE_WORKER], **FAST_RETRY)
    files = [studio.data_dir / name for name in ("catalog.sqlite3", "catalog.sqlite3-wal", "catalog.sqlite3-shm")]
    _paint_through_a_fault(studio, immutable(*[f for f in files if f.exists()]), "database cannot be written")
    assert "could not store its 'done' message" in full_log(studio)  # kept, and stored once it could be


@contextlib.contextmanager
def full_disk(folder: Path) -> Iterator[None]:
    """Fill the small tmpfs that `folder` is on, then free it again."""
    filler = folder / "filler"
    with open(filler, "wb") as f, contextlib.suppress(OSError):  # ENOSPC: full
        while True:
            f.write(b"\0" * 65536)
            f.flush()
    try:
        yield
    finally:
        filler.unlink()


def test_a_full_disk_pauses_studio_and_it_recovers(tmp_path, studio_factory):
    if os.geteuid() != 0:
        cannot_run("FULL-DISK TEST CANNOT RUN: needs root to mount a small tmpfs")
    # Studio's data folder; its log goes beside it, off the small disk. 32 MB, not less: the catalog's
    # write-ahead log alone grows to several MB while a job paints (a checkpoint reuses it, never shrinks
    # it), and under CI's load it once filled an 8 MB disk before the test did.
    disk = tmp_path / "disk" / "data"
    disk.mkdir(parents=True)
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=32m", "tmpfs", str(disk)], capture_output=True)
    if mounted.returncode != 0:
        cannot_run(f"FULL-DISK TEST CANNOT RUN: mount -t tmpfs failed: {mounted.stderr.decode().strip()}")
    try:
        studio = studio_factory([sys.executable, FAKE_WORKER], name="disk/data", **FAST_RETRY)
        _paint_through_a_fault(studio, full_disk(disk), "cannot be written")
        studio.stop()
    finally:
        subprocess.run(["umount", "-l", str(disk)], check=False)


def test_postgresql_stopped_and_started_mid_painting(studio_factory):
    server, reason = start_postgres()
    if server is None:
        cannot_run(f"POSTGRESQL FAULT TEST CANNOT RUN: {reason}")
        return
    try:
        url = server.url(server.create_database())
        studio = studio_factory([sys.executable, FAKE_WORKER], STUDIO_DATABASE_URL=url, **FAST_RETRY)

        @contextlib.contextmanager
        def stopped() -> Iterator[None]:
            server.pause()
            try:
                yield
            finally:
                server.resume()

        _paint_through_a_fault(studio, stopped(), "database cannot be written", url)
    finally:
        server.stop()


# --- endings after a resume, clean restarts, streams at shutdown --------------------------------


def _stream(events: JobEvents, job_id: str, after: int) -> list[str]:
    async def collect() -> list[str]:
        return [text async for text in events.stream(job_id, after=after, keepalive_s=0.2)]

    return asyncio.run(asyncio.wait_for(collect(), 5))


@pytest.mark.parametrize("ending", ["cancelled", "failed"])
def test_an_ending_inside_a_resumed_runs_repeated_iterations_still_reaches_the_reader(tmp_path, ending):
    catalog = Catalog.open(None, tmp_path, scope="studio")
    images = ImageStore(tmp_path / "images")
    events = JobEvents(catalog)
    jobs = Jobs(catalog, images, events, cancel_running=lambda job_id: "unknown")
    runner = JobRunner(catalog, images, events)
    record, _ = jobs.create(png(40, 30), [png(30, 30)], '{"size": 48, "iterations": 50, "preview_every": 10}')
    assert runner.paint_message(record.id) is not None
    preview = images.put(png(40, 30, (9, 9, 9))).id
    for i in range(1, 14):  # a reader sees up to event 13
        catalog.record_progress(record.id, ProgressPoint(i, i, 1.0, 1.0, 1.0, 1.0, 0.1), preview_image=preview)
    assert runner.on_worker_died(record.id)  # the first crash: resumed from the preview at 10
    assert runner.paint_message(record.id) is not None
    for i in (11, 12):
        catalog.record_progress(record.id, ProgressPoint(i, i, 1.0, 1.0, 1.0, 1.0, 0.1))
    if ending == "cancelled":
        jobs.cancel(record.id)
    else:
        assert not runner.on_worker_died(record.id)  # the second crash, inside the repeated window
        assert catalog.get(record.id).error == CRASHED_TWICE
    texts = _stream(events, record.id, after=13)
    assert texts == [text for text in texts if text.startswith("id: 14\n")] and len(texts) == 1
    assert f"event: {ending}" in texts[0]
    catalog.close()


def test_a_job_whose_photo_is_gone_from_the_store_fails_instead_of_retrying_for_ever(tmp_path):
    # Before, the missing file was a "storage fault": the job was retried every few seconds for
    # ever and Studio reported itself unable to store its work.
    catalog = Catalog.open(None, tmp_path, scope="studio")
    images = ImageStore(tmp_path / "images")
    events = JobEvents(catalog)
    jobs = Jobs(catalog, images, events, cancel_running=lambda job_id: "unknown")
    runner = JobRunner(catalog, images, events)
    record, _ = jobs.create(png(40, 30), [png(30, 30)], '{"size": 48, "iterations": 5}')
    assert record.content_image is not None
    images.delete(record.content_image)
    assert runner.paint_message(record.id) is None
    ended = catalog.get(record.id)
    assert (ended.status.value, ended.error) == ("failed", IMAGES_MISSING)
    texts = _stream(events, record.id, after=-1)
    assert "event: failed" in texts[-1] and "missing from Studio's store" in texts[-1]
    catalog.close()


def test_a_clean_restart_is_not_a_crash(studio_factory):
    studio = studio_factory([sys.executable, FAKE_WORKER], STUDIO_SHUTDOWN_TIMEOUT_S="1")
    studio.wait_ready(30)
    job = studio.post_job({"size": 48, "iterations": 600, "preview_every": 5}).json()
    studio.wait(lambda: job_state(studio, job["id"])["iteration"] >= 6, 30, "painting")
    assert studio.stop() in (0, -signal.SIGTERM)  # a clean stop (SIGTERM), as Ctrl-C on serve does
    again = studio_factory([sys.executable, FAKE_WORKER])
    again.wait(lambda: job_state(again, job["id"])["state"] == "running", 30, "resumed")
    assert job_state(again, job["id"])["attempts"] == 1  # no crash so far
    again.wait(lambda: job_state(again, job["id"])["iteration"] >= 20, 30, "painting again")
    (pid,) = again.worker_pids()
    os.kill(pid, signal.SIGKILL)  # the first crash: resumed once more, not failed
    again.wait(lambda: job_state(again, job["id"])["state"] in ("done", "failed"), 60, "finished")
    final = job_state(again, job["id"])
    assert (final["state"], final["attempts"], final["error"]) == ("done", 2, None)


def test_stopping_studio_ends_open_event_streams_at_once(studio_factory):
    studio = studio_factory([sys.executable, FAKE_WORKER])
    studio.wait_ready(30)
    job = studio.post_job({"size": 48, "iterations": 3000, "preview_every": 0}).json()
    ended = threading.Event()

    def follow() -> None:
        with contextlib.suppress(Exception):
            read_events(studio.client, job["id"], timeout=60)
        ended.set()

    threading.Thread(target=follow, daemon=True).start()
    studio.wait(lambda: job_state(studio, job["id"])["iteration"] >= 3, 30, "painting")
    started = time.monotonic()
    studio.proc.send_signal(signal.SIGTERM)
    studio.proc.wait(30)
    took = time.monotonic() - started
    assert ended.wait(5), "the event stream was not ended"
    log = studio.output()
    assert "graceful shutdown exceeded" not in log and "Traceback" not in log, log
    assert took < 8, f"Studio took {took:.1f} s to stop"  # its graceful-shutdown timeout is 10 s
