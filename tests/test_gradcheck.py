"""course_lib.gradcheck: centred differences and the relative error."""
import numpy as np
import pytest

from course_lib.gradcheck import gradient_check, numerical_gradient, rel_error


def test_rel_error_values():
    assert rel_error([1.0, 2.0], [1.0, 2.0]) == 0.0
    assert rel_error([1.0, 0.0], [3.0, 0.0]) == pytest.approx(0.5)  # |1-3| / (1+3); 0/0 floored
    assert rel_error(0.0, 1e-9) == pytest.approx(0.1)  # |a - b| / 1e-8, the floor
    assert rel_error(np.zeros((0, 3)), np.zeros((0, 3))) == 0.0


def test_rel_error_rejects_mismatch_and_nan():
    with pytest.raises(ValueError, match=r"a and b must have the same shape, got \(2,\) and \(3,\)"):
        rel_error(np.zeros(2), np.zeros(3))
    with pytest.raises(ValueError, match="a and b must not contain NaN"):
        rel_error([np.nan], [1.0])


def test_numerical_gradient_of_a_quadratic_and_x_restored():
    x = np.random.default_rng(0).normal(size=(3, 4))
    before = x.copy()
    grad = numerical_gradient(lambda v: np.sum(v ** 2), x)
    np.testing.assert_allclose(grad, 2 * before, rtol=1e-9)
    np.testing.assert_array_equal(x, before)  # every entry put back bit for bit


def test_numerical_gradient_with_dout_and_a_closure():
    rng = np.random.default_rng(1)
    w = rng.normal(size=(2, 3))
    x = rng.normal(size=(4, 3))
    dout = rng.normal(size=(4, 2))
    # f ignores its argument and reads w, which is perturbed in place (the cs231n idiom)
    grad = numerical_gradient(lambda _: x @ w.T, w, dout)
    np.testing.assert_allclose(grad, dout.T @ x, rtol=1e-8)


def test_numerical_gradient_on_chosen_indices_only():
    x = np.arange(6, dtype=np.float64).reshape(2, 3)
    grad = numerical_gradient(lambda v: np.sum(v ** 3), x, indices=[(0, 1), (1, 2)])
    expected = np.zeros((2, 3))
    expected[0, 1], expected[1, 2] = 3 * 1.0 ** 2, 3 * 5.0 ** 2
    np.testing.assert_allclose(grad, expected, rtol=1e-8)


def test_gradient_check_accepts_right_and_flags_wrong_gradients():
    x = np.random.default_rng(2).normal(size=(5, 4))
    right, wrong = 3 * x ** 2, 3 * x ** 2 + 0.01
    assert gradient_check(lambda v: np.sum(v ** 3), x, right) < 1e-8
    assert gradient_check(lambda v: np.sum(v ** 3), x, wrong) > 1e-4
    assert gradient_check(lambda v: np.sum(v ** 3), x, right, n_samples=5) < 1e-8
    assert gradient_check(lambda v: np.sum(v ** 3), x, wrong, n_samples=50) > 1e-4  # more than x.size
    assert gradient_check(lambda v: 0.0, np.zeros(0), np.zeros(0)) == 0.0


def test_gradient_check_samples_reproducibly():
    x = np.random.default_rng(3).normal(size=(10, 10))
    bad = 2 * x
    bad[0, 0] += 1.0  # one wrong entry: found by a full check, by a sample only if drawn
    errors = {gradient_check(lambda v: np.sum(v ** 2), x, bad, n_samples=3, seed=s) for s in (0, 0)}
    assert len(errors) == 1
    assert gradient_check(lambda v: np.sum(v ** 2), x, bad) > 0.1


@pytest.mark.parametrize(
    "x, message",
    [
        (np.zeros(3, dtype=np.float32), "x must have dtype float64 for centred differences, got float32"),
        ([0.0, 1.0], r"x must be a numpy array \(it is perturbed in place\), got list"),
    ],
)
def test_bad_x_is_rejected(x, message):
    with pytest.raises(ValueError, match=message):
        numerical_gradient(np.sum, x)


def test_read_only_x_is_rejected():
    x = np.zeros(3)
    x.setflags(write=False)
    with pytest.raises(ValueError, match="x must be writeable"):
        gradient_check(np.sum, x, np.ones(3))


def test_bad_arguments_are_rejected():
    x = np.zeros(3)
    with pytest.raises(ValueError, match="h must be a finite number > 0, got 0"):
        numerical_gradient(np.sum, x, h=0)
    message = r"f must return a scalar when dout is not given, got an output of shape \(3,\)"
    with pytest.raises(ValueError, match=message):
        numerical_gradient(lambda v: v * 2, x)
    with pytest.raises(ValueError, match=r"dout must have the shape of f's output \(3,\), got \(2,\)"):
        numerical_gradient(lambda v: v * 2, x, dout=np.ones(2))
    with pytest.raises(ValueError, match=r"analytic_grad must have the shape of x \(3,\), got \(4,\)"):
        gradient_check(np.sum, x, np.ones(4))
    with pytest.raises(ValueError, match="n_samples must be an integer >= 1, got 0"):
        gradient_check(np.sum, x, np.ones(3), n_samples=0)
