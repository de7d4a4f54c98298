"""Golden numbers for ``SimpleCNN`` from outside: its loss and every gradient, computed by PyTorch.

micrograd's habit: a hand-written backward pass is tested against numbers that another,
independent implementation computed. This script builds the course's network in PyTorch
(float64, autograd: ``conv2d``, ``sigmoid``/``relu``, ``max_pool2d``/``avg_pool2d``,
``linear``, ``cross_entropy`` and the weight decay on the weights), gives it the weights of a
``SimpleCNN``, and stores the loss and the gradient of every parameter, together with the
inputs, the weights and the hyperparameters, in ``tests/golden/cnn_torch.npz``.
``tests/test_cnn_golden.py`` reads that file (it needs no torch) and asserts that
``SimpleCNN.loss_and_grads`` gives the same numbers, to a relative error of 1e-10.

The cases: two nets, each with max and mean pooling and with sigmoid and ReLU:

* ``small``: 3 kernels 3x3 on 9x9 random images, 2x2 pooling of 7x7 maps (the last row and
  column are dropped), 4 classes, weight decay 0.01;
* ``default``: the course's net (20 kernels 9x9, 28x28 images, 10 classes, weight decay 1e-4)
  on the first four MNIST training digits of ``course_lib.data.load_mnist`` (a 0, a 1, a 2, a
  3: real digits, blank borders and all).

Both use ``SimpleCNN``'s initial weights with random (non-zero) biases, so that a wrong bias
gradient cannot hide behind zeros.

To regenerate (after changing the cases, or to check against a newer PyTorch), from the
repository root, with the benchmark virtualenv that has torch::

    /opt/bench-venv/bin/python bench/golden_cnn_torch.py

It overwrites ``tests/golden/cnn_torch.npz`` and prints every case's loss; commit the file.
The numbers do not depend on the machine beyond float64 rounding (far below 1e-10).
"""
import json
import pathlib
import sys

import numpy as np

REPOSITORY = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPOSITORY))  # this checkout's course_lib

from course_lib.cnn import SimpleCNN  # noqa: E402
from course_lib.data import load_mnist  # noqa: E402

GOLDEN_FILE = REPOSITORY / "tests" / "golden" / "cnn_torch.npz"
POOLS = ("max", "mean")
ACTIVATIONS = ("sigmoid", "relu")


def nets():
    """``name -> (hyperparameters, images, labels)`` of the two nets."""
    rng = np.random.default_rng(2026)
    small = dict(n_filters=3, filter_size=3, pool_size=2, n_classes=4, image_size=9,
                 weight_decay=0.01, dtype="float64", seed=5)
    X_train, y_train, _, _ = load_mnist()
    default = {**SimpleCNN().hyperparameters, "dtype": "float64"}
    return {
        "small": (small, rng.random((4, 9, 9)), rng.integers(0, 4, 4)),
        "default": (default, X_train[:4].astype(np.float64), y_train[:4]),
    }


def weights(hyperparameters, seed):
    """``SimpleCNN``'s initial weights, with random biases instead of zeros."""
    params = SimpleCNN(**hyperparameters).params
    rng = np.random.default_rng(seed)
    params["b_conv"] = rng.normal(scale=0.1, size=params["b_conv"].shape)
    params["b_sm"] = rng.normal(scale=0.1, size=params["b_sm"].shape)
    return params


def torch_loss_and_grads(torch, hyperparameters, pool, activation, params, images, labels):
    """The loss and its gradients by PyTorch's autograd, in float64."""
    functional = torch.nn.functional
    tensors = {name: torch.tensor(value, dtype=torch.float64, requires_grad=True)
               for name, value in params.items()}
    x = torch.tensor(images, dtype=torch.float64)[:, None]  # one input channel
    z = functional.conv2d(x, tensors["W_conv"][:, None], tensors["b_conv"])
    a = torch.sigmoid(z) if activation == "sigmoid" else torch.relu(z)
    pooling = functional.max_pool2d if pool == "max" else functional.avg_pool2d
    m = pooling(a, hyperparameters["pool_size"])  # floor mode: leftover rows/columns dropped
    scores = functional.linear(m.flatten(1), tensors["W_sm"], tensors["b_sm"])
    decay = hyperparameters["weight_decay"] * ((tensors["W_conv"] ** 2).sum() + (tensors["W_sm"] ** 2).sum())
    loss = functional.cross_entropy(scores, torch.tensor(labels)) + decay
    loss.backward()
    return float(loss.detach()), {name: t.grad.numpy().copy() for name, t in tensors.items()}


def main():
    try:
        import torch
    except ImportError:
        sys.exit("torch is not importable here: run this with /opt/bench-venv/bin/python")
    golden = {"torch_version": np.array(torch.__version__)}
    for seed, (net, (hyperparameters, images, labels)) in enumerate(nets().items()):
        params = weights(hyperparameters, seed)
        golden[f"{net}/hyperparameters"] = np.array(json.dumps(hyperparameters))
        golden[f"{net}/X"], golden[f"{net}/y"] = images, labels
        for name, value in params.items():
            golden[f"{net}/params/{name}"] = value
        for pool in POOLS:
            for activation in ACTIVATIONS:
                loss, grads = torch_loss_and_grads(torch, hyperparameters, pool, activation, params, images, labels)
                case = f"{net}/{pool}/{activation}"
                golden[f"{case}/loss"] = np.array(loss)
                for name, grad in grads.items():
                    golden[f"{case}/grads/{name}"] = grad
                print(f"{case:<24} loss {loss:.15f}")
    GOLDEN_FILE.parent.mkdir(exist_ok=True)
    np.savez_compressed(GOLDEN_FILE, **golden)
    print(f"wrote {GOLDEN_FILE.relative_to(REPOSITORY)} ({GOLDEN_FILE.stat().st_size:,} bytes), torch {torch.__version__}")


if __name__ == "__main__":
    main()
