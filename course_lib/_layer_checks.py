"""The argument checks of the layers, written once for the reference layers and their fast twins.

The two versions of a layer (:mod:`course_lib.layers` and :mod:`course_lib.fast_layers`) take
the same arguments and refuse the same bad ones with the same words, so each check lives here
and is attached to both by :func:`checked`. Every check takes the layer's arguments in order
and returns them checked and converted, in the same order.
"""
import functools
import inspect

import numpy as np

from course_lib._checks import as_float_array, as_labels, one_of, positive_int

__all__ = ["checked"]


def checked(check):
    """Decorate a layer so that ``check`` vets and converts its arguments before it runs.

    ``check`` receives the layer's arguments in order, defaults filled in, and returns them
    checked and converted. The layer without its check stays reachable as
    ``layer.unchecked``: a caller that has checked its data already calls that, so a batch is
    checked once where the user hands it in (:class:`~course_lib.cnn.SimpleCNN`'s public
    methods), not again by every layer of every training step.
    """
    def decorate(layer):
        signature = inspect.signature(layer)

        @functools.wraps(layer)
        def checked_layer(*args, **kwargs):
            bound = signature.bind(*args, **kwargs)
            bound.apply_defaults()
            return layer(*check(*bound.args))

        checked_layer.unchecked = layer
        return checked_layer

    return decorate


# --------------------------------------------------------------------------------------------
# pieces shared by several checks
# --------------------------------------------------------------------------------------------

def _same_float_dtype(*arrays):
    dtype = np.result_type(*(a.dtype for a in arrays))
    return tuple(a.astype(dtype, copy=False) for a in arrays)


def _cache_arrays(cache, layer, names):
    """The leading items of a forward pass's cache, after checking it looks like one."""
    if not isinstance(cache, tuple) or len(cache) < len(names):
        shown = "(" + ", ".join(names) + (", ...)" if len(names) > 1 else ",)")
        given = f"a tuple of {len(cache)}" if isinstance(cache, tuple) else type(cache).__name__
        raise ValueError(f"cache must be the cache {layer} returned, a tuple {shown}, got {given}")
    return cache[:len(names)]


def _dout(dout, expected_shape, dtype):
    """The upstream gradient, of the forward output's shape, in the forward pass's dtype."""
    dout = np.asarray(dout)
    if dout.shape != tuple(expected_shape):
        shown = "(" + ", ".join(str(s) for s in expected_shape) + ")"
        raise ValueError(f"dout must have shape {shown} (the forward output's), got {dout.shape}")
    return as_float_array(dout, "dout", dtype=dtype, allow_nan=True)


def _pool_size(pool_size, map_shape):
    pool_size = positive_int(pool_size, "pool_size")
    if pool_size > min(map_shape):
        raise ValueError(
            f"pool_size must be no larger than the feature maps ({map_shape[0]}x{map_shape[1]}), "
            f"got {pool_size}"
        )
    return pool_size


# --------------------------------------------------------------------------------------------
# one check per layer function
# --------------------------------------------------------------------------------------------

def conv_forward_arguments(x, w, b):
    x = as_float_array(x, "x", ndim=3)
    w = as_float_array(w, "w", ndim=3)
    n_filters, kh, kw = w.shape
    b = as_float_array(b, "b", shape=(n_filters,))
    if kh == 0 or kw == 0 or kh > x.shape[1] or kw > x.shape[2]:
        raise ValueError(
            f"w's kernels must be non-empty and no larger than the images, "
            f"got w shape {w.shape} and x shape {x.shape}"
        )
    return _same_float_dtype(x, w, b)


def conv_backward_arguments(dout, cache, input_grad):
    x, w = _cache_arrays(cache, "conv_forward", ("x", "w"))
    (n_images, height, width), (n_filters, kh, kw) = x.shape, w.shape
    dout = _dout(dout, (n_images, n_filters, height - kh + 1, width - kw + 1), w.dtype)
    if not isinstance(input_grad, (bool, np.bool_)):
        raise ValueError(f"input_grad must be True or False, got {input_grad!r}")
    return dout, cache, bool(input_grad)


def pool_forward_arguments(x, pool_size):
    x = as_float_array(x, "x", ndim=4, allow_nan=True)
    return x, _pool_size(pool_size, x.shape[2:])


def pool_backward_arguments(dout, cache):
    x, p = _cache_arrays(cache, "the pooling forward", ("x", "pool_size"))
    n_images, n_maps, height, width = x.shape
    return _dout(dout, (n_images, n_maps, height // p, width // p), x.dtype), cache


def activation_forward_arguments(x):
    return (as_float_array(x, "x", allow_nan=True),)


def activation_backward_arguments(dout, cache):
    (saved,) = _cache_arrays(cache, "the activation's forward", ("out or x",))
    return _dout(dout, saved.shape, saved.dtype), cache


def affine_forward_arguments(x, w, b):
    x = as_float_array(x, "x", ndim=2)
    w = as_float_array(w, "w", shape=(None, x.shape[1]))
    b = as_float_array(b, "b", shape=(w.shape[0],))
    return _same_float_dtype(x, w, b)


def affine_backward_arguments(dout, cache):
    x, w = _cache_arrays(cache, "affine_forward", ("x", "w"))
    return _dout(dout, (x.shape[0], w.shape[0]), w.dtype), cache


def softmax_cross_entropy_forward_arguments(scores, y):
    scores = as_float_array(scores, "scores", ndim=2)
    if scores.shape[0] == 0 or scores.shape[1] == 0:
        raise ValueError(f"scores must hold at least one image and one class, got {scores.shape}")
    return scores, as_labels(y, "y", scores.shape[0], scores.shape[1])


def softmax_cross_entropy_backward_arguments(dloss, cache):
    if isinstance(dloss, bool) or not np.isscalar(dloss) or not np.isfinite(dloss):
        raise ValueError(f"dloss must be a finite number (the gradient of a scalar loss), got {dloss!r}")
    _cache_arrays(cache, "softmax_cross_entropy_forward", ("probabilities", "y"))
    return float(dloss), cache


def fused_conv_block_forward_arguments(x, w, b, pool_size, pool, activation):
    x, w, b = conv_forward_arguments(x, w, b)
    map_shape = (x.shape[1] - w.shape[1] + 1, x.shape[2] - w.shape[2] + 1)
    pool_size = _pool_size(pool_size, map_shape)
    one_of(pool, "pool", {"max", "mean"})
    one_of(activation, "activation", {"sigmoid", "relu"})
    return x, w, b, pool_size, pool, activation


def fused_conv_block_backward_arguments(dout, cache):
    x, w, p = _cache_arrays(cache, "fused_conv_block_forward", ("x", "w", "pool_size"))
    (n_images, height, width), (n_filters, kh, kw) = x.shape, w.shape
    expected = (n_images, n_filters, (height - kh + 1) // p, (width - kw + 1) // p)
    return _dout(dout, expected, w.dtype), cache
