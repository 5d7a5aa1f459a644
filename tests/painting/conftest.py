"""Fixtures for the storage library: image bytes, stores, and catalogs on real SQLite and PostgreSQL.

PostgreSQL is a throw-away cluster (Debian's `postgresql` package, `make system-deps`) made once per
test session in a temp folder: `initdb` and `pg_ctl` run as the `postgres` user when the tests run
as root (the server refuses root), listening on 127.0.0.1 at a free port; every test gets a fresh
database in it. When no server can be started the PostgreSQL cases skip, saying why on stderr and
again in the summary; with `CI` set in the environment they fail instead, so CI always runs them.
"""

from __future__ import annotations

import io
import os
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from PIL import Image

from painting.images import ImageStore

from postgres_server import PostgresServer, start_postgres

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


@pytest.fixture(scope="session")
def postgres_server(request: pytest.FixtureRequest) -> Iterator[PostgresServer]:
    server, reason = start_postgres()
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
