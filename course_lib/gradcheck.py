r"""Numerical gradients by centred differences, to check hand-written backward passes.

For a function :math:`f` and a small step :math:`h`,

.. math:: \frac{\partial f}{\partial x_i} \approx \frac{f(x + h e_i) - f(x - h e_i)}{2h},

with an error of order :math:`h^2`. In float64 with ``h = 1e-5`` the relative error between a
correct analytic gradient and this estimate is typically below ``1e-7``; a bug usually shows as
an error near 1. Float32 cannot do this (its rounding error, about ``1e-7`` relative, divided by
``2h`` swamps the estimate), so the helpers insist on float64.

Usage, in the style of the cs231n assignments: ``f`` is called with the perturbed array, which
is also changed in place, so a closure over a model's parameter works too::

    net = SimpleCNN(dtype=np.float64)
    loss, grads = net.loss_and_grads(X, y)
    error = gradient_check(lambda _: net.loss_and_grads(X, y)[0],
                           net.params["W_sm"], grads["W_sm"], n_samples=20)
"""
import numpy as np

from course_lib._checks import as_float_array, positive_int

__all__ = ["rel_error", "numerical_gradient", "gradient_check"]


def rel_error(a, b):
    r"""Largest elementwise relative error between two arrays of the same shape.

    .. math:: \max_i \frac{|a_i - b_i|}{\max(10^{-8},\ |a_i| + |b_i|)}

    The floor of ``1e-8`` keeps entries where both are (almost) zero from dividing by zero.

    Parameters
    ----------
    a, b : array_like
        Arrays of the same shape (or scalars).

    Returns
    -------
    float

    Raises
    ------
    ValueError
        If the shapes differ or an input holds NaN.
    """
    a = as_float_array(a, "a", dtype=np.float64, allow_nan=True)
    b = as_float_array(b, "b", dtype=np.float64, allow_nan=True)
    if a.shape != b.shape:
        raise ValueError(f"a and b must have the same shape, got {a.shape} and {b.shape}")
    if np.isnan(a).any() or np.isnan(b).any():
        raise ValueError("a and b must not contain NaN")
    if a.size == 0:
        return 0.0
    return float(np.max(np.abs(a - b) / np.maximum(1e-8, np.abs(a) + np.abs(b))))


def _check_perturbable(x):
    if not isinstance(x, np.ndarray):
        raise ValueError(f"x must be a numpy array (it is perturbed in place), got {type(x).__name__}")
    if x.dtype != np.float64:
        raise ValueError(f"x must have dtype float64 for centred differences, got {x.dtype}")
    if not x.flags.writeable:
        raise ValueError("x must be writeable (it is perturbed in place), got a read-only array")
    return x


def _evaluate(f, x, dout):
    value = np.asarray(f(x), dtype=np.float64)
    if dout is None:
        if value.size != 1:
            raise ValueError(
                f"f must return a scalar when dout is not given, got an output of shape {value.shape}"
            )
        return float(value.reshape(()))
    if value.shape != dout.shape:
        raise ValueError(f"dout must have the shape of f's output {value.shape}, got {dout.shape}")
    return float(np.sum(value * dout))


def numerical_gradient(f, x, dout=None, h=1e-5, indices=None):
    """Centred-difference gradient of ``f`` at ``x``.

    Parameters
    ----------
    f : callable
        ``f(x)`` returns a scalar, or an array when ``dout`` is given.
    x : ndarray of float64
        The point. Each entry is moved by ``+h`` and ``-h`` in place, ``f`` evaluated, and the
        entry restored exactly.
    dout : array_like, optional
        Upstream gradient for an array-valued ``f``: the gradient of ``sum(f(x) * dout)`` is
        returned (the backward pass of a layer given ``dout``).
    h : float
        The step.
    indices : sequence of tuple, optional
        Only these entries of ``x`` (others are left at 0 in the result). Default: all.

    Returns
    -------
    ndarray, shape of ``x``, float64
    """
    x = _check_perturbable(x)
    if isinstance(h, bool) or not np.isscalar(h) or not np.isfinite(h) or h <= 0:
        raise ValueError(f"h must be a finite number > 0, got {h!r}")
    if dout is not None:
        dout = as_float_array(dout, "dout", dtype=np.float64)
    grad = np.zeros_like(x)
    for index in (np.ndindex(x.shape) if indices is None else indices):
        original = x[index]
        x[index] = original + h
        plus = _evaluate(f, x, dout)
        x[index] = original - h
        minus = _evaluate(f, x, dout)
        x[index] = original
        grad[index] = (plus - minus) / (2 * h)
    return grad


def gradient_check(f, x, analytic_grad, dout=None, h=1e-5, n_samples=None, seed=0):
    """Relative error between an analytic gradient and the centred-difference one.

    Parameters
    ----------
    f : callable
        As in :func:`numerical_gradient`.
    x : ndarray of float64
        The point (perturbed in place and restored).
    analytic_grad : array_like, shape of ``x``
        The gradient to check, e.g. from a backward pass.
    dout : array_like, optional
        Upstream gradient for an array-valued ``f``.
    h : float
        The step.
    n_samples : int, optional
        Check only this many entries, drawn at random (a big weight matrix costs two calls of
        ``f`` per entry). Default: every entry.
    seed : int
        Seed of the draw of entries.

    Returns
    -------
    float
        :func:`rel_error` over the checked entries: below ``1e-7`` means the gradient is right
        for smooth functions in float64; around ``1e-2`` or more means a bug, or a kink within
        ``h`` of ``x`` (ReLU at 0; two positions of a max-pooling window closer than about
        ``h`` times the input, which a big network on many images meets now and then: check
        again with a smaller ``h`` or other images). An entry whose gradient is tiny (say
        ``1e-5``) can show ``1e-6``: the rounding error of ``f``, about ``1e-16 |f| / h``,
        is then a sizeable part of it.
    """
    x = _check_perturbable(x)
    analytic_grad = as_float_array(analytic_grad, "analytic_grad", dtype=np.float64)
    if analytic_grad.shape != x.shape:
        raise ValueError(
            f"analytic_grad must have the shape of x {x.shape}, got {analytic_grad.shape}"
        )
    if n_samples is None:
        indices = list(np.ndindex(x.shape))
    else:
        n_samples = positive_int(n_samples, "n_samples")
        rng = np.random.default_rng(seed)
        flat = rng.choice(x.size, size=min(n_samples, x.size), replace=False)
        indices = [np.unravel_index(i, x.shape) for i in flat]
    if not indices:  # an empty x: nothing to compare
        return 0.0
    numeric = numerical_gradient(f, x, dout=dout, h=h, indices=indices)
    checked = tuple(np.array(axis, dtype=np.intp) for axis in zip(*indices))
    return rel_error(analytic_grad[checked], numeric[checked])
