"""Tiny generator model files for tests: ONNX graphs built with `onnx.helper` (no torch, no tf2onnx).

models_folder(tmp_path / "models")   # tint.onnx (photo -> painting) and dots.onnx (noise -> image)
"""

from __future__ import annotations

import importlib
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

RNG = np.random.default_rng(7)
# The 1×1 convolution of the ONNX image models: out[o] = tanh(Σ_i W[o, i] · in[i] + B[o]).
CONV_W = RNG.uniform(-1, 1, (3, 3)).astype(np.float32)
CONV_B = RNG.uniform(-0.2, 0.2, 3).astype(np.float32)
LATENT_DIM = 16


def save_onnx(path: Path, nodes, inputs, outputs, initializers) -> None:
    graph = helper.make_graph(nodes, path.stem, inputs, outputs, initializers)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, str(path))


def onnx_conv(path: Path, *, channels: int = 3, fixed: tuple[int, int] | None = None) -> None:
    """A per-pixel image model: NCHW, 1×1 convolution, tanh; any size unless `fixed`."""
    h, w = fixed if fixed is not None else ("H", "W")
    weights = CONV_W[:channels].reshape(channels, 3, 1, 1)
    save_onnx(
        path,
        [helper.make_node("Conv", ["x", "w", "b"], ["c"]), helper.make_node("Tanh", ["c"], ["y"])],
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3, h, w])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", channels, h, w])],
        [numpy_helper.from_array(weights, "w"), numpy_helper.from_array(CONV_B[:channels], "b")],
    )


def onnx_latent(path: Path) -> None:
    """Noise (N, 16) -> MatMul -> Reshape (N, 8, 8, 3) -> Sigmoid."""
    matrix = RNG.standard_normal((LATENT_DIM, 8 * 8 * 3)).astype(np.float32)
    save_onnx(
        path,
        [
            helper.make_node("MatMul", ["z", "m"], ["h"]),
            helper.make_node("Reshape", ["h", "shape"], ["r"]),
            helper.make_node("Sigmoid", ["r"], ["y"]),
        ],
        [helper.make_tensor_value_info("z", TensorProto.FLOAT, ["N", LATENT_DIM])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 8, 8, 3])],
        [numpy_helper.from_array(matrix, "m"), numpy_helper.from_array(np.array([-1, 8, 8, 3], np.int64), "shape")],
    )


def models_folder(folder: Path) -> Path:
    """A models folder with one image model (`tint`) and one latent model (`dots`)."""
    folder.mkdir(parents=True, exist_ok=True)
    onnx_conv(folder / "tint.onnx")
    onnx_latent(folder / "dots.onnx")
    return folder


def keras_image(path: Path) -> None:
    """A small fully convolutional Keras generator (3×3 conv, relu, 1×1 conv, tanh), saved as `.keras` or
    `.h5` by the suffix. Imports TensorFlow: only tests that paint with Keras models call it."""
    keras = importlib.import_module("keras")  # untyped: reached through importlib, as pycasso.models does

    keras.utils.set_random_seed(5)
    inputs = keras.Input((None, None, 3))
    hidden = keras.layers.Conv2D(4, 3, padding="same", activation="relu")(inputs)
    outputs = keras.layers.Conv2D(3, 1, activation="tanh")(hidden)
    keras.Model(inputs, outputs).save(path)
