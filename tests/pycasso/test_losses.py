"""The Keras example's losses, checked against values computed by hand."""

import numpy as np
import pytest
import tensorflow as tf

from pycasso.losses import content_loss, gram_matrix, style_loss, total_variation_loss


def test_gram_of_a_known_matrix():
    # two positions (1x2 map), two channels: rows [1, 2] and [3, 4]
    feats = tf.constant([[[1.0, 2.0], [3.0, 4.0]]])  # (h=1, w=2, c=2)
    # F^T F with F = [[1, 2], [3, 4]]
    np.testing.assert_allclose(gram_matrix(feats).numpy(), [[10.0, 14.0], [14.0, 20.0]])


def test_style_loss_uses_the_keras_normalisation():
    comb = tf.constant([[[1.0, 2.0], [3.0, 4.0]]])
    target = tf.zeros((2, 2))
    pixels = 6
    expected = (10**2 + 14**2 + 14**2 + 20**2) / (4.0 * 9 * pixels**2)
    assert style_loss(target, comb, pixels).numpy() == pytest.approx(expected)
    assert style_loss(gram_matrix(comb), comb, pixels).numpy() == 0.0


def test_content_loss_of_identical_features_is_zero_and_is_a_plain_sum_of_squares():
    a = tf.constant(np.arange(24, dtype=np.float32).reshape(2, 3, 4))
    assert content_loss(a, a).numpy() == 0.0
    assert content_loss(a, a + 2.0).numpy() == pytest.approx(24 * 4.0)


def test_total_variation_of_a_constant_image_is_zero():
    assert total_variation_loss(tf.fill((1, 5, 7, 3), 42.0)).numpy() == 0.0


def test_total_variation_by_hand():
    # 2x2 single-channel-ish image; only the top-left pixel has both neighbours
    img = np.zeros((1, 2, 2, 3), np.float32)
    img[0, 1, 0, :] = 1.0  # below: a = 1
    img[0, 0, 1, :] = 2.0  # right: b = 4
    expected = 3 * (1.0 + 4.0) ** 1.25
    assert total_variation_loss(tf.constant(img)).numpy() == pytest.approx(expected)


def test_the_written_out_gram_gradient_equals_autodiff():
    rng = np.random.default_rng(0)
    feats = tf.constant(rng.normal(size=(5, 4, 3)).astype(np.float32))
    target = tf.constant(rng.normal(size=(3, 3)).astype(np.float32))

    def autodiff_gram(f):
        flat = tf.reshape(f, (-1, 3))
        return tf.matmul(flat, flat, transpose_a=True)

    grads = []
    for gram in (gram_matrix, autodiff_gram):
        with tf.GradientTape() as tape:
            tape.watch(feats)
            loss = tf.reduce_sum(tf.square(gram(feats) - target) * tf.constant([[1.0, 2.0, 3.0]]))  # not symmetric
        gradient = tape.gradient(loss, feats)
        assert isinstance(gradient, tf.Tensor)  # dense, not IndexedSlices
        grads.append(gradient.numpy())
    np.testing.assert_allclose(grads[0], grads[1], rtol=1e-5, atol=1e-5)
