"""Layers of the course's CNN as forward/backward pairs, each in a naive and a fast version.

Every layer follows one pattern (the one of Stanford's cs231n assignments)::

    out, cache = <layer>_forward_<version>(x, ...)
    dx, ...    = <layer>_backward_<version>(dout, cache)

``forward`` returns the layer's output and a ``cache`` of what ``backward`` needs; ``backward``
takes the gradient of the loss with respect to the output (``dout``, same shape as ``out``) and
returns the gradients with respect to the inputs and the parameters.

The ``_naive`` versions are loops that read like the maths: they are the reference. The
``_fast`` versions compute the same numbers with a few large numpy operations (matrix
products that run in BLAS, whole-array arithmetic) and share the naive versions' signatures,
so the tests can compare them value for value. The two versions' caches are not
interchangeable: pass a cache back to the ``backward`` of the version that made it.

Shapes use these letters: ``N`` images in a batch, ``H x W`` an image, ``F`` filters of
``kh x kw``, ``H' = H - kh + 1`` and ``W' = W - kw + 1`` a "valid" feature map, ``p`` the
pooling size (the stride equals it), ``D`` features, ``K`` classes.
"""
import functools

import numpy as np

from course_lib._checks import as_float_array, as_labels, one_of, positive_int

__all__ = [
    "conv_forward_naive", "conv_backward_naive", "conv_forward_fast", "conv_backward_fast",
    "max_pool_forward_naive", "max_pool_backward_naive",
    "max_pool_forward_fast", "max_pool_backward_fast",
    "mean_pool_forward_naive", "mean_pool_backward_naive",
    "mean_pool_forward_fast", "mean_pool_backward_fast",
    "sigmoid_forward_naive", "sigmoid_backward_naive", "sigmoid_forward_fast", "sigmoid_backward_fast",
    "relu_forward_naive", "relu_backward_naive", "relu_forward_fast", "relu_backward_fast",
    "affine_forward_naive", "affine_backward_naive", "affine_forward_fast", "affine_backward_fast",
    "softmax_cross_entropy_forward_naive", "softmax_cross_entropy_backward_naive",
    "softmax_cross_entropy_forward_fast", "softmax_cross_entropy_backward_fast",
    "conv_block_forward_naive", "conv_block_backward_naive",
    "conv_block_forward_fast", "conv_block_backward_fast",
]


# --------------------------------------------------------------------------------------------
# input checks shared by the two versions of each layer
# --------------------------------------------------------------------------------------------

def _check_conv_inputs(x, w, b):
    x = as_float_array(x, "x", ndim=3)
    w = as_float_array(w, "w", ndim=3)
    n_filters, kh, kw = w.shape
    b = as_float_array(b, "b", shape=(n_filters,))
    if kh == 0 or kw == 0 or kh > x.shape[1] or kw > x.shape[2]:
        raise ValueError(
            f"w's kernels must be non-empty and no larger than the images, "
            f"got w shape {w.shape} and x shape {x.shape}"
        )
    dtype = np.result_type(x.dtype, w.dtype, b.dtype)
    return x.astype(dtype, copy=False), w.astype(dtype, copy=False), b.astype(dtype, copy=False)


def _check_pool_input(x, pool_size):
    x = as_float_array(x, "x", ndim=4, allow_nan=True)
    pool_size = positive_int(pool_size, "pool_size")
    if pool_size > x.shape[2] or pool_size > x.shape[3]:
        raise ValueError(
            f"pool_size must be no larger than the feature maps ({x.shape[2]}x{x.shape[3]}), "
            f"got {pool_size}"
        )
    return x, pool_size


def _check_dout(dout, expected_shape):
    dout = np.asarray(dout)
    if dout.shape != tuple(expected_shape):
        shown = "(" + ", ".join(str(s) for s in expected_shape) + ")"
        raise ValueError(f"dout must have shape {shown} (the forward output's), got {dout.shape}")
    return as_float_array(dout, "dout", allow_nan=True)


# --------------------------------------------------------------------------------------------
# convolution layer (single input channel, "valid", stride 1): z[n,f] = correlate(x[n], w[f]) + b[f]
# --------------------------------------------------------------------------------------------

def conv_forward_naive(x, w, b):
    r"""Convolution layer, forward, with loops.

    Computes the cross-correlation of every image with every kernel, plus a bias per kernel:

    .. math:: z_{nfij} = \sum_{a,b} w_{fab}\, x_{n,\,i+a,\,j+b} + b_f

    Parameters
    ----------
    x : array_like, shape (N, H, W)
        Single-channel images.
    w : array_like, shape (F, kh, kw)
        The kernels.
    b : array_like, shape (F,)
        One bias per kernel.

    Returns
    -------
    out : ndarray, shape (N, F, H', W')
        The feature maps, ``H' = H - kh + 1``, ``W' = W - kw + 1``.
    cache : tuple
        ``(x, w)`` for :func:`conv_backward_naive`.
    """
    x, w, b = _check_conv_inputs(x, w, b)
    n_images, height, width = x.shape
    n_filters, kh, kw = w.shape
    out = np.zeros((n_images, n_filters, height - kh + 1, width - kw + 1), dtype=x.dtype)
    for n in range(n_images):
        for f in range(n_filters):
            for i in range(height - kh + 1):
                for j in range(width - kw + 1):
                    out[n, f, i, j] = np.sum(x[n, i:i + kh, j:j + kw] * w[f]) + b[f]
    return out, (x, w)


def conv_backward_naive(dout, cache, input_grad=True):
    r"""Convolution layer, backward, with loops.

    Each output ``z[n,f,i,j]`` saw the window ``x[n, i:i+kh, j:j+kw]`` through ``w[f]``, so its
    sensitivity ``dout[n,f,i,j]`` flows back to both:

    .. math::
        \frac{\partial C}{\partial w_{fab}} = \sum_{n,i,j} \delta_{nfij}\, x_{n,\,i+a,\,j+b}, \qquad
        \frac{\partial C}{\partial x_{n,\,i+a,\,j+b}} \mathrel{+}= \delta_{nfij}\, w_{fab}

    The kernel gradient is the correlation of the input with the sensitivities.

    Parameters
    ----------
    dout : array_like, shape (N, F, H', W')
        Gradient of the loss with respect to the layer's output.
    cache : tuple
        From :func:`conv_forward_naive`.
    input_grad : bool
        Whether to compute ``dx`` (the first layer of a network does not need it).

    Returns
    -------
    dx : ndarray, shape (N, H, W), or None when ``input_grad`` is False
    dw : ndarray, shape (F, kh, kw)
    db : ndarray, shape (F,)
    """
    x, w = cache
    n_images, height, width = x.shape
    n_filters, kh, kw = w.shape
    out_h, out_w = height - kh + 1, width - kw + 1
    dout = _check_dout(dout, (n_images, n_filters, out_h, out_w))
    dx = np.zeros_like(x) if input_grad else None
    dw = np.zeros_like(w)
    db = np.zeros(n_filters, dtype=w.dtype)
    for n in range(n_images):
        for f in range(n_filters):
            for i in range(out_h):
                for j in range(out_w):
                    delta = dout[n, f, i, j]
                    dw[f] += delta * x[n, i:i + kh, j:j + kw]
                    db[f] += delta
                    if input_grad:
                        dx[n, i:i + kh, j:j + kw] += delta * w[f]
    return dx, dw, db


@functools.lru_cache(maxsize=16)
def _banded_positions(n_filters, kh, kw, width, pool_size=1):
    """Flat positions of the kernel weights inside the banded matrix of :func:`_banded_weights`.

    Entry ``[f, a, b, j]`` is where ``w[f, a, b]`` goes for output column ``j``: row
    ``a * width + j + b`` of the banded matrix, and the column that holds output column ``j``
    of filter ``f``. With ``pool_size`` 1 that column is ``f * W' + j``. With a pooling size
    ``p`` the columns are grouped by the position of ``j`` inside its pooling window,
    ``(j % p, f, j // p)``, so each window position is one contiguous block of the product,
    and columns that pooling would drop (``j >= p * (W' // p)``) are left out.
    Cached: it depends on shapes only.
    """
    out_w = width - kw + 1
    pooled_w = out_w // pool_size
    kept_w = pooled_w * pool_size
    f = np.arange(n_filters)[:, None, None, None]
    a = np.arange(kh)[None, :, None, None]
    b = np.arange(kw)[None, None, :, None]
    j = np.arange(kept_w)[None, None, None, :]
    row = a * width + (j + b)
    col = (j % pool_size) * (n_filters * pooled_w) + f * pooled_w + j // pool_size
    positions = row * (n_filters * kept_w) + col
    positions.setflags(write=False)
    return positions


def _banded_weights(w, width, pool_size=1):
    """The kernels as one banded matrix ``T`` of shape ``(kh * width, F * W')``.

    ``T[(a, c), (f, j)] = w[f, a, c - j]`` when ``0 <= c - j < kw``, else 0. A block of ``kh``
    image rows, flattened, times ``T`` gives one row of every feature map at once. With a
    ``pool_size``, the columns are reordered (and trimmed) as :func:`_banded_positions` says.
    """
    n_filters, kh, kw = w.shape
    n_columns = n_filters * ((width - kw + 1) // pool_size) * pool_size
    banded = np.zeros(kh * width * n_columns, dtype=w.dtype)
    # every weight is copied to the output columns it serves (broadcast along the last axis)
    banded[_banded_positions(n_filters, kh, kw, width, pool_size)] = w[..., None]
    return banded.reshape(kh * width, n_columns)


def _row_blocks(x, kh):
    """The ``kh``-row blocks of every image, one flattened block per row: ``(N * H', kh * W)``.

    Row ``(n, i)`` holds ``x[n, i:i+kh, :]``. Built from a sliding-window view; the reshape
    copies, but it is ``kh`` times smaller than a full im2col matrix (``kh * kw`` times the image).
    """
    n_images, height, width = x.shape
    windows = np.lib.stride_tricks.sliding_window_view(x, kh, axis=1)  # (N, H', W, kh)
    return windows.transpose(0, 1, 3, 2).reshape(n_images * (height - kh + 1), kh * width)


def conv_forward_fast(x, w, b):
    """Convolution layer, forward, as one matrix product; same maths as :func:`conv_forward_naive`.

    A single-channel convolution is linear in the image, so a block of ``kh`` image rows times
    a banded matrix built from the kernels gives one row of all ``F`` feature maps. Stacking
    the blocks of every row of every image makes the whole layer one BLAS matrix product,
    ``(N * H', kh * W) @ (kh * W, F * W')``.

    Parameters
    ----------
    x : array_like, shape (N, H, W)
        Single-channel images.
    w : array_like, shape (F, kh, kw)
        The kernels.
    b : array_like, shape (F,)
        One bias per kernel.

    Returns
    -------
    out : ndarray, shape (N, F, H', W')
        The feature maps. It is a transposed view of an ``(N, H', F, W')`` array (the matrix
        product's natural order); :func:`conv_backward_fast` reads gradients in that order
        without a copy.
    cache : tuple
        For :func:`conv_backward_fast`.
    """
    x, w, b = _check_conv_inputs(x, w, b)
    n_images, height, width = x.shape
    n_filters, kh, kw = w.shape
    out_h, out_w = height - kh + 1, width - kw + 1
    blocks = _row_blocks(x, kh)
    banded = _banded_weights(w, width)
    rows = blocks @ banded  # (N * H', F * W'): row (n, i), column (f, j)
    rows += np.repeat(b, out_w)  # the bias of filter f on its W' columns
    out = rows.reshape(n_images, out_h, n_filters, out_w).transpose(0, 2, 1, 3)
    return out, (x.shape, w, blocks, banded)


def conv_backward_fast(dout, cache, input_grad=True):
    """Convolution layer, backward, as matrix products; same maths as :func:`conv_backward_naive`.

    The kernel gradient is one product, ``blocks.T @ dout_rows``, whose ``(a, j + b), (f, j)``
    entries summed over ``j`` give ``dw[f, a, b]``. The input gradient (optional) goes back
    through the banded matrix and the overlapping row blocks are added up.

    Parameters
    ----------
    dout : array_like, shape (N, F, H', W')
        Gradient of the loss with respect to the layer's output.
    cache : tuple
        From :func:`conv_forward_fast`.
    input_grad : bool
        Whether to compute ``dx`` (the first layer of a network does not need it).

    Returns
    -------
    dx : ndarray, shape (N, H, W), or None when ``input_grad`` is False
    dw : ndarray, shape (F, kh, kw)
    db : ndarray, shape (F,)
    """
    x_shape, w, blocks, banded = cache
    n_images, height, width = x_shape
    n_filters, kh, kw = w.shape
    out_h, out_w = height - kh + 1, width - kw + 1
    dout = _check_dout(dout, (n_images, n_filters, out_h, out_w)).astype(w.dtype, copy=False)
    # the same (n, i) x (f, j) order as the forward product; free when dout has that layout
    dout_rows = dout.transpose(0, 2, 1, 3).reshape(n_images * out_h, n_filters * out_w)
    dbanded = blocks.T @ dout_rows  # (kh * W, F * W')
    # dw[f, a, b] collects the band entries where w[f, a, b] was used, one per output column j
    dw = dbanded.ravel()[_banded_positions(n_filters, kh, kw, width)].sum(axis=-1)
    db = dout_rows.sum(axis=0).reshape(n_filters, out_w).sum(axis=1)
    dx = None
    if input_grad:
        dblocks = (dout_rows @ banded.T).reshape(n_images, out_h, kh, width)
        dx = np.zeros(x_shape, dtype=w.dtype)
        for a in range(kh):  # block row a of output row i is image row i + a
            dx[:, a:a + out_h, :] += dblocks[:, :, a, :]
    return dx, dw, db


# --------------------------------------------------------------------------------------------
# pooling layers: p x p windows, stride p; rows/columns that do not fill a window are dropped
# --------------------------------------------------------------------------------------------

def max_pool_forward_naive(x, pool_size=2):
    """Max pooling, forward, with loops.

    Parameters
    ----------
    x : array_like, shape (N, F, H, W)
        Feature maps.
    pool_size : int
        Window side ``p`` and stride. ``H % p`` last rows and ``W % p`` last columns are
        dropped, as in the frameworks.

    Returns
    -------
    out : ndarray, shape (N, F, H // p, W // p)
        The maximum of every window.
    cache : tuple
        For :func:`max_pool_backward_naive`.
    """
    x, p = _check_pool_input(x, pool_size)
    n_images, n_maps, height, width = x.shape
    out = np.zeros((n_images, n_maps, height // p, width // p), dtype=x.dtype)
    for n in range(n_images):
        for f in range(n_maps):
            for i in range(height // p):
                for j in range(width // p):
                    out[n, f, i, j] = np.max(x[n, f, i * p:(i + 1) * p, j * p:(j + 1) * p])
    return out, (x, p)


def max_pool_backward_naive(dout, cache):
    """Max pooling, backward, with loops: each window's gradient goes to the position of its max.

    When several positions tie for the max, the first in row-major order gets the gradient
    (as ``np.argmax`` picks it); the others get 0.

    Parameters
    ----------
    dout : array_like, shape (N, F, H // p, W // p)
    cache : tuple
        From :func:`max_pool_forward_naive`.

    Returns
    -------
    dx : ndarray, shape (N, F, H, W)
    """
    x, p = cache
    n_images, n_maps, height, width = x.shape
    dout = _check_dout(dout, (n_images, n_maps, height // p, width // p))
    dx = np.zeros_like(x)
    for n in range(n_images):
        for f in range(n_maps):
            for i in range(height // p):
                for j in range(width // p):
                    window = x[n, f, i * p:(i + 1) * p, j * p:(j + 1) * p]
                    a, b = np.unravel_index(np.argmax(window), window.shape)
                    dx[n, f, i * p + a, j * p + b] = dout[n, f, i, j]
    return dx


def _window_offsets(pool_size):
    """The ``(row, column)`` offsets inside a pooling window, in row-major order."""
    return [(a, b) for a in range(pool_size) for b in range(pool_size)]


def _window_views(x, p):
    """``p * p`` strided views of ``x`` (N, F, H, W): view ``(a, b)`` is ``x[..., i*p + a, j*p + b]``.

    Each has the pooled shape ``(N, F, H // p, W // p)``; no data is copied.
    """
    n_images, n_maps, height, width = x.shape
    out_h, out_w = height // p, width // p
    cropped = x[:, :, :out_h * p, :out_w * p]
    tiles = cropped.reshape(n_images, n_maps, out_h, p, out_w, p)
    return [tiles[:, :, :, a, :, b] for a, b in _window_offsets(p)]


def max_pool_forward_fast(x, pool_size=2):
    """Max pooling, forward, over strided views; same maths as :func:`max_pool_forward_naive`.

    Instead of looping over windows, loop over the ``p * p`` positions inside a window: each is
    a strided view of the whole batch, and a running elementwise maximum over them is the
    pooled output. A mask per position, True where that position holds the window's max
    (the first one, row-major, on a tie), is kept for the backward pass.

    Parameters
    ----------
    x : array_like, shape (N, F, H, W)
    pool_size : int

    Returns
    -------
    out : ndarray, shape (N, F, H // p, W // p)
    cache : tuple
        For :func:`max_pool_backward_fast`.
    """
    x, p = _check_pool_input(x, pool_size)
    views = _window_views(x, p)
    out = views[0].copy()
    for view in views[1:]:
        np.maximum(out, view, out=out)
    return out, (x, p, _first_max_masks(views, out))


def _first_max_masks(views, maxima):
    """One boolean mask per window position: True where it is the first to hold the maximum.

    "First" in row-major order, as ``np.argmax`` (and so the naive layer) breaks ties.
    """
    masks, taken = [], np.zeros(maxima.shape, dtype=bool)
    for view in views[:-1]:
        holds_max = view == maxima
        masks.append(holds_max & ~taken)
        taken |= holds_max
    masks.append(~taken)  # no earlier position holds the max: the last one does
    return masks


def max_pool_backward_fast(dout, cache):
    """Max pooling, backward, over strided views; same maths as :func:`max_pool_backward_naive`.

    Parameters
    ----------
    dout : array_like, shape (N, F, H // p, W // p)
    cache : tuple
        From :func:`max_pool_forward_fast`.

    Returns
    -------
    dx : ndarray, shape (N, F, H, W)
        In the memory layout of the forward input ``x``.
    """
    x, p, masks = cache
    n_images, n_maps, height, width = x.shape
    dout = _check_dout(dout, (n_images, n_maps, height // p, width // p))
    dx = np.zeros_like(x)  # same memory layout as x, so a layer below reads it without a copy
    for mask, view in zip(masks, _window_views(dx, p)):
        np.multiply(dout, mask, out=view)
    return dx


def mean_pool_forward_naive(x, pool_size=2):
    """Mean pooling, forward, with loops.

    Parameters
    ----------
    x : array_like, shape (N, F, H, W)
    pool_size : int
        Window side ``p`` and stride; leftover rows and columns are dropped.

    Returns
    -------
    out : ndarray, shape (N, F, H // p, W // p)
        The mean of every window.
    cache : tuple
        For :func:`mean_pool_backward_naive`.
    """
    x, p = _check_pool_input(x, pool_size)
    n_images, n_maps, height, width = x.shape
    out = np.zeros((n_images, n_maps, height // p, width // p), dtype=x.dtype)
    for n in range(n_images):
        for f in range(n_maps):
            for i in range(height // p):
                for j in range(width // p):
                    out[n, f, i, j] = np.mean(x[n, f, i * p:(i + 1) * p, j * p:(j + 1) * p])
    return out, (x.shape, x.dtype, p)


def mean_pool_backward_naive(dout, cache):
    """Mean pooling, backward, with loops: each window's gradient is spread evenly over it.

    Parameters
    ----------
    dout : array_like, shape (N, F, H // p, W // p)
    cache : tuple
        From :func:`mean_pool_forward_naive`.

    Returns
    -------
    dx : ndarray, shape (N, F, H, W)
    """
    shape, dtype, p = cache
    n_images, n_maps, height, width = shape
    dout = _check_dout(dout, (n_images, n_maps, height // p, width // p))
    dx = np.zeros(shape, dtype=dtype)
    for n in range(n_images):
        for f in range(n_maps):
            for i in range(height // p):
                for j in range(width // p):
                    dx[n, f, i * p:(i + 1) * p, j * p:(j + 1) * p] = dout[n, f, i, j] / (p * p)
    return dx


def mean_pool_forward_fast(x, pool_size=2):
    """Mean pooling, forward, over strided views; same maths as :func:`mean_pool_forward_naive`.

    Parameters
    ----------
    x : array_like, shape (N, F, H, W)
    pool_size : int

    Returns
    -------
    out : ndarray, shape (N, F, H // p, W // p)
    cache : tuple
        For :func:`mean_pool_backward_fast`.
    """
    x, p = _check_pool_input(x, pool_size)
    views = _window_views(x, p)
    out = views[0].copy()
    for view in views[1:]:
        out += view
    out *= 1.0 / (p * p)
    return out, (x, p)


def mean_pool_backward_fast(dout, cache):
    """Mean pooling, backward, over strided views; same maths as :func:`mean_pool_backward_naive`.

    Parameters
    ----------
    dout : array_like, shape (N, F, H // p, W // p)
    cache : tuple
        From :func:`mean_pool_forward_fast`.

    Returns
    -------
    dx : ndarray, shape (N, F, H, W)
        In the memory layout of the forward input ``x``.
    """
    x, p = cache
    n_images, n_maps, height, width = x.shape
    dout = _check_dout(dout, (n_images, n_maps, height // p, width // p))
    share = dout * (1.0 / (p * p))
    dx = np.zeros_like(x)  # zeros where rows/columns were dropped
    for view in _window_views(dx, p):
        view[...] = share
    return dx


# --------------------------------------------------------------------------------------------
# activations
# --------------------------------------------------------------------------------------------

def _stable_sigmoid(v):
    """The logistic function of one number, without overflow for large negative ``v``."""
    if v >= 0:
        return 1.0 / (1.0 + np.exp(-v))
    e = np.exp(v)
    return e / (1.0 + e)


def sigmoid_forward_naive(x):
    r"""Sigmoid, forward, one element at a time: :math:`\sigma(x) = 1 / (1 + e^{-x})`.

    Parameters
    ----------
    x : array_like, any shape

    Returns
    -------
    out : ndarray, same shape as ``x``
    cache : ndarray
        ``out`` itself: the derivative is written with it.
    """
    x = as_float_array(x, "x", allow_nan=True)
    out = np.empty_like(x)
    for index in np.ndindex(x.shape):
        out[index] = _stable_sigmoid(x[index])
    return out, out


def sigmoid_backward_naive(dout, cache):
    r"""Sigmoid, backward, one element at a time: :math:`\sigma' = \sigma (1 - \sigma)`.

    Parameters
    ----------
    dout : array_like, same shape as the forward output
    cache : ndarray
        From :func:`sigmoid_forward_naive`.

    Returns
    -------
    dx : ndarray, same shape as ``dout``
    """
    s = cache
    dout = _check_dout(dout, s.shape)
    dx = np.empty(s.shape, dtype=np.result_type(dout, s))
    for index in np.ndindex(s.shape):
        dx[index] = dout[index] * s[index] * (1.0 - s[index])
    return dx


def sigmoid_forward_fast(x):
    r"""Sigmoid, forward, on the whole array; same maths as :func:`sigmoid_forward_naive`.

    Uses :math:`\sigma(x) = \tfrac12 \left(1 + \tanh(x/2)\right)`: the same function, but
    ``tanh`` never overflows (``exp(-x)`` does for ``x < -88`` in float32) and numpy computes it
    with vector instructions.

    Parameters
    ----------
    x : array_like, any shape

    Returns
    -------
    out : ndarray, same shape as ``x``
    cache : ndarray
        ``out`` itself.
    """
    x = as_float_array(x, "x", allow_nan=True)
    out = np.multiply(x, 0.5, dtype=x.dtype)
    np.tanh(out, out=out)
    out *= 0.5
    out += 0.5
    return out, out


def sigmoid_backward_fast(dout, cache):
    """Sigmoid, backward, on the whole array; same maths as :func:`sigmoid_backward_naive`.

    Parameters
    ----------
    dout : array_like, same shape as the forward output
    cache : ndarray
        From :func:`sigmoid_forward_fast`.

    Returns
    -------
    dx : ndarray, same shape as ``dout``
    """
    s = cache
    dout = _check_dout(dout, s.shape)
    dx = 1.0 - s
    dx *= s
    dx *= dout
    return dx


def relu_forward_naive(x):
    """ReLU, forward, one element at a time: ``max(x, 0)``.

    Parameters
    ----------
    x : array_like, any shape

    Returns
    -------
    out : ndarray, same shape as ``x``
    cache : ndarray
        ``x``, for :func:`relu_backward_naive`.
    """
    x = as_float_array(x, "x", allow_nan=True)
    out = np.empty_like(x)
    for index in np.ndindex(x.shape):
        out[index] = x[index] if x[index] > 0 else 0.0
    return out, x


def relu_backward_naive(dout, cache):
    """ReLU, backward, one element at a time: the gradient passes where ``x > 0``.

    At ``x == 0`` the derivative is taken as 0, as in the frameworks.

    Parameters
    ----------
    dout : array_like, same shape as the forward output
    cache : ndarray
        From :func:`relu_forward_naive`.

    Returns
    -------
    dx : ndarray, same shape as ``dout``
    """
    x = cache
    dout = _check_dout(dout, x.shape)
    dx = np.zeros(x.shape, dtype=np.result_type(dout, x))
    for index in np.ndindex(x.shape):
        if x[index] > 0:
            dx[index] = dout[index]
    return dx


def relu_forward_fast(x):
    """ReLU, forward, on the whole array; same maths as :func:`relu_forward_naive`.

    Parameters
    ----------
    x : array_like, any shape

    Returns
    -------
    out : ndarray, same shape as ``x``
    cache : ndarray
        ``x``.
    """
    x = as_float_array(x, "x", allow_nan=True)
    return np.maximum(x, 0), x


def relu_backward_fast(dout, cache):
    """ReLU, backward, on the whole array; same maths as :func:`relu_backward_naive`.

    Parameters
    ----------
    dout : array_like, same shape as the forward output
    cache : ndarray
        From :func:`relu_forward_fast`.

    Returns
    -------
    dx : ndarray, same shape as ``dout``
    """
    x = cache
    dout = _check_dout(dout, x.shape)
    return np.multiply(dout, x > 0, dtype=np.result_type(dout, x))


# --------------------------------------------------------------------------------------------
# fully connected (affine) layer: out = x @ w.T + b, with w of shape (K, D) like W_sm
# --------------------------------------------------------------------------------------------

def _check_affine_inputs(x, w, b):
    x = as_float_array(x, "x", ndim=2)
    w = as_float_array(w, "w", shape=(None, x.shape[1]))
    b = as_float_array(b, "b", shape=(w.shape[0],))
    dtype = np.result_type(x.dtype, w.dtype, b.dtype)
    return x.astype(dtype, copy=False), w.astype(dtype, copy=False), b.astype(dtype, copy=False)


def affine_forward_naive(x, w, b):
    r"""Fully connected layer, forward, with loops: :math:`s_{nk} = \sum_d w_{kd} x_{nd} + b_k`.

    Parameters
    ----------
    x : array_like, shape (N, D)
    w : array_like, shape (K, D)
    b : array_like, shape (K,)

    Returns
    -------
    out : ndarray, shape (N, K)
    cache : tuple
        ``(x, w)``.
    """
    x, w, b = _check_affine_inputs(x, w, b)
    out = np.zeros((x.shape[0], w.shape[0]), dtype=x.dtype)
    for n in range(x.shape[0]):
        for k in range(w.shape[0]):
            total = b[k]
            for d in range(x.shape[1]):
                total += w[k, d] * x[n, d]
            out[n, k] = total
    return out, (x, w)


def affine_backward_naive(dout, cache):
    """Fully connected layer, backward, with loops.

    Parameters
    ----------
    dout : array_like, shape (N, K)
    cache : tuple
        From :func:`affine_forward_naive`.

    Returns
    -------
    dx : ndarray, shape (N, D)
    dw : ndarray, shape (K, D)
    db : ndarray, shape (K,)
    """
    x, w = cache
    dout = _check_dout(dout, (x.shape[0], w.shape[0]))
    dx, dw = np.zeros_like(x), np.zeros_like(w)
    db = np.zeros(w.shape[0], dtype=w.dtype)
    for n in range(x.shape[0]):
        for k in range(w.shape[0]):
            db[k] += dout[n, k]
            for d in range(x.shape[1]):
                dw[k, d] += dout[n, k] * x[n, d]
                dx[n, d] += dout[n, k] * w[k, d]
    return dx, dw, db


def affine_forward_fast(x, w, b):
    """Fully connected layer, forward, as a matrix product; same maths as the naive version.

    Parameters
    ----------
    x : array_like, shape (N, D)
    w : array_like, shape (K, D)
    b : array_like, shape (K,)

    Returns
    -------
    out : ndarray, shape (N, K)
    cache : tuple
        ``(x, w)``.
    """
    x, w, b = _check_affine_inputs(x, w, b)
    return x @ w.T + b, (x, w)


def affine_backward_fast(dout, cache):
    """Fully connected layer, backward, as matrix products; same maths as the naive version.

    Parameters
    ----------
    dout : array_like, shape (N, K)
    cache : tuple
        From :func:`affine_forward_fast`.

    Returns
    -------
    dx : ndarray, shape (N, D)
    dw : ndarray, shape (K, D)
    db : ndarray, shape (K,)
    """
    x, w = cache
    dout = _check_dout(dout, (x.shape[0], w.shape[0])).astype(w.dtype, copy=False)
    return dout @ w, dout.T @ x, dout.sum(axis=0)


# --------------------------------------------------------------------------------------------
# softmax with the cross-entropy loss, averaged over the batch
# --------------------------------------------------------------------------------------------

def _check_scores_and_labels(scores, y):
    scores = as_float_array(scores, "scores", ndim=2)
    if scores.shape[0] == 0 or scores.shape[1] == 0:
        raise ValueError(f"scores must hold at least one image and one class, got {scores.shape}")
    y = as_labels(y, "y", scores.shape[0], scores.shape[1])
    return scores, y


def _check_dloss(dloss):
    if isinstance(dloss, bool) or not np.isscalar(dloss) or not np.isfinite(dloss):
        raise ValueError(f"dloss must be a finite number (the gradient of a scalar loss), got {dloss!r}")
    return float(dloss)


def softmax_cross_entropy_forward_naive(scores, y):
    r"""Softmax and cross-entropy, forward, one image at a time.

    .. math:: P_{nk} = \frac{e^{s_{nk}}}{\sum_j e^{s_{nj}}}, \qquad
              L = -\frac1N \sum_n \log P_{n, y_n}

    Each row is shifted by its maximum before ``exp`` (the softmax does not change, nothing
    overflows).

    Parameters
    ----------
    scores : array_like, shape (N, K)
    y : array_like of int, shape (N,)
        Labels in ``[0, K)``.

    Returns
    -------
    loss : float
    cache : tuple
        ``(probabilities (N, K), y)``.
    """
    scores, y = _check_scores_and_labels(scores, y)
    n_images, n_classes = scores.shape
    probabilities = np.zeros_like(scores)
    loss = 0.0
    for n in range(n_images):
        shifted = scores[n] - np.max(scores[n])
        exps = np.exp(shifted)
        probabilities[n] = exps / np.sum(exps)
        loss -= shifted[y[n]] - np.log(np.sum(exps))
    return loss / n_images, (probabilities, y)


def softmax_cross_entropy_backward_naive(dloss, cache):
    r"""Softmax and cross-entropy, backward, one image at a time: :math:`(P_n - e_{y_n}) / N`.

    Parameters
    ----------
    dloss : float
        Gradient of the final objective with respect to this loss (1 when it is the objective).
    cache : tuple
        From :func:`softmax_cross_entropy_forward_naive`.

    Returns
    -------
    dscores : ndarray, shape (N, K)
    """
    probabilities, y = cache
    dloss = _check_dloss(dloss)
    n_images = probabilities.shape[0]
    dscores = np.zeros_like(probabilities)
    for n in range(n_images):
        target = np.zeros(probabilities.shape[1], dtype=probabilities.dtype)
        target[y[n]] = 1.0
        dscores[n] = dloss * (probabilities[n] - target) / n_images
    return dscores


def softmax_cross_entropy_forward_fast(scores, y):
    """Softmax and cross-entropy, forward, for the whole batch; same maths as the naive version.

    Parameters
    ----------
    scores : array_like, shape (N, K)
    y : array_like of int, shape (N,)

    Returns
    -------
    loss : float
    cache : tuple
        ``(probabilities (N, K), y)``.
    """
    scores, y = _check_scores_and_labels(scores, y)
    shifted = scores - scores.max(axis=1, keepdims=True)
    exps = np.exp(shifted)
    sums = exps.sum(axis=1, keepdims=True)
    log_likelihood = shifted[np.arange(len(y)), y] - np.log(sums[:, 0])
    return float(-log_likelihood.mean()), (exps / sums, y)


def softmax_cross_entropy_backward_fast(dloss, cache):
    """Softmax and cross-entropy, backward, for the whole batch; same maths as the naive version.

    Parameters
    ----------
    dloss : float
    cache : tuple
        From :func:`softmax_cross_entropy_forward_fast`.

    Returns
    -------
    dscores : ndarray, shape (N, K)
    """
    probabilities, y = cache
    dloss = _check_dloss(dloss)
    dscores = probabilities.copy()
    dscores[np.arange(len(y)), y] -= 1.0
    dscores *= dloss / len(y)
    return dscores


# --------------------------------------------------------------------------------------------
# the convolution block of the course's CNN: convolution, activation, pooling, as one layer
# --------------------------------------------------------------------------------------------

_NAIVE_ACTIVATIONS = {
    "sigmoid": (sigmoid_forward_naive, sigmoid_backward_naive),
    "relu": (relu_forward_naive, relu_backward_naive),
}
_FAST_ACTIVATIONS = {
    "sigmoid": (sigmoid_forward_fast, sigmoid_backward_fast),
    "relu": (relu_forward_fast, relu_backward_fast),
}
_NAIVE_POOLS = {
    "max": (max_pool_forward_naive, max_pool_backward_naive),
    "mean": (mean_pool_forward_naive, mean_pool_backward_naive),
}


def _check_block_options(pool_size, pool, activation, map_shape):
    pool_size = positive_int(pool_size, "pool_size")
    if pool_size > min(map_shape):
        raise ValueError(
            f"pool_size must be no larger than the feature maps ({map_shape[0]}x{map_shape[1]}), "
            f"got {pool_size}"
        )
    one_of(pool, "pool", {"max", "mean"})
    one_of(activation, "activation", {"sigmoid", "relu"})
    return pool_size


def conv_block_forward_naive(x, w, b, pool_size=2, pool="max", activation="sigmoid"):
    """Convolution, activation, pooling: the first block of the course's CNN, from naive layers.

    Exactly :func:`conv_forward_naive`, then the activation, then the pooling, in the order the
    course draws them.

    Parameters
    ----------
    x : array_like, shape (N, H, W)
        Single-channel images.
    w : array_like, shape (F, kh, kw)
    b : array_like, shape (F,)
    pool_size : int
        Pooling window side and stride ``p``.
    pool : {"max", "mean"}
    activation : {"sigmoid", "relu"}

    Returns
    -------
    out : ndarray, shape (N, F, H' // p, W' // p)
    cache : tuple
        For :func:`conv_block_backward_naive`.
    """
    x, w, b = _check_conv_inputs(x, w, b)
    map_shape = (x.shape[1] - w.shape[1] + 1, x.shape[2] - w.shape[2] + 1)
    pool_size = _check_block_options(pool_size, pool, activation, map_shape)
    activation_forward, activation_backward = _NAIVE_ACTIVATIONS[activation]
    pool_forward, pool_backward = _NAIVE_POOLS[pool]
    z, conv_cache = conv_forward_naive(x, w, b)
    activated, activation_cache = activation_forward(z)
    out, pool_cache = pool_forward(activated, pool_size)
    return out, (conv_cache, activation_backward, activation_cache, pool_backward, pool_cache)


def conv_block_backward_naive(dout, cache):
    """Backward pass of :func:`conv_block_forward_naive`, layer by layer.

    A first layer needs no gradient with respect to its input, so none is computed.

    Parameters
    ----------
    dout : array_like, shape (N, F, H' // p, W' // p)
    cache : tuple
        From :func:`conv_block_forward_naive`.

    Returns
    -------
    dw : ndarray, shape (F, kh, kw)
    db : ndarray, shape (F,)
    """
    conv_cache, activation_backward, activation_cache, pool_backward, pool_cache = cache
    dactivated = pool_backward(dout, pool_cache)
    dz = activation_backward(dactivated, activation_cache)
    _, dw, db = conv_backward_naive(dz, conv_cache, input_grad=False)
    return dw, db


def conv_block_forward_fast(x, w, b, pool_size=2, pool="max", activation="sigmoid"):
    r"""Convolution, activation, pooling, fused; same maths as :func:`conv_block_forward_naive`.

    Three ideas make it fast:

    * the convolution is one matrix product (see :func:`conv_forward_fast`) whose columns are
      ordered by the position inside the pooling window, so the ``p * p`` candidates of every
      window are ``p * p`` blocks of the product, each read with contiguous inner loops; rows
      and columns that pooling drops are never computed;
    * with max pooling the pooling comes first, then the bias and the activation, on ``p * p``
      times fewer values. Both orders give the same numbers: a per-filter bias and a
      monotonic activation commute with the max,
      :math:`\max_k \sigma(z_k + b) = \sigma(\max_k z_k + b)`, and the gradient flows to the
      same position (ties aside, where the gradient through a saturated sigmoid or a dead ReLU
      is 0 anyway);
    * everything stays in the input's dtype (float32 in training).

    Parameters
    ----------
    x : array_like, shape (N, H, W)
    w : array_like, shape (F, kh, kw)
    b : array_like, shape (F,)
    pool_size : int
    pool : {"max", "mean"}
    activation : {"sigmoid", "relu"}

    Returns
    -------
    out : ndarray, shape (N, F, H' // p, W' // p)
        A transposed view of an ``(N, H' // p, F, W' // p)`` array.
    cache : tuple
        For :func:`conv_block_backward_fast`.
    """
    x, w, b = _check_conv_inputs(x, w, b)
    n_images, height, width = x.shape
    n_filters, kh, kw = w.shape
    map_shape = (height - kh + 1, width - kw + 1)
    p = _check_block_options(pool_size, pool, activation, map_shape)
    pooled_h, pooled_w = map_shape[0] // p, map_shape[1] // p
    activation_forward = _FAST_ACTIVATIONS[activation][0]

    # rows (n, i) and columns (j % p, f, j // p) of the feature maps, only where pooling looks
    blocks = _row_blocks(x[:, :pooled_h * p + kh - 1, :], kh)
    banded = _banded_weights(w, width, p)
    z = blocks @ banded
    tiles = z.reshape(n_images, pooled_h, p, p, n_filters, pooled_w)
    windows = [tiles[:, :, a, b_] for a, b_ in _window_offsets(p)]  # each (N, P_h, F, P_w)

    winner_masks = None
    if pool == "max":
        pooled = windows[0].copy()
        for view in windows[1:]:
            np.maximum(pooled, view, out=pooled)
        # where the gradient will go: the first position (row-major) holding the max, as in
        # the naive layer
        winner_masks = _first_max_masks(windows, pooled)
        # the bias after the max: the same for every position of a window
        out, activation_cache = activation_forward(pooled + b[:, None])
    else:
        z += np.tile(np.repeat(b, pooled_w), p)  # bias of filter f in every column (., f, .)
        activated, activation_cache = activation_forward(z)
        tiles = activated.reshape(tiles.shape)
        out = tiles[:, :, 0, 0].copy()
        for a, b_ in _window_offsets(p)[1:]:
            out += tiles[:, :, a, b_]
        out *= 1.0 / (p * p)
    cache = (x.shape, w, blocks, p, pool, activation, activation_cache, winner_masks)
    return out.transpose(0, 2, 1, 3), cache


def conv_block_backward_fast(dout, cache):
    """Backward pass of :func:`conv_block_forward_fast`; same maths as the naive version.

    The sensitivities go back through the activation and the pooling into an array laid out
    like the forward product, and the kernel gradient is one matrix product of the row blocks
    with it (the correlation of the input with the sensitivities).

    Parameters
    ----------
    dout : array_like, shape (N, F, H' // p, W' // p)
    cache : tuple
        From :func:`conv_block_forward_fast`.

    Returns
    -------
    dw : ndarray, shape (F, kh, kw)
    db : ndarray, shape (F,)
    """
    x_shape, w, blocks, p, pool, activation, activation_cache, winner_masks = cache
    n_images, height, width = x_shape
    n_filters, kh, kw = w.shape
    pooled_h, pooled_w = (height - kh + 1) // p, (width - kw + 1) // p
    dout = _check_dout(dout, (n_images, n_filters, pooled_h, pooled_w))
    dout = dout.astype(w.dtype, copy=False).transpose(0, 2, 1, 3)  # (N, P_h, F, P_w) like the forward
    activation_backward = _FAST_ACTIVATIONS[activation][1]

    dz = np.empty((n_images * pooled_h * p, p * n_filters * pooled_w), dtype=w.dtype)
    dtiles = dz.reshape(n_images, pooled_h, p, p, n_filters, pooled_w)
    if pool == "max":
        dpooled = activation_backward(dout, activation_cache)
        # db sums over images, rows and columns; summing the rows of a 2-D view first is fast
        db = dpooled.reshape(-1, n_filters * pooled_w).sum(axis=0).reshape(n_filters, pooled_w).sum(axis=1)
        for mask, (a, b_) in zip(winner_masks, _window_offsets(p)):  # the max's position gets it all
            np.multiply(dpooled, mask, out=dtiles[:, :, a, b_])
    else:
        share = dout * (1.0 / (p * p))
        for a, b_ in _window_offsets(p):  # every position of a window gets an equal share
            dtiles[:, :, a, b_] = share
        dz = activation_backward(dz, activation_cache)
        db = dz.sum(axis=0).reshape(p, n_filters, pooled_w).sum(axis=(0, 2))  # columns (b, f, q)
    dbanded = blocks.T @ dz
    dw = dbanded.ravel()[_banded_positions(n_filters, kh, kw, width, p)].sum(axis=-1)
    return dw, db
