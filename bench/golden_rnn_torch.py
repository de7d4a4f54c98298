"""Golden numbers for VanillaRNN's backpropagation through time, computed once by PyTorch.

micrograd's habit: check the hand-written backward pass against numbers a different, trusted
implementation computed. PyTorch's autograd differentiates the same network, written here from
its definition (not from course_lib), in float64:

    h_0 = 0,  h_t = sigmoid(h_{t-1} W_hh + u_t W_uh + b_hh),  y_t = h_t W_hy + b_hy
    loss "last": mean over sequences and outputs of (y_L - target_L)^2
    loss "all":  mean over sequences, time steps and outputs of (y_t - target_t)^2

for a fixed small batch (4 sequences, 3 inputs, 5 hidden units, 2 outputs: every shape
different, so a transposed weight cannot pass), both losses and several lengths, with weights
large enough that every gradient entry matters. It stores inputs, targets, weights, the loss
and every gradient in ``tests/golden/rnn_bptt_torch.json`` (floats written exactly), so that
``tests/test_rnn_golden.py`` checks course_lib without torch.

Run it with the benchmark environment's Python (the course environment has no torch)::

    /opt/bench-venv/bin/python bench/golden_rnn_torch.py

It prints each case's loss and the largest gradient entry; rerunning it rewrites the same file.
"""
import argparse
import json
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
OUTPUT = ROOT / "tests" / "golden" / "rnn_bptt_torch.json"

N_SEQ, N_IN, N_HIDDEN, N_OUT = 4, 3, 5, 2
LENGTHS = (1, 7, 40)
LOSSES = ("last", "all")
PARAM_SHAPES = {"W_uh": (N_IN, N_HIDDEN), "W_hh": (N_HIDDEN, N_HIDDEN), "W_hy": (N_HIDDEN, N_OUT),
                "b_hh": (N_HIDDEN,), "b_hy": (N_OUT,)}
WEIGHT_SCALE = 0.8  # large enough for every entry to matter, small enough not to saturate


def case_data(seed, length):
    """Inputs, targets and weights of one case, from numpy's seeded generator."""
    rng = np.random.default_rng(seed)
    inputs = rng.normal(size=(N_SEQ, length, N_IN))
    targets = rng.normal(size=(N_SEQ, length, N_OUT))
    params = {name: rng.normal(scale=WEIGHT_SCALE, size=shape) for name, shape in PARAM_SHAPES.items()}
    return inputs, targets, params


def torch_loss_and_grads(inputs, targets, params, loss):
    """The network's loss and autograd's gradient of it, in float64."""
    weights = {name: torch.tensor(value, dtype=torch.float64, requires_grad=True)
               for name, value in params.items()}
    u = torch.tensor(inputs, dtype=torch.float64)
    y = torch.tensor(targets, dtype=torch.float64)
    h = torch.zeros(u.shape[0], N_HIDDEN, dtype=torch.float64)
    outputs = []
    for t in range(u.shape[1]):
        h = torch.sigmoid(h @ weights["W_hh"] + u[:, t] @ weights["W_uh"] + weights["b_hh"])
        outputs.append(h @ weights["W_hy"] + weights["b_hy"])
    outputs = torch.stack(outputs, dim=1)
    if loss == "last":
        value = torch.mean((outputs[:, -1] - y[:, -1]) ** 2)
    else:
        value = torch.mean((outputs - y) ** 2)
    value.backward()
    return value.item(), {name: w.grad.numpy() for name, w in weights.items()}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--output", type=Path, default=OUTPUT, help=f"default: {OUTPUT}")
    args = parser.parse_args(argv)
    cases = []
    for loss in LOSSES:
        for seed, length in enumerate(LENGTHS, start=1):
            inputs, targets, params = case_data(seed, length)
            value, grads = torch_loss_and_grads(inputs, targets, params, loss)
            cases.append({
                "loss": loss, "length": length, "seed": seed,
                "inputs": inputs.tolist(), "targets": targets.tolist(),
                "params": {name: p.tolist() for name, p in params.items()},
                "expected_loss": value,
                "expected_grads": {name: g.tolist() for name, g in grads.items()},
            })
            largest = max(float(np.abs(g).max()) for g in grads.values())
            print(f"loss={loss:4s} length={length:3d}: loss {value:.6g}, largest gradient "
                  f"entry {largest:.3g}")
    golden = {
        "about": "VanillaRNN loss and gradients by PyTorch autograd, float64; "
                 "written by bench/golden_rnn_torch.py, checked by tests/test_rnn_golden.py",
        "torch_version": torch.__version__,
        "sizes": {"n_seq": N_SEQ, "n_in": N_IN, "n_hidden": N_HIDDEN, "n_out": N_OUT},
        "cases": cases,
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    # json writes floats with repr(): the shortest text that reads back to the same double.
    # One case per line keeps the file short and its diffs readable.
    header = json.dumps({key: value for key, value in golden.items() if key != "cases"}, indent=1)
    body = ",\n".join("  " + json.dumps(case) for case in cases)
    args.output.write_text(header[:-2] + ',\n "cases": [\n' + body + "\n ]\n}\n")
    json.loads(args.output.read_text())  # the file must parse back
    print(f"wrote {len(cases)} cases to {args.output}")


if __name__ == "__main__":
    main()
