"""Every layer of course_lib.layers: fast against naive, both against numerical gradients.

Gradient checks run in float64 with centred differences (h = 1e-5). The stated tolerance is a
relative error below 1e-7 for every layer; inputs are drawn away from the kinks (ReLU at 0,
ties in max pooling) where a numerical derivative is meaningless.
"""
import numpy as np
import pytest
from scipy.special import expit

from course_lib import layers as L
from course_lib.gradcheck import numerical_gradient, rel_error

GRAD_TOLERANCE = 1e-7


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
def test_conv_fast_matches_naive(shape):
    n, h, w_, f, kh, kw = shape
    r = rng(sum(shape))
    x, w, b = r.normal(size=(n, h, w_)), r.normal(size=(f, kh, kw)), r.normal(size=f)
    out_naive, cache_naive = L.conv_forward_naive(x, w, b)
    out_fast, cache_fast = L.conv_forward_fast(x, w, b)
    assert out_naive.shape == out_fast.shape == (n, f, h - kh + 1, w_ - kw + 1)
    np.testing.assert_allclose(out_fast, out_naive, rtol=1e-12, atol=1e-12)
    dout = r.normal(size=out_naive.shape)
    for g_fast, g_naive in zip(L.conv_backward_fast(dout, cache_fast), L.conv_backward_naive(dout, cache_naive)):
        np.testing.assert_allclose(g_fast, g_naive, rtol=1e-12, atol=1e-12)


def test_conv_naive_is_a_correlation_per_image_and_filter():
    from scipy.signal import correlate2d

    r = rng(1)
    x, w, b = r.normal(size=(2, 6, 7)), r.normal(size=(3, 3, 2)), r.normal(size=3)
    out, _ = L.conv_forward_naive(x, w, b)
    for n in range(2):
        for f in range(3):
            np.testing.assert_allclose(out[n, f], correlate2d(x[n], w[f], mode="valid") + b[f])


@pytest.mark.parametrize("version", ["naive", "fast"])
def test_conv_gradients_match_numerical(version):
    forward = getattr(L, f"conv_forward_{version}")
    backward = getattr(L, f"conv_backward_{version}")
    r = rng(2)
    x, w, b = r.normal(size=(2, 6, 5)), r.normal(size=(3, 3, 2)), r.normal(size=3)
    out, cache = forward(x, w, b)
    dout = r.normal(size=out.shape)
    dx, dw, db = backward(dout, cache)
    assert rel_error(dx, numerical_gradient(lambda v: forward(v, w, b)[0], x, dout)) < GRAD_TOLERANCE
    assert rel_error(dw, numerical_gradient(lambda v: forward(x, v, b)[0], w, dout)) < GRAD_TOLERANCE
    assert rel_error(db, numerical_gradient(lambda v: forward(x, w, v)[0], b, dout)) < GRAD_TOLERANCE


@pytest.mark.parametrize("version", ["naive", "fast"])
def test_conv_backward_can_skip_the_input_gradient(version):
    r = rng(3)
    x, w, b = r.normal(size=(2, 5, 5)), r.normal(size=(2, 2, 2)), r.normal(size=2)
    out, cache = getattr(L, f"conv_forward_{version}")(x, w, b)
    dout = r.normal(size=out.shape)
    backward = getattr(L, f"conv_backward_{version}")
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
    out, cache = L.conv_forward_fast(x, w, b)
    dx, dw, db = L.conv_backward_fast(np.ones_like(out), cache)
    assert {out.dtype, dx.dtype, dw.dtype, db.dtype} == {np.dtype(np.float32)}
    reference, _ = L.conv_forward_naive(x.astype(np.float64), w.astype(np.float64), b)
    np.testing.assert_allclose(out, reference, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("version", ["naive", "fast"])
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
        getattr(L, f"conv_forward_{version}")(np.zeros(x_shape), np.zeros(w_shape), np.zeros(b_shape))


@pytest.mark.parametrize("version", ["naive", "fast"])
def test_conv_rejects_nan_and_bad_dout(version):
    x = np.zeros((1, 4, 4))
    x[0, 1, 2] = np.nan
    with pytest.raises(ValueError, match="x contains NaN or infinite values"):
        getattr(L, f"conv_forward_{version}")(x, np.zeros((1, 2, 2)), np.zeros(1))
    with pytest.raises(ValueError, match="x must be a numeric array, got dtype <U1"):
        getattr(L, f"conv_forward_{version}")(np.full((1, 4, 4), "a"), np.zeros((1, 2, 2)), np.zeros(1))
    _, cache = getattr(L, f"conv_forward_{version}")(np.zeros((1, 4, 4)), np.zeros((1, 2, 2)), np.zeros(1))
    message = r"dout must have shape \(1, 1, 3, 3\) \(the forward output's\), got \(1, 3, 3\)"
    with pytest.raises(ValueError, match=message):
        getattr(L, f"conv_backward_{version}")(np.zeros((1, 3, 3)), cache)


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
def test_pool_fast_matches_naive(kind, shape, p):
    x = rng(5).normal(size=shape)
    out_naive, cache_naive = getattr(L, f"{kind}_pool_forward_naive")(x, p)
    out_fast, cache_fast = getattr(L, f"{kind}_pool_forward_fast")(x, p)
    assert out_naive.shape == out_fast.shape == shape[:2] + (shape[2] // p, shape[3] // p)
    np.testing.assert_allclose(out_fast, out_naive, rtol=1e-14, atol=1e-15)
    dout = rng(6).normal(size=out_naive.shape)
    dx_naive = getattr(L, f"{kind}_pool_backward_naive")(dout, cache_naive)
    dx_fast = getattr(L, f"{kind}_pool_backward_fast")(dout, cache_fast)
    np.testing.assert_allclose(dx_fast, dx_naive, rtol=1e-14, atol=1e-15)


@pytest.mark.parametrize("kind", ["max", "mean"])
@pytest.mark.parametrize("version", ["naive", "fast"])
def test_pool_gradients_match_numerical(kind, version):
    forward = getattr(L, f"{kind}_pool_forward_{version}")
    backward = getattr(L, f"{kind}_pool_backward_{version}")
    x = distinct_values((2, 2, 6, 5), seed=7)
    out, cache = forward(x, 2)
    dout = rng(8).normal(size=out.shape)
    numeric = numerical_gradient(lambda v: forward(v, 2)[0], x, dout)
    assert rel_error(backward(dout, cache), numeric) < GRAD_TOLERANCE


def test_max_pool_sends_the_gradient_to_the_max_only():
    x = np.array([[[[1.0, 5.0], [2.0, 3.0]]]])
    for version in ("naive", "fast"):
        out, cache = getattr(L, f"max_pool_forward_{version}")(x, 2)
        dx = getattr(L, f"max_pool_backward_{version}")(np.array([[[[7.0]]]]), cache)
        assert out.item() == 5.0
        np.testing.assert_array_equal(dx, [[[[0.0, 7.0], [0.0, 0.0]]]])


def test_max_pool_ties_go_to_the_first_position_in_both_versions():
    x = np.zeros((1, 1, 4, 4))
    x[0, 0, 2:, 2:] = [[1.0, 3.0], [3.0, 3.0]]  # a three-way tie in the last window
    for version in ("naive", "fast"):
        _, cache = getattr(L, f"max_pool_forward_{version}")(x, 2)
        dx = getattr(L, f"max_pool_backward_{version}")(np.ones((1, 1, 2, 2)), cache)
        expected = np.zeros((4, 4))
        expected[0, 0] = expected[0, 2] = expected[2, 0] = 1.0  # all-zero windows: the first
        expected[2, 3] = 1.0  # the first 3 in row-major order
        np.testing.assert_array_equal(dx[0, 0], expected)


def test_mean_pool_spreads_the_gradient_evenly():
    _, cache = L.mean_pool_forward_fast(np.zeros((1, 1, 2, 2)), 2)
    np.testing.assert_array_equal(L.mean_pool_backward_fast(np.array([[[[8.0]]]]), cache), np.full((1, 1, 2, 2), 2.0))


@pytest.mark.parametrize("name", ["max_pool_forward_naive", "max_pool_forward_fast",
                                  "mean_pool_forward_naive", "mean_pool_forward_fast"])
def test_pool_rejects_bad_input(name):
    forward = getattr(L, name)
    with pytest.raises(ValueError, match=r"x must have 4 dimensions, got shape \(3, 4, 4\)"):
        forward(np.zeros((3, 4, 4)), 2)
    with pytest.raises(ValueError, match=r"pool_size must be no larger than the feature maps \(4x3\), got 4"):
        forward(np.zeros((1, 1, 4, 3)), 4)
    with pytest.raises(ValueError, match="pool_size must be an integer >= 1, got 0"):
        forward(np.zeros((1, 1, 4, 4)), 0)
    with pytest.raises(ValueError, match="pool_size must be an integer >= 1, got 2.0"):
        forward(np.zeros((1, 1, 4, 4)), 2.0)
    _, cache = forward(np.zeros((1, 1, 4, 4)), 2)
    backward = getattr(L, name.replace("forward", "backward"))
    with pytest.raises(ValueError, match=r"dout must have shape \(1, 1, 2, 2\)"):
        backward(np.zeros((1, 1, 4, 4)), cache)


# ---------------------------------------------------------------------------------- activations
@pytest.mark.parametrize("name", ["sigmoid", "relu"])
def test_activation_fast_matches_naive(name):
    x = rng(9).normal(scale=4.0, size=(3, 4, 5))
    out_naive, cache_naive = getattr(L, f"{name}_forward_naive")(x)
    out_fast, cache_fast = getattr(L, f"{name}_forward_fast")(x)
    np.testing.assert_allclose(out_fast, out_naive, rtol=1e-13, atol=1e-16)
    dout = rng(10).normal(size=x.shape)
    np.testing.assert_allclose(getattr(L, f"{name}_backward_fast")(dout, cache_fast),
                               getattr(L, f"{name}_backward_naive")(dout, cache_naive),
                               rtol=1e-12, atol=1e-16)


@pytest.mark.parametrize("name", ["sigmoid", "relu"])
@pytest.mark.parametrize("version", ["naive", "fast"])
def test_activation_gradients_match_numerical(name, version):
    forward = getattr(L, f"{name}_forward_{version}")
    backward = getattr(L, f"{name}_backward_{version}")
    x = distinct_values((3, 4, 5), seed=11) * 10  # away from ReLU's kink at 0
    out, cache = forward(x)
    dout = rng(12).normal(size=x.shape)
    assert rel_error(backward(dout, cache), numerical_gradient(lambda v: forward(v)[0], x, dout)) < GRAD_TOLERANCE


def test_sigmoid_values_and_no_overflow_in_float32():
    x = np.array([-1000.0, -100.0, -1.0, 0.0, 1.0, 100.0, 1000.0], dtype=np.float32)
    with np.errstate(all="raise"):  # no overflow warning may escape
        out, _ = L.sigmoid_forward_fast(x)
    assert out.dtype == np.float32
    np.testing.assert_allclose(out, expit(x.astype(np.float64)), atol=1e-7)
    assert out[0] == 0.0 and out[-1] == 1.0 and out[3] == 0.5


def test_relu_passes_no_gradient_at_zero():
    for version in ("naive", "fast"):
        _, cache = getattr(L, f"relu_forward_{version}")(np.array([-1.0, 0.0, 2.0]))
        dx = getattr(L, f"relu_backward_{version}")(np.array([5.0, 5.0, 5.0]), cache)
        np.testing.assert_array_equal(dx, [0.0, 0.0, 5.0])


@pytest.mark.parametrize("name", ["sigmoid", "relu"])
@pytest.mark.parametrize("version", ["naive", "fast"])
def test_activation_rejects_bad_input(name, version):
    with pytest.raises(ValueError, match="x must be a numeric array, got dtype object"):
        getattr(L, f"{name}_forward_{version}")(np.array([1, None]))
    _, cache = getattr(L, f"{name}_forward_{version}")(np.zeros((2, 3)))
    with pytest.raises(ValueError, match=r"dout must have shape \(2, 3\) \(the forward output's\), got \(3, 2\)"):
        getattr(L, f"{name}_backward_{version}")(np.zeros((3, 2)), cache)


# ---------------------------------------------------------------------------------- affine
def test_affine_fast_matches_naive_and_numerical():
    r = rng(13)
    x, w, b = r.normal(size=(4, 6)), r.normal(size=(3, 6)), r.normal(size=3)
    out_naive, cache_naive = L.affine_forward_naive(x, w, b)
    out_fast, cache_fast = L.affine_forward_fast(x, w, b)
    np.testing.assert_allclose(out_fast, out_naive, rtol=1e-12)
    dout = r.normal(size=(4, 3))
    grads_fast = L.affine_backward_fast(dout, cache_fast)
    for g_fast, g_naive in zip(grads_fast, L.affine_backward_naive(dout, cache_naive)):
        np.testing.assert_allclose(g_fast, g_naive, rtol=1e-12)
    dx, dw, db = grads_fast
    assert rel_error(dx, numerical_gradient(lambda v: L.affine_forward_fast(v, w, b)[0], x, dout)) < GRAD_TOLERANCE
    assert rel_error(dw, numerical_gradient(lambda v: L.affine_forward_fast(x, v, b)[0], w, dout)) < GRAD_TOLERANCE
    assert rel_error(db, numerical_gradient(lambda v: L.affine_forward_fast(x, w, v)[0], b, dout)) < GRAD_TOLERANCE


@pytest.mark.parametrize("version", ["naive", "fast"])
def test_affine_rejects_bad_shapes(version):
    forward = getattr(L, f"affine_forward_{version}")
    with pytest.raises(ValueError, match=r"w must have shape \(N, 6\), got \(3, 5\)"):
        forward(np.zeros((4, 6)), np.zeros((3, 5)), np.zeros(3))
    with pytest.raises(ValueError, match=r"b must have shape \(3\), got \(4,\)"):
        forward(np.zeros((4, 6)), np.zeros((3, 6)), np.zeros(4))
    with pytest.raises(ValueError, match=r"x must have 2 dimensions, got shape \(4, 2, 3\)"):
        forward(np.zeros((4, 2, 3)), np.zeros((3, 6)), np.zeros(3))
    _, cache = forward(np.zeros((4, 6)), np.zeros((3, 6)), np.zeros(3))
    with pytest.raises(ValueError, match=r"dout must have shape \(4, 3\) \(the forward output's\), got \(3, 4\)"):
        getattr(L, f"affine_backward_{version}")(np.zeros((3, 4)), cache)


# ---------------------------------------------------------------------------------- softmax
def test_softmax_cross_entropy_fast_matches_naive_and_numerical():
    r = rng(14)
    scores, y = r.normal(size=(5, 4)), np.array([0, 3, 1, 1, 2])
    loss_naive, cache_naive = L.softmax_cross_entropy_forward_naive(scores, y)
    loss_fast, cache_fast = L.softmax_cross_entropy_forward_fast(scores, y)
    assert loss_fast == pytest.approx(loss_naive, rel=1e-13)
    dscores = L.softmax_cross_entropy_backward_fast(1.0, cache_fast)
    np.testing.assert_allclose(dscores, L.softmax_cross_entropy_backward_naive(1.0, cache_naive), rtol=1e-13)
    numeric = numerical_gradient(lambda v: L.softmax_cross_entropy_forward_fast(v, y)[0], scores)
    assert rel_error(dscores, numeric) < GRAD_TOLERANCE


def test_softmax_cross_entropy_known_values():
    # uniform scores: every class has probability 1/K, the loss is log K
    loss, cache = L.softmax_cross_entropy_forward_fast(np.zeros((2, 4)), [1, 2])
    assert loss == pytest.approx(np.log(4))
    np.testing.assert_allclose(L.softmax_cross_entropy_backward_fast(2.0, cache),
                               2.0 * (np.full((2, 4), 0.25) - np.eye(4)[[1, 2]]) / 2)
    # huge scores do not overflow
    loss, _ = L.softmax_cross_entropy_forward_fast(np.array([[1000.0, 0.0]]), [0])
    assert loss == pytest.approx(0.0, abs=1e-12)


@pytest.mark.parametrize("version", ["naive", "fast"])
def test_softmax_cross_entropy_rejects_bad_labels(version):
    forward = getattr(L, f"softmax_cross_entropy_forward_{version}")
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
    backward = getattr(L, f"softmax_cross_entropy_backward_{version}")
    with pytest.raises(ValueError, match=r"dloss must be a finite number \(the gradient of a scalar loss\), got array"):
        backward(np.ones(2), cache)
    with pytest.raises(ValueError, match="dloss must be a finite number .*, got nan"):
        backward(float("nan"), cache)


# ---------------------------------------------------------------------------------- conv block
BLOCK_CASES = [  # (N, H, W, F, kh, kw, p)
    (2, 9, 8, 3, 2, 3, 2),  # feature maps 8x6
    (2, 10, 10, 2, 3, 3, 3),  # 8x8 maps: rows and columns left over by the pooling
    (1, 6, 7, 2, 2, 2, 1),
]


@pytest.mark.parametrize("pool", ["max", "mean"])
@pytest.mark.parametrize("activation", ["sigmoid", "relu"])
@pytest.mark.parametrize("case", BLOCK_CASES)
def test_conv_block_fast_matches_naive(pool, activation, case):
    n, h, w_, f, kh, kw, p = case
    r = rng(15)
    x, w, b = r.normal(size=(n, h, w_)), r.normal(size=(f, kh, kw)), r.normal(size=f)
    out_naive, cache_naive = L.conv_block_forward_naive(x, w, b, p, pool, activation)
    out_fast, cache_fast = L.conv_block_forward_fast(x, w, b, p, pool, activation)
    assert out_fast.shape == out_naive.shape == (n, f, (h - kh + 1) // p, (w_ - kw + 1) // p)
    np.testing.assert_allclose(out_fast, out_naive, rtol=1e-12, atol=1e-14)
    dout = r.normal(size=out_naive.shape)
    for g_fast, g_naive in zip(L.conv_block_backward_fast(dout, cache_fast),
                               L.conv_block_backward_naive(dout, cache_naive)):
        np.testing.assert_allclose(g_fast, g_naive, rtol=1e-11, atol=1e-13)


@pytest.mark.parametrize("pool", ["max", "mean"])
@pytest.mark.parametrize("activation", ["sigmoid", "relu"])
def test_conv_block_fast_gradients_match_numerical(pool, activation):
    r = rng(16)
    x, w, b = r.normal(size=(2, 7, 7)), r.normal(size=(2, 3, 3)), r.normal(size=2)
    out, cache = L.conv_block_forward_fast(x, w, b, 2, pool, activation)
    dout = r.normal(size=out.shape)
    dw, db = L.conv_block_backward_fast(dout, cache)
    def block(w_, b_):
        return L.conv_block_forward_fast(x, w_, b_, 2, pool, activation)[0]
    assert rel_error(dw, numerical_gradient(lambda v: block(v, b), w, dout)) < GRAD_TOLERANCE
    assert rel_error(db, numerical_gradient(lambda v: block(w, v), b, dout)) < GRAD_TOLERANCE


def test_conv_block_fast_ties_on_blank_images_match_naive():
    # blank borders make every window of the feature maps tie: the gradient must still go to
    # one position per window, the same one as in the naive block
    x = np.zeros((2, 10, 10))
    x[:, 4:7, 3:6] = rng(17).random((2, 3, 3))
    r = rng(18)
    w, b = r.normal(size=(3, 3, 3)), r.normal(size=3)
    out_naive, cache_naive = L.conv_block_forward_naive(x, w, b, 2)
    out_fast, cache_fast = L.conv_block_forward_fast(x, w, b, 2)
    np.testing.assert_allclose(out_fast, out_naive, rtol=1e-12)
    dout = r.normal(size=out_naive.shape)
    for g_fast, g_naive in zip(L.conv_block_backward_fast(dout, cache_fast),
                               L.conv_block_backward_naive(dout, cache_naive)):
        np.testing.assert_allclose(g_fast, g_naive, rtol=1e-11, atol=1e-13)


@pytest.mark.parametrize("version", ["naive", "fast"])
def test_conv_block_rejects_bad_options(version):
    forward = getattr(L, f"conv_block_forward_{version}")
    x, w, b = np.zeros((1, 6, 6)), np.zeros((2, 3, 3)), np.zeros(2)
    with pytest.raises(ValueError, match=r"pool must be one of \['max', 'mean'\], got 'min'"):
        forward(x, w, b, 2, "min")
    with pytest.raises(ValueError, match=r"activation must be one of \['relu', 'sigmoid'\], got 'tanh'"):
        forward(x, w, b, 2, "max", "tanh")
    with pytest.raises(ValueError, match=r"pool_size must be no larger than the feature maps \(4x4\), got 5"):
        forward(x, w, b, 5)
    _, cache = forward(x, w, b, 2)
    with pytest.raises(ValueError, match=r"dout must have shape \(1, 2, 2, 2\)"):
        getattr(L, f"conv_block_backward_{version}")(np.zeros((1, 2, 4, 4)), cache)
