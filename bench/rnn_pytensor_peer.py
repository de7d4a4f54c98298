"""The PyTensor peer of ``bench/rnn_table.py``: a lean graph of the original per-sequence algorithm.

The original experiment was written in Theano; PyTensor is its maintained successor. This is
the same algorithm as ``course_lib.rnn.train(..., batch_size=1)``, written the lean way:
one compiled function per update, a ``scan`` over time for the recurrence (the input terms
of every step are computed in one product before it), symbolic gradients, and momentum SGD
as shared-variable updates, in the course's convention (``course_lib.optim``: ``v <- mu v + g``,
``theta <- theta - lr v``). It is imported only when PyTensor is installed (the benchmark
environment, never the course's).
"""
import time
import warnings

import numpy as np

with warnings.catch_warnings():
    # PyTensor warns when it uses numpy's BLAS instead of linking one itself: that is the
    # configuration of this machine, and the warning would only clutter the benchmark output.
    warnings.simplefilter("ignore")
    import pytensor
    import pytensor.tensor as pt

PARAM_NAMES = ("W_uh", "W_hh", "W_hy", "b_hh", "b_hy")


class PyTensorRNN:
    """A sigmoid RNN (row-vector convention, MSE on the last step) trained one sequence per update.

    Parameters
    ----------
    params : dict of ndarray
        Initial ``W_uh``, ``W_hh``, ``W_hy``, ``b_hh``, ``b_hy`` (copied into shared variables).
    lr : float
        Learning rate.
    """

    def __init__(self, params, lr):
        self.shared = {name: pytensor.shared(np.array(params[name], dtype=np.float64), name=name)
                       for name in PARAM_NAMES}
        velocity = {name: pytensor.shared(np.zeros_like(params[name], dtype=np.float64))
                    for name in PARAM_NAMES}
        W_uh, W_hh, W_hy, b_hh, b_hy = (self.shared[name] for name in PARAM_NAMES)
        inputs = pt.matrix("inputs", dtype="float64")  # (L, I): one sequence
        target = pt.vector("target", dtype="float64")  # (O,): its last-step target
        momentum = pt.scalar("momentum", dtype="float64")
        drive = pt.dot(inputs, W_uh) + b_hh  # every step's input term at once

        def step(drive_t, h_prev):
            return pt.sigmoid(pt.dot(h_prev, W_hh) + drive_t)

        h0 = pt.zeros((W_hh.shape[0],), dtype="float64")
        hidden = pytensor.scan(step, sequences=drive, outputs_info=h0, return_updates=False)
        output = pt.dot(hidden[-1], W_hy) + b_hy
        cost = pt.mean((output - target) ** 2)
        grads = pt.grad(cost, [self.shared[name] for name in PARAM_NAMES])
        updates = []
        for name, g in zip(PARAM_NAMES, grads):
            new_velocity = momentum * velocity[name] + g
            updates += [(velocity[name], new_velocity), (self.shared[name], self.shared[name] - lr * new_velocity)]
        self.update = pytensor.function([inputs, target, momentum], cost, updates=updates)
        # The default backend compiles on the first call: make that call here, on a dummy
        # sequence, so that training times only training; then restore the initial state.
        self.update(np.zeros((2, params["W_uh"].shape[0])), np.zeros(params["W_hy"].shape[1]), 0.0)
        for name in PARAM_NAMES:
            self.shared[name].set_value(np.array(params[name], dtype=np.float64))
            velocity[name].set_value(np.zeros_like(params[name], dtype=np.float64))

    def params(self):
        return {name: var.get_value() for name, var in self.shared.items()}


def linker_name():
    """The backend PyTensor compiles to by default here (numba in PyTensor 3)."""
    return type(pytensor.compile.mode.get_default_mode().linker).__name__


def train_per_sequence(model, inputs, targets, epochs, momentum=0.9, initial_momentum=0.5,
                       momentum_switch_epoch=6):
    """The original loop: every epoch, one update per sequence, in order.

    Returns
    -------
    ndarray, shape (epochs,)
        Average cost per epoch (mean of the per-update costs).
    """
    last_targets = np.ascontiguousarray(targets[:, -1])
    history = np.empty(epochs)
    for epoch in range(epochs):
        mu = initial_momentum if epoch < momentum_switch_epoch else momentum
        total = 0.0
        for n in range(inputs.shape[0]):
            total += float(model.update(inputs[n], last_targets[n], mu))
        history[epoch] = total / inputs.shape[0]
    return history


def run_table(datasets, initial_params, epochs, lr=1e-3):
    """Train one PyTensor model per data set, with PyTensor's default backend.

    Returns
    -------
    histories : ndarray, shape (len(datasets), epochs)
    train_wall, train_cpu, compile_wall : float
        Wall-clock and CPU seconds of training, and wall-clock seconds of compilation.
    """
    start = time.perf_counter()
    models = [PyTensorRNN(initial_params, lr) for _ in datasets]
    compile_wall = time.perf_counter() - start
    start, start_cpu = time.perf_counter(), time.process_time()
    histories = np.array([train_per_sequence(model, u, y, epochs)
                          for model, (u, y) in zip(models, datasets)])
    return histories, time.perf_counter() - start, time.process_time() - start_cpu, compile_wall
