"""The update rules every model of the course trains with: momentum SGD and gradient clipping.

One convention for the whole course, the one PyTorch's ``torch.optim.SGD`` uses:

.. math:: v \\leftarrow \\mu v + g, \\qquad \\theta \\leftarrow \\theta - \\eta v

with learning rate :math:`\\eta` (``lr``) and momentum :math:`\\mu` (``momentum``). The other
common way to write it, :math:`v' \\leftarrow \\mu v' - \\eta g`, :math:`\\theta \\leftarrow
\\theta + v'`, takes exactly the same steps while :math:`\\eta` is constant (:math:`v' = -\\eta
v`); they part ways only when the learning rate changes during training.

Gradients and parameters are dicts of arrays keyed by parameter name, as the models' ``params``.
"""
import numpy as np

from course_lib._checks import non_negative_float

__all__ = ["check_momentum", "sgd_momentum_step", "gradient_norm", "clip_scale", "clip_gradients"]


def check_momentum(momentum, name="momentum"):
    """Return ``momentum`` as a float after checking it lies in ``[0, 1)``.

    At 1 or more the velocity never decays: every old gradient keeps pushing for ever.
    ``name`` is the argument's name in the error message (e.g. ``"initial_momentum"``).

    Raises
    ------
    ValueError
        If ``momentum`` is not a finite number in ``[0, 1)``.
    """
    momentum = non_negative_float(momentum, name)
    if momentum >= 1:
        raise ValueError(f"{name} must be in [0, 1), got {momentum!r}")
    return momentum


def sgd_momentum_step(params, grads, velocity, lr, momentum):
    """One step of SGD with momentum, in place: ``v = mu v + g``, then ``theta -= lr v``.

    Parameters
    ----------
    params : dict of ndarray
        The parameters; updated in place.
    grads : dict of ndarray
        Their gradients, same keys and shapes.
    velocity : dict of ndarray
        The running velocities, same keys and shapes (zeros before the first step); updated
        in place.
    lr : float
        Learning rate, already checked by the caller (> 0).
    momentum : float
        Momentum in ``[0, 1)``, already checked by the caller.
    """
    for name, grad in grads.items():
        v = velocity[name]
        v *= momentum
        v += grad
        params[name] -= lr * v


def gradient_norm(grads, n_stacked=None):
    """The Euclidean norm of all the gradients taken together, as one long vector.

    Parameters
    ----------
    grads : dict of ndarray
    n_stacked : int, optional
        When the arrays hold the gradients of ``n_stacked`` models stacked along their first
        axis (each array's rows split into ``n_stacked`` equal blocks, one per model, as
        :func:`course_lib.rnn.train_many` lays them out), return each model's norm.

    Returns
    -------
    float, or ndarray of shape (n_stacked,)
    """
    if n_stacked is None:
        return float(np.sqrt(sum(np.sum(np.square(g)) for g in grads.values())))
    return np.sqrt(sum(np.square(g).reshape(n_stacked, -1).sum(axis=1) for g in grads.values()))


def clip_scale(norm, threshold):
    """The factor Algorithm 1 multiplies a gradient of norm ``norm`` by.

    ``threshold / norm`` when ``norm >= threshold``, else 1. Elementwise for an array of
    norms (one per model trained side by side). ``threshold`` must already be checked (> 0):
    trainers check it once, not at every update.

    Returns
    -------
    float, or ndarray of the shape of ``norm``
    """
    norm = np.asarray(norm, dtype=np.float64)
    scale = np.ones_like(norm)
    np.divide(threshold, norm, out=scale, where=norm >= threshold)
    return float(scale) if scale.ndim == 0 else scale


def clip_gradients(grads, threshold):
    """Pascanu et al.'s Algorithm 1: rescale the gradient if its norm exceeds ``threshold``.

    ``g <- threshold / ||g|| * g`` when ``||g|| >= threshold``, with ``||g||`` the
    :func:`gradient_norm` of all parameters together: the direction is kept, only the length
    of the step is capped.

    Parameters
    ----------
    grads : dict of ndarray
    threshold : float
        Positive norm threshold.

    Returns
    -------
    clipped : dict of ndarray
        New arrays (the input is not modified).
    norm : float
        The norm before clipping.

    Raises
    ------
    ValueError
        If ``threshold`` is not a positive finite number.
    """
    threshold = non_negative_float(threshold, "threshold", strictly_positive=True)
    norm = gradient_norm(grads)
    scale = clip_scale(norm, threshold)
    return {name: g * scale for name, g in grads.items()}, norm
