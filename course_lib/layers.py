"""The layers of the course's CNN, written to be read: each one a forward/backward pair of loops.

Every layer follows one pattern (the one of Stanford's cs231n assignments)::

    out, cache = <layer>_forward(x, ...)
    dx, ...    = <layer>_backward(dout, cache)

``forward`` returns the layer's output and a ``cache``, a short tuple of what ``backward``
needs; ``backward`` takes the gradient of the loss with respect to the output (``dout``, the
shape of ``out``) and returns the gradients with respect to the inputs and the parameters.

These loops are the reference: they say what each layer computes, one number at a time.
:mod:`course_lib.fast_layers` has a vectorised twin of every function here, with the same
name, arguments and results, that :class:`~course_lib.cnn.SimpleCNN` trains with; the tests
compare the twins value for value, and both against numerical gradients. A cache made by one
twin can be handed to the other's ``backward``.

Every function checks its arguments and raises ``ValueError`` naming the one that is wrong
(the checks are shared with the fast twins, in :mod:`course_lib._layer_checks`).

Shapes use these letters: ``N`` images in a batch, ``H x W`` an image, ``F`` filters of
``kh x kw``, ``H' = H - kh + 1`` and ``W' = W - kw + 1`` a "valid" feature map, ``p`` the
pooling size (the stride equals it), ``D`` features, ``K`` classes.
"""
import numpy as np

from course_lib import _layer_checks as check
from course_lib._layer_checks import checked

__all__ = [
    "conv_forward", "conv_backward",
    "max_pool_forward", "max_pool_backward", "mean_pool_forward", "mean_pool_backward",
    "sigmoid_forward", "sigmoid_backward", "relu_forward", "relu_backward",
    "affine_forward", "affine_backward",
    "softmax_cross_entropy_forward", "softmax_cross_entropy_backward",
]


# --------------------------------------------------------------------------------------------
# convolution layer (single input channel, "valid", stride 1): z[n,f] = correlate(x[n], w[f]) + b[f]
# --------------------------------------------------------------------------------------------

@checked(check.conv_forward_arguments)
def conv_forward(x, w, b):
    r"""Convolution layer, forward.

    The cross-correlation of every image with every kernel, plus a bias per kernel:

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
        ``(x, w)``.
    """
    n_images, height, width = x.shape
    n_filters, kh, kw = w.shape
    out = np.zeros((n_images, n_filters, height - kh + 1, width - kw + 1), dtype=x.dtype)
    for n in range(n_images):
        for f in range(n_filters):
            for i in range(height - kh + 1):
                for j in range(width - kw + 1):
                    out[n, f, i, j] = np.sum(x[n, i:i + kh, j:j + kw] * w[f]) + b[f]
    return out, (x, w)


@checked(check.conv_backward_arguments)
def conv_backward(dout, cache, input_grad=True):
    r"""Convolution layer, backward.

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
        From :func:`conv_forward`: ``(x, w)``, or the fast twin's longer cache (only its
        first two items are read).
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
    dx = np.zeros_like(x) if input_grad else None
    dw = np.zeros_like(w)
    db = np.zeros(n_filters, dtype=w.dtype)
    for n in range(n_images):
        for f in range(n_filters):
            for i in range(height - kh + 1):
                for j in range(width - kw + 1):
                    delta = dout[n, f, i, j]
                    dw[f] += delta * x[n, i:i + kh, j:j + kw]
                    db[f] += delta
                    if input_grad:
                        dx[n, i:i + kh, j:j + kw] += delta * w[f]
    return dx, dw, db


# --------------------------------------------------------------------------------------------
# pooling layers: p x p windows, stride p; rows/columns that do not fill a window are dropped
# --------------------------------------------------------------------------------------------

@checked(check.pool_forward_arguments)
def max_pool_forward(x, pool_size=2):
    """Max pooling, forward: the maximum of every ``p x p`` window.

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
    cache : tuple
        ``(x, p)``.
    """
    p = pool_size
    n_images, n_maps, height, width = x.shape
    out = np.zeros((n_images, n_maps, height // p, width // p), dtype=x.dtype)
    for n in range(n_images):
        for f in range(n_maps):
            for i in range(height // p):
                for j in range(width // p):
                    out[n, f, i, j] = np.max(x[n, f, i * p:(i + 1) * p, j * p:(j + 1) * p])
    return out, (x, p)


@checked(check.pool_backward_arguments)
def max_pool_backward(dout, cache):
    """Max pooling, backward: each window's gradient goes to the position of its maximum.

    When several positions tie for the maximum, the first in row-major order gets the
    gradient (as ``np.argmax`` picks it); the others get 0.

    Parameters
    ----------
    dout : array_like, shape (N, F, H // p, W // p)
    cache : tuple
        From :func:`max_pool_forward`: ``(x, p)``, or the fast twin's longer cache.

    Returns
    -------
    dx : ndarray, shape (N, F, H, W)
    """
    x, p = cache[:2]
    n_images, n_maps, height, width = x.shape
    dx = np.zeros_like(x)
    for n in range(n_images):
        for f in range(n_maps):
            for i in range(height // p):
                for j in range(width // p):
                    window = x[n, f, i * p:(i + 1) * p, j * p:(j + 1) * p]
                    a, b = np.unravel_index(np.argmax(window), window.shape)
                    dx[n, f, i * p + a, j * p + b] = dout[n, f, i, j]
    return dx


@checked(check.pool_forward_arguments)
def mean_pool_forward(x, pool_size=2):
    """Mean pooling, forward: the mean of every ``p x p`` window.

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
    p = pool_size
    n_images, n_maps, height, width = x.shape
    out = np.zeros((n_images, n_maps, height // p, width // p), dtype=x.dtype)
    for n in range(n_images):
        for f in range(n_maps):
            for i in range(height // p):
                for j in range(width // p):
                    out[n, f, i, j] = np.mean(x[n, f, i * p:(i + 1) * p, j * p:(j + 1) * p])
    return out, (x, p)


@checked(check.pool_backward_arguments)
def mean_pool_backward(dout, cache):
    """Mean pooling, backward: each window's gradient is spread evenly over it.

    Parameters
    ----------
    dout : array_like, shape (N, F, H // p, W // p)
    cache : tuple
        From :func:`mean_pool_forward`: ``(x, p)``.

    Returns
    -------
    dx : ndarray, shape (N, F, H, W)
        Zero on the rows and columns the pooling dropped.
    """
    x, p = cache
    n_images, n_maps, height, width = x.shape
    dx = np.zeros_like(x)
    for n in range(n_images):
        for f in range(n_maps):
            for i in range(height // p):
                for j in range(width // p):
                    dx[n, f, i * p:(i + 1) * p, j * p:(j + 1) * p] = dout[n, f, i, j] / (p * p)
    return dx


# --------------------------------------------------------------------------------------------
# activations
# --------------------------------------------------------------------------------------------

def _sigmoid(v):
    """The logistic function of one number, without overflow for large negative ``v``."""
    if v >= 0:
        return 1.0 / (1.0 + np.exp(-v))
    e = np.exp(v)
    return e / (1.0 + e)


@checked(check.activation_forward_arguments)
def sigmoid_forward(x):
    r"""Sigmoid, forward, one element at a time: :math:`\sigma(x) = 1 / (1 + e^{-x})`.

    Parameters
    ----------
    x : array_like, any shape

    Returns
    -------
    out : ndarray, same shape as ``x``
    cache : tuple
        ``(out,)``: the derivative is written with the output.
    """
    out = np.empty_like(x)
    for index in np.ndindex(x.shape):
        out[index] = _sigmoid(x[index])
    return out, (out,)


@checked(check.activation_backward_arguments)
def sigmoid_backward(dout, cache):
    r"""Sigmoid, backward, one element at a time: :math:`\sigma' = \sigma (1 - \sigma)`.

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
    dx = np.empty_like(s)
    for index in np.ndindex(s.shape):
        dx[index] = dout[index] * s[index] * (1.0 - s[index])
    return dx


@checked(check.activation_forward_arguments)
def relu_forward(x):
    """ReLU, forward, one element at a time: ``max(x, 0)``.

    Parameters
    ----------
    x : array_like, any shape

    Returns
    -------
    out : ndarray, same shape as ``x``
    cache : tuple
        ``(x,)``.
    """
    out = np.empty_like(x)
    for index in np.ndindex(x.shape):
        out[index] = x[index] if x[index] > 0 else 0.0
    return out, (x,)


@checked(check.activation_backward_arguments)
def relu_backward(dout, cache):
    """ReLU, backward, one element at a time: the gradient passes where ``x > 0``.

    At ``x == 0`` the derivative is taken as 0, as in the frameworks.

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
    dx = np.zeros_like(x)
    for index in np.ndindex(x.shape):
        if x[index] > 0:
            dx[index] = dout[index]
    return dx


# --------------------------------------------------------------------------------------------
# fully connected (affine) layer: out = x @ w.T + b, with w of shape (K, D) like W_sm
# --------------------------------------------------------------------------------------------

@checked(check.affine_forward_arguments)
def affine_forward(x, w, b):
    r"""Fully connected layer, forward: :math:`s_{nk} = \sum_d w_{kd} x_{nd} + b_k`.

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
    out = np.zeros((x.shape[0], w.shape[0]), dtype=x.dtype)
    for n in range(x.shape[0]):
        for k in range(w.shape[0]):
            total = b[k]
            for d in range(x.shape[1]):
                total += w[k, d] * x[n, d]
            out[n, k] = total
    return out, (x, w)


@checked(check.affine_backward_arguments)
def affine_backward(dout, cache):
    """Fully connected layer, backward.

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
    dx, dw = np.zeros_like(x), np.zeros_like(w)
    db = np.zeros(w.shape[0], dtype=w.dtype)
    for n in range(x.shape[0]):
        for k in range(w.shape[0]):
            db[k] += dout[n, k]
            for d in range(x.shape[1]):
                dw[k, d] += dout[n, k] * x[n, d]
                dx[n, d] += dout[n, k] * w[k, d]
    return dx, dw, db


# --------------------------------------------------------------------------------------------
# softmax with the cross-entropy loss, averaged over the batch
# --------------------------------------------------------------------------------------------

@checked(check.softmax_cross_entropy_forward_arguments)
def softmax_cross_entropy_forward(scores, y):
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
        ``(probabilities, y)``: ``P`` of shape (N, K) and the labels (N,).
    """
    n_images, n_classes = scores.shape
    probabilities = np.zeros_like(scores)
    loss = 0.0
    for n in range(n_images):
        shifted = scores[n] - np.max(scores[n])
        exps = np.exp(shifted)
        probabilities[n] = exps / np.sum(exps)
        loss -= shifted[y[n]] - np.log(np.sum(exps))
    return float(loss / n_images), (probabilities, y)


@checked(check.softmax_cross_entropy_backward_arguments)
def softmax_cross_entropy_backward(dloss, cache):
    r"""Softmax and cross-entropy, backward, one image at a time: :math:`(P_n - e_{y_n}) / N`.

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
    n_images = probabilities.shape[0]
    dscores = np.zeros_like(probabilities)
    for n in range(n_images):
        target = np.zeros(probabilities.shape[1], dtype=probabilities.dtype)
        target[y[n]] = 1.0
        dscores[n] = dloss * (probabilities[n] - target) / n_images
    return dscores
