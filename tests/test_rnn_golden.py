"""course_lib.rnn against numbers from outside.

1. Golden numbers: PyTorch's autograd (float64) computed the loss and every gradient of the
   same network for a fixed batch (``bench/golden_rnn_torch.py``, run once with the benchmark
   environment; the numbers, inputs and weights are in ``tests/golden/``). Our BPTT must agree
   to a relative error of 1e-10: both are float64 evaluations of the same sums, so only
   rounding separates them (at most 1.4e-13 here, on entries near zero, 1e-15 elsewhere); a
   wrong index or a missing term gives errors near 1.
2. The original table: the Theano experiment this course rebuilds published its average cost
   per epoch. Trained as it was trained (one update per sequence), with the teachers of
   ``course_lib.rnn.TABLE_REGIMES``, our cells reproduce it; those of lengths 2 and 10 after
   500 epochs are pinned below.
"""
import json
import pathlib

import numpy as np
import pytest

from course_lib.gradcheck import rel_error
from course_lib.rnn import (ORIGINAL_TABLE, PARAM_NAMES, TABLE_LENGTHS, TABLE_REGIMES, VanillaRNN,
                            table_data, train_many)

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
#: The cells pinned here: both regimes (teachers course_lib.rnn.TABLE_REGIMES), lengths 2 and
#: 10, after 500 epochs, trained one update per sequence side by side by train_many (four
#: networks in one: 250,000 updates, about 25 s of CPU, under a minute on a busy machine). The
#: other cells match as well (notebook 04 shows the whole table: every cell within 3.2 %), but
#: the 1500-epoch cells cost three times as much, and length 100 several times more again: they
#: stay in bench/rnn_table.py and the notebook.
PINNED_LENGTHS = (2, 10)
EPOCHS = 500
#: explode, length 10: ours (0.0035794), rounded to the three significant digits the original
#: printed, is the original's number.
THREE_DIGIT_CELLS = {("explode", 10)}
#: explode, length 2: ours is 0.001452 against 0.00144, 0.8 % apart, as close as the
#: original's random draws (which we can only imitate) allow; 1 % still tells a faithful run
#: from a different algorithm: mini-batches of 100 give 0.00153 there (6 % off).
#: vanish: ours are 2.0 % (length 2) and 3.0 % (length 10) above the original with the
#: teacher's sigma_max = 0.1. 5 % tells the original's teacher from others: the difference
#: grows with sigma_max (6 % and 8 % at 0.2), and sigma_max = 1 misses by 41 % and 55 %.
RELATIVE_TOLERANCE = {("explode", 2): 0.01, ("vanish", 2): 0.05, ("vanish", 10): 0.05}
PINNED_CELLS = [(regime, length) for regime in TABLE_REGIMES for length in PINNED_LENGTHS]


@pytest.fixture(scope="module")
def table_costs():
    """Average cost of epoch 500 of the pinned cells, trained one update per sequence."""
    data = [table_data(regime, length) for regime, length in PINNED_CELLS]
    models = [VanillaRNN(3, 2, 1) for _ in PINNED_CELLS]
    histories = train_many(models, [u for u, _ in data], [y for _, y in data], epochs=EPOCHS,
                           lr=1e-3, batch_size=1)
    return dict(zip(PINNED_CELLS, histories[:, -1]))


@pytest.mark.parametrize("cell", PINNED_CELLS, ids=[f"{r}-L{n}" for r, n in PINNED_CELLS])
def test_per_sequence_training_reproduces_the_original_table(table_costs, cell):
    regime, length = cell
    ours = table_costs[cell]
    original = ORIGINAL_TABLE[(regime, EPOCHS)][TABLE_LENGTHS.index(length)]
    shown = f"{regime}, length {length}, epoch {EPOCHS}: ours {ours:.5g}, the original {original:.3g}"
    if cell in THREE_DIGIT_CELLS:
        assert float(f"{ours:.3g}") == original, shown
    else:
        assert ours == pytest.approx(original, rel=RELATIVE_TOLERANCE[cell]), shown
