"""`deep-painting serve` for real: the command a newcomer types, as a subprocess in its own process group
(a terminal's foreground group), with Studio and its TensorFlow worker under it, on loopback ports.

Proved here: it prints the URL; a painting made through that URL finishes; both services keep their
records in one SQLite file and their images in one folder; Ctrl-C (SIGINT to the group) or SIGTERM
stops everything with exit 0 and leaves no process behind; a painting in flight when serve stops
finishes at the next start; a Studio that dies is started again; a serve killed outright takes
Studio with it; a taken port or a bad Studio setting is a clear error that leaves nothing behind.
"""

from __future__ import annotations

import io
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
from PIL import Image

from painting.catalog import Catalog

from support import alive, descendants, free_port, png, wait_for

pytestmark = pytest.mark.slow

CLI = str(Path(sys.executable).with_name("deep-painting"))
URL_LINE = re.compile(r"open (http://\S+)/")


class Serve:
    """One `deep-painting serve` run: its URL, a client, its output, and the processes under it."""

    def __init__(self, data_dir: Path, *extra: str, env: dict[str, str] | None = None) -> None:
        self.data_dir = data_dir
        self.port = free_port()
        self.out_path = data_dir.parent / f"serve-{self.port}.out"
        self.err_path = data_dir.parent / f"serve-{self.port}.err"
        with open(self.out_path, "wb") as out, open(self.err_path, "wb") as err:
            self.proc = subprocess.Popen(
                [CLI, "serve", "--port", str(self.port), "--data-dir", str(data_dir), *extra],
                stdout=out,
                stderr=err,
                start_new_session=True,
                env={**os.environ, **(env or {})},
            )
        self.client = httpx.Client(timeout=30)
        self.url = ""

    def output(self) -> str:
        return (
            self.out_path.read_text(errors="replace")
            + "\n--- stderr ---\n"
            + self.err_path.read_text(errors="replace")[-4000:]
        )

    def wait_url(self, timeout: float = 60) -> str:
        def url() -> str | None:
            assert self.proc.poll() is None, f"serve exited {self.proc.returncode}:\n{self.output()}"
            match = URL_LINE.search(self.out_path.read_text(errors="replace"))
            return match.group(1) if match else None

        self.url = wait_for(url, timeout, "showing its URL")  # type: ignore[assignment]
        self.client.base_url = self.url
        return self.url

    def wait_studio_ready(self, timeout: float = 120) -> None:
        wait_for(lambda: "Studio is ready" in self.out_path.read_text(), timeout, "ready")

    def post_painting(self, params: dict) -> dict:
        files = [
            ("content", ("c.png", png(64, 48, (200, 80, 40)), "image/png")),
            ("style", ("s.png", png(48, 48, (20, 40, 220)), "image/png")),
        ]
        response = self.client.post("/api/paintings", files=files, data={"params": json.dumps(params)})
        assert response.status_code == 201, response.text
        return response.json()

    def painting(self, painting_id: str) -> dict:
        return self.client.get(f"/api/paintings/{painting_id}").json()

    def wait_painting(self, painting_id: str, condition: Callable[[dict], bool], timeout: float = 120) -> dict:
        def check() -> dict | None:
            assert self.proc.poll() is None, f"serve exited {self.proc.returncode}:\n{self.output()}"
            painting = self.painting(painting_id)
            return painting if condition(painting) else None

        return wait_for(check, timeout, "the painting as expected")  # type: ignore[return-value]

    def studio_pid(self) -> int:
        children = [pid for pid in descendants(self.proc.pid) if b"studio" in Path(f"/proc/{pid}/cmdline").read_bytes()]
        assert children, f"no Studio under serve:\n{self.output()}"
        return children[0]

    def stop(self, sig: int = signal.SIGINT, timeout: float = 60) -> int:
        """Send `sig` to the whole process group, as a terminal's Ctrl-C does; the exit status."""
        self.client.close()
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
                raise AssertionError(f"serve did not stop within {timeout} s:\n{self.output()}") from None
        return self.proc.returncode


@pytest.fixture
def serve(tmp_path: Path) -> Iterator[Callable[..., Serve]]:
    started: list[Serve] = []
    watched: list[int] = []

    def start(*extra: str, data_dir: Path | None = None, env: dict[str, str] | None = None) -> Serve:
        run = Serve(data_dir or tmp_path / "data", *extra, env=env)
        started.append(run)
        return run

    yield start
    for run in started:
        watched += [run.proc.pid, *descendants(run.proc.pid)]
        if run.proc.poll() is None:
            run.stop(signal.SIGKILL)
    deadline = time.monotonic() + 30  # a killed serve's Studio gets SIGTERM and stops its worker
    while any(alive(pid) for pid in watched) and time.monotonic() < deadline:
        time.sleep(0.1)
    leaked = [pid for pid in watched if alive(pid)]
    for pid in leaked:  # an orphan Studio or worker: kill it, then fail
        os.kill(pid, signal.SIGKILL)
    assert not leaked, f"processes outlived their serve: {leaked}"


def test_serve_paints_in_one_data_folder_and_ctrl_c_stops_everything(serve, tmp_path):
    run = serve()
    url = run.wait_url()
    assert url == f"http://127.0.0.1:{run.port}"
    assert "Press Ctrl-C to stop." in run.output()
    assert run.client.get("/health/ready").json() == {"status": "ready"}
    assert "<!doctype html>" in run.client.get("/").text.lower()  # the page, found beside the code
    created = run.post_painting({"size": 48, "iterations": 3, "preview_every": 1})
    done = run.wait_painting(created["id"], lambda p: p["status"] == "done")
    result = Image.open(io.BytesIO(run.client.get(f"/api/images/{done['result_image']}").content))
    assert result.format == "PNG" and result.size == (64, 48)  # size is the height; the photo is 64×48

    processes = [run.proc.pid, *descendants(run.proc.pid)]
    assert len(processes) >= 3, "serve, Studio and its worker"
    assert run.stop(signal.SIGINT) == 0, run.output()
    wait_for(lambda: not any(alive(pid) for pid in processes), 15, "every process gone")

    data = tmp_path / "data"
    assert sorted(p.name for p in data.iterdir() if not p.name.startswith("catalog.sqlite3-")) == [
        "catalog.sqlite3",
        "images",
    ]
    with Catalog.open(None, data, scope="gallery") as gallery, Catalog.open(None, data, scope="studio") as studio:
        assert gallery.count() == 1 and studio.count() == 1  # one file, two scopes
        assert gallery.get(created["id"]).remote_id == studio.newest(limit=1)[0].id


def test_a_painting_in_flight_when_serve_stops_finishes_at_the_next_start(serve, tmp_path):
    first = serve()
    first.wait_url()
    created = first.post_painting({"size": 48, "iterations": 40, "preview_every": 5})
    first.wait_painting(created["id"], lambda p: p["status"] == "running" and len(p["progress"]) >= 2)
    assert first.stop(signal.SIGTERM) == 0, first.output()

    second = serve()  # the same data folder
    second.wait_url()
    done = second.wait_painting(created["id"], lambda p: p["status"] == "done", timeout=180)
    assert done["progress"][-1]["iteration"] == 40
    assert second.stop() == 0


def test_a_closed_terminal_sighup_stops_serve_cleanly(serve):
    run = serve()
    run.wait_url()
    processes = [run.proc.pid, *descendants(run.proc.pid)]
    assert run.stop(signal.SIGHUP) == 0, run.output()
    wait_for(lambda: not any(alive(pid) for pid in processes), 15, "every process gone")
    assert "stopping (Gallery, then Studio" in run.output()


def test_a_studio_that_dies_is_started_again_and_the_painting_finishes(serve):
    run = serve()
    run.wait_url()
    created = run.post_painting({"size": 48, "iterations": 40, "preview_every": 5})
    run.wait_painting(created["id"], lambda p: p["status"] == "running" and len(p["progress"]) >= 2)
    old_studio = run.studio_pid()
    os.kill(old_studio, signal.SIGKILL)
    wait_for(lambda: "starting it again" in run.output(), 15, "restarting Studio")
    done = run.wait_painting(created["id"], lambda p: p["status"] == "done", timeout=180)
    assert done["progress"][-1]["iteration"] == 40
    assert run.studio_pid() != old_studio
    assert run.stop() == 0


def test_a_killed_serve_takes_studio_and_its_worker_with_it(serve):
    run = serve()
    run.wait_url()
    run.wait_studio_ready()
    below = descendants(run.proc.pid)
    assert len(below) >= 2
    os.kill(run.proc.pid, signal.SIGKILL)  # no chance to clean up: Studio gets SIGTERM from the kernel
    run.proc.wait()
    try:
        wait_for(lambda: not any(alive(pid) for pid in below), 30, "Studio and its worker gone")
    finally:
        for pid in filter(alive, below):  # orphans, when this failed: do not leave them running
            os.kill(pid, signal.SIGKILL)


def test_a_taken_port_is_a_clear_error_and_changes_nothing(tmp_path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = subprocess.run(
            [CLI, "serve", "--port", str(port), "--data-dir", str(tmp_path / "data")],
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert done.returncode == 2
    assert f"cannot listen on 127.0.0.1:{port}" in done.stderr and "--port" in done.stderr
    assert not (tmp_path / "data").exists()


def test_a_bad_studio_setting_stops_serve_with_studios_reason(serve):
    run = serve(env={"STUDIO_WORKERS": "0"})
    assert run.proc.wait(60) == 1
    output = run.output()
    assert "Studio did not start: exit status 2" in output and "workers" in output


def test_bad_serve_settings_are_refused(tmp_path):
    done = subprocess.run(
        [CLI, "serve", "--port", "70000", "--data-dir", str(tmp_path / "data")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2 and "bad settings" in done.stderr and "port" in done.stderr


def test_serve_settings_come_from_the_environment_and_flags_win(monkeypatch, tmp_path):
    from deep_painting.serve import ServeSettings

    monkeypatch.setenv("DEEP_PAINTING_PORT", "8123")
    monkeypatch.setenv("DEEP_PAINTING_DATA_DIR", str(tmp_path / "elsewhere"))
    settings = ServeSettings()
    assert settings.port == 8123 and settings.data_dir == tmp_path / "elsewhere" and settings.host == "127.0.0.1"
    assert ServeSettings(port=9000).port == 9000
