"""VGG19's convolutional part as plain TensorFlow ops, cut at the deepest layer a painting needs.

No Keras model: the network is a fixed list of 3x3 convs, ReLUs and 2x2 max pools, and writing it
out keeps the graph minimal (nothing computed past the cut) and the weights plain constants.
Inputs are VGG-preprocessed images: (N, H, W, 3) float32, BGR, ImageNet mean subtracted.

`precision="bf16"` runs the convolutions in bfloat16 (mixed precision: the image is cast on the way
in, the activations handed out are float32 again, so Grams and losses are summed in float32). It
uses the chip's bf16 units where it has them (AVX512-BF16 or AMX on a CPU, tensor cores on a GPU):
measured 0.56× the float32 time for a VGG conv's forward and backward on this project's CPU, where
oneDNN's "fpmath mode" (bf16 math inside float32 ops) changed nothing.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from painting.params import VGG19_LAYERS
from pycasso._tf import tf
from pycasso.weights import load_weights

PRECISIONS = ("fp32", "bf16")


class VGG19Features:
    """The VGG19 conv stack with its weights loaded once (keep one per process: it is the warm part)."""

    def __init__(self, weights_path: str | Path | None = None, *, precision: str = "fp32") -> None:
        if precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
        weights = load_weights(weights_path)
        self.weights_path = weights_path
        self.weights = weights  # the float32 arrays, for fingerprints and reference implementations
        self.precision = precision
        self._dtype = tf.bfloat16 if precision == "bf16" else tf.float32
        self._kernels = {name: tf.constant(weights[name][0], self._dtype) for name in VGG19_LAYERS}
        self._biases = {name: tf.constant(weights[name][1], self._dtype) for name in VGG19_LAYERS}

    def __call__(self, images: tf.Tensor, layers: Iterable[str]) -> dict[str, tf.Tensor]:
        """Activations (after ReLU) of `layers`, running the network only as deep as the deepest one.

        images: (N, H, W, 3), BGR, mean-subtracted. Returns {layer: (N, h, w, c)}.
        """
        wanted = set(layers)
        deepest = max(VGG19_LAYERS.index(name) for name in wanted)
        out: dict[str, tf.Tensor] = {}
        x = tf.cast(images, self._dtype)
        block = 1
        for name in VGG19_LAYERS[: deepest + 1]:
            this_block = int(name[5])
            if this_block != block:  # entering a new block: pool the previous one
                x = tf.nn.max_pool2d(x, ksize=2, strides=2, padding="VALID")
                block = this_block
            x = tf.nn.relu(tf.nn.bias_add(tf.nn.conv2d(x, self._kernels[name], 1, "SAME"), self._biases[name]))
            if name in wanted:
                out[name] = tf.cast(x, tf.float32)
        return out


def conv_flops(height: int, width: int, deepest: str) -> float:
    """Multiply-add FLOPs (2 per MAC) of one forward pass of one image up to `deepest`."""
    from pycasso.weights import KERNEL_SHAPES

    flops = 0.0
    h, w, block = height, width, 1
    for name in VGG19_LAYERS[: VGG19_LAYERS.index(deepest) + 1]:
        if int(name[5]) != block:
            h, w, block = h // 2, w // 2, int(name[5])
        kh, kw, cin, cout = KERNEL_SHAPES[name]
        flops += 2.0 * h * w * kh * kw * cin * cout
    return flops


__all__ = ["PRECISIONS", "VGG19Features", "conv_flops"]
