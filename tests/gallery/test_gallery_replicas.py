"""Gallery replicas: two Gallery processes on one real PostgreSQL and one image folder. A page open on
replica A watches a painting that replica B drives (events cross through LISTEN/NOTIFY); B is killed
with SIGKILL mid-painting and A takes the painting over within the lease and finishes it, with no
point of its curve twice."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect
from websockets.typing import Origin

from postgres_server import PostgresServer
from studio_process import FAKE_WORKER, TOKEN, StudioProcess
from support import free_port, png, terminate, wait_for

ITERATIONS = 120
LEASE_S = 2.0
SCREENSHOTS = Path(__file__).resolve().parents[2] / "out" / "screenshots"


class GalleryProcess:
    """`python -m gallery` for real, as a replica: its URL, a client, its process."""

    def __init__(self, name: str, data_dir: Path, database_url: str | None, studio_url: str, **env: str) -> None:
        self.name = name
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        environ = {
            **os.environ,
            "GALLERY_DATA_DIR": str(data_dir),
            "GALLERY_REPLICAS": "true",
            "GALLERY_REPLICA_NAME": name,
            "GALLERY_LEASE_S": str(LEASE_S),
            "GALLERY_STUDIO_URL": studio_url,
            "GALLERY_STUDIO_TOKEN": TOKEN,
            "GALLERY_RETRY_INITIAL_S": "0.05",
            "GALLERY_RETRY_MAX_S": "0.3",
            **({"GALLERY_DATABASE_URL": database_url} if database_url else {}),
            **env,
        }
        self.log_path = data_dir.parent / f"gallery-{name}.log"
        self.log = open(self.log_path, "wb")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "gallery",
                "--host",
                "127.0.0.1",
                "--port",
                str(self.port),
                "--log-level",
                "error",
            ],
            env=environ,
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )
        self.client = httpx.Client(base_url=self.url, timeout=30)

    def wait_ready(self) -> None:
        def ready() -> bool:
            assert self.proc.poll() is None, f"Gallery {self.name} exited: {self.output()}"
            try:
                return self.client.get("/health/ready").status_code == 200
            except httpx.TransportError:
                return False

        wait_for(ready, 60, f"Gallery {self.name} ready")

    def output(self) -> str:
        self.log.flush()
        return self.log_path.read_text(errors="replace")[-3000:]

    def stop(self) -> None:
        self.client.close()
        if self.proc.poll() is None:
            terminate(self.proc)
        self.log.close()


@pytest.fixture
def database(postgres_server: PostgresServer) -> Iterator[str]:
    name = postgres_server.create_database()
    try:
        yield postgres_server.url(name)
    finally:
        postgres_server.drop_database(name)


def holder(database_url: str, painting_id: str) -> str | None:
    engine = sa.create_engine(database_url)
    try:
        with engine.connect() as conn:
            return conn.execute(sa.text("SELECT holder FROM paintings WHERE id = :id"), {"id": painting_id}).scalar()
    finally:
        engine.dispose()


def listen(url: str, events: list[dict[str, Any]], stop: threading.Event) -> None:
    """Keep every event of replica `url`'s /ws in `events` until `stop` (a page's view of the painting)."""
    with connect(url.replace("http", "ws") + "/ws", origin=Origin(url), open_timeout=10.0) as ws:
        while not stop.is_set():
            try:
                events.append(json.loads(ws.recv(timeout=0.2)))
            except TimeoutError:
                continue
            except ConnectionClosed:  # the replica stopped: the page's socket would reconnect
                return


def test_a_page_on_one_replica_watches_a_painting_another_drives_and_finishes_it_when_that_one_dies(
    tmp_path, database, browser
):
    studio = StudioProcess(tmp_path / "studio", [sys.executable, FAKE_WORKER], FAKE_SECONDS_PER_ITERATION="0.08")
    shared = tmp_path / "shared-data"  # one image folder for both (a shared volume in production)
    a = GalleryProcess("replica-a", shared, database, studio.url)
    b = GalleryProcess("replica-b", shared, database, studio.url)
    events: list[dict[str, Any]] = []
    stop = threading.Event()
    watcher = threading.Thread(target=listen, args=(a.url, events, stop), daemon=True)
    page = browser.new_page()
    try:
        studio.wait_ready(60)
        a.wait_ready()
        b.wait_ready()
        from playwright import sync_api

        page.goto(a.url)
        sync_api.expect(page.locator("#connection")).to_have_text("Live", timeout=10_000)
        watcher.start()
        time.sleep(0.5)  # the socket is open before the painting exists

        files = [("content", ("c.png", png(64, 48), "image/png")), ("style", ("s.png", png(48, 48), "image/png"))]
        params = {"size": 48, "iterations": ITERATIONS, "preview_every": 10}
        made = b.client.post("/api/paintings", files=files, data={"params": json.dumps(params)})
        assert made.status_code == 201, made.text
        painting_id = made.json()["id"]
        # The page on A learns of it from B, and shows it as B paints it.
        sync_api.expect(page.locator("#cards .card")).to_have_count(1, timeout=10_000)
        page.goto(f"{a.url}/#painting/{painting_id}")
        wait_for(lambda: holder(database, painting_id) == "replica-b", 10, "B driving it")
        wait_for(
            lambda: any(e["type"] == "painting.progress" and e["iteration"] >= 20 for e in events),
            60,
            "A sees progress",
        )

        os.kill(b.proc.pid, signal.SIGKILL)  # for good, its leases held
        killed_at = time.monotonic()
        wait_for(lambda: holder(database, painting_id) == "replica-a", 3 * LEASE_S + 5, "A taking it over")
        took_over_s = time.monotonic() - killed_at
        sync_api.expect(page.locator("#viewer-status")).to_have_text("Done", timeout=60_000)
        sync_api.expect(page.locator("#viewer-iteration")).to_have_text(f"Iteration {ITERATIONS} / {ITERATIONS}")
        wait_for(lambda: any(e["type"] == "painting.done" for e in events), 10, "A's socket sees the end")
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(SCREENSHOTS / "replica-a-after-b-died.png"), full_page=True)

        final = a.client.get(f"/api/paintings/{painting_id}").json()
        assert final["status"] == "done" and final["iteration"] == ITERATIONS
        curve = [p["iteration"] for p in final["progress"]]
        assert curve == list(range(1, ITERATIONS + 1))  # every point once
        seen = [e["iteration"] for e in events if e["type"] == "painting.progress" and e["id"] == painting_id]
        assert seen == sorted(set(seen)), "a point came twice, or out of order, on A's socket"
        assert seen[-1] == ITERATIONS and [e["type"] for e in events].count("painting.done") == 1
        assert took_over_s < 3 * LEASE_S + 5
        # One job at Studio: A followed B's job rather than sending it again.
        assert studio.client.get("/v1/status").json()["queued"] == 0
        assert a.client.get(f"/api/images/{final['result_image']}").status_code == 200
    finally:
        stop.set()
        if watcher.is_alive():
            watcher.join(5)
        page.close()
        for replica in (a, b):
            replica.stop()
        studio.stop()


def test_replicas_refuse_to_start_on_sqlite(tmp_path):
    port = free_port()
    env = {**os.environ, "GALLERY_DATA_DIR": str(tmp_path / "data"), "GALLERY_REPLICAS": "true"}
    env.pop("GALLERY_DATABASE_URL", None)
    done = subprocess.run(
        [sys.executable, "-m", "gallery", "--port", str(port)], env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 2
    assert "replicas need PostgreSQL" in done.stderr and "GALLERY_DATABASE_URL" in done.stderr
