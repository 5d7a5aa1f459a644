"""Fixtures for the Studio tests: Studio for real in a subprocess (tests/studio_process.py starts it)."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from studio_process import FAKE_WORKER, StudioProcess


@pytest.fixture
def studio_factory(tmp_path: Path) -> Iterator[Callable[..., StudioProcess]]:
    started: list[StudioProcess] = []

    def start(worker_command: list[str], name: str = "data", log_level: str = "warning", **env: str) -> StudioProcess:
        studio = StudioProcess(tmp_path / name, worker_command, log_level=log_level, **env)
        started.append(studio)
        return studio

    yield start
    for studio in started:
        studio.stop()


@pytest.fixture(scope="module")
def fake_studio(tmp_path_factory: pytest.TempPathFactory) -> Iterator[StudioProcess]:
    studio = StudioProcess(
        tmp_path_factory.mktemp("fake") / "data",
        [sys.executable, FAKE_WORKER],
        STUDIO_MAX_BODY_BYTES=str(2_000_000),
        STUDIO_MAX_IMAGE_PIXELS=str(1_000_000),
        STUDIO_MEMORY_BUDGET_BYTES=str(3 * 2**30),  # about 780 px tall at most, whatever the machine
        STUDIO_GC_GRACE_S="0",  # a forgotten job's images go at once (no upload races it here)
    )
    studio.wait_ready(30)
    yield studio
    studio.stop()
