"""pycasso: the Gatys et al. style-transfer engine, its port worker and the `paint` CLI.

Public face: `paint`, `Engine`, `Iterate`, `Losses`, `PaintResult` (pycasso.engine, which imports
TensorFlow and is loaded on first use), the errors (pycasso.errors) and the port protocol
(pycasso.port, importable without TensorFlow: Studio uses it).
"""

from __future__ import annotations

from typing import Any

from pycasso.errors import Cancelled, ImageTooLarge, InvalidImage, InvalidParams, PycassoError, WeightsError

__version__ = "0.1.0"

_ENGINE_NAMES = {"paint", "Engine", "Iterate", "Losses", "PaintResult"}

__all__ = [
    "Cancelled",
    "Engine",
    "ImageTooLarge",
    "InvalidImage",
    "InvalidParams",
    "Iterate",
    "Losses",
    "PaintResult",
    "PycassoError",
    "WeightsError",
    "paint",
]


def __getattr__(name: str) -> Any:
    # The engine pulls in TensorFlow (seconds): only when someone asks for it.
    if name in _ENGINE_NAMES:
        from pycasso import engine

        return getattr(engine, name)
    raise AttributeError(f"module 'pycasso' has no attribute {name!r}")
