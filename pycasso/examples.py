"""A generated content/style pair, so that a fresh checkout can paint without any image at hand.

The content is a small landscape (sky, sun, hills, a lake, a house); the style is a swirling,
thick-stroked pattern in blues and yellows. Both are drawn with numpy from a seed: the same seed
gives the same pictures on every machine.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from pycasso.imaging import encode_png


def landscape(height: int = 300, width: int = 400, seed: int = 1) -> np.ndarray:
    """(H, W, 3) uint8 RGB: a sunny landscape with some texture, like a plain photo."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    v, u = yy / height, xx / width
    sky = np.stack([90 + 120 * v, 150 + 80 * v, 235 - 20 * v], axis=-1)
    image = sky.copy()
    sun = (u - 0.75) ** 2 + ((v - 0.2) * height / width) ** 2 < 0.006
    image[sun] = (255, 225, 120)
    for depth, (base, colour) in enumerate([(0.55, (70, 120, 60)), (0.68, (50, 100, 40))]):
        ridge = base + 0.06 * np.sin(u * (7 + 4 * depth) + depth) + 0.03 * np.sin(u * 23 + 2 * depth)
        image[v > ridge] = colour
    lake = (v > 0.8) & (np.abs(u - 0.35) < 0.25 + 0.1 * (v - 0.8))
    image[lake] = np.stack([40 + 60 * v, 90 + 50 * v, 170 + 40 * v], axis=-1)[lake]
    house = (np.abs(u - 0.2) < 0.06) & (v > 0.6) & (v < 0.72)
    roof = (v <= 0.6) & (v > 0.52) & (np.abs(u - 0.2) < 0.075 * (v - 0.52) / 0.08)
    image[house] = (200, 180, 150)
    image[roof] = (150, 50, 40)
    image += rng.normal(0, 6, image.shape)  # sensor-like grain
    return np.clip(image, 0, 255).astype(np.uint8)


def swirls(height: int = 300, width: int = 300, seed: int = 2) -> np.ndarray:
    """(H, W, 3) uint8 RGB: swirling strokes in blue and yellow, like an expressive painting."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    field = np.zeros((height, width), np.float32)
    for _ in range(7):
        cy, cx = rng.uniform(0, height), rng.uniform(0, width)
        r = np.hypot(yy - cy, xx - cx) + 1.0
        angle = np.arctan2(yy - cy, xx - cx)
        field += np.sin(angle * rng.integers(2, 5) + r / rng.uniform(6, 14)) / np.sqrt(r / 40 + 1)
    strokes = np.sin(field * 4.0 + rng.normal(0, 0.3, field.shape))
    palette = np.array([[20, 40, 110], [40, 90, 180], [240, 200, 60], [250, 240, 170]], np.float32)
    t = (strokes + 1) / 2 * (len(palette) - 1)
    lo = np.floor(t).astype(int).clip(0, len(palette) - 2)
    frac = (t - lo)[..., None]
    image = palette[lo] * (1 - frac) + palette[lo + 1] * frac
    image += rng.normal(0, 10, image.shape)  # canvas texture
    return np.clip(image, 0, 255).astype(np.uint8)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="deep-painting example", description=__doc__.splitlines()[0])
    parser.add_argument("folder", type=Path, help="where to write content.png and style.png")
    args = parser.parse_args(argv)
    args.folder.mkdir(parents=True, exist_ok=True)
    (args.folder / "content.png").write_bytes(encode_png(landscape()))
    (args.folder / "style.png").write_bytes(encode_png(swirls()))
    print(f"wrote {args.folder / 'content.png'} and {args.folder / 'style.png'}", file=sys.stderr)
    return 0


__all__ = ["landscape", "main", "swirls"]
