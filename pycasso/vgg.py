"""VGG19's convolutional part as plain TensorFlow ops, cut at the deepest layer a painting needs.

No Keras model: the network is a fixed list of 3x3 convs, ReLUs and 2x2 max pools, and writing it
out keeps the graph minimal (nothing computed past the cut) and the weights plain constants.
Inputs are VGG-preprocessed images: (N, H, W, 3) float32, BGR, ImageNet mean subtracted.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from painting.params import VGG19_LAYERS
from pycasso._tf import tf
from pycasso.weights import load_weights


class VGG19Features:
    """The VGG19 conv stack with its weights loaded once (keep one per process: it is the warm part)."""

    def __init__(self, weights_path: str | Path | None = None) -> None:
        weights = load_weights(weights_path)
        self.weights_path = weights_path
        self.weights = weights  # the float32 arrays, for fingerprints and reference implementations
        self._kernels = {name: tf.constant(weights[name][0]) for name in VGG19_LAYERS}
        self._biases = {name: tf.constant(weights[name][1]) for name in VGG19_LAYERS}

    def __call__(self, images: tf.Tensor, layers: Iterable[str]) -> dict[str, tf.Tensor]:
        """Activations (after ReLU) of `layers`, running the network only as deep as the deepest one.

        images: (N, H, W, 3), BGR, mean-subtracted. Returns {layer: (N, h, w, c)}.
        """
        wanted = set(layers)
        deepest = max(VGG19_LAYERS.index(name) for name in wanted)
        out: dict[str, tf.Tensor] = {}
        x = images
        block = 1
        for name in VGG19_LAYERS[: deepest + 1]:
            this_block = int(name[5])
            if this_block != block:  # entering a new block: pool the previous one
                x = tf.nn.max_pool2d(x, ksize=2, strides=2, padding="VALID")
                block = this_block
            x = tf.nn.relu(tf.nn.bias_add(tf.nn.conv2d(x, self._kernels[name], 1, "SAME"), self._biases[name]))
            if name in wanted:
                out[name] = x
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


__all__ = ["VGG19Features", "conv_flops"]
