"""Fixtures for the storage library: image bytes, stores, and catalogs on real SQLite and PostgreSQL.

PostgreSQL is the session's throw-away cluster (`postgres_server`, tests/conftest.py); every test
gets a fresh database in it.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from PIL import Image

from painting.images import ImageStore

from postgres_server import PostgresServer

if TYPE_CHECKING:  # imported in the fixtures, so the image tests need nothing else
    from painting.catalog import Catalog

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
