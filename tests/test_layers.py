"""Every layer twice: course_lib.layers (loops) against course_lib.fast_layers, both against numbers.

The twins are compared value for value, each against numerical gradients, and both must refuse
the same bad arguments with the same words. Gradient checks run in float64 with centred
differences (h = 1e-5); the stated tolerance is a relative error below 1e-7 for every layer;
inputs are drawn away from the kinks (ReLU at 0, ties in max pooling) where a numerical
derivative is meaningless.
"""
import inspect

import numpy as np
import pytest
from scipy.special import expit

from course_lib import fast_layers as F
from course_lib import layers as L
from course_lib.gradcheck import numerical_gradient, rel_error

GRAD_TOLERANCE = 1e-7
TWINS = {"reference": L, "fast": F}


def rng(seed=0):
    return np.random.default_rng(seed)


def distinct_values(shape, seed=0):
    """Values at least 0.01 apart (a shuffled grid): no ties, no kink within h of any entry."""
    values = 0.01 * rng(seed).permutation(int(np.prod(shape))) - 0.005 * np.prod(shape)
    return values.reshape(shape) + 0.003  # and none at exactly 0


# ---------------------------------------------------------------------------------- conv
CONV_SHAPES = [  # (N, H, W, F, kh, kw)
    (2, 7, 6, 3, 3, 2),
    (3, 5, 5, 2, 5, 5),
    (1, 6, 9, 4, 1, 4),
    (2, 8, 8, 2, 3, 3),
]


@pytest.mark.parametrize("shape", CONV_SHAPES)
def test_conv_twins_agree(shape):
    n, h, w_, f, kh, kw = shape
    r = rng(sum(shape))
    x, w, b = r.normal(size=(n, h, w_)), r.normal(size=(f, kh, kw)), r.normal(size=f)
    out_ref, cache_ref = L.conv_forward(x, w, b)
    out_fast, cache_fast = F.conv_forward(x, w, b)
    assert out_ref.shape == out_fast.shape == (n, f, h - kh + 1, w_ - kw + 1)
    np.testing.assert_allclose(out_fast, out_ref, rtol=1e-12, atol=1e-12)
    dout = r.normal(size=out_ref.shape)
    for g_fast, g_ref in zip(F.conv_backward(dout, cache_fast), L.conv_backward(dout, cache_ref)):
        np.testing.assert_allclose(g_fast, g_ref, rtol=1e-12, atol=1e-12)


def test_conv_reference_is_a_correlation_per_image_and_filter():
    from scipy.signal import correlate2d

    r = rng(1)
    x, w, b = r.normal(size=(2, 6, 7)), r.normal(size=(3, 3, 2)), r.normal(size=3)
    out, _ = L.conv_forward(x, w, b)
    for n in range(2):
        for f in range(3):
            np.testing.assert_allclose(out[n, f], correlate2d(x[n], w[f], mode="valid") + b[f])


@pytest.mark.parametrize("version", TWINS)
def test_conv_gradients_match_numerical(version):
    forward = TWINS[version].conv_forward
    backward = TWINS[version].conv_backward
    r = rng(2)
    x, w, b = r.normal(size=(2, 6, 5)), r.normal(size=(3, 3, 2)), r.normal(size=3)
    out, cache = forward(x, w, b)
    dout = r.normal(size=out.shape)
    dx, dw, db = backward(dout, cache)
    assert rel_error(dx, numerical_gradient(lambda v: forward(v, w, b)[0], x, dout)) < GRAD_TOLERANCE
    assert rel_error(dw, numerical_gradient(lambda v: forward(x, v, b)[0], w, dout)) < GRAD_TOLERANCE
    assert rel_error(db, numerical_gradient(lambda v: forward(x, w, v)[0], b, dout)) < GRAD_TOLERANCE


@pytest.mark.parametrize("version", TWINS)
def test_conv_backward_can_skip_the_input_gradient(version):
    r = rng(3)
    x, w, b = r.normal(size=(2, 5, 5)), r.normal(size=(2, 2, 2)), r.normal(size=2)
    out, cache = TWINS[version].conv_forward(x, w, b)
    dout = r.normal(size=out.shape)
    backward = TWINS[version].conv_backward
    dx, dw, db = backward(dout, cache, input_grad=False)
    _, dw_full, db_full = backward(dout, cache)
    assert dx is None
    np.testing.assert_array_equal(dw, dw_full)
    np.testing.assert_array_equal(db, db_full)


def test_conv_fast_keeps_float32():
    r = rng(4)
    x = r.random((3, 10, 10), dtype=np.float32)
    w = r.normal(size=(2, 3, 3)).astype(np.float32)
    b = np.zeros(2, np.float32)
    out, cache = F.conv_forward(x, w, b)
    dx, dw, db = F.conv_backward(np.ones_like(out), cache)
    assert {out.dtype, dx.dtype, dw.dtype, db.dtype} == {np.dtype(np.float32)}
    reference, _ = L.conv_forward(x.astype(np.float64), w.astype(np.float64), b)
    np.testing.assert_allclose(out, reference, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("version", TWINS)
@pytest.mark.parametrize(
    "x_shape, w_shape, b_shape, message",
    [
        ((2, 5), (1, 2, 2), (1,), r"x must have 3 dimensions, got shape \(2, 5\)"),
        ((2, 5, 5), (2, 2), (2,), r"w must have 3 dimensions, got shape \(2, 2\)"),
        ((2, 5, 5), (2, 2, 2), (3,), r"b must have shape \(2\), got \(3,\)"),
        ((2, 5, 5), (2, 6, 2), (2,), r"no larger than the images, got w shape \(2, 6, 2\) and x shape \(2, 5, 5\)"),
        ((2, 5, 5), (2, 0, 2), (2,), r"must be non-empty"),
    ],
)
def test_conv_rejects_bad_shapes(version, x_shape, w_shape, b_shape, message):
    with pytest.raises(ValueError, match=message):
        TWINS[version].conv_forward(np.zeros(x_shape), np.zeros(w_shape), np.zeros(b_shape))


@pytest.mark.parametrize("version", TWINS)
def test_conv_rejects_nan_and_bad_dout(version):
    x = np.zeros((1, 4, 4))
    x[0, 1, 2] = np.nan
    with pytest.raises(ValueError, match="x contains NaN or infinite values"):
        TWINS[version].conv_forward(x, np.zeros((1, 2, 2)), np.zeros(1))
    with pytest.raises(ValueError, match="x must be a numeric array, got dtype <U1"):
        TWINS[version].conv_forward(np.full((1, 4, 4), "a"), np.zeros((1, 2, 2)), np.zeros(1))
    _, cache = TWINS[version].conv_forward(np.zeros((1, 4, 4)), np.zeros((1, 2, 2)), np.zeros(1))
    message = r"dout must have shape \(1, 1, 3, 3\) \(the forward output's\), got \(1, 3, 3\)"
    with pytest.raises(ValueError, match=message):
        TWINS[version].conv_backward(np.zeros((1, 3, 3)), cache)


# ---------------------------------------------------------------------------------- pooling
POOL_CASES = [  # (x shape, pool size): includes sizes that leave rows/columns over
    ((2, 3, 8, 8), 2),
    ((1, 2, 7, 6), 2),
    ((2, 2, 9, 9), 3),
    ((1, 2, 5, 7), 1),
    ((1, 1, 4, 4), 4),
]


@pytest.mark.parametrize("kind", ["max", "mean"])
@pytest.mark.parametrize("shape, p", POOL_CASES)
def test_pool_twins_agree(kind, shape, p):
    x = rng(5).normal(size=shape)
    out_ref, cache_ref = getattr(L, f"{kind}_pool_forward")(x, p)
    out_fast, cache_fast = getattr(F, f"{kind}_pool_forward")(x, p)
    assert out_ref.shape == out_fast.shape == shape[:2] + (shape[2] // p, shape[3] // p)
    np.testing.assert_allclose(out_fast, out_ref, rtol=1e-14, atol=1e-15)
    dout = rng(6).normal(size=out_ref.shape)
    dx_ref = getattr(L, f"{kind}_pool_backward")(dout, cache_ref)
    dx_fast = getattr(F, f"{kind}_pool_backward")(dout, cache_fast)
    np.testing.assert_allclose(dx_fast, dx_ref, rtol=1e-14, atol=1e-15)


@pytest.mark.parametrize("kind", ["max", "mean"])
@pytest.mark.parametrize("version", TWINS)
def test_pool_gradients_match_numerical(kind, version):
    forward = getattr(TWINS[version], f"{kind}_pool_forward")
    backward = getattr(TWINS[version], f"{kind}_pool_backward")
    x = distinct_values((2, 2, 6, 5), seed=7)
    out, cache = forward(x, 2)
    dout = rng(8).normal(size=out.shape)
    numeric = numerical_gradient(lambda v: forward(v, 2)[0], x, dout)
    assert rel_error(backward(dout, cache), numeric) < GRAD_TOLERANCE


def test_max_pool_sends_the_gradient_to_the_max_only():
    x = np.array([[[[1.0, 5.0], [2.0, 3.0]]]])
    for version in TWINS:
        out, cache = TWINS[version].max_pool_forward(x, 2)
        dx = TWINS[version].max_pool_backward(np.array([[[[7.0]]]]), cache)
        assert out.item() == 5.0
        np.testing.assert_array_equal(dx, [[[[0.0, 7.0], [0.0, 0.0]]]])


def test_max_pool_ties_go_to_the_first_position_in_both_versions():
    x = np.zeros((1, 1, 4, 4))
    x[0, 0, 2:, 2:] = [[1.0, 3.0], [3.0, 3.0]]  # a three-way tie in the last window
    for version in TWINS:
        _, cache = TWINS[version].max_pool_forward(x, 2)
        dx = TWINS[version].max_pool_backward(np.ones((1, 1, 2, 2)), cache)
        expected = np.zeros((4, 4))
        expected[0, 0] = expected[0, 2] = expected[2, 0] = 1.0  # all-zero windows: the first
        expected[2, 3] = 1.0  # the first 3 in row-major order
        np.testing.assert_array_equal(dx[0, 0], expected)


def test_mean_pool_spreads_the_gradient_evenly():
    _, cache = F.mean_pool_forward(np.zeros((1, 1, 2, 2)), 2)
    np.testing.assert_array_equal(F.mean_pool_backward(np.array([[[[8.0]]]]), cache), np.full((1, 1, 2, 2), 2.0))


@pytest.mark.parametrize("version", TWINS)
@pytest.mark.parametrize("name", ["max_pool_forward", "mean_pool_forward"])
def test_pool_rejects_bad_input(version, name):
    forward = getattr(TWINS[version], name)
    with pytest.raises(ValueError, match=r"x must have 4 dimensions, got shape \(3, 4, 4\)"):
        forward(np.zeros((3, 4, 4)), 2)
    with pytest.raises(ValueError, match=r"pool_size must be no larger than the feature maps \(4x3\), got 4"):
        forward(np.zeros((1, 1, 4, 3)), 4)
    with pytest.raises(ValueError, match="pool_size must be an integer >= 1, got 0"):
        forward(np.zeros((1, 1, 4, 4)), 0)
    with pytest.raises(ValueError, match="pool_size must be an integer >= 1, got 2.0"):
        forward(np.zeros((1, 1, 4, 4)), 2.0)
    _, cache = forward(np.zeros((1, 1, 4, 4)), 2)
    backward = getattr(TWINS[version], name.replace("forward", "backward"))
    with pytest.raises(ValueError, match=r"dout must have shape \(1, 1, 2, 2\)"):
        backward(np.zeros((1, 1, 4, 4)), cache)


# ---------------------------------------------------------------------------------- activations
@pytest.mark.parametrize("name", ["sigmoid", "relu"])
def test_activation_twins_agree(name):
    x = rng(9).normal(scale=4.0, size=(3, 4, 5))
    out_ref, cache_ref = getattr(L, f"{name}_forward")(x)
    out_fast, cache_fast = getattr(F, f"{name}_forward")(x)
    np.testing.assert_allclose(out_fast, out_ref, rtol=1e-13, atol=1e-16)
    dout = rng(10).normal(size=x.shape)
    np.testing.assert_allclose(getattr(F, f"{name}_backward")(dout, cache_fast),
                               getattr(L, f"{name}_backward")(dout, cache_ref),
                               rtol=1e-12, atol=1e-16)


@pytest.mark.parametrize("name", ["sigmoid", "relu"])
@pytest.mark.parametrize("version", TWINS)
def test_activation_gradients_match_numerical(name, version):
    forward = getattr(TWINS[version], f"{name}_forward")
    backward = getattr(TWINS[version], f"{name}_backward")
    x = distinct_values((3, 4, 5), seed=11) * 10  # away from ReLU's kink at 0
    out, cache = forward(x)
    dout = rng(12).normal(size=x.shape)
    assert rel_error(backward(dout, cache), numerical_gradient(lambda v: forward(v)[0], x, dout)) < GRAD_TOLERANCE


def test_sigmoid_values_and_no_overflow_in_float32():
    x = np.array([-1000.0, -100.0, -1.0, 0.0, 1.0, 100.0, 1000.0], dtype=np.float32)
    with np.errstate(all="raise"):  # no overflow warning may escape
        out, _ = F.sigmoid_forward(x)
    assert out.dtype == np.float32
    np.testing.assert_allclose(out, expit(x.astype(np.float64)), atol=1e-7)
    assert out[0] == 0.0 and out[-1] == 1.0 and out[3] == 0.5


def test_relu_passes_no_gradient_at_zero():
    for version in TWINS:
        _, cache = TWINS[version].relu_forward(np.array([-1.0, 0.0, 2.0]))
        dx = TWINS[version].relu_backward(np.array([5.0, 5.0, 5.0]), cache)
        np.testing.assert_array_equal(dx, [0.0, 0.0, 5.0])


@pytest.mark.parametrize("name", ["sigmoid", "relu"])
@pytest.mark.parametrize("version", TWINS)
def test_activation_rejects_bad_input(name, version):
    with pytest.raises(ValueError, match="x must be a numeric array, got dtype object"):
        getattr(TWINS[version], f"{name}_forward")(np.array([1, None]))
    _, cache = getattr(TWINS[version], f"{name}_forward")(np.zeros((2, 3)))
    with pytest.raises(ValueError, match=r"dout must have shape \(2, 3\) \(the forward output's\), got \(3, 2\)"):
        getattr(TWINS[version], f"{name}_backward")(np.zeros((3, 2)), cache)


# ---------------------------------------------------------------------------------- affine
def test_affine_twins_agree_and_numerical():
    r = rng(13)
    x, w, b = r.normal(size=(4, 6)), r.normal(size=(3, 6)), r.normal(size=3)
    out_ref, cache_ref = L.affine_forward(x, w, b)
    out_fast, cache_fast = F.affine_forward(x, w, b)
    np.testing.assert_allclose(out_fast, out_ref, rtol=1e-12)
    dout = r.normal(size=(4, 3))
    grads_fast = F.affine_backward(dout, cache_fast)
    for g_fast, g_ref in zip(grads_fast, L.affine_backward(dout, cache_ref)):
        np.testing.assert_allclose(g_fast, g_ref, rtol=1e-12)
    dx, dw, db = grads_fast
    assert rel_error(dx, numerical_gradient(lambda v: F.affine_forward(v, w, b)[0], x, dout)) < GRAD_TOLERANCE
    assert rel_error(dw, numerical_gradient(lambda v: F.affine_forward(x, v, b)[0], w, dout)) < GRAD_TOLERANCE
    assert rel_error(db, numerical_gradient(lambda v: F.affine_forward(x, w, v)[0], b, dout)) < GRAD_TOLERANCE


@pytest.mark.parametrize("version", TWINS)
def test_affine_rejects_bad_shapes(version):
    forward = TWINS[version].affine_forward
    with pytest.raises(ValueError, match=r"w must have shape \(N, 6\), got \(3, 5\)"):
        forward(np.zeros((4, 6)), np.zeros((3, 5)), np.zeros(3))
    with pytest.raises(ValueError, match=r"b must have shape \(3\), got \(4,\)"):
        forward(np.zeros((4, 6)), np.zeros((3, 6)), np.zeros(4))
    with pytest.raises(ValueError, match=r"x must have 2 dimensions, got shape \(4, 2, 3\)"):
        forward(np.zeros((4, 2, 3)), np.zeros((3, 6)), np.zeros(3))
    _, cache = forward(np.zeros((4, 6)), np.zeros((3, 6)), np.zeros(3))
    with pytest.raises(ValueError, match=r"dout must have shape \(4, 3\) \(the forward output's\), got \(3, 4\)"):
        TWINS[version].affine_backward(np.zeros((3, 4)), cache)


# ---------------------------------------------------------------------------------- softmax
def test_softmax_cross_entropy_twins_agree_and_numerical():
    r = rng(14)
    scores, y = r.normal(size=(5, 4)), np.array([0, 3, 1, 1, 2])
    loss_ref, cache_ref = L.softmax_cross_entropy_forward(scores, y)
    loss_fast, cache_fast = F.softmax_cross_entropy_forward(scores, y)
    assert loss_fast == pytest.approx(loss_ref, rel=1e-13)
    dscores = F.softmax_cross_entropy_backward(1.0, cache_fast)
    np.testing.assert_allclose(dscores, L.softmax_cross_entropy_backward(1.0, cache_ref), rtol=1e-13)
    numeric = numerical_gradient(lambda v: F.softmax_cross_entropy_forward(v, y)[0], scores)
    assert rel_error(dscores, numeric) < GRAD_TOLERANCE


def test_softmax_cross_entropy_known_values():
    # uniform scores: every class has probability 1/K, the loss is log K
    loss, cache = F.softmax_cross_entropy_forward(np.zeros((2, 4)), [1, 2])
    assert loss == pytest.approx(np.log(4))
    np.testing.assert_allclose(F.softmax_cross_entropy_backward(2.0, cache),
                               2.0 * (np.full((2, 4), 0.25) - np.eye(4)[[1, 2]]) / 2)
    # huge scores do not overflow
    loss, _ = F.softmax_cross_entropy_forward(np.array([[1000.0, 0.0]]), [0])
    assert loss == pytest.approx(0.0, abs=1e-12)


@pytest.mark.parametrize("version", TWINS)
def test_softmax_cross_entropy_rejects_bad_labels(version):
    forward = TWINS[version].softmax_cross_entropy_forward
    with pytest.raises(ValueError, match=r"y must be in \[0, 3\), got label 3"):
        forward(np.zeros((2, 3)), [0, 3])
    with pytest.raises(ValueError, match=r"y must be in \[0, 3\), got label -1"):
        forward(np.zeros((2, 3)), [-1, 0])
    with pytest.raises(ValueError, match=r"y must have shape \(2,\), got \(3,\)"):
        forward(np.zeros((2, 3)), [0, 1, 2])
    with pytest.raises(ValueError, match="y must hold integer class labels, got dtype float64"):
        forward(np.zeros((2, 3)), [0.5, 1.0])
    with pytest.raises(ValueError, match=r"scores must hold at least one image and one class, got \(0, 3\)"):
        forward(np.zeros((0, 3)), [])
    with pytest.raises(ValueError, match="scores contains NaN or infinite values"):
        forward(np.array([[0.0, np.nan]]), [0])
    _, cache = forward(np.zeros((2, 3)), [0, 1])
    backward = TWINS[version].softmax_cross_entropy_backward
    with pytest.raises(ValueError, match=r"dloss must be a finite number \(the gradient of a scalar loss\), got array"):
        backward(np.ones(2), cache)
    with pytest.raises(ValueError, match="dloss must be a finite number .*, got nan"):
        backward(float("nan"), cache)


# ---------------------------------------------------------------------------------- the twins' API
@pytest.mark.parametrize("name", L.__all__)
def test_twins_share_name_signature_and_a_documented_api(name):
    reference, fast = getattr(L, name), getattr(F, name)
    assert name in F.__all__
    assert inspect.signature(reference) == inspect.signature(fast)
    for function in (reference, fast):
        assert "Parameters" in function.__doc__ and "Returns" in function.__doc__
        assert "shape" in function.__doc__ or "same shape" in function.__doc__
        # the unchecked core has the same signature, for callers that checked already
        assert inspect.signature(function.unchecked) == inspect.signature(function)


def as_tuple(grads):
    """A backward pass's result as a tuple (single gradients come back bare)."""
    return grads if isinstance(grads, tuple) else (grads,)


def layer_cases():
    """(forward, backward, forward inputs, dout shape or None for a scalar loss) of every layer."""
    r = rng(30)
    x4 = distinct_values((2, 3, 6, 5), seed=31)
    return {
        "conv": ("conv_forward", "conv_backward", (r.normal(size=(2, 7, 6)), r.normal(size=(3, 3, 2)), r.normal(size=3))),
        "max_pool": ("max_pool_forward", "max_pool_backward", (x4, 2)),
        "mean_pool": ("mean_pool_forward", "mean_pool_backward", (x4, 2)),
        "sigmoid": ("sigmoid_forward", "sigmoid_backward", (x4,)),
        "relu": ("relu_forward", "relu_backward", (x4,)),
        "affine": ("affine_forward", "affine_backward", (r.normal(size=(4, 6)), r.normal(size=(3, 6)), r.normal(size=3))),
        "softmax": ("softmax_cross_entropy_forward", "softmax_cross_entropy_backward",
                    (r.normal(size=(5, 4)), np.array([0, 3, 1, 1, 2]))),
    }


@pytest.mark.parametrize("layer", list(layer_cases()))
@pytest.mark.parametrize("forward_twin, backward_twin", [("reference", "fast"), ("fast", "reference")])
def test_a_cache_works_with_either_twin(layer, forward_twin, backward_twin):
    forward_name, backward_name, inputs = layer_cases()[layer]
    out, cache = getattr(TWINS[forward_twin], forward_name)(*inputs)
    dout = 1.0 if np.ndim(out) == 0 else rng(32).normal(size=out.shape)
    own = getattr(TWINS[forward_twin], backward_name)(dout, cache)
    other = getattr(TWINS[backward_twin], backward_name)(dout, cache)
    for g_own, g_other in zip(as_tuple(own), as_tuple(other)):
        np.testing.assert_allclose(g_other, g_own, rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("layer", list(layer_cases()))
def test_unchecked_cores_compute_the_same(layer):
    forward_name, backward_name, inputs = layer_cases()[layer]
    forward, backward = getattr(F, forward_name), getattr(F, backward_name)
    out, cache = forward(*inputs)
    out_core, cache_core = forward.unchecked(*inputs)
    np.testing.assert_array_equal(out_core, out)
    dout = 1.0 if np.ndim(out) == 0 else rng(33).normal(size=out.shape)
    for g, g_core in zip(as_tuple(backward(dout, cache)), as_tuple(backward.unchecked(dout, cache_core))):
        np.testing.assert_array_equal(g_core, g)


@pytest.mark.parametrize("version", TWINS)
def test_backward_refuses_what_is_not_a_cache(version):
    twin = TWINS[version]
    dout = np.zeros((1, 2, 3, 3))
    with pytest.raises(ValueError, match=r"cache must be the cache conv_forward returned, a tuple \(x, w, \.\.\.\), got str"):
        twin.conv_backward(dout, "cache")
    with pytest.raises(ValueError, match=r"cache must be the cache affine_forward returned, a tuple \(x, w, \.\.\.\), got a tuple of 1"):
        twin.affine_backward(np.zeros((2, 3)), (np.zeros((2, 4)),))
    with pytest.raises(ValueError, match=r"cache must be the cache the activation's forward returned, a tuple \(out or x,\), got ndarray"):
        twin.sigmoid_backward(np.zeros(3), np.zeros(3))
    with pytest.raises(ValueError, match=r"cache must be the cache softmax_cross_entropy_forward returned"):
        twin.softmax_cross_entropy_backward(1.0, None)


@pytest.mark.parametrize("version", TWINS)
def test_conv_backward_refuses_a_bad_input_grad(version):
    twin = TWINS[version]
    out, cache = twin.conv_forward(np.zeros((1, 4, 4)), np.zeros((2, 2, 2)), np.zeros(2))
    with pytest.raises(ValueError, match="input_grad must be True or False, got 'no'"):
        twin.conv_backward(np.zeros(out.shape), cache, input_grad="no")


@pytest.mark.parametrize("version", TWINS)
def test_gradients_come_back_in_the_forward_dtype(version):
    twin = TWINS[version]
    r = rng(34)
    x = r.random((2, 6, 6), dtype=np.float32)
    z, conv_cache = twin.conv_forward(x, r.random((2, 3, 3), dtype=np.float32), np.zeros(2, np.float32))
    a, sigmoid_cache = twin.sigmoid_forward(z)
    m, pool_cache = twin.max_pool_forward(a, 2)
    assert {z.dtype, a.dtype, m.dtype} == {np.dtype(np.float32)}
    dm = np.ones(m.shape)  # float64 from the caller: converted to the layer's float32
    da = twin.max_pool_backward(dm, pool_cache)
    dz = twin.sigmoid_backward(da, sigmoid_cache)
    grads = twin.conv_backward(dz, conv_cache)
    assert {da.dtype, dz.dtype} | {g.dtype for g in grads} == {np.dtype(np.float32)}
