"""The in-graph L-BFGS on problems whose answer is known: a convex quadratic, with and without a box."""

import numpy as np
import pytest

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def quadratic():
    """f(x) = ½ xᵀAx − bᵀx with A symmetric positive definite (condition about 400), its parts and a solver."""
    from pycasso._tf import tf
    from pycasso.lbfgs import LBFGS

    rng = np.random.default_rng(3)
    n = 40
    q = rng.normal(size=(n, n))
    a = q @ q.T + 0.5 * np.eye(n)
    b = rng.normal(size=n) * 5

    def objective(x, a, b):
        with tf.GradientTape() as tape:
            tape.watch(x)
            f = 0.5 * tf.reduce_sum(x * tf.linalg.matvec(a, x)) - tf.reduce_sum(b * x)
        return f, tf.stack([f]), tape.gradient(f, x)

    args = (tf.constant(a, tf.float32), tf.constant(b, tf.float32))
    return LBFGS(objective), args, a, b, tf


def run(optimiser, args, tf, lower, upper, iterations):
    state = optimiser.start(tf.zeros([args[1].shape[0]]), args)
    values = [float(state.f)]
    for _ in range(iterations):
        state = optimiser.step(state, tf.constant(lower, tf.float32), tf.constant(upper, tf.float32), args)
        values.append(float(state.f))
    return state, values


def test_it_lowers_a_convex_quadratic_to_its_minimum(quadratic):
    optimiser, args, a, b, tf = quadratic
    state, values = run(optimiser, args, tf, -1e9, 1e9, 80)
    solution = np.linalg.solve(a, b)
    minimum = -0.5 * b @ solution
    assert values[-1] == pytest.approx(minimum, rel=1e-4)
    np.testing.assert_allclose(state.x.numpy(), solution, atol=0.05)
    assert all(later <= earlier for earlier, later in zip(values, values[1:], strict=False))  # never up


def test_it_keeps_every_point_in_the_box_and_finds_the_boxed_minimum(quadratic):
    from scipy import optimize

    optimiser, args, a, b, tf = quadratic
    state, values = run(optimiser, args, tf, -0.5, 0.5, 120)
    x = state.x.numpy()
    assert x.min() >= -0.5 and x.max() <= 0.5
    assert (np.abs(x) == 0.5).sum() > 3  # the box binds: the answer is on its faces

    def value_and_gradient(v: np.ndarray) -> tuple[float, np.ndarray]:
        return float(0.5 * v @ a @ v - b @ v), a @ v - b

    reference = optimize.minimize(
        value_and_gradient, np.zeros(len(b)), jac=True, method="L-BFGS-B", bounds=optimize.Bounds(-0.5, 0.5)
    )
    assert values[-1] == pytest.approx(reference.fun, rel=1e-4)
    np.testing.assert_allclose(x, reference.x, atol=0.01)


def test_a_new_start_forgets_the_history(quadratic):
    optimiser, args, _, _, tf = quadratic
    state, _ = run(optimiser, args, tf, -1e9, 1e9, 5)
    assert float(state.rho[0]) > 0  # pairs were kept
    restarted = optimiser.start(state.x, args)
    assert float(restarted.f) == pytest.approx(float(state.f))
    assert not restarted.rho.numpy().any()
