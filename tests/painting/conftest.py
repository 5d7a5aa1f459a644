"""Fixtures for the storage library: image bytes, stores, and catalogs on real SQLite and PostgreSQL.

PostgreSQL is a throw-away cluster (Debian's `postgresql` package, `make system-deps`) made once per
test session in a temp folder: `initdb` and `pg_ctl` run as the `postgres` user when the tests run
as root (the server refuses root), listening on 127.0.0.1 at a free port; every test gets a fresh
database in it. When no server can be started the PostgreSQL cases skip, saying why on stderr and
again in the summary; with `CI` set in the environment they fail instead, so CI always runs them.
"""

from __future__ import annotations

import glob
import io
import os
import pwd
import shutil
import subprocess
import sys
import tempfile
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import psycopg
import pytest
from PIL import Image

from painting.images import ImageStore

from support import free_port

if TYPE_CHECKING:  # imported in the fixtures, so the image tests need nothing else
    from painting.catalog import Catalog

_PG_SKIPPED = pytest.StashKey[str]()


# -- images --------------------------------------------------------------------------------------


def image_bytes(width: int = 32, height: int = 24, fmt: str = "PNG", *, seed: int = 0, mode: str = "RGB") -> bytes:
    """A small image with varied pixels, encoded in `fmt` (PNG, JPEG, WEBP, GIF, BMP ...)."""
    rng = bytes((seed * 131 + i * 7) % 256 for i in range(width * height * len(mode)))
    im = Image.frombytes(mode, (width, height), rng)
    buf = io.BytesIO()
    im.save(buf, fmt, **({"lossless": True} if fmt == "WEBP" else {}))
    return buf.getvalue()


@pytest.fixture
def make_image() -> Callable[..., bytes]:
    return image_bytes


@pytest.fixture
def store(tmp_path: Path) -> ImageStore:
    return ImageStore(tmp_path / "images")


# -- PostgreSQL ----------------------------------------------------------------------------------


@dataclass
class PostgresServer:
    """A running throw-away PostgreSQL cluster on loopback."""

    bin_dir: Path
    base: Path
    port: int
    run_as: list[str]
    databases: list[str] = field(default_factory=list)

    def url(self, database: str) -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/{database}"

    def _admin(self) -> psycopg.Connection:
        return psycopg.connect(
            host="127.0.0.1",
            port=self.port,
            user="postgres",
            dbname="postgres",
            autocommit=True,
            connect_timeout=10,
        )

    def create_database(self) -> str:
        name = f"t_{uuid.uuid4().hex[:16]}"
        with self._admin() as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        self.databases.append(name)
        return name

    def drop_database(self, name: str) -> None:
        with self._admin() as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    def stop(self) -> None:
        subprocess.run(
            [
                *self.run_as,
                str(self.bin_dir / "pg_ctl"),
                "-D",
                str(self.base / "data"),
                "-m",
                "immediate",
                "-w",
                "stop",
            ],
            cwd=self.base,
            capture_output=True,
            timeout=60,
            check=False,
        )
        shutil.rmtree(self.base, ignore_errors=True)


def _pg_bin_dir() -> Path | None:
    on_path = shutil.which("pg_ctl")
    if on_path:
        return Path(on_path).parent
    found = glob.glob("/usr/lib/postgresql/*/bin/pg_ctl")
    if not found:
        return None
    newest = max(found, key=lambda p: int(Path(p).parts[-3]) if Path(p).parts[-3].isdigit() else 0)
    return Path(newest).parent


def _start_postgres() -> tuple[PostgresServer | None, str]:
    """Start a cluster, or say why it cannot start."""
    bin_dir = _pg_bin_dir()
    if bin_dir is None or not (bin_dir / "initdb").exists():
        return None, "PostgreSQL's initdb/pg_ctl not found (install Debian's `postgresql`: make system-deps)"
    run_as: list[str] = []
    owner: pwd.struct_passwd | None = None
    if os.geteuid() == 0:
        for name in ("postgres", "nobody"):
            try:
                owner = pwd.getpwnam(name)
                break
            except KeyError:
                continue
        if owner is None or shutil.which("runuser") is None:
            return None, "running as root, and there is no `postgres` user or no `runuser` to drop root"
        run_as = ["runuser", "-u", owner.pw_name, "--"]
    base = Path(tempfile.mkdtemp(prefix="painting-pg-"))
    if owner is not None:
        os.chown(base, owner.pw_uid, owner.pw_gid)

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([*run_as, *args], cwd=base, capture_output=True, text=True, timeout=120, check=False)

    init = run(
        str(bin_dir / "initdb"),
        "-D",
        str(base / "data"),
        "-U",
        "postgres",
        "-A",
        "trust",
        "-E",
        "UTF8",
        "--locale=C",
        "--no-sync",
    )
    if init.returncode != 0:
        shutil.rmtree(base, ignore_errors=True)
        return None, f"initdb failed: {init.stderr.strip()[-500:]}"
    last_error = ""
    for _ in range(3):  # the free port may be taken between choosing and binding it
        port = free_port()
        options = (
            f"-k {base} -p {port} -c listen_addresses=127.0.0.1 -c fsync=off "
            "-c synchronous_commit=off -c full_page_writes=off"
        )
        start = run(
            str(bin_dir / "pg_ctl"),
            "-D",
            str(base / "data"),
            "-l",
            str(base / "server.log"),
            "-w",
            "-t",
            "60",
            "-o",
            options,
            "start",
        )
        if start.returncode == 0:
            return PostgresServer(bin_dir=bin_dir, base=base, port=port, run_as=run_as), ""
        log = (base / "server.log").read_text(errors="replace") if (base / "server.log").exists() else ""
        last_error = (start.stderr + log).strip()[-800:]
    shutil.rmtree(base, ignore_errors=True)
    return None, f"pg_ctl start failed: {last_error}"


@pytest.fixture(scope="session")
def postgres_server(request: pytest.FixtureRequest) -> Iterator[PostgresServer]:
    server, reason = _start_postgres()
    if server is None:
        message = f"PostgreSQL tests cannot run: {reason}"
        request.config.stash[_PG_SKIPPED] = message
        capture = request.config.pluginmanager.getplugin("capturemanager")
        with capture.global_and_fixture_disabled():
            print(f"\n{'!' * 100}\n!!! {message}\n{'!' * 100}", file=sys.stderr)
        if os.environ.get("CI"):
            pytest.fail(message + " (CI is set: PostgreSQL must run here)")
        pytest.skip(message)
    try:
        yield server
    finally:
        server.stop()


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter, exitstatus: int, config: pytest.Config) -> None:
    message = config.stash.get(_PG_SKIPPED, None)
    if message:
        terminalreporter.section("PostgreSQL NOT TESTED", sep="!", red=True, bold=True)
        terminalreporter.line(message, red=True, bold=True)


# -- databases and catalogs ----------------------------------------------------------------------

BACKENDS = ["sqlite", "postgresql"]


@pytest.fixture(params=BACKENDS)
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A URL of an empty database: a fresh SQLite file, or a fresh database on the test server."""
    if request.param == "sqlite":
        from painting.db import sqlite_url

        yield sqlite_url(tmp_path / "catalog.sqlite3")
        return
    server: PostgresServer = request.getfixturevalue("postgres_server")
    name = server.create_database()
    try:
        yield server.url(name)
    finally:
        server.drop_database(name)


@pytest.fixture
def catalog(database_url: str) -> Iterator[Catalog]:
    from painting.catalog import Catalog

    with Catalog(database_url, scope="test") as cat:
        yield cat
