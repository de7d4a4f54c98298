"""SimpleCNN's loss and gradients against PyTorch's, stored once (micrograd's habit).

``tests/golden/cnn_torch.npz`` holds, for two nets (a small one, and the course's default net on
four real MNIST digits), each with max and mean pooling and sigmoid and ReLU: the inputs, the
weights, and the loss and every gradient that PyTorch's autograd computed in float64 (see
``bench/golden_cnn_torch.py``, which says how to regenerate it). No torch is needed here.

Stated tolerance: a relative error (``course_lib.gradcheck.rel_error``) below 1e-10 for the loss
and for every gradient, with the fused convolution block and without it.
"""
import json
import pathlib

import numpy as np
import pytest

from course_lib.cnn import SimpleCNN
from course_lib.gradcheck import rel_error

GOLDEN_FILE = pathlib.Path(__file__).parent / "golden" / "cnn_torch.npz"
TOLERANCE = 1e-10


@pytest.fixture(scope="module")
def golden():
    with np.load(GOLDEN_FILE) as stored:
        return {name: stored[name] for name in stored.files}


def cases():
    return [(net, pool, activation) for net in ("small", "default")
            for pool in ("max", "mean") for activation in ("sigmoid", "relu")]


def test_the_golden_file_holds_every_case(golden):
    for net, pool, activation in cases():
        assert f"{net}/{pool}/{activation}/loss" in golden
        for name in ("W_conv", "b_conv", "W_sm", "b_sm"):
            assert golden[f"{net}/{pool}/{activation}/grads/{name}"].dtype == np.float64
    hyperparameters = json.loads(str(golden["default/hyperparameters"]))
    assert (hyperparameters["n_filters"], hyperparameters["filter_size"], hyperparameters["image_size"]) == (20, 9, 28)
    assert np.all(golden["default/params/b_conv"] != 0)  # biases that a wrong gradient cannot hide behind


@pytest.mark.parametrize("fused", [True, False], ids=["fused block", "layers"])
@pytest.mark.parametrize("net, pool, activation", cases())
def test_loss_and_every_gradient_equal_pytorch(golden, net, pool, activation, fused):
    hyperparameters = json.loads(str(golden[f"{net}/hyperparameters"]))
    model = SimpleCNN(**{**hyperparameters, "pool": pool, "activation": activation})
    model.fused_conv_block = fused
    model.params = {name: golden[f"{net}/params/{name}"].copy() for name in model.params}
    loss, grads = model.loss_and_grads(golden[f"{net}/X"], golden[f"{net}/y"])
    case = f"{net}/{pool}/{activation}"
    assert rel_error(loss, golden[f"{case}/loss"]) < TOLERANCE, (loss, float(golden[f"{case}/loss"]))
    for name, grad in grads.items():
        error = rel_error(grad, golden[f"{case}/grads/{name}"])
        assert error < TOLERANCE, (name, error)
