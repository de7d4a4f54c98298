"""course_lib.rnn against numbers from outside.

1. Golden numbers: PyTorch's autograd (float64) computed the loss and every gradient of the
   same network for a fixed batch (``bench/golden_rnn_torch.py``, run once with the benchmark
   environment; the numbers, inputs and weights are in ``tests/golden/``). Our BPTT must agree
   to a relative error of 1e-10: both are float64 evaluations of the same sums, so only
   rounding separates them (at most 1.4e-13 here, on entries near zero, 1e-15 elsewhere); a
   wrong index or a missing term gives errors near 1.
2. The original table: the Theano experiment this course rebuilds published its average cost
   per epoch. Trained as it was trained (one update per sequence), our "explode" rows
   reproduce it; those cells are pinned below.
"""
import json
import pathlib

import numpy as np
import pytest

from course_lib.gradcheck import rel_error
from course_lib.rnn import PARAM_NAMES, RNNGenerator, VanillaRNN, train_many

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


# --------------------------------------------------------------------------------------------
# The original table
# --------------------------------------------------------------------------------------------
#: The original write-up's "explode" rows (teacher sigma_max = 10): average cost per epoch
#: after 500 epochs, as it printed them, for the sequence lengths pinned here.
ORIGINAL_EXPLODE_500 = {2: 0.00144, 10: 0.00358}
#: The cells pinned here: lengths 2 and 10 after 500 epochs, trained side by side by
#: train_many (250,000 one-sequence updates: about 20 s of CPU, under a minute on a busy
#: machine). The 1500-epoch cells match as well (ours 2.389e-5 and 0.003522 against 2.39e-5
#: and 0.00352) but cost three times as much, and length 100 several times more again (its
#: cells are the original's 0.0045 to two digits): they stay in bench/rnn_table.py. The
#: "vanish" rows do not match the original yet: not pinned.
PINNED_LENGTHS = (2, 10)
EPOCHS = 500
#: Length 10: ours (0.0035794), rounded to the three significant digits the original
#: printed, is the original's number. Length 2: ours is 0.001452 against 0.00144, 0.8 % apart:
#: as close as the original's random draws (which we can only imitate) allow. 1 % still tells
#: a faithful run from a different algorithm: mini-batches of 100 give 0.00153 there (6 % off).
THREE_DIGIT_LENGTHS = {10}
RELATIVE_TOLERANCE = 0.01


@pytest.fixture(scope="module")
def explode_costs():
    """Average cost of epoch 500 of the "explode" cells, trained one update per sequence."""
    data = [RNNGenerator(sigma_max=10.0).inputs_outputs(500, length) for length in PINNED_LENGTHS]
    models = [VanillaRNN(3, 2, 1) for _ in PINNED_LENGTHS]
    histories = train_many(models, [u for u, _ in data], [y for _, y in data], epochs=EPOCHS,
                           lr=1e-3, batch_size=1)
    return dict(zip(PINNED_LENGTHS, histories[:, -1]))


@pytest.mark.parametrize("length", PINNED_LENGTHS)
def test_explode_rows_reproduce_the_original_table(explode_costs, length):
    ours, original = explode_costs[length], ORIGINAL_EXPLODE_500[length]
    shown = f"length {length}, epoch {EPOCHS}: ours {ours:.5g}, the original {original:.3g}"
    if length in THREE_DIGIT_LENGTHS:
        assert float(f"{ours:.3g}") == original, shown
    else:
        assert ours == pytest.approx(original, rel=RELATIVE_TOLERANCE), shown
