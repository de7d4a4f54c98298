"""The fused convolution block of course_lib.fast_layers equals the three layers it fuses.

``fused_conv_block_forward`` is an optimisation: convolution, activation and pooling in one
pass. It must give the numbers of ``conv_forward`` -> activation -> pooling run one after
another, with the fast layers and with the reference loops, and its gradients must pass the
centred-difference check (float64, relative error below 1e-7).
"""
import numpy as np
import pytest

from course_lib import fast_layers as F
from course_lib import layers as L
from course_lib.gradcheck import numerical_gradient, rel_error

GRAD_TOLERANCE = 1e-7
TWINS = {"reference": L, "fast": F}

CASES = [  # (N, H, W, F, kh, kw, p)
    (2, 9, 8, 3, 2, 3, 2),  # feature maps 8x6
    (2, 10, 10, 2, 3, 3, 3),  # 8x8 maps: rows and columns left over by the pooling
    (1, 6, 7, 2, 2, 2, 1),
]


def composed(twin, x, w, b, pool_size=2, pool="max", activation="sigmoid"):
    """The three layers one after another; returns the output and a backward function."""
    activation_forward, activation_backward = (getattr(twin, f"{activation}_{d}") for d in ("forward", "backward"))
    pool_forward, pool_backward = (getattr(twin, f"{pool}_pool_{d}") for d in ("forward", "backward"))
    z, conv_cache = twin.conv_forward(x, w, b)
    a, activation_cache = activation_forward(z)
    out, pool_cache = pool_forward(a, pool_size)

    def backward(dout):
        dz = activation_backward(pool_backward(dout, pool_cache), activation_cache)
        _, dw, db = twin.conv_backward(dz, conv_cache, input_grad=False)
        return dw, db

    return out, backward


def rng(seed):
    return np.random.default_rng(seed)


@pytest.mark.parametrize("twin", TWINS)
@pytest.mark.parametrize("pool", ["max", "mean"])
@pytest.mark.parametrize("activation", ["sigmoid", "relu"])
@pytest.mark.parametrize("case", CASES)
def test_fused_block_equals_the_composed_layers(twin, pool, activation, case):
    n, h, w_, f, kh, kw, p = case
    r = rng(15)
    x, w, b = r.normal(size=(n, h, w_)), r.normal(size=(f, kh, kw)), r.normal(size=f)
    out_composed, backward_composed = composed(TWINS[twin], x, w, b, p, pool, activation)
    out_fused, cache = F.fused_conv_block_forward(x, w, b, p, pool, activation)
    assert out_fused.shape == out_composed.shape == (n, f, (h - kh + 1) // p, (w_ - kw + 1) // p)
    np.testing.assert_allclose(out_fused, out_composed, rtol=1e-12, atol=1e-14)
    dout = r.normal(size=out_composed.shape)
    for g_fused, g_composed in zip(F.fused_conv_block_backward(dout, cache), backward_composed(dout)):
        np.testing.assert_allclose(g_fused, g_composed, rtol=1e-11, atol=1e-13)


@pytest.mark.parametrize("pool", ["max", "mean"])
@pytest.mark.parametrize("activation", ["sigmoid", "relu"])
def test_fused_block_gradients_match_numerical(pool, activation):
    r = rng(16)
    x, w, b = r.normal(size=(2, 7, 7)), r.normal(size=(2, 3, 3)), r.normal(size=2)
    out, cache = F.fused_conv_block_forward(x, w, b, 2, pool, activation)
    dout = r.normal(size=out.shape)
    dw, db = F.fused_conv_block_backward(dout, cache)

    def block(w_, b_):
        return F.fused_conv_block_forward(x, w_, b_, 2, pool, activation)[0]

    assert rel_error(dw, numerical_gradient(lambda v: block(v, b), w, dout)) < GRAD_TOLERANCE
    assert rel_error(db, numerical_gradient(lambda v: block(w, v), b, dout)) < GRAD_TOLERANCE


@pytest.mark.parametrize("activation", ["sigmoid", "relu"])
def test_fused_block_on_blank_images_breaks_ties_like_the_layers(activation):
    # blank borders make every window of the feature maps tie: the gradient must still go to
    # one position per window, the one the max pooling layers pick (the first, row-major)
    x = np.zeros((2, 10, 10))
    x[:, 4:7, 3:6] = rng(17).random((2, 3, 3))
    r = rng(18)
    w, b = r.normal(size=(3, 3, 3)), r.normal(size=3)
    out_composed, backward_composed = composed(L, x, w, b, 2, "max", activation)
    out_fused, cache = F.fused_conv_block_forward(x, w, b, 2, "max", activation)
    np.testing.assert_allclose(out_fused, out_composed, rtol=1e-12)
    dout = r.normal(size=out_composed.shape)
    for g_fused, g_composed in zip(F.fused_conv_block_backward(dout, cache), backward_composed(dout)):
        np.testing.assert_allclose(g_fused, g_composed, rtol=1e-11, atol=1e-13)


def test_fused_block_keeps_float32():
    r = rng(19)
    x = r.random((3, 12, 12), dtype=np.float32)
    w, b = r.normal(size=(4, 5, 5)).astype(np.float32), np.zeros(4, np.float32)
    out, cache = F.fused_conv_block_forward(x, w, b)
    grads = F.fused_conv_block_backward(np.ones(out.shape), cache)
    assert {out.dtype} | {g.dtype for g in grads} == {np.dtype(np.float32)}


def test_fused_block_rejects_bad_arguments():
    x, w, b = np.zeros((1, 6, 6)), np.zeros((2, 3, 3)), np.zeros(2)
    forward = F.fused_conv_block_forward
    with pytest.raises(ValueError, match=r"pool must be one of \['max', 'mean'\], got 'min'"):
        forward(x, w, b, 2, "min")
    with pytest.raises(ValueError, match=r"activation must be one of \['relu', 'sigmoid'\], got 'tanh'"):
        forward(x, w, b, 2, "max", "tanh")
    with pytest.raises(ValueError, match=r"pool_size must be no larger than the feature maps \(4x4\), got 5"):
        forward(x, w, b, 5)
    with pytest.raises(ValueError, match=r"b must have shape \(2\), got \(3,\)"):
        forward(x, w, np.zeros(3))
    with pytest.raises(ValueError, match="x contains NaN or infinite values"):
        forward(np.full((1, 6, 6), np.nan), w, b)
    _, cache = forward(x, w, b, 2)
    with pytest.raises(ValueError, match=r"dout must have shape \(1, 2, 2, 2\)"):
        F.fused_conv_block_backward(np.zeros((1, 2, 4, 4)), cache)
    with pytest.raises(ValueError, match=r"cache must be the cache fused_conv_block_forward returned"):
        F.fused_conv_block_backward(np.zeros((1, 2, 2, 2)), cache[:2])
