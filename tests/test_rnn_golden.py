"""course_lib.rnn against numbers from outside.

Golden numbers: PyTorch's autograd (float64) computed the loss and every gradient of the same
network for a fixed batch (``bench/golden_rnn_torch.py``, run once with the benchmark
environment; the numbers, inputs and weights are in ``tests/golden/``). Our BPTT must agree to
a relative error of 1e-10: both are float64 evaluations of the same sums, so only rounding
separates them (at most 1.4e-13 here, on entries near zero, 1e-15 elsewhere); a wrong index or
a missing term gives errors near 1.
"""
import json
import pathlib

import numpy as np
import pytest

from course_lib.gradcheck import rel_error
from course_lib.rnn import PARAM_NAMES, VanillaRNN

GOLDEN = pathlib.Path(__file__).parent / "golden" / "rnn_bptt_torch.json"
GOLDEN_TOLERANCE = 1e-10


def golden_cases():
    cases = json.loads(GOLDEN.read_text())["cases"]
    return {f"{case['loss']}-L{case['length']}": case for case in cases}


def test_golden_file_holds_both_losses_and_several_lengths():
    cases = golden_cases().values()
    assert {case["loss"] for case in cases} == {"last", "all"}
    assert sorted({case["length"] for case in cases}) == [1, 7, 40]


@pytest.mark.parametrize("name", sorted(golden_cases()))
def test_bptt_matches_pytorch_autograd(name):
    case = golden_cases()[name]
    inputs, targets = np.array(case["inputs"]), np.array(case["targets"])
    model = VanillaRNN(inputs.shape[2], len(case["params"]["b_hh"]), targets.shape[2],
                       loss=case["loss"])
    model.params = {key: np.array(value) for key, value in case["params"].items()}
    loss, grads = model.loss_and_grads(inputs, targets)
    assert rel_error(loss, case["expected_loss"]) < GOLDEN_TOLERANCE
    assert set(grads) == set(PARAM_NAMES) == set(case["expected_grads"])
    for key in PARAM_NAMES:
        expected = np.array(case["expected_grads"][key])
        assert grads[key].shape == expected.shape, key
        assert rel_error(grads[key], expected) < GOLDEN_TOLERANCE, (key, rel_error(grads[key], expected))

