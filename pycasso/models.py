"""Generator networks an operator brings: Keras (`.keras`, `.h5`) and ONNX (`.onnx`) files in a folder.

Two kinds of network paint here:

- image: a CycleGAN / pix2pix generator turns the photo into a painting. The photo is resized to the
  painting's shape (`imaging.painting_shape`), scaled to the network's value range, run, and scaled
  back. A network with a fixed input size gets the photo resized to it and its output resized back;
  a fully convolutional one runs at the painting's size, padded (reflect) to the multiple its strides
  need, or in overlapping tiles blended with linear ramps when the painting is larger than `max_side`.
- latent: a DCGAN generator turns `np.random.default_rng(seed).standard_normal(latent_dim)` into an
  image, which is resized (Lanczos) to the painting's height, keeping the network's aspect ratio.

Each model may have a sidecar `<stem>.json` beside it:

    {"name": "monet", "kind": "image" | "latent", "range": [-1, 1], "input_size": [256, 256],
     "multiple": 4, "description": "Monet's palette (CycleGAN)"}

Every key is optional; what is missing is read from the network (kind from its input's rank, range
[0, 1] behind a sigmoid and [-1, 1] otherwise, name from the file's stem). Every model is loaded and
given a test run when `Models` starts; one that fails is listed with the reason (`ModelInfo.problem`)
and never served. Nothing in a file may run code: Keras files load in safe mode, and their config is
read first so that a Lambda layer or a custom object is refused by name before Keras sees it.
TensorFlow is imported only when the folder holds a Keras file.
"""

from __future__ import annotations

import builtins
import importlib
import json
import logging
import math
import os
import re
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np

from painting.params import MAX_SIZE, MIN_SIZE
from pycasso import imaging
from pycasso.errors import EngineNotInstalled, InvalidParams, PycassoError

log = logging.getLogger("pycasso")

Format = Literal["keras", "onnx"]
Kind = Literal["image", "latent"]

SUFFIXES: dict[str, Format] = {".keras": "keras", ".h5": "keras", ".onnx": "onnx"}
NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
MAX_NAME = 100
MAX_MODELS = 32  # each is held in memory, warm: a CycleGAN generator is ~45 MB, pix2pix's ~200 MB
MAX_BYTES = 1 << 30  # one file; ONNX's protobuf cannot exceed 2 GiB anyway
MAX_SIDECAR_BYTES = 64 * 1024
MAX_KERAS_CONFIG_BYTES = 64 * 1024 * 1024
# Stride multiples tried, in order, on a fully convolutional image network without a sidecar `multiple`.
MULTIPLES = (4, 8, 16, 32, 64, 128, 256)
_SIDECAR_KEYS = frozenset({"name", "kind", "range", "input_size", "multiple", "description"})
# Keras layers whose config carries code or loads another file; refused even though Keras knows them.
_CODE_LAYERS = frozenset({"Lambda", "TFSMLayer", "JaxLayer", "FlaxLayer", "TorchModuleWrapper"})
# ONNX ops that only move values about: the activation before them is still the output's.
_SHAPE_OPS = frozenset({"Reshape", "Transpose", "Identity", "Squeeze", "Unsqueeze", "Flatten", "Cast"})
_ONNX_DTYPES: dict[str, type[np.floating]] = {
    "tensor(float)": np.float32,
    "tensor(float16)": np.float16,
    "tensor(double)": np.float64,
}


@dataclass(frozen=True)
class ModelInfo:
    """One model file as Studio lists it; `problem` says why it is not served (None when it is)."""

    name: str
    file: str  # the file's name, without the folder
    format: Format
    kind: Kind | None
    value_range: tuple[float, float] | None  # the network's pixel values: black at [0], white at [1]
    input_size: tuple[int, int] | None  # (height, width) of an image network with a fixed input
    latent_dim: int | None
    description: str
    problem: str | None

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "file": self.file,
            "format": self.format,
            "kind": self.kind,
            "value_range": list(self.value_range) if self.value_range is not None else None,
            "input_size": list(self.input_size) if self.input_size is not None else None,
            "latent_dim": self.latent_dim,
            "description": self.description,
            "problem": self.problem,
            "ok": self.problem is None,
        }


@dataclass(frozen=True)
class Tile:
    """One tile of a tiled run: the region it paints and its blending weight there, (height, width)."""

    top: int
    left: int
    height: int
    width: int
    weight: np.ndarray  # (height, width) float32; over all tiles the weights sum to 1 at every pixel


def tile_plan(height: int, width: int, tile: int, overlap: int) -> list[Tile]:
    """Tiles of at most `tile`² px that cover a height × width image, neighbours overlapping by at
    least `overlap` px, weighted by linear ramps across each seam so that the weights sum to 1."""
    if tile < 1 or not 0 <= overlap < tile:
        raise ValueError(f"tile {tile} with overlap {overlap}: the overlap must be smaller than the tile")
    rows, columns = _spans(height, tile, overlap), _spans(width, tile, overlap)
    return [
        Tile(top, left, len(wy), len(wx), np.outer(wy, wx).astype(np.float32))
        for top, wy in rows
        for left, wx in columns
    ]


def _spans(length: int, tile: int, overlap: int) -> list[tuple[int, np.ndarray]]:
    """(start, 1-D weights) of the tiles along one axis, evenly spread; the weights sum to 1."""
    size = min(tile, length)
    count = 1 if length <= size else math.ceil((length - overlap) / (size - overlap))
    starts = [round(i * (length - size) / (count - 1)) if count > 1 else 0 for i in range(count)]
    ramps = []
    for i, start in enumerate(starts):
        weight = np.ones(size, dtype=np.float64)
        if i > 0:  # rise across the overlap with the previous tile
            shared = starts[i - 1] + size - start
            weight[:shared] = np.minimum(weight[:shared], np.arange(1, shared + 1) / (shared + 1))
        if i < count - 1:  # fall across the overlap with the next tile
            shared = start + size - starts[i + 1]
            weight[size - shared :] = np.minimum(weight[size - shared :], np.arange(shared, 0, -1) / (shared + 1))
        ramps.append(weight)
    # Two neighbours' ramps already sum to 1; dividing by the total keeps that true where three meet.
    total = np.zeros(length, dtype=np.float64)
    for start, weight in zip(starts, ramps, strict=True):
        total[start : start + size] += weight
    return [(start, weight / total[start : start + size]) for start, weight in zip(starts, ramps, strict=True)]


class _Refused(Exception):
    """A model that cannot be served; the message says why, for the operator."""


@dataclass
class _Network:
    """A loaded network, whatever its format: one input, (the first) output, both in its own layout."""

    call: Callable[[np.ndarray], np.ndarray]
    input_dims: tuple[int | None, ...]  # as declared, None where free (batch, symbolic sizes)
    input_dtype: type[np.floating]
    channels_first_allowed: bool  # ONNX networks from PyTorch take (N, 3, H, W)
    activation: str | None  # the output layer's activation, when it can be told


@dataclass(frozen=True)
class _Sidecar:
    name: str | None = None
    kind: Kind | None = None
    value_range: tuple[float, float] | None = None
    input_size: tuple[int, int] | None = None
    multiple: int | None = None
    description: str = ""


@dataclass
class _Served:
    """A usable model: its network and what the checks found out about it."""

    network: _Network
    kind: Kind
    value_range: tuple[float, float]
    channels_first: bool
    input_size: tuple[int, int] | None = None  # image: the fixed (height, width) it takes, if any
    multiple: int = 1  # image, any size: height and width must be multiples of this
    noise_shape: tuple[int, ...] = ()  # latent: with batch 1, e.g. (1, 100) or (1, 100, 1, 1)

    @property
    def latent_dim(self) -> int | None:
        return math.prod(self.noise_shape) if self.kind == "latent" else None  # the other axes are 1

    def run(self, batch: np.ndarray) -> np.ndarray:
        """The network on a batch of one, (1, H, W, 3) or noise, -> (H', W', 3) float32 in its range."""
        if self.channels_first and self.kind == "image":
            batch = batch.transpose(0, 3, 1, 2)  # (1, 3, H, W)
        return _as_hwc(self.network.call(batch.astype(self.network.input_dtype)), self.channels_first)


class Models:
    """The generator networks in `folder`, loaded and test-run at once (warm); see the module's doc.

    `max_side`: an image network that takes any size runs in `tile`² px tiles (at most `max_side`,
    rounded down to the network's multiple) overlapping by `overlap` px (at most a quarter of a
    tile) when the painting's longer side exceeds this. `max_models` and `max_bytes` cap the
    number of models served and the size of one file; models beyond them are listed as refused.
    """

    def __init__(
        self,
        folder: str | os.PathLike[str] | None,
        *,
        max_side: int = 1024,
        tile: int = 512,
        overlap: int = 32,
        max_models: int = MAX_MODELS,
        max_bytes: int = MAX_BYTES,
    ) -> None:
        if max_side < 16 or tile < 16 or overlap < 0:
            raise ValueError(f"max_side {max_side}, tile {tile}: at least 16 px each; overlap {overlap}: 0 or more")
        # A tile is never larger than a whole run may be; the overlap stays within a quarter of it.
        self.max_side, self.tile, self.overlap = max_side, min(tile, max_side), overlap
        self._infos: builtins.list[ModelInfo] = []
        self._served: dict[str, _Served] = {}
        self._claimed: dict[str, ModelInfo] = {}  # name -> the first file that took it
        where = Path(folder) if folder is not None else None
        if where is None or not where.is_dir():
            if where is not None:
                log.warning("models folder %s does not exist: no generator models", where)
            return
        files = sorted(p for p in where.iterdir() if p.suffix.lower() in SUFFIXES and not p.name.startswith("."))
        for index, path in enumerate(files):
            info, served = _open_model(path, index, max_models=max_models, max_bytes=max_bytes, claimed=self._claimed)
            self._infos.append(info)
            self._claimed.setdefault(info.name, info)
            if served is not None:
                self._served[info.name] = served
                log.info("model %s (%s, %s) ready from %s", info.name, info.format, info.kind, info.file)
            else:
                log.warning("model file %s refused: %s", info.file, info.problem)
        self._infos.sort(key=lambda i: (i.name, i.file))

    def list(self) -> builtins.list[ModelInfo]:
        """Every model file found, usable or refused, sorted by name."""
        return builtins.list(self._infos)

    def paint(self, name: str, content: np.ndarray | None, size: int, seed: int) -> np.ndarray:
        """A painting `size` px tall by model `name`, (H, W, 3) uint8 RGB.

        `content`: the upright photo, (H, W, 3) uint8 RGB, for an image model; None for a latent
        model, whose noise comes from `seed`. Raises InvalidParams for an unknown or refused model,
        or for content that does not fit the model's kind.
        """
        served = self._served.get(name)
        if served is None:
            claimed = self._claimed.get(name)
            if claimed is None:
                known = ", ".join(sorted(self._served)) or "none"
                raise InvalidParams(f"model {name!r}: no such model (usable models: {known})")
            raise InvalidParams(f"model {name!r} cannot be used: {claimed.problem}")
        if not MIN_SIZE <= size <= MAX_SIZE:
            raise InvalidParams(f"size {size!r}: must be a whole number of pixels from {MIN_SIZE} to {MAX_SIZE}")
        if served.kind == "latent":
            if content is not None:
                raise InvalidParams(f"model {name!r} paints from noise (its seed), not from a photo: send no content")
            if seed < 0:
                raise InvalidParams(f"seed {seed!r}: must be a whole number, 0 or more")
            return self._paint_latent(served, size, seed)
        if content is None:
            raise InvalidParams(f"model {name!r} repaints a photo: content is required")
        if content.ndim != 3 or content.shape[2] != 3:
            raise InvalidParams(f"model {name!r}: content must be an (H, W, 3) RGB image")
        if content.dtype != np.uint8:
            raise InvalidParams(f"model {name!r}: content must be 8-bit (uint8), not {content.dtype}")
        return self._paint_image(served, content, size)

    def _paint_latent(self, served: _Served, size: int, seed: int) -> np.ndarray:
        noise = np.random.default_rng(seed).standard_normal(math.prod(served.noise_shape))
        image = _to_uint8(served.run(noise.reshape(served.noise_shape)), served.value_range)
        height, width = imaging.painting_shape(image.shape, size)
        return imaging.resize(image, height, width)

    def _paint_image(self, served: _Served, content: np.ndarray, size: int) -> np.ndarray:
        height, width = imaging.painting_shape(content.shape, size)
        photo = imaging.resize(content, height, width)
        value_range = served.value_range
        if served.input_size is not None:
            fixed = imaging.resize(photo, *served.input_size)
            painted = _to_uint8(served.run(_to_model(fixed, value_range)[None]), value_range)
            return imaging.resize(painted, height, width)
        x = _to_model(photo, value_range)  # (H, W, 3) float32 in the network's range
        if max(height, width) <= self.max_side:
            return _to_uint8(_run_padded(served, x), value_range)
        multiple = served.multiple
        tile = max(multiple, self.tile - self.tile % multiple)
        blended = np.zeros((height, width, 3), dtype=np.float32)
        for t in tile_plan(height, width, tile, min(self.overlap, tile // 4)):
            region = (slice(t.top, t.top + t.height), slice(t.left, t.left + t.width))
            blended[region] += _run_padded(served, x[region]) * t.weight[..., None]
        return _to_uint8(blended, value_range)


def scan(folder: str | os.PathLike[str] | None) -> list[ModelInfo]:
    """What `Models(folder).list()` says, without keeping the networks loaded."""
    return Models(folder).list()


# --- opening and checking one file ---------------------------------------------------------------


def _open_model(
    path: Path, index: int, *, max_models: int, max_bytes: int, claimed: dict[str, ModelInfo]
) -> tuple[ModelInfo, _Served | None]:
    fmt = SUFFIXES[path.suffix.lower()]
    sidecar = _Sidecar()
    name = path.stem
    problem: str | None = None
    served: _Served | None = None
    try:
        sidecar = _read_sidecar(path.with_suffix(".json"))
        name = sidecar.name if sidecar.name is not None else path.stem
        if not (NAME_PATTERN.fullmatch(name) and len(name) <= MAX_NAME):
            where = f"{path.stem}.json's name" if sidecar.name is not None else "the file's name"
            raise _Refused(
                f"{where} {name!r} is not a model name (letters, digits, '.', '_', '-'; at most {MAX_NAME}; "
                "give the model a name in a sidecar JSON)"
            )
        if name in claimed:
            raise _Refused(f"name already used by {claimed[name].file}")
        if index >= max_models:
            raise _Refused(f"the folder holds more model files than the limit of {max_models}: this one is not loaded")
        size = path.stat().st_size
        if size > max_bytes:
            raise _Refused(f"the file is {size} bytes, over the limit of {max_bytes}")
        network = _open_keras(path) if fmt == "keras" else _open_onnx(path)
        served = _check(network, sidecar)
    except _Refused as exc:
        problem = str(exc)
    except EngineNotInstalled as exc:
        problem = f"a Keras model needs TensorFlow: {exc}"
    except Exception as exc:  # a damaged or foreign file: whatever the loader raised is the reason
        problem = f"cannot load: {_brief(exc)}"
    info = ModelInfo(
        name=name,
        file=path.name,
        format=fmt,
        kind=served.kind if served else sidecar.kind,
        value_range=served.value_range if served else sidecar.value_range,
        input_size=served.input_size if served else sidecar.input_size,
        latent_dim=served.latent_dim if served else None,
        description=sidecar.description,
        problem=problem,
    )
    return info, served


def _brief(exc: BaseException) -> str:
    """An exception as one short line: loaders' messages can quote a whole model config."""
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text if len(text) <= 300 else text[:297] + "..."


def _read_sidecar(path: Path) -> _Sidecar:
    if not path.is_file():
        return _Sidecar()
    where = path.name
    if path.stat().st_size > MAX_SIDECAR_BYTES:
        raise _Refused(f"{where} is larger than {MAX_SIDECAR_BYTES} bytes")
    try:
        data = json.loads(path.read_bytes())
    except (ValueError, RecursionError) as exc:
        raise _Refused(f"{where} is not valid JSON: {_brief(exc)}") from None
    if not isinstance(data, dict):
        raise _Refused(f"{where} must hold a JSON object")
    unknown = sorted(set(data) - _SIDECAR_KEYS)
    if unknown:
        raise _Refused(f"{where}: unknown key(s) {', '.join(unknown)} (known: {', '.join(sorted(_SIDECAR_KEYS))})")
    name, kind, description = data.get("name"), data.get("kind"), data.get("description", "")
    if name is not None and not isinstance(name, str):
        raise _Refused(f"{where}: name must be a string")
    if kind not in (None, "image", "latent"):
        raise _Refused(f'{where}: kind must be "image" or "latent", not {kind!r}')
    if not isinstance(description, str) or len(description) > 2000:
        raise _Refused(f"{where}: description must be a string of at most 2000 characters")
    value_range = None
    if "range" in data:
        lo_hi = data["range"]
        if not (
            isinstance(lo_hi, list)
            and len(lo_hi) == 2
            and all(isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v) for v in lo_hi)
            and lo_hi[0] < lo_hi[1]
        ):
            raise _Refused(f"{where}: range must be [low, high] with low < high, e.g. [-1, 1]")
        value_range = (float(lo_hi[0]), float(lo_hi[1]))
    input_size = None
    if "input_size" in data:
        hw = data["input_size"]
        if not (isinstance(hw, list) and len(hw) == 2 and all(_whole(v, 1, MAX_SIZE * 2) for v in hw)):
            raise _Refused(f"{where}: input_size must be [height, width] in pixels, e.g. [256, 256]")
        input_size = (hw[0], hw[1])
    multiple = data.get("multiple")
    if multiple is not None and not _whole(multiple, 1, 1024):
        raise _Refused(f"{where}: multiple must be a whole number from 1 to 1024")
    return _Sidecar(name, kind, value_range, input_size, multiple, description)


def _whole(value: Any, low: int, high: int) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and low <= value <= high


def _check(network: _Network, sidecar: _Sidecar) -> _Served:
    """Work out the network's kind and layout, and give it a test run on a tiny input."""
    dims = network.input_dims
    if len(dims) not in (2, 4):
        raise _Refused(f"its input has rank {len(dims)}: expected (batch, H, W, 3) images or (batch, latent_dim) noise")
    if dims[0] not in (None, 1):
        raise _Refused(f"its batch size is fixed at {dims[0]}: paintings run one at a time")
    kind, channels_first, latent_dim = _read_layout(dims, network.channels_first_allowed)
    if sidecar.kind is not None and sidecar.kind != kind:
        raise _Refused(f"the sidecar says kind {sidecar.kind!r} but its input {_shape(dims)} is that of a {kind} model")
    if kind == "latent" and sidecar.input_size is not None:
        raise _Refused("input_size is for image models; this one takes noise")
    value_range = sidecar.value_range or ((0.0, 1.0) if network.activation == "sigmoid" else (-1.0, 1.0))
    rng = np.random.default_rng(0)
    if kind == "latent":
        assert latent_dim is not None
        if len(dims) == 2:
            shape: tuple[int, ...] = (1, latent_dim)
        else:
            shape = (1, latent_dim, 1, 1) if channels_first else (1, 1, 1, latent_dim)
        served = _Served(network, kind, value_range, channels_first, noise_shape=shape)
        _test_run(served, rng.standard_normal(shape))
        return served
    axes = (2, 3) if channels_first else (1, 2)
    fixed = dims[axes[0]], dims[axes[1]]
    if sidecar.input_size is not None and any(
        f not in (None, s) for f, s in zip(fixed, sidecar.input_size, strict=True)
    ):
        raise _Refused(f"the sidecar's input_size {list(sidecar.input_size)} is not the model's {_shape(dims)}")
    if fixed[0] is not None and fixed[1] is not None:
        served = _Served(network, kind, value_range, channels_first, input_size=(fixed[0], fixed[1]))
    elif sidecar.input_size is not None:
        served = _Served(network, kind, value_range, channels_first, input_size=sidecar.input_size)
    elif fixed != (None, None):
        raise _Refused(f"its input {_shape(dims)} fixes one side only: give both as the sidecar's input_size")
    else:
        served = _Served(network, kind, value_range, channels_first)
    if served.input_size is not None:
        _test_run(served, _probe_image(rng, served.input_size, value_range))
        return served
    failures = []
    for multiple in (sidecar.multiple,) if sidecar.multiple is not None else MULTIPLES:
        hw = _probe_size(multiple)
        try:
            out = _test_run(served, _probe_image(rng, hw, value_range))
        except _Refused:
            raise
        except Exception as exc:  # this size does not suit its strides: try the next multiple
            failures.append(f"{hw[0]}×{hw[1]}: {_brief(exc)}")
            continue
        if out.shape[:2] != hw:
            failures.append(f"{hw[0]}×{hw[1]} became {out.shape[0]}×{out.shape[1]}")
            continue
        served.multiple = multiple
        return served
    raise _Refused(f"the test run failed at every size tried: {failures[-1]}")


def _read_layout(dims: tuple[int | None, ...], channels_first_allowed: bool) -> tuple[Kind, bool, int | None]:
    """(kind, channels first, latent_dim) from the input's declared shape."""
    if len(dims) == 2:
        if dims[1] is None:
            raise _Refused(f"its noise input {_shape(dims)} has no fixed length")
        return "latent", False, dims[1]
    if dims[3] == 3:
        return "image", False, None
    if channels_first_allowed and dims[1] == 3:
        return "image", True, None
    # DCGANs from PyTorch take their noise as (N, latent_dim, 1, 1).
    if channels_first_allowed and dims[2] == dims[3] == 1 and dims[1] is not None:
        return "latent", True, dims[1]
    if dims[1] == dims[2] == 1 and dims[3] is not None:
        return "latent", False, dims[3]
    layout = "(batch, H, W, 3)" + (" or (batch, 3, H, W)" if channels_first_allowed else "")
    raise _Refused(f"its input {_shape(dims)} is not an RGB image {layout}")


def _shape(dims: tuple[int | None, ...]) -> str:
    return "(" + ", ".join("?" if d is None else str(d) for d in dims) + ")"


def _probe_size(multiple: int) -> tuple[int, int]:
    """A small size that is a multiple of `multiple` but not of twice it (height ≠ width, ≥ 32 px)."""
    k = max(1, math.ceil(32 / multiple))
    k += 1 - k % 2  # odd
    return multiple * k, multiple * (k + 2)


def _probe_image(rng: np.random.Generator, hw: tuple[int, int], value_range: tuple[float, float]) -> np.ndarray:
    return rng.uniform(*value_range, size=(1, *hw, 3)).astype(np.float32)


def _test_run(served: _Served, batch: np.ndarray) -> np.ndarray:
    out = served.run(batch)
    if not np.isfinite(out).all():
        raise _Refused("the test run gave NaN or infinite values")
    return out


def _as_hwc(out: Any, channels_first: bool) -> np.ndarray:
    """A network's output (1, H, W, 3) or (1, 3, H, W) -> (H, W, 3) float32; anything else is refused."""
    out = np.asarray(out)
    if out.ndim != 4 or out.shape[0] != 1:
        raise _Refused(f"its output has shape {tuple(out.shape)}: expected an RGB image (1, H, W, 3)")
    if out.shape[1] == 3 and (channels_first or out.shape[3] != 3):
        out = out.transpose(0, 2, 3, 1)
    elif out.shape[3] != 3:
        channels = out.shape[1] if channels_first else out.shape[3]
        raise _Refused(f"its output has {channels} channel(s) {tuple(out.shape)}: a painting needs 3 (RGB)")
    if not np.issubdtype(out.dtype, np.floating):
        raise _Refused(f"its output is {out.dtype}: expected floating-point values")
    return out[0].astype(np.float32, copy=False)


# --- value ranges, padding ---------------------------------------------------------------------


def _to_model(rgb: np.ndarray, value_range: tuple[float, float]) -> np.ndarray:
    """(H, W, 3) uint8 -> float32 in the network's range: 0 -> low, 255 -> high."""
    low, high = value_range
    return (low + rgb.astype(np.float32) * np.float32((high - low) / 255.0)).astype(np.float32)


def _to_uint8(values: np.ndarray, value_range: tuple[float, float]) -> np.ndarray:
    low, high = value_range
    scaled = np.nan_to_num((values - low) * (255.0 / (high - low)), nan=0.0)
    return np.clip(np.rint(scaled), 0, 255).astype(np.uint8)


def _run_padded(served: _Served, x: np.ndarray) -> np.ndarray:
    """A fully convolutional network on (H, W, 3), reflect-padded to its multiple and cropped back."""
    height, width = x.shape[:2]
    pad_h, pad_w = -height % served.multiple, -width % served.multiple
    top, left = pad_h // 2, pad_w // 2
    padded = np.pad(x, ((top, pad_h - top), (left, pad_w - left), (0, 0)), mode="reflect") if pad_h or pad_w else x
    out = served.run(padded[None])
    if out.shape[:2] != padded.shape[:2]:  # the test run saw the size kept; a network may still surprise
        raise PycassoError(
            f"the model made a {out.shape[0]}×{out.shape[1]} image of a {padded.shape[0]}×{padded.shape[1]} one"
        )
    return out[top : top + height, left : left + width]


# --- Keras ---------------------------------------------------------------------------------------


def _open_keras(path: Path) -> _Network:
    _refuse_code(_keras_config(path))
    keras = _import_keras()
    model = keras.saving.load_model(str(path), compile=False, safe_mode=True)
    try:
        inputs, outputs = list(model.inputs), list(model.outputs)
    except (AttributeError, ValueError):
        raise _Refused("the model was saved without a defined input shape") from None
    if len(inputs) != 1 or len(outputs) != 1:
        raise _Refused(f"it has {len(inputs)} inputs and {len(outputs)} outputs: a generator has one of each")
    dims = tuple(d if isinstance(d, int) and d > 0 else None for d in inputs[0].shape)
    dtype = np.dtype(str(inputs[0].dtype))
    if not np.issubdtype(dtype, np.floating):
        raise _Refused(f"its input is {dtype}: expected floating-point pixels")

    def call(batch: np.ndarray) -> np.ndarray:
        return np.asarray(keras.ops.convert_to_numpy(model(batch, training=False)))

    return _Network(call, dims, dtype.type, False, _keras_activation(model))


def _import_keras() -> Any:
    """Keras, imported after pycasso's TensorFlow settings (threads, reproducible sums) have taken."""
    from pycasso import _tf  # noqa: F401

    return importlib.import_module("keras")


def _keras_config(path: Path) -> Any:
    """The model's config as JSON, read without Keras: `config.json` in a .keras zip, the
    `model_config` attribute of an .h5 file."""
    if path.suffix.lower() == ".keras":
        try:
            with zipfile.ZipFile(path) as archive:
                expanded = sum(e.file_size for e in archive.infolist())
                if expanded > 16 * max(path.stat().st_size, 1 << 20):  # weights barely compress
                    raise _Refused(f"the archive expands to {expanded} bytes: refused as a likely zip bomb")
                entry = archive.getinfo("config.json")
                if entry.file_size > MAX_KERAS_CONFIG_BYTES:
                    raise _Refused(f"its config is {entry.file_size} bytes, over {MAX_KERAS_CONFIG_BYTES}")
                raw: Any = archive.read(entry)
        except zipfile.BadZipFile as exc:
            raise _Refused(f"not a Keras archive (a .keras file is a zip): {exc}") from None
        except KeyError:
            raise _Refused("not a Keras archive: it has no config.json") from None
    else:
        import h5py

        try:
            with h5py.File(str(path), "r") as h5:
                raw = h5.attrs.get("model_config")
        except OSError as exc:
            raise _Refused(f"not an HDF5 file: {_brief(exc)}") from None
        if raw is None:
            raise _Refused("the .h5 file holds no model config (weights only?): save the whole model")
    try:
        return json.loads(raw)
    except (ValueError, TypeError, RecursionError) as exc:
        raise _Refused(f"its model config is not valid JSON: {_brief(exc)}") from None


def _refuse_code(config: Any) -> None:
    """Refuse, by name, what would run code or load another file: Lambda layers, Python lambdas,
    and any object from a module outside Keras (a custom layer, loss or function)."""
    stack = [config]
    while stack:
        node = stack.pop()
        if isinstance(node, list):
            stack.extend(node)
            continue
        if not isinstance(node, dict):
            continue
        stack.extend(node.values())
        cls, module, registered = node.get("class_name"), node.get("module"), node.get("registered_name")
        if cls in _CODE_LAYERS:
            raise _Refused(f"it has a {cls} layer, which runs code from the file: refused")
        if cls == "__lambda__":
            raise _Refused("it holds a Python lambda, which would run code from the file: refused")
        if isinstance(module, str) and module not in ("keras", "builtins") and not module.startswith("keras."):
            raise _Refused(f"it needs the custom object {module}.{cls}, which would run code: refused")
        if isinstance(registered, str) and ">" in registered:
            raise _Refused(f"it needs the custom object {registered}, which would run code: refused")


def _keras_activation(model: Any) -> str | None:
    layers = getattr(model, "layers", None) or [None]
    function = getattr(layers[-1], "activation", None)
    name = getattr(function, "__name__", None)
    return "sigmoid" if name in ("sigmoid", "hard_sigmoid") else name


# --- ONNX ----------------------------------------------------------------------------------------


def _open_onnx(path: Path) -> _Network:
    import onnx
    import onnxruntime as ort

    try:
        proto = onnx.load(str(path), load_external_data=False)
    except Exception as exc:  # protobuf's DecodeError and friends
        raise _Refused(f"not an ONNX model: {_brief(exc)}") from None
    folder = path.parent.resolve()
    for tensor in proto.graph.initializer:
        if tensor.data_location == onnx.TensorProto.EXTERNAL:
            location = next((e.value for e in tensor.external_data if e.key == "location"), "")
            if not (folder / location).resolve().is_relative_to(folder):
                raise _Refused(f"its weights point outside the models folder ({location!r})")
    activation = _onnx_activation(proto.graph)
    del proto

    options = ort.SessionOptions()
    options.log_severity_level = 4  # fatal only: a failed run is an exception, and probes fail on purpose
    available = ort.get_available_providers()
    providers = [p for p in ("CUDAExecutionProvider", "CPUExecutionProvider") if p in available] or available
    session = ort.InferenceSession(str(path), sess_options=options, providers=providers)
    inputs, outputs = session.get_inputs(), session.get_outputs()
    if len(inputs) != 1 or not outputs:
        raise _Refused(f"it has {len(inputs)} inputs and {len(outputs)} outputs: a generator has one input")
    dtype = _ONNX_DTYPES.get(inputs[0].type)
    if dtype is None:
        raise _Refused(f"its input is {inputs[0].type}: expected floating-point pixels")
    dims = tuple(d if isinstance(d, int) and d > 0 else None for d in inputs[0].shape)
    input_name, output_name = inputs[0].name, outputs[0].name

    def call(batch: np.ndarray) -> np.ndarray:
        return np.asarray(session.run([output_name], {input_name: np.ascontiguousarray(batch)})[0])

    return _Network(call, dims, dtype, True, activation)


def _onnx_activation(graph: Any) -> str | None:
    """The op that makes the output's values, looking past reshapes: "tanh", "sigmoid" or None."""
    if not graph.output:
        return None
    producers = {output: node for node in graph.node for output in node.output}
    name = graph.output[0].name
    for _ in range(len(graph.node)):
        node = producers.get(name)
        if node is None:
            return None
        if node.op_type in ("Sigmoid", "HardSigmoid"):
            return "sigmoid"
        if node.op_type == "Tanh":
            return "tanh"
        if node.op_type not in _SHAPE_OPS or not node.input:
            return None
        name = node.input[0]
    return None


__all__ = ["MAX_BYTES", "MAX_MODELS", "ModelInfo", "Models", "Tile", "scan", "tile_plan"]
