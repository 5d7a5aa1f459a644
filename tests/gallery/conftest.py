"""Gallery for real: uvicorn in a thread on a free loopback port; Studio for real in a subprocess.

Studio is started as in tests/studio_process.py (copied, not imported: the two test folders stay
independent; generic helpers come from tests/support.py). Helpers are fixtures, so no test module
imports this file by name.
"""

from __future__ import annotations

import json
import os
import shutil
import struct
import subprocess
import sys
import threading
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn

from gallery.app import create_app
from gallery.settings import GallerySettings

import studio_process
from model_files import keras_image, models_folder
from support import free_port, png, terminate, wait_for

TOKEN = "gallery-test-token-0123456789"


def bomb_png(width: int = 100_000, height: int = 100_000) -> bytes:
    """A tiny PNG whose header declares `width` x `height` pixels."""
    data = bytearray(png(1, 1))
    ihdr = struct.pack(">II", width, height) + bytes(data[24:29])
    data[16:29] = ihdr
    data[29:33] = struct.pack(">I", zlib.crc32(b"IHDR" + ihdr))
    return bytes(data)


class StudioProcess:
    """A running Studio with the real Pycasso worker: its URL and process."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        data_dir.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        worker = json.dumps([sys.executable, "-m", "pycasso"])
        environ = {
            **os.environ,
            "STUDIO_DATA_DIR": str(data_dir),
            "STUDIO_TOKEN": TOKEN,
            "STUDIO_WORKER_COMMAND": worker,
            "STUDIO_KEEPALIVE_S": "1",
        }
        self.log_path = data_dir.parent / f"studio-{self.port}.log"
        self.log = open(self.log_path, "wb")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "studio", "--host", "127.0.0.1", "--port", str(self.port), "--log-level", "warning"],
            env=environ,
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )
        self.client = httpx.Client(base_url=self.url, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=60)

    def wait_ready(self, timeout: float = 180) -> None:
        def ready() -> bool:
            assert self.proc.poll() is None, f"Studio exited: {self.log_path.read_text(errors='replace')[-3000:]}"
            try:
                return self.client.get("/health/ready").status_code == 200
            except httpx.TransportError:
                return False

        wait_for(ready, timeout, "ready")

    def stop(self) -> None:
        self.client.close()
        terminate(self.proc)
        self.log.close()


class GalleryServer:
    """A Gallery app served by uvicorn in a thread: its URL, a client, and its settings."""

    def __init__(
        self, data_dir: Path, studio_url: str, *, transport: httpx.AsyncBaseTransport | None = None, **overrides: object
    ) -> None:
        values: dict = {
            "data_dir": data_dir,
            "studio_url": studio_url,
            "studio_token": TOKEN,
            "retry_initial_s": 0.05,
            "retry_max_s": 0.3,
            "studio_stream_timeout_s": 15,
            "frontend_dir": data_dir / "no-frontend",
            # The caps on paintings at once (429) are tested on their own; other tests paint freely.
            "max_unfinished_per_client": 1000,
            "max_unfinished": 1000,
            "max_creations_per_minute": 10_000,
            **overrides,
        }
        self.settings = GallerySettings(**values)
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.origin = self.url
        config = uvicorn.Config(
            create_app(self.settings, studio_transport=transport),
            host="127.0.0.1",
            port=self.port,
            log_level="warning",
            ws="websockets-sansio",
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.thread.start()
        wait_for(lambda: self.server.started, 30, "started")
        self.client = httpx.Client(base_url=self.url, timeout=30)

    def post_painting(
        self, params: dict | str | None = None, *, content: bytes | None = None, styles: list[bytes] | None = None
    ) -> httpx.Response:
        files = [("content", ("c.png", content if content is not None else png(64, 48), "image/png"))]
        for style in styles if styles is not None else [png(48, 48, (20, 40, 220))]:
            files.append(("style", ("s.png", style, "image/png")))
        data = {} if params is None else {"params": params if isinstance(params, str) else json.dumps(params)}
        return self.client.post("/api/paintings", files=files, data=data)

    def painting(self, painting_id: str) -> dict:
        response = self.client.get(f"/api/paintings/{painting_id}")
        assert response.status_code == 200, response.text
        return response.json()

    def wait_status(self, painting_id: str, statuses: set[str], timeout: float = 120) -> dict:
        last: dict = {}

        def reached() -> dict | None:
            last.update(self.painting(painting_id))
            return last if last["status"] in statuses else None

        try:
            return wait_for(reached, timeout, f"in {statuses}")  # type: ignore[return-value]
        except AssertionError as exc:
            raise AssertionError(f"{exc}; last seen: {last}") from None

    def stored(self) -> tuple[int, int]:
        """(paintings, image files) Gallery has stored."""
        total = self.client.get("/api/paintings").json()["total"]
        files = [p for p in (self.settings.data_dir / "images").rglob("*") if p.is_file()]
        return total, len(files)

    def stop(self) -> None:
        self.client.close()
        self.server.should_exit = True
        self.thread.join(30)
        assert not self.thread.is_alive(), "Gallery did not stop"


@pytest.fixture(scope="session")
def real_studio(tmp_path_factory) -> Iterator[StudioProcess]:
    studio = StudioProcess(tmp_path_factory.mktemp("gallery-studio") / "data")
    try:
        studio.wait_ready(180)
        yield studio
    finally:
        studio.stop()


@pytest.fixture(scope="session")
def models_studio(tmp_path_factory: pytest.TempPathFactory) -> Iterator[studio_process.StudioProcess]:
    """A real Studio whose worker serves generator models: `tint` (ONNX) and `sketch`, `sketch-h5`
    (Keras) repaint a photo, `dots` paints from a seed, and `broken.onnx` is refused."""
    root = tmp_path_factory.mktemp("models-studio")
    folder = models_folder(root / "models")
    (folder / "broken.onnx").write_bytes(b"not a model")
    keras_image(folder / "sketch.keras")
    keras_image(folder / "sketch-h5.h5")
    running = studio_process.StudioProcess(
        root / "studio", [sys.executable, "-m", "pycasso"], STUDIO_MODELS_DIR=str(folder)
    )
    try:
        running.wait_ready(180)
        yield running
    finally:
        running.stop()


@pytest.fixture
def gallery_factory(tmp_path: Path) -> Iterator[Callable[..., GalleryServer]]:
    started: list[GalleryServer] = []

    def start(
        studio_url: str,
        *,
        name: str = "gallery",
        transport: httpx.AsyncBaseTransport | None = None,
        **overrides: object,
    ) -> GalleryServer:
        server = GalleryServer(tmp_path / name, studio_url, transport=transport, **overrides)
        started.append(server)
        return server

    yield start
    for server in started:
        if server.thread.is_alive():
            server.stop()


@pytest.fixture(name="wait_for")
def wait_for_fixture() -> Callable[..., object]:
    return wait_for


@pytest.fixture
def images() -> dict[str, Callable[..., bytes]]:
    return {"png": png, "bomb": bomb_png}


# Debian's Chromium, driven by Playwright (never `playwright install`: it downloads a browser).
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """Headless Chromium for a test module; skipped loudly (failed as root, as in CI) when missing."""
    sync_api = pytest.importorskip(
        "playwright.sync_api", reason="playwright is not installed (pip install -e '.[dev]')"
    )
    executable = shutil.which("chromium")
    if executable is None:
        if os.geteuid() == 0:  # CI runs as root and has installed it: missing is a failure there
            pytest.fail("chromium is missing; run `bash scripts/system-deps.sh`")
        pytest.skip("SKIPPED LOUDLY: chromium is not installed and we are not root (bash scripts/system-deps.sh)")
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        yield browser
        browser.close()
