"""Benchmark: the whole table of the vanishing/exploding experiment, numpy against PyTensor.

The table: two regimes ("vanish": teacher with sigma_max = 1, "explode": sigma_max = 10),
three sequence lengths (2, 10, 100), 500 sequences, 1500 epochs of momentum SGD (lr 0.001,
momentum 0.5 for 6 epochs then 0.9), average cost per epoch after 500 and 1500 epochs.

What is timed, in one run:

* ``numpy mini-batch``: ``course_lib.rnn.train_many`` with its default mini-batches of 100,
  all six cells of the table trained together (``--repeats`` times; the median is reported);
* ``numpy per-sequence``: the same with ``batch_size=1``, the original's one update per
  sequence;
* ``PyTensor per-sequence``: a lean PyTensor graph of that per-sequence algorithm
  (``bench/rnn_pytensor_peer.py``), if PyTensor is importable. Run the script with the
  benchmark environment's Python to get it; the course environment has no PyTensor.

Per-sequence runs make the same number of updates in every epoch, so their time per epoch
is constant; ``--per-sequence-epochs`` and ``--peer-epochs`` below 1500 time that many epochs
and scale to 1500 (reported as "extrapolated"). Compilation is timed apart.

Usage::

    python bench/rnn_table.py                   # full: numpy x3, per-sequence 20 epochs, peer 1500
    python bench/rnn_table.py --quick           # a few minutes less: peer and per-sequence 5 epochs
    python bench/rnn_table.py --peer-epochs 0   # no peer

The machine may be shared: times are medians where repeated and still noisy; the ratios,
measured in the same run, are the figures to compare. CPU seconds (process time) are printed
beside wall seconds: both sides are single-threaded, so CPU time is the fairer comparison
when other jobs compete for the cores. BLAS runs single-threaded for both
sides (the matrices are tiny; threads only add contention).
"""
import os

for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse  # noqa: E402
import statistics  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from course_lib.rnn import RNNGenerator, VanillaRNN, train_many  # noqa: E402

REGIMES = {"vanish": 1.0, "explode": 10.0}
LENGTHS = (2, 10, 100)
LR = 1e-3  # the original's learning rate; momentum 0.5 then 0.9 are train_many's defaults
REPORT_EPOCHS = (500, 1500)
# The original author's table (average cost per epoch), for comparison.
ORIGINAL = {
    ("vanish", 500): (1.2e-5, 1.44e-5, 1.35e-5),
    ("vanish", 1500): (3.21e-9, 5.11e-9, 2.7e-9),
    ("explode", 500): (0.00144, 0.00358, 0.0045),
    ("explode", 1500): (2.39e-5, 0.00352, 0.0045),
}


def make_data(n_seq):
    """One (inputs, targets) per cell, each from a fresh teacher of its regime."""
    cells, data = [], []
    for regime, sigma_max in REGIMES.items():
        for length in LENGTHS:
            cells.append((regime, length))
            data.append(RNNGenerator(sigma_max=sigma_max).inputs_outputs(n_seq, length))
    return cells, data


class Timer:
    """Wall-clock and CPU seconds of a block (CPU time is what a loaded machine does not inflate)."""

    def __enter__(self):
        self._wall, self._cpu = time.perf_counter(), time.process_time()
        return self

    def __exit__(self, *exc):
        self.wall = time.perf_counter() - self._wall
        self.cpu = time.process_time() - self._cpu


def time_numpy(data, epochs, batch_size):
    models = [VanillaRNN(3, 2, 1) for _ in data]
    with Timer() as timer:
        histories = train_many(models, [u for u, _ in data], [y for _, y in data], epochs,
                               lr=LR, batch_size=batch_size)
    return histories, timer


def print_table(title, cells, histories, epochs):
    print(f"\n{title}")
    print(f"{'regime':8} {'epoch':>5} | " + " | ".join(f"len {L:<3} ours   orig  " for L in LENGTHS))
    for regime in REGIMES:
        for epoch in REPORT_EPOCHS:
            if epoch > epochs:
                continue
            row = []
            for j, length in enumerate(LENGTHS):
                k = cells.index((regime, length))
                row.append(f"{histories[k, epoch - 1]:9.3g} {ORIGINAL[(regime, epoch)][j]:8.3g}")
            print(f"{regime:8} {epoch:5d} | " + " | ".join(row))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--epochs", type=int, default=1500, help="epochs of the table (1500)")
    parser.add_argument("--n-seq", type=int, default=500, help="sequences per cell (500)")
    parser.add_argument("--repeats", type=int, default=3, help="numpy mini-batch runs (median)")
    parser.add_argument("--batch-size", type=int, default=100, help="numpy mini-batch size (100)")
    parser.add_argument("--per-sequence-epochs", type=int, default=20,
                        help="epochs timed for numpy batch_size=1, scaled to --epochs (0: skip)")
    parser.add_argument("--peer-epochs", type=int, default=None,
                        help="epochs timed for PyTensor, scaled to --epochs (default: all; 0: skip)")
    parser.add_argument("--quick", action="store_true",
                        help="development run: 1 numpy repeat, 5 per-sequence and peer epochs")
    args = parser.parse_args(argv)
    if args.quick:
        args.repeats, args.per_sequence_epochs = 1, 5
        if args.peer_epochs is None:
            args.peer_epochs = 5
    if args.peer_epochs is None:
        args.peer_epochs = args.epochs

    cells, data = make_data(args.n_seq)
    print(f"table: {len(cells)} cells x {args.n_seq} sequences x {args.epochs} epochs; "
          f"numpy {np.__version__}; load average {os.getloadavg()[0]:.1f} at start")

    # numpy, mini-batches, all six cells at once.
    walls, cpus = [], []
    for _ in range(args.repeats):
        histories, timer = time_numpy(data, args.epochs, args.batch_size)
        walls.append(timer.wall)
        cpus.append(timer.cpu)
        print(f"numpy mini-batch ({args.batch_size}) run: {timer.wall:.2f} s wall, {timer.cpu:.2f} s CPU")
    table_s, table_cpu = statistics.median(walls), statistics.median(cpus)
    print_table(f"average cost per epoch, numpy mini-batches of {args.batch_size} (ours) "
                "beside the original's per-sequence run", cells, histories, args.epochs)

    # numpy, one update per sequence: timed over a few epochs, scaled.
    per_seq_s = None
    if args.per_sequence_epochs > 0:
        n = min(args.per_sequence_epochs, args.epochs)
        seq_histories, timer = time_numpy(data, n, 1)
        per_seq_s, per_seq_cpu = timer.wall * args.epochs / n, timer.cpu * args.epochs / n
        label = "measured" if n == args.epochs else f"extrapolated from {n} epochs"
        print(f"\nnumpy per-sequence (batch_size=1): {per_seq_s:.1f} s wall, {per_seq_cpu:.1f} s CPU "
              f"for the table ({label})")
        if n == args.epochs:
            print_table("average cost per epoch, numpy per-sequence (batch_size=1)", cells,
                        seq_histories, args.epochs)

    # PyTensor, one update per sequence.
    peer_s = None
    if args.peer_epochs > 0:
        try:
            import rnn_pytensor_peer as peer
        except ImportError as exc:
            print(f"\nPyTensor peer: absent ({exc}); run with the benchmark environment's Python")
        else:
            n = min(args.peer_epochs, args.epochs)
            init = VanillaRNN(3, 2, 1).params
            peer_histories, train_wall, train_cpu, compile_s = peer.run_table(data, init, n, lr=LR)
            peer_s, peer_cpu = train_wall * args.epochs / n, train_cpu * args.epochs / n
            label = "measured" if n == args.epochs else f"extrapolated from {n} epochs"
            print(f"\nPyTensor {peer.pytensor.__version__} per-sequence "
                  f"(linker {peer.linker_name()}): {peer_s:.1f} s wall, {peer_cpu:.1f} s CPU "
                  f"for the table ({label}); compilation {compile_s:.1f} s, not counted")
            if per_seq_s is not None:
                m = min(n, seq_histories.shape[1])
                diff = np.max(np.abs(peer_histories[:, :m] - seq_histories[:, :m])
                              / np.abs(seq_histories[:, :m]))
                print(f"same algorithm check: PyTensor vs numpy per-sequence costs, first {m} "
                      f"epochs, max relative difference {diff:.1e}")
            if n == args.epochs:
                print_table("average cost per epoch, PyTensor per-sequence", cells,
                            peer_histories, args.epochs)

    print(f"\nsummary (seconds for the whole table; load average now {os.getloadavg()[0]:.1f})")
    print(f"  numpy mini-batch, median of {args.repeats}: {table_s:.2f} wall, {table_cpu:.2f} CPU")
    if per_seq_s is not None:
        print(f"  numpy per-sequence: {per_seq_s:.1f} wall, {per_seq_cpu:.1f} CPU")
    if peer_s is not None:
        print(f"  PyTensor per-sequence: {peer_s:.1f} wall, {peer_cpu:.1f} CPU")
        print(f"  ratio PyTensor / numpy mini-batch: {peer_s / table_s:.1f}x wall, "
              f"{peer_cpu / table_cpu:.1f}x CPU (goal: >= 20x)")
        if per_seq_s is not None:
            print(f"  ratio numpy per-sequence / PyTensor: {per_seq_s / peer_s:.2f} wall, "
                  f"{per_seq_cpu / peer_cpu:.2f} CPU")
    else:
        print("  PyTensor per-sequence: not run")
    print(f"table_wall_s={table_s:.2f}")


if __name__ == "__main__":
    main()
