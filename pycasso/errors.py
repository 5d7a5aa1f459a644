"""Pycasso's errors. Each carries a message fit to show a person, and a short machine `code`
that the port worker puts into its `error` frames.

    PycassoError
    ├── EngineNotInstalled  TensorFlow is missing (a services-only install)
    ├── WeightsError        the weight file is missing, malformed or hostile
    ├── InvalidImage        an input is not a readable PNG/JPEG/WEBP image
    │   └── ImageTooLarge   an input exceeds the byte or pixel cap
    ├── InvalidParams       parameters that do not fit the images (e.g. blend weights per style)
    └── Cancelled           the run was stopped on request; carries the last image
"""

from __future__ import annotations

from typing import Any


class PycassoError(Exception):
    code = "engine_error"


class EngineNotInstalled(PycassoError):
    code = "engine_missing"


class WeightsError(PycassoError):
    code = "weights"


class InvalidImage(PycassoError):
    code = "invalid_image"


class ImageTooLarge(InvalidImage):
    code = "image_too_large"


class InvalidParams(PycassoError):
    code = "invalid_params"


class Cancelled(PycassoError):
    code = "cancelled"

    def __init__(self, message: str = "cancelled", *, image: Any = None, iterations: int = 0) -> None:
        super().__init__(message)
        self.image = image  # (H, W, 3) uint8 RGB at the moment of the stop, or None
        self.iterations = iterations


__all__ = [
    "Cancelled",
    "EngineNotInstalled",
    "ImageTooLarge",
    "InvalidImage",
    "InvalidParams",
    "PycassoError",
    "WeightsError",
]
