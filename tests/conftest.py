"""Fixtures shared by the whole suite: small generated images and one warm engine per session."""

from __future__ import annotations

import os
import sys

import numpy as np
import pytest

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
