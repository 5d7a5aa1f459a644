"""Fixtures shared by the whole suite: small generated images, one warm engine per session, and one
throw-away PostgreSQL server per session.

PostgreSQL is a throw-away cluster (Debian's `postgresql` package, `make system-deps`) made once per
test session in a temp folder: `initdb` and `pg_ctl` run as the `postgres` user when the tests run
as root (the server refuses root), listening on 127.0.0.1 at a free port. When no server can be
started the PostgreSQL cases skip, saying why on stderr and again in the summary; with `CI` set in
the environment they fail instead, so CI always runs them.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator

import numpy as np
import pytest

from postgres_server import PostgresServer, start_postgres

_PG_SKIPPED = pytest.StashKey[str]()

# Keep TensorFlow's C++ start-up chatter out of the test output (subprocesses inherit it).
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


@pytest.fixture(scope="session")
def content_rgb() -> np.ndarray:
    from pycasso.examples import landscape

    return landscape(60, 80)


@pytest.fixture(scope="session")
def style_rgb() -> np.ndarray:
    from pycasso.examples import swirls

    return swirls(56, 56)


@pytest.fixture(scope="session")
def engine():
    """One engine (TensorFlow, weights, compiled losses) for every in-process engine test."""
    from pycasso.engine import Engine

    return Engine()


@pytest.fixture
def python() -> str:
    return sys.executable


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
