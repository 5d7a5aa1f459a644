"""The losses of the classic Keras neural style transfer example, as small named functions.

Kept exactly to that example's definitions (including its Gram normalisation by 4·3²·(H·W)²,
where H·W is the painting's pixel count and 3 its channels) so that loss values are comparable.
"""

from __future__ import annotations

from pycasso._tf import tf


@tf.custom_gradient
def gram_matrix(features: tf.Tensor) -> tuple[tf.Tensor, object]:
    """Gram matrix of one image's features. features: (h, w, c) -> (c, c).

    The gradient is written out because autodiff of FᵀF runs two (h·w, c)×(c, c) matmuls and adds
    them; d(FᵀF) pulled back through an upstream U is F(U + Uᵀ), which is one.
    """
    flat = tf.reshape(features, (-1, tf.shape(features)[-1]))  # (h*w, c)

    def grad(upstream: tf.Tensor) -> tf.Tensor:
        return tf.reshape(tf.matmul(flat, upstream + tf.transpose(upstream)), tf.shape(features))

    return tf.matmul(flat, flat, transpose_a=True), grad


def style_loss(style_gram: tf.Tensor, combination: tf.Tensor, pixels: int | tf.Tensor) -> tf.Tensor:
    """Squared Gram distance. style_gram: (c, c) target; combination: (h, w, c) features;
    `pixels`: the painting's height × width (the Keras example's `size`)."""
    channels = 3
    diff = style_gram - gram_matrix(combination)
    return tf.reduce_sum(tf.square(diff)) / (4.0 * channels**2 * tf.cast(pixels, tf.float32) ** 2)


def content_loss(base: tf.Tensor, combination: tf.Tensor) -> tf.Tensor:
    """Sum of squared feature differences (no 1/2, as in the Keras example)."""
    return tf.reduce_sum(tf.square(combination - base))


def total_variation_loss(image: tf.Tensor) -> tf.Tensor:
    """Anisotropic TV with exponent 1.25. image: (1, H, W, 3)."""
    a = tf.square(image[:, :-1, :-1, :] - image[:, 1:, :-1, :])
    b = tf.square(image[:, :-1, :-1, :] - image[:, :-1, 1:, :])
    return tf.reduce_sum(tf.pow(a + b, 1.25))


__all__ = ["content_loss", "gram_matrix", "style_loss", "total_variation_loss"]
