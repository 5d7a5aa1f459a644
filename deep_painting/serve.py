"""`deep-painting serve`: Gallery and Studio on one host, started and stopped with one command.

The one-host shape is the split shape on loopback (DESIGN.md): Studio runs as its own process,
`python -m studio` on 127.0.0.1 at a free port, with a token made for this run, and Gallery runs in
this process and calls it over HTTP exactly as it would call a Studio on a GPU host.

Both keep their data in one folder (`./data` unless configured): one SQLite database, in which the
catalog keeps Gallery's paintings and Studio's jobs apart by scope, and one content-addressed image
store, so an image the two share is stored once. `deep-painting fsck` and `gc` read the same folder.

The main thread supervises, so that it alone starts Studio and handles signals:
- Studio is started first, and Gallery once Studio answers, so that a bad `STUDIO_*` setting is
  reported at once instead of as paintings that wait forever;
- a Studio that dies is started again on the same port (at most `MAX_RESTARTS` in
  `RESTART_WINDOW_S`; after that serve stops with an error), while paintings in flight wait;
- Ctrl-C, SIGTERM or SIGHUP (the terminal closed) stops Gallery first (nothing new is sent), then
  Studio, which closes its workers; a second Ctrl-C hurries both. Studio runs in its own process
  group, so that a terminal's Ctrl-C reaches serve alone and the order holds, and it gets SIGTERM
  if serve itself is killed.
Paintings still running when serve stops are persisted on both sides and carry on at the next start.
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import logging
import os
import secrets
import signal
import socket
import subprocess
import sys
import threading
import time
from collections import deque
from collections.abc import Callable
from pathlib import Path

import httpx
from pydantic import Field, SecretStr, ValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict

from studio.settings import is_loopback  # the settings module only: no FastAPI, no TensorFlow

log = logging.getLogger("deep_painting.serve")

MAX_RESTARTS = 3
RESTART_WINDOW_S = 60.0
STUDIO_START_TIMEOUT_S = 60.0  # until Studio's HTTP side answers; the model loads after that
STUDIO_STOP_TIMEOUT_S = 20.0  # Studio's own shutdown: its workers get 5 s, its connections 10 s
POLL_S = 0.25


class ServeSettings(BaseSettings):
    """What `deep-painting serve` decides for both services; everything else is `GALLERY_*` / `STUDIO_*`."""

    model_config = SettingsConfigDict(env_prefix="DEEP_PAINTING_", extra="ignore")

    host: str = Field("127.0.0.1", description="Address Gallery listens on (the URL people open).")
    port: int = Field(8000, ge=0, le=65535, description="Port Gallery listens on.")
    data_dir: Path = Field(Path("data"), description="The one data folder: images/ and catalog.sqlite3.")
    database_url: SecretStr | None = Field(
        None, description="SQLAlchemy URL for both services' records; SQLite in data_dir when unset."
    )
    studio_port: int = Field(0, ge=0, le=65535, description="Studio's loopback port; 0 picks a free one.")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="deep-painting serve",
        description="Run Gallery and Studio together on this host and print the URL to open. Ctrl-C stops both.",
        epilog="Every other setting comes from the environment: GALLERY_* and STUDIO_* (see the README).",
    )
    parser.add_argument("--host", help="address Gallery listens on (default: DEEP_PAINTING_HOST or 127.0.0.1)")
    parser.add_argument("--port", type=int, help="port Gallery listens on (default: DEEP_PAINTING_PORT or 8000)")
    parser.add_argument("--data-dir", type=Path, help="the data folder (default: DEEP_PAINTING_DATA_DIR or ./data)")
    parser.add_argument("--studio-port", type=int, help="Studio's loopback port (default: a free one)")
    parser.add_argument("--log-level", default="warning", choices=["debug", "info", "warning", "error"])
    args = parser.parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(), stream=sys.stderr, format="serve %(levelname)s %(message)s")

    overrides = {k: v for k, v in vars(args).items() if k in ServeSettings.model_fields and v is not None}
    try:
        settings = ServeSettings(**overrides)
        from gallery.settings import GallerySettings

        data_dir = settings.data_dir.resolve()
        studio_port = settings.studio_port or _free_port()
        gallery_settings = GallerySettings(
            host=settings.host,
            port=settings.port,
            data_dir=data_dir,
            database_url=settings.database_url,
            studio_url=f"http://127.0.0.1:{studio_port}",
            studio_token=SecretStr(secrets.token_urlsafe(32)),
        )
    except ValidationError as exc:
        print(f"deep-painting serve: bad settings: {exc}", file=sys.stderr)
        return 2
    problem = _cannot_listen(settings.host, settings.port)
    if problem:
        print(f"deep-painting serve: cannot listen on {settings.host}:{settings.port}: {problem}", file=sys.stderr)
        return 2
    try:
        data_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        print(f"deep-painting serve: cannot make the data folder {data_dir}: {exc.strerror}", file=sys.stderr)
        return 2
    return Serve(gallery_settings, studio_port, args.log_level).run()


class Serve:
    """Studio as a child process, Gallery in a thread of this one, the main thread watching both."""

    def __init__(self, gallery_settings, studio_port: int, log_level: str) -> None:
        self.settings = gallery_settings
        self.studio = StudioChild(gallery_settings, studio_port, log_level)
        self.gallery = GalleryThread(gallery_settings, log_level)
        self.stop_requested = threading.Event()
        self.hurry = False

    def run(self) -> int:
        stopping = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
        previous = {sig: signal.signal(sig, self._on_signal) for sig in stopping}
        try:
            return self._run()
        finally:
            self.gallery.stop(hurried=lambda: self.hurry)
            self.studio.stop(hurried=lambda: self.hurry)
            for sig, handler in previous.items():
                signal.signal(sig, handler)

    def _on_signal(self, signum: int, frame: object) -> None:
        if self.stop_requested.is_set():
            self.hurry = True
            print("deep-painting serve: stopping now", file=sys.stderr, flush=True)
        self.stop_requested.set()

    def _run(self) -> int:
        self.studio.start()
        if not self._wait(self.studio.answers, STUDIO_START_TIMEOUT_S):
            return self._stopped_early(f"Studio did not start: {self.studio.describe_exit()}")
        self.gallery.start()
        if not self._wait(lambda: self.gallery.started or not self.gallery.alive, 30) or not self.gallery.started:
            return self._stopped_early("Gallery did not start (see its log above)")
        self._banner()
        studio_ready = False
        while not self.stop_requested.wait(POLL_S):
            if not self.gallery.alive:
                print("deep-painting serve: Gallery stopped unexpectedly", file=sys.stderr)
                return 1
            if self.studio.exited:
                if not self.studio.restart():
                    print(
                        f"deep-painting serve: Studio keeps failing ({self.studio.describe_exit()}): "
                        f"more than {MAX_RESTARTS} restarts in {RESTART_WINDOW_S:.0f} s; stopping",
                        file=sys.stderr,
                    )
                    return 1
                studio_ready = False
            elif not studio_ready and self.studio.ready():
                studio_ready = True
                print("Studio is ready: its worker has loaded the model.", flush=True)
        print("deep-painting serve: stopping (Gallery, then Studio and its workers)", file=sys.stderr, flush=True)
        return 0

    def _wait(self, condition, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and not self.stop_requested.is_set():
            if condition():
                return True
            if self.studio.exited:
                return False
            time.sleep(POLL_S)
        return False

    def _stopped_early(self, reason: str) -> int:
        if self.stop_requested.is_set():
            return 0  # Ctrl-C during start-up
        print(f"deep-painting serve: {reason}", file=sys.stderr)
        return 1

    def _banner(self) -> None:
        host, port = self.settings.host, self.gallery.port
        shown = "127.0.0.1" if host in {"0.0.0.0", "::", ""} else host
        url = f"http://{f'[{shown}]' if ':' in shown else shown}:{port}/"
        lines = [
            f"Deep Painting is running: open {url}",
            f"  data:   {self.settings.data_dir} (catalog and images of both services)",
            f"  studio: {self.settings.studio_url} (its own process; the worker is loading the model)",
        ]
        if not is_loopback(host):
            lines.append(f"  note:   Gallery listens on {host}: anyone who can reach it can paint and delete paintings")
        lines.append("Press Ctrl-C to stop.")
        print("\n".join(lines), flush=True)


class StudioChild:
    """`python -m studio` on loopback, with this run's token, restarted with a limit when it dies."""

    def __init__(self, gallery_settings, port: int, log_level: str) -> None:
        self.port = port
        self.url = gallery_settings.studio_url
        self.token = gallery_settings.studio_token_value()
        self.log_level = log_level
        env = {k: v for k, v in os.environ.items() if k not in {"STUDIO_HOST", "STUDIO_PORT", "STUDIO_DATABASE_URL"}}
        env.update(STUDIO_TOKEN=self.token, STUDIO_DATA_DIR=str(gallery_settings.data_dir))
        if gallery_settings.database_url is not None:
            env["STUDIO_DATABASE_URL"] = gallery_settings.database_url.get_secret_value()
        self.env = env
        self.proc: subprocess.Popen | None = None
        self.restarts: deque[float] = deque()
        self.client = httpx.Client(base_url=self.url, timeout=2, headers={"Authorization": f"Bearer {self.token}"})

    def start(self) -> None:
        command = [
            sys.executable,
            "-m",
            "studio",
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--log-level",
            self.log_level,
        ]
        self.proc = subprocess.Popen(command, env=self.env, process_group=0, preexec_fn=_die_with_parent)

    def restart(self) -> bool:
        now = time.monotonic()
        while self.restarts and now - self.restarts[0] > RESTART_WINDOW_S:
            self.restarts.popleft()
        if len(self.restarts) >= MAX_RESTARTS:
            return False
        self.restarts.append(now)
        print(
            f"deep-painting serve: Studio stopped ({self.describe_exit()}); starting it again; "
            "paintings in flight wait and carry on",
            file=sys.stderr,
            flush=True,
        )
        self.start()
        return True

    @property
    def exited(self) -> bool:
        return self.proc is not None and self.proc.poll() is not None

    def describe_exit(self) -> str:
        if self.proc is None or self.proc.returncode is None:
            return "still running"
        code = self.proc.returncode
        return f"killed by {signal.Signals(-code).name}" if code < 0 else f"exit status {code}"

    def answers(self) -> bool:
        return self._get("/health/live") is not None

    def ready(self) -> bool:
        return self._get("/health/ready") == 200

    def _get(self, path: str) -> int | None:
        try:
            return self.client.get(path).status_code
        except httpx.HTTPError:
            return None

    def stop(self, *, hurried: Callable[[], bool]) -> None:
        """SIGTERM (Studio closes its workers), then SIGKILL for Studio and any worker left."""
        self.client.close()
        if self.proc is None:
            return
        workers = _children(self.proc.pid)
        if self.proc.poll() is None:
            self.proc.terminate()
            deadline = time.monotonic() + STUDIO_STOP_TIMEOUT_S
            while self.proc.poll() is None and time.monotonic() < deadline and not hurried():
                time.sleep(0.05)
            if self.proc.poll() is None:
                log.warning("Studio did not stop in time; killing it")
                self.proc.kill()
            self.proc.wait()
        for pid in workers:  # normally gone already: Studio reaps its workers
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)


class GalleryThread:
    """Gallery's uvicorn server in a thread (signals stay with the main thread)."""

    def __init__(self, gallery_settings, log_level: str) -> None:
        import uvicorn

        from gallery.app import create_app
        from gallery.guard import server_options

        config = uvicorn.Config(
            create_app(gallery_settings),
            host=gallery_settings.host,
            port=gallery_settings.port,
            log_level=log_level,
            ws="websockets-sansio",
            timeout_graceful_shutdown=10,
            **server_options(gallery_settings),
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, name="gallery", daemon=True)

    def start(self) -> None:
        self.thread.start()

    @property
    def started(self) -> bool:
        return self.server.started

    @property
    def alive(self) -> bool:
        return self.thread.is_alive()

    @property
    def port(self) -> int:
        servers = getattr(self.server, "servers", None) or []
        for server in servers:
            for sock in server.sockets:
                return sock.getsockname()[1]
        return self.server.config.port

    def stop(self, *, hurried: Callable[[], bool]) -> None:
        self.server.should_exit = True
        deadline = time.monotonic() + 30
        while self.thread.is_alive() and time.monotonic() < deadline:
            self.server.force_exit = hurried()
            self.thread.join(0.05)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _cannot_listen(host: str, port: int) -> str | None:
    """Why Gallery could not listen there (e.g. the port is taken), or None."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as exc:
        return f"unknown address ({exc.strerror})"
    family, kind, proto, _, address = infos[0]
    with socket.socket(family, kind, proto) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(address)
        except OSError as exc:
            return f"{exc.strerror} (choose another with --port)"
    return None


def _children(pid: int) -> list[int]:
    pids: list[int] = []
    with contextlib.suppress(OSError):
        for task in Path(f"/proc/{pid}/task").iterdir():
            pids += [int(p) for p in (task / "children").read_text().split()]
    return pids


def _die_with_parent() -> None:
    """In the child before exec: SIGTERM when serve dies, even by SIGKILL (Linux; elsewhere a no-op)."""
    if sys.platform.startswith("linux"):
        pr_set_pdeathsig = 1
        ctypes.CDLL(None, use_errno=True).prctl(pr_set_pdeathsig, signal.SIGTERM)


__all__ = ["ServeSettings", "main"]
