"""Input checks shared by every module: one place that words the errors.

Each check raises ``ValueError`` naming the argument, what was expected and what was
given, so a student sees at once which call was wrong and why.
"""
import numbers

import numpy as np


def as_float_array(x, name, ndim=None, shape=None, dtype=None, allow_nan=False):
    """Return ``x`` as a floating-point ndarray after checking it.

    Parameters
    ----------
    x : array_like
        The value to check.
    name : str
        The argument's name, used in the error message.
    ndim : int, optional
        Required number of dimensions.
    shape : tuple, optional
        Required shape; ``None`` entries match any length.
    dtype : numpy dtype, optional
        Convert to this floating dtype (default: keep float32/float64, else float64).
    allow_nan : bool
        Whether NaN and infinite values are accepted.

    Raises
    ------
    ValueError
        On a non-numeric value, a wrong number of dimensions or shape, or NaN/inf.
    """
    arr = np.asarray(x)
    if arr.dtype == object or not (np.issubdtype(arr.dtype, np.number) or arr.dtype == bool):
        raise ValueError(f"{name} must be a numeric array, got dtype {arr.dtype}")
    if np.iscomplexobj(arr):
        raise ValueError(f"{name} must be real, got complex dtype {arr.dtype}")
    if dtype is None:
        dtype = arr.dtype if arr.dtype in (np.float32, np.float64) else np.float64
    arr = arr.astype(dtype, copy=False)
    if ndim is not None and arr.ndim != ndim:
        raise ValueError(f"{name} must have {ndim} dimensions, got shape {arr.shape}")
    if shape is not None:
        expected = tuple(shape)
        if arr.ndim != len(expected) or any(
            e is not None and e != g for e, g in zip(expected, arr.shape)
        ):
            shown = "(" + ", ".join("N" if e is None else str(e) for e in expected) + ")"
            raise ValueError(f"{name} must have shape {shown}, got {arr.shape}")
    if not allow_nan and arr.size and not np.isfinite(arr).all():
        raise ValueError(f"{name} contains NaN or infinite values")
    return arr


def as_labels(y, name, n, n_classes):
    """Return integer class labels of length ``n`` in ``[0, n_classes)`` as int64.

    Raises
    ------
    ValueError
        On non-integer values, a wrong length, or a label out of range.
    """
    arr = np.asarray(y)
    if arr.ndim != 1 or arr.shape[0] != n:
        raise ValueError(f"{name} must have shape ({n},), got {arr.shape}")
    if not np.issubdtype(arr.dtype, np.integer):
        if np.issubdtype(arr.dtype, np.floating) and np.all(np.isfinite(arr)) and np.all(arr == np.round(arr)):
            arr = arr.astype(np.int64)
        else:
            raise ValueError(f"{name} must hold integer class labels, got dtype {arr.dtype}")
    if n and (arr.min() < 0 or arr.max() >= n_classes):
        bad = arr[(arr < 0) | (arr >= n_classes)][0]
        raise ValueError(f"{name} must be in [0, {n_classes}), got label {bad}")
    return arr.astype(np.int64, copy=False)


def positive_int(value, name, minimum=1):
    """Return ``value`` as int after checking it is an integer >= ``minimum``."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return int(value)


def non_negative_float(value, name, strictly_positive=False, maximum=None):
    """Return ``value`` as float after checking it is finite, >= 0 (or > 0) and <= ``maximum``."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not np.isfinite(value):
        raise ValueError(f"{name} must be a finite number, got {value!r}")
    value = float(value)
    if value < 0 or (strictly_positive and value == 0):
        bound = "> 0" if strictly_positive else ">= 0"
        raise ValueError(f"{name} must be {bound}, got {value!r}")
    if maximum is not None and value > maximum:
        raise ValueError(f"{name} must be <= {maximum}, got {value!r}")
    return value


def one_of(value, name, choices):
    """Return ``value`` after checking it is one of ``choices``."""
    if value not in choices:
        raise ValueError(f"{name} must be one of {sorted(choices)!r}, got {value!r}")
    return value
