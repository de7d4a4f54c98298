"""course_lib.optim: momentum SGD and gradient clipping, on numbers worked out by hand.

The hand-made cases use powers of two, so every step is exact in binary floating point and
the tests compare with ``==``; the random cases compare two ways of writing the same update.
"""
import numpy as np
import pytest

from course_lib.optim import check_momentum, clip_gradients, gradient_norm, sgd_momentum_step


# ---------------------------------------------------------------------------------- momentum SGD
def test_two_steps_by_hand():
    params = {"w": np.array([1.0, -2.0]), "b": np.array([0.5])}
    velocity = {name: np.zeros_like(value) for name, value in params.items()}
    w_array, v_array = params["w"], velocity["w"]

    # step 1, lr 1/4, momentum 1/2: v = g = [1/2, 1/4], w = [1 - 1/8, -2 - 1/16]
    sgd_momentum_step(params, {"w": np.array([0.5, 0.25]), "b": np.array([2.0])}, velocity, 0.25, 0.5)
    np.testing.assert_array_equal(velocity["w"], [0.5, 0.25])
    np.testing.assert_array_equal(params["w"], [0.875, -2.0625])
    np.testing.assert_array_equal(params["b"], [0.0])

    # step 2: v = 1/2 [1/2, 1/4] + [1, -1] = [5/4, -7/8], w -= 1/4 v
    sgd_momentum_step(params, {"w": np.array([1.0, -1.0]), "b": np.array([0.0])}, velocity, 0.25, 0.5)
    np.testing.assert_array_equal(velocity["w"], [1.25, -0.875])
    np.testing.assert_array_equal(params["w"], [0.5625, -1.84375])
    np.testing.assert_array_equal(params["b"], [-0.25])  # v = 1/2 * 2 + 0 = 1: momentum alone moves it

    # in place: a model holding these arrays sees the update
    assert params["w"] is w_array and velocity["w"] is v_array


def test_zero_momentum_is_plain_gradient_descent():
    rng = np.random.default_rng(0)
    theta = rng.normal(size=(3, 4))
    params, velocity = {"theta": theta.copy()}, {"theta": np.zeros((3, 4))}
    for _ in range(3):
        grad = rng.normal(size=(3, 4))
        sgd_momentum_step(params, {"theta": grad}, velocity, 0.1, 0.0)
        theta -= 0.1 * grad
        np.testing.assert_array_equal(params["theta"], theta)


def other_convention(theta, grads, lrs, momentum):
    """The other usual way to write it: v' = mu v' - lr g, theta += v' (cs231n's sgd_momentum)."""
    v = np.zeros_like(theta)
    for grad, lr in zip(grads, lrs):
        v = momentum * v - lr * grad
        theta = theta + v
    return theta


def ours(theta, grads, lrs, momentum):
    params, velocity = {"theta": theta.copy()}, {"theta": np.zeros_like(theta)}
    for grad, lr in zip(grads, lrs):
        sgd_momentum_step(params, {"theta": grad}, velocity, lr, momentum)
    return params["theta"]


def test_same_steps_as_the_other_convention_at_constant_lr():
    rng = np.random.default_rng(1)
    theta = rng.normal(size=5)
    grads = [rng.normal(size=5) for _ in range(50)]
    lrs = [0.03] * 50
    np.testing.assert_allclose(ours(theta, grads, lrs, 0.9), other_convention(theta, grads, lrs, 0.9),
                               rtol=1e-12, atol=1e-12)


def test_the_conventions_part_ways_when_the_lr_changes():
    # with v' = -lr v the old velocity is rescaled by the new lr in ours, not in the other
    theta, grads = np.zeros(1), [np.ones(1), np.zeros(1)]
    lrs = [1.0, 0.5]
    np.testing.assert_array_equal(ours(theta, grads, lrs, 0.5), [-1.25])  # -1 - 0.5 * (0.5 * 1)
    np.testing.assert_array_equal(other_convention(theta, grads, lrs, 0.5), [-1.5])  # -1 + 0.5 * -1


def test_check_momentum_accepts_the_half_open_interval():
    assert check_momentum(0) == 0.0 and isinstance(check_momentum(0), float)
    assert check_momentum(0.9) == 0.9
    assert check_momentum(np.float32(0.5)) == 0.5


@pytest.mark.parametrize(
    "momentum, message",
    [
        (1.0, r"momentum must be in \[0, 1\), got 1.0"),
        (1.5, r"momentum must be in \[0, 1\), got 1.5"),
        (-0.1, "momentum must be >= 0, got -0.1"),
        (float("nan"), "momentum must be a finite number, got nan"),
        (float("inf"), "momentum must be a finite number, got inf"),
        ("0.9", "momentum must be a finite number, got '0.9'"),
        (True, "momentum must be a finite number, got True"),
        (None, "momentum must be a finite number, got None"),
    ],
)
def test_check_momentum_rejects(momentum, message):
    with pytest.raises(ValueError, match=message):
        check_momentum(momentum)


# ---------------------------------------------------------------------------------- norm and clipping
def test_gradient_norm_is_the_norm_of_everything_together():
    assert gradient_norm({"a": np.array([3.0, 0.0]), "b": np.array([[4.0]])}) == 5.0
    assert gradient_norm({"a": np.array([-12.0]), "b": np.array([5.0]), "c": np.zeros((2, 2))}) == 13.0
    assert gradient_norm({}) == 0.0
    assert isinstance(gradient_norm({"a": np.ones(2, dtype=np.float32)}), float)


def test_clip_rescales_a_long_gradient_to_the_threshold():
    grads = {"a": np.array([3.0, 0.0]), "b": np.array([[-4.0]])}
    clipped, norm = clip_gradients(grads, 2.5)
    assert norm == 5.0  # the norm before clipping
    np.testing.assert_array_equal(clipped["a"], [1.5, 0.0])  # same direction, half the length
    np.testing.assert_array_equal(clipped["b"], [[-2.0]])
    assert gradient_norm(clipped) == 2.5
    # the input is left alone
    np.testing.assert_array_equal(grads["a"], [3.0, 0.0])
    np.testing.assert_array_equal(grads["b"], [[-4.0]])


def test_clip_leaves_a_short_gradient_as_it_is():
    grads = {"a": np.array([0.3, -0.4])}
    clipped, norm = clip_gradients(grads, 1.0)
    assert norm == pytest.approx(0.5, rel=1e-15)
    np.testing.assert_array_equal(clipped["a"], grads["a"])
    assert clipped["a"] is not grads["a"]  # new arrays either way: the caller may change them
    # at exactly the threshold the scale is threshold / norm = 1
    clipped, norm = clip_gradients({"a": np.array([3.0, 4.0])}, 5.0)
    assert norm == 5.0
    np.testing.assert_array_equal(clipped["a"], [3.0, 4.0])


@pytest.mark.parametrize(
    "threshold, message",
    [
        (0.0, "threshold must be > 0, got 0.0"),
        (-1.0, "threshold must be > 0, got -1.0"),
        (float("nan"), "threshold must be a finite number, got nan"),
        (float("inf"), "threshold must be a finite number, got inf"),
        ("1", "threshold must be a finite number, got '1'"),
        (None, "threshold must be a finite number, got None"),
    ],
)
def test_clip_rejects_bad_thresholds(threshold, message):
    grads = {"a": np.array([1.0, 2.0])}
    with pytest.raises(ValueError, match=message):
        clip_gradients(grads, threshold)
    np.testing.assert_array_equal(grads["a"], [1.0, 2.0])  # nothing lost
