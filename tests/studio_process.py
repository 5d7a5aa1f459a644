"""Studio for real: uvicorn in a subprocess on a free loopback port, with a temp data dir and a token.

The studio test modules import these by name (`from studio_process import ...`); tests/studio/conftest.py
makes fixtures of them. It lies beside support.py, not in tests/studio/, so that mypy resolves it as the
top-level module the tests import, as pytest does (tests/ is on sys.path for the top-level conftest).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import httpx

from support import free_port, png, terminate

TOKEN = "test-token-0123456789"
FAKE_WORKER = str(Path(__file__).parent / "studio" / "fake_worker.py")


class StudioProcess:
    """A running Studio: its URL, an authorised client, its process and data dir."""

    def __init__(self, data_dir: Path, worker_command: list[str], *, log_level: str = "warning", **env: str) -> None:
        self.data_dir = data_dir
        # STUDIO_PORT given: a Studio started again where it was (the command line's --port carries it).
        self.port = int(env.pop("STUDIO_PORT")) if "STUDIO_PORT" in env else free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        environ = {
            **os.environ,
            "STUDIO_DATA_DIR": str(data_dir),
            "STUDIO_TOKEN": TOKEN,
            "STUDIO_WORKER_COMMAND": json.dumps(worker_command),
            "STUDIO_KEEPALIVE_S": "1",
            **env,
        }
        self.log = open(data_dir.parent / f"studio-{self.port}.log", "ab")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "studio", "--host", "127.0.0.1", "--port", str(self.port), "--log-level", log_level],
            env=environ,
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )
        self.client = httpx.Client(base_url=self.url, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=60)
        self.wait(lambda: self.client.get("/health/live").status_code == 200, 30, "live")

    def wait(self, condition: Callable[[], object], timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, f"Studio exited: {self.output()}"
            try:
                if condition():
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.1)
        raise AssertionError(f"Studio not {what} within {timeout} s: {self.output()}")

    def wait_ready(self, timeout: float = 120) -> None:
        self.wait(lambda: self.client.get("/health/ready").status_code == 200, timeout, "ready")

    def output(self) -> str:
        self.log.flush()
        return (self.data_dir.parent / f"studio-{self.port}.log").read_text(errors="replace")[-3000:]

    def worker_pids(self) -> list[int]:
        pids = []
        for task in Path(f"/proc/{self.proc.pid}/task").iterdir():
            pids += [int(p) for p in (task / "children").read_text().split()]
        return pids

    def post_job(self, params: dict, *, key: str | None = None, content: bytes | None = None) -> httpx.Response:
        files = [
            ("content", ("c.png", content or png(64, 48), "image/png")),
            ("style", ("s.png", png(48, 48, (20, 40, 220)), "image/png")),
        ]
        headers = {"Idempotency-Key": key} if key else {}
        return self.client.post("/v1/jobs", files=files, data={"params": json.dumps(params)}, headers=headers)

    def stop(self) -> int:
        self.client.close()
        status = terminate(self.proc)
        self.log.close()
        return status


def read_events(
    client: httpx.Client,
    job_id: str,
    *,
    last_event_id: str | None = None,
    stop_after: Callable[[dict], object] | None = None,
    timeout: float = 120,
) -> list[dict]:
    """The SSE events of a job as {id, event, data}, until a terminal event or `stop_after(event)`."""
    headers = {"Last-Event-ID": last_event_id} if last_event_id is not None else {}
    events: list[dict] = []
    current: dict = {}
    with client.stream("GET", f"/v1/jobs/{job_id}/events", headers=headers, timeout=timeout) as response:
        assert response.status_code == 200, response.read()
        assert response.headers["content-type"].startswith("text/event-stream")
        for line in response.iter_lines():
            if line.startswith(":"):
                continue
            if line == "":
                if current:
                    current["data"] = json.loads(current["data"])
                    events.append(current)
                    if current["event"] != "progress" or (stop_after and stop_after(current)):
                        break
                current = {}
                continue
            name, _, value = line.partition(": ")
            current[name] = value
    return events
