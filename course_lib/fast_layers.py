"""The vectorised twins of :mod:`course_lib.layers`: the same layers, fast enough to train with.

Every function here has a twin of the same name in :mod:`course_lib.layers` that computes the
same numbers with loops; same arguments, same results, same errors. Here each layer is a few
large numpy operations instead: matrix products that run in BLAS, whole-array arithmetic,
strided views instead of copies. The tests compare each twin with the other value for value.

A cache from either twin can be handed to the other one's ``backward``: where a fast
``backward`` wants more than the reference keeps (the convolution's row blocks, max pooling's
winners), its cache starts with the reference's items and adds the rest, and given a
reference cache it rebuilds the rest.

The last section is not a layer but an optimisation of three of them:
:func:`fused_conv_block_forward` does the convolution, the activation and the pooling in one
pass (see there for how, and ``bench/cnn_speed.py`` for what it gains).

Each function checks its arguments (see :mod:`course_lib._layer_checks`); ``f.unchecked`` is
the same function without the check, for callers that checked their data already.

Shapes use the letters of :mod:`course_lib.layers`.
"""
import functools

import numpy as np

from course_lib import _layer_checks as check
from course_lib._layer_checks import checked

__all__ = [
    "conv_forward", "conv_backward",
    "max_pool_forward", "max_pool_backward", "mean_pool_forward", "mean_pool_backward",
    "sigmoid_forward", "sigmoid_backward", "relu_forward", "relu_backward",
    "affine_forward", "affine_backward",
    "softmax_cross_entropy_forward", "softmax_cross_entropy_backward",
    "ACTIVATIONS", "POOLS", "fused_conv_block_forward", "fused_conv_block_backward",
]


# --------------------------------------------------------------------------------------------
# convolution layer, as one matrix product with a banded matrix of the kernels
# --------------------------------------------------------------------------------------------

@functools.lru_cache(maxsize=16)
def _banded_positions(n_filters, kh, kw, width, pool_size=1):
    """Flat positions of the kernel weights inside the banded matrix of :func:`_banded_weights`.

    Entry ``[f, a, b, j]`` is where ``w[f, a, b]`` goes for output column ``j``: row
    ``a * width + j + b`` of the banded matrix, and the column that holds output column ``j``
    of filter ``f``. With ``pool_size`` 1 that column is ``f * W' + j``. With a pooling size
    ``p`` (used by the fused block) the columns are grouped by the position of ``j`` inside
    its pooling window, ``(j % p, f, j // p)``, so each window position is one contiguous block
    of the product, and columns that pooling would drop (``j >= p * (W' // p)``) are left out.
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


@checked(check.conv_forward_arguments)
def conv_forward(x, w, b):
    """Convolution layer, forward, as one matrix product.

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
        product's natural order); :func:`conv_backward` reads gradients in that order
        without a copy.
    cache : tuple
        ``(x, w, blocks, banded)``: the reference's ``(x, w)``, then the row blocks
        ``(N * H', kh * W)`` and the banded matrix ``(kh * W, F * W')`` the backward pass
        multiplies with.
    """
    n_images, height, width = x.shape
    n_filters, kh, kw = w.shape
    out_h, out_w = height - kh + 1, width - kw + 1
    blocks = _row_blocks(x, kh)
    banded = _banded_weights(w, width)
    rows = blocks @ banded  # (N * H', F * W'): row (n, i), column (f, j)
    rows += np.repeat(b, out_w)  # the bias of filter f on its W' columns
    out = rows.reshape(n_images, out_h, n_filters, out_w).transpose(0, 2, 1, 3)
    return out, (x, w, blocks, banded)


@checked(check.conv_backward_arguments)
def conv_backward(dout, cache, input_grad=True):
    """Convolution layer, backward, as matrix products.

    The kernel gradient is one product, ``blocks.T @ dout_rows``, whose ``(a, j + b), (f, j)``
    entries summed over ``j`` give ``dw[f, a, b]``. The input gradient (optional) goes back
    through the banded matrix and the overlapping row blocks are added up.

    Parameters
    ----------
    dout : array_like, shape (N, F, H', W')
        Gradient of the loss with respect to the layer's output.
    cache : tuple
        From :func:`conv_forward`: ``(x, w, blocks, banded)``; from the reference layer,
        ``(x, w)``, and the row blocks and the banded matrix are built again.
    input_grad : bool
        Whether to compute ``dx`` (the first layer of a network does not need it).

    Returns
    -------
    dx : ndarray, shape (N, H, W), or None when ``input_grad`` is False
    dw : ndarray, shape (F, kh, kw)
    db : ndarray, shape (F,)
    """
    x, w = cache[:2]
    n_images, height, width = x.shape
    n_filters, kh, kw = w.shape
    out_h, out_w = height - kh + 1, width - kw + 1
    if len(cache) == 4:
        blocks, banded = cache[2:]
    else:
        blocks, banded = _row_blocks(x, kh), _banded_weights(w, width)
    # the same (n, i) x (f, j) order as the forward product; free when dout has that layout
    dout_rows = dout.transpose(0, 2, 1, 3).reshape(n_images * out_h, n_filters * out_w)
    dbanded = blocks.T @ dout_rows  # (kh * W, F * W')
    # dw[f, a, b] collects the band entries where w[f, a, b] was used, one per output column j
    dw = dbanded.ravel()[_banded_positions(n_filters, kh, kw, width)].sum(axis=-1)
    db = dout_rows.sum(axis=0).reshape(n_filters, out_w).sum(axis=1)
    dx = None
    if input_grad:
        dblocks = (dout_rows @ banded.T).reshape(n_images, out_h, kh, width)
        dx = np.zeros(x.shape, dtype=w.dtype)
        for a in range(kh):  # block row a of output row i is image row i + a
            dx[:, a:a + out_h, :] += dblocks[:, :, a, :]
    return dx, dw, db


# --------------------------------------------------------------------------------------------
# pooling layers, over the p * p positions of a window instead of over the windows
# --------------------------------------------------------------------------------------------

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


def _first_max_masks(views, maxima):
    """One boolean mask per window position: True where it is the first to hold the maximum.

    "First" in row-major order, as ``np.argmax`` (and so the reference layer) breaks ties.
    """
    masks, taken = [], np.zeros(maxima.shape, dtype=bool)
    for view in views[:-1]:
        holds_max = view == maxima
        masks.append(holds_max & ~taken)
        taken |= holds_max
    masks.append(~taken)  # no earlier position holds the max: the last one does
    return masks


def _max_and_winners(x, p):
    """The max pooling of ``x`` and the :func:`_first_max_masks` of its windows."""
    views = _window_views(x, p)
    out = views[0].copy()
    for view in views[1:]:
        np.maximum(out, view, out=out)
    return out, _first_max_masks(views, out)


@checked(check.pool_forward_arguments)
def max_pool_forward(x, pool_size=2):
    """Max pooling, forward, over strided views.

    Instead of looping over windows, loop over the ``p * p`` positions inside a window: each is
    a strided view of the whole batch, and a running elementwise maximum over them is the
    pooled output. A mask per position, True where that position holds the window's maximum
    (the first one, row-major, on a tie), is kept for the backward pass.

    Parameters
    ----------
    x : array_like, shape (N, F, H, W)
    pool_size : int
        Window side ``p`` and stride; leftover rows and columns are dropped.

    Returns
    -------
    out : ndarray, shape (N, F, H // p, W // p)
    cache : tuple
        ``(x, p, winners)``: the reference's ``(x, p)``, then ``p * p`` boolean masks of
        shape (N, F, H // p, W // p), one per window position, in row-major order.
    """
    out, winners = _max_and_winners(x, pool_size)
    return out, (x, pool_size, winners)


@checked(check.pool_backward_arguments)
def max_pool_backward(dout, cache):
    """Max pooling, backward, over strided views: each window's gradient goes to its winner.

    Parameters
    ----------
    dout : array_like, shape (N, F, H // p, W // p)
    cache : tuple
        From :func:`max_pool_forward`: ``(x, p, winners)``; from the reference layer,
        ``(x, p)``, and the winners are found again.

    Returns
    -------
    dx : ndarray, shape (N, F, H, W)
        In the memory layout of the forward input ``x``, so a layer below reads it without a copy.
    """
    x, p = cache[:2]
    winners = cache[2] if len(cache) == 3 else _max_and_winners(x, p)[1]
    dx = np.zeros_like(x)
    for winner, view in zip(winners, _window_views(dx, p)):
        np.multiply(dout, winner, out=view)
    return dx


@checked(check.pool_forward_arguments)
def mean_pool_forward(x, pool_size=2):
    """Mean pooling, forward, over strided views.

    Parameters
    ----------
    x : array_like, shape (N, F, H, W)
    pool_size : int
        Window side ``p`` and stride; leftover rows and columns are dropped.

    Returns
    -------
    out : ndarray, shape (N, F, H // p, W // p)
    cache : tuple
        ``(x, p)``.
    """
    views = _window_views(x, pool_size)
    out = views[0].copy()
    for view in views[1:]:
        out += view
    out *= 1.0 / (pool_size * pool_size)
    return out, (x, pool_size)


@checked(check.pool_backward_arguments)
def mean_pool_backward(dout, cache):
    """Mean pooling, backward, over strided views: every position gets ``1 / p**2`` of its window's.

    Parameters
    ----------
    dout : array_like, shape (N, F, H // p, W // p)
    cache : tuple
        From :func:`mean_pool_forward`: ``(x, p)``.

    Returns
    -------
    dx : ndarray, shape (N, F, H, W)
        In the memory layout of the forward input ``x``; zero on the dropped rows and columns.
    """
    x, p = cache
    share = dout * (1.0 / (p * p))
    dx = np.zeros_like(x)
    for view in _window_views(dx, p):
        view[...] = share
    return dx


# --------------------------------------------------------------------------------------------
# activations, on whole arrays
# --------------------------------------------------------------------------------------------

@checked(check.activation_forward_arguments)
def sigmoid_forward(x):
    r"""Sigmoid, forward, on the whole array.

    Uses :math:`\sigma(x) = \tfrac12 \left(1 + \tanh(x/2)\right)`: the same function, but
    ``tanh`` never overflows (``exp(-x)`` does for ``x < -88`` in float32) and numpy computes it
    with vector instructions.

    Parameters
    ----------
    x : array_like, any shape

    Returns
    -------
    out : ndarray, same shape (and memory layout) as ``x``
    cache : tuple
        ``(out,)``.
    """
    out = np.multiply(x, 0.5, dtype=x.dtype)
    np.tanh(out, out=out)
    out *= 0.5
    out += 0.5
    return out, (out,)


@checked(check.activation_backward_arguments)
def sigmoid_backward(dout, cache):
    """Sigmoid, backward, on the whole array: ``dout * out * (1 - out)``.

    Parameters
    ----------
    dout : array_like, same shape as the forward output
    cache : tuple
        From :func:`sigmoid_forward`: ``(out,)``.

    Returns
    -------
    dx : ndarray, same shape as ``dout``
    """
    (s,) = cache
    dx = 1.0 - s
    dx *= s
    dx *= dout
    return dx


@checked(check.activation_forward_arguments)
def relu_forward(x):
    """ReLU, forward, on the whole array.

    Parameters
    ----------
    x : array_like, any shape

    Returns
    -------
    out : ndarray, same shape as ``x``
    cache : tuple
        ``(x,)``.
    """
    return np.maximum(x, 0), (x,)


@checked(check.activation_backward_arguments)
def relu_backward(dout, cache):
    """ReLU, backward, on the whole array: the gradient passes where ``x > 0``.

    Parameters
    ----------
    dout : array_like, same shape as the forward output
    cache : tuple
        From :func:`relu_forward`: ``(x,)``.

    Returns
    -------
    dx : ndarray, same shape as ``dout``
    """
    (x,) = cache
    return np.multiply(dout, x > 0, dtype=x.dtype)


# --------------------------------------------------------------------------------------------
# fully connected (affine) layer, as matrix products
# --------------------------------------------------------------------------------------------

@checked(check.affine_forward_arguments)
def affine_forward(x, w, b):
    """Fully connected layer, forward, as a matrix product: ``x @ w.T + b``.

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
    return x @ w.T + b, (x, w)


@checked(check.affine_backward_arguments)
def affine_backward(dout, cache):
    """Fully connected layer, backward, as matrix products.

    Parameters
    ----------
    dout : array_like, shape (N, K)
    cache : tuple
        From :func:`affine_forward`: ``(x, w)``.

    Returns
    -------
    dx : ndarray, shape (N, D)
    dw : ndarray, shape (K, D)
    db : ndarray, shape (K,)
    """
    x, w = cache
    return dout @ w, dout.T @ x, dout.sum(axis=0)


# --------------------------------------------------------------------------------------------
# softmax with the cross-entropy loss, for the whole batch at once
# --------------------------------------------------------------------------------------------

@checked(check.softmax_cross_entropy_forward_arguments)
def softmax_cross_entropy_forward(scores, y):
    """Softmax and cross-entropy, forward, for the whole batch.

    Parameters
    ----------
    scores : array_like, shape (N, K)
    y : array_like of int, shape (N,)
        Labels in ``[0, K)``.

    Returns
    -------
    loss : float
    cache : tuple
        ``(probabilities, y)``: ``P`` of shape (N, K) and the labels (N,).
    """
    shifted = scores - scores.max(axis=1, keepdims=True)
    exps = np.exp(shifted)
    sums = exps.sum(axis=1, keepdims=True)
    log_likelihood = shifted[np.arange(len(y)), y] - np.log(sums[:, 0])
    return float(-log_likelihood.mean()), (exps / sums, y)


@checked(check.softmax_cross_entropy_backward_arguments)
def softmax_cross_entropy_backward(dloss, cache):
    """Softmax and cross-entropy, backward, for the whole batch: ``dloss * (P - onehot(y)) / N``.

    Parameters
    ----------
    dloss : float
        Gradient of the final objective with respect to this loss (1 when it is the objective).
    cache : tuple
        From :func:`softmax_cross_entropy_forward`: ``(probabilities, y)``.

    Returns
    -------
    dscores : ndarray, shape (N, K)
    """
    probabilities, y = cache
    dscores = probabilities.copy()
    dscores[np.arange(len(y)), y] -= 1.0
    dscores *= dloss / len(y)
    return dscores


#: The activations and poolings by name, each a ``(forward, backward)`` pair: the choices of
#: :class:`~course_lib.cnn.SimpleCNN` and of the fused block.
ACTIVATIONS = {"sigmoid": (sigmoid_forward, sigmoid_backward), "relu": (relu_forward, relu_backward)}
POOLS = {"max": (max_pool_forward, max_pool_backward), "mean": (mean_pool_forward, mean_pool_backward)}


# --------------------------------------------------------------------------------------------
# AN OPTIMISATION, NOT A LAYER: convolution, activation and pooling fused into one pass.
#
# SimpleCNN trains with it because bench/cnn_speed.py measures it faster than the three layers
# above run one after another (the script times both in every run). It computes the same
# numbers as conv_forward -> activation -> pooling; tests/test_fused_conv_block.py checks that.
# --------------------------------------------------------------------------------------------



@checked(check.fused_conv_block_forward_arguments)
def fused_conv_block_forward(x, w, b, pool_size=2, pool="max", activation="sigmoid"):
    r"""Convolution, activation and pooling in one pass: the numbers of the three layers, faster.

    The same output as :func:`conv_forward`, then the activation's forward, then
    :func:`max_pool_forward` or :func:`mean_pool_forward`. Three ideas make it faster:

    * the convolution is one matrix product (see :func:`conv_forward`) whose columns are
      ordered by the position inside the pooling window, so the ``p * p`` candidates of every
      window are ``p * p`` blocks of the product, each read with contiguous inner loops; rows
      and columns that pooling drops are never computed;
    * with max pooling the pooling comes first, then the bias and the activation, on ``p * p``
      times fewer values. Both orders give the same numbers: a per-filter bias and a
      monotonic activation commute with the max,
      :math:`\max_k \sigma(z_k + b) = \sigma(\max_k z_k + b)`, and the gradient flows to the
      same position (ties aside, where the gradient through a saturated sigmoid or a dead ReLU
      is 0 anyway). The mean of sigmoids is not the sigmoid of the mean, so with mean pooling
      the activation comes first;
    * everything stays in the input's dtype (float32 in training).

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
        A transposed view of an ``(N, H' // p, F, W' // p)`` array.
    cache : tuple
        ``(x, w, p, pool, activation, blocks, activation_cache, winners)`` for
        :func:`fused_conv_block_backward` only: the row blocks of the product, the
        activation's cache, and with max pooling the ``p * p`` masks of the windows' winners
        (None with mean pooling).
    """
    p = pool_size
    n_images, height, width = x.shape
    n_filters, kh, kw = w.shape
    pooled_h, pooled_w = (height - kh + 1) // p, (width - kw + 1) // p
    activation_forward = ACTIVATIONS[activation][0].unchecked

    # rows (n, i) and columns (j % p, f, j // p) of the feature maps, only where pooling looks
    blocks = _row_blocks(x[:, :pooled_h * p + kh - 1, :], kh)
    banded = _banded_weights(w, width, p)
    z = blocks @ banded
    tiles = z.reshape(n_images, pooled_h, p, p, n_filters, pooled_w)
    windows = [tiles[:, :, a, b_] for a, b_ in _window_offsets(p)]  # each (N, P_h, F, P_w)

    winners = None
    if pool == "max":
        pooled = windows[0].copy()
        for view in windows[1:]:
            np.maximum(pooled, view, out=pooled)
        winners = _first_max_masks(windows, pooled)
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
    cache = (x, w, p, pool, activation, blocks, activation_cache, winners)
    return out.transpose(0, 2, 1, 3), cache


@checked(check.fused_conv_block_backward_arguments)
def fused_conv_block_backward(dout, cache):
    """Backward pass of :func:`fused_conv_block_forward`: the kernels' gradients.

    The sensitivities go back through the activation and the pooling into an array laid out
    like the forward product, and the kernel gradient is one matrix product of the row blocks
    with it (the correlation of the input with the sensitivities). A first layer needs no
    gradient with respect to its input, so none is computed.

    Parameters
    ----------
    dout : array_like, shape (N, F, H' // p, W' // p)
    cache : tuple
        From :func:`fused_conv_block_forward`.

    Returns
    -------
    dw : ndarray, shape (F, kh, kw)
    db : ndarray, shape (F,)
    """
    x, w, p, pool, activation, blocks, activation_cache, winners = cache
    n_images, height, width = x.shape
    n_filters, kh, kw = w.shape
    pooled_h, pooled_w = (height - kh + 1) // p, (width - kw + 1) // p
    dout = dout.transpose(0, 2, 1, 3)  # (N, P_h, F, P_w), the forward's order
    activation_backward = ACTIVATIONS[activation][1].unchecked

    dz = np.empty((n_images * pooled_h * p, p * n_filters * pooled_w), dtype=w.dtype)
    dtiles = dz.reshape(n_images, pooled_h, p, p, n_filters, pooled_w)
    if pool == "max":
        dpooled = activation_backward(dout, activation_cache)
        # db sums over images, rows and columns; summing the rows of a 2-D view first is fast
        db = dpooled.reshape(-1, n_filters * pooled_w).sum(axis=0).reshape(n_filters, pooled_w).sum(axis=1)
        for winner, (a, b_) in zip(winners, _window_offsets(p)):  # the winner gets it all
            np.multiply(dpooled, winner, out=dtiles[:, :, a, b_])
    else:
        share = dout * (1.0 / (p * p))
        for a, b_ in _window_offsets(p):  # every position of a window gets an equal share
            dtiles[:, :, a, b_] = share
        dz = activation_backward(dz, activation_cache)
        db = dz.sum(axis=0).reshape(p, n_filters, pooled_w).sum(axis=(0, 2))  # columns (b, f, q)
    dbanded = blocks.T @ dz
    dw = dbanded.ravel()[_banded_positions(n_filters, kh, kw, width, p)].sum(axis=-1)
    return dw, db
