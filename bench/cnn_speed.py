"""Training speed of ``SimpleCNN.train_step`` beside PyTorch's CPU build of the same net.

Times one SGD-with-momentum step of the course's default network (20 kernels 9x9, sigmoid,
2x2 max pooling, softmax over 10 classes, weight decay), float32, on batches of 256 random
28x28 images, and prints images per second: the median over several repeats after a warm-up.
It times ``SimpleCNN`` twice, interleaved: as it trains by default, with the fused
convolution block (``numpy``), and with ``fused_conv_block = False``, the fast layers one
after another (``numpy, layers``); the ratio of the two is what the fused block gains, the
measure of whether the course still needs it.
When ``torch`` is importable it times, in the same run and interleaved with numpy's repeats
(so all see the same load), the same net in PyTorch: ``Conv2d(1, 20, 9)``, ``Sigmoid``,
``MaxPool2d(2)``, ``Linear(2000, 10)``, cross-entropy, ``SGD(lr, momentum)`` with the same
weight decay on the weights only, and prints the ratios numpy / torch (above 1: numpy faster).
All run with the same number of threads (``torch.set_num_threads`` and threadpoolctl for
numpy's BLAS). Before timing, the nets are given the same weights and their losses on one
batch are printed side by side: a check that they compute the same thing.

Usage, from the repository root::

    /opt/bench-venv/bin/python bench/cnn_speed.py              # numpy and torch
    /opt/dlcourse/venv/bin/python bench/cnn_speed.py           # numpy only (no torch there)
    python bench/cnn_speed.py --threads 1 --batch-size 32    # a student's share of the server

Options: ``--threads`` (default: all cores), ``--batch-size`` (256), ``--repeats`` (30 timed
repeats of ``--steps`` steps each, default 5), ``--warmup`` (10 steps). On a shared machine
the figures move from run to run: run it several times and compare medians and ratios.

OpenBLAS reads ``OPENBLAS_CORETYPE`` and ``OPENBLAS_L2_SIZE`` from the environment; a forced
core type can pick slower kernels. The script prints both variables and the BLAS kernel in use
(threadpoolctl's ``architecture``) so runs with them set and unset can be told apart.
"""
import argparse
import os
import pathlib
import statistics
import sys
import time

import numpy as np

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))  # this checkout's course_lib

from course_lib.cnn import SimpleCNN  # noqa: E402

try:
    from threadpoolctl import threadpool_info, threadpool_limits
except ImportError:  # threadpoolctl comes with scikit-learn (an mlxtend dependency)
    threadpool_info = threadpool_limits = None


def parse_arguments():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--threads", type=int, default=os.cpu_count(),
                        help="threads for numpy's BLAS and for torch (default: all cores)")
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--repeats", type=int, default=30, help="timed repeats (median reported)")
    parser.add_argument("--steps", type=int, default=5, help="train steps per timed repeat")
    parser.add_argument("--warmup", type=int, default=10, help="untimed steps before timing")
    arguments = parser.parse_args()
    for name in ("threads", "batch_size", "repeats", "steps"):
        if getattr(arguments, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be >= 1, got {getattr(arguments, name)}")
    return arguments


def make_batch(batch_size, seed=0):
    """Random images in [0, 1) and labels: the speed does not depend on the pixel values."""
    rng = np.random.default_rng(seed)
    images = rng.random((batch_size, 28, 28), dtype=np.float32)
    labels = rng.integers(0, 10, batch_size)
    return images, labels


class TorchPeer:
    """The same net, loss and optimiser in PyTorch, started from the numpy net's weights."""

    def __init__(self, torch, net, lr, momentum):
        self.torch = torch
        nn = torch.nn
        self.conv = nn.Conv2d(1, net.n_filters, net.filter_size)
        self.linear = nn.Linear(net.n_features, net.n_classes)
        self.model = nn.Sequential(self.conv, nn.Sigmoid(), nn.MaxPool2d(net.pool_size),
                                   nn.Flatten(), self.linear)
        with torch.no_grad():
            self.conv.weight.copy_(torch.from_numpy(net.params["W_conv"][:, None]))
            self.conv.bias.copy_(torch.from_numpy(net.params["b_conv"]))
            self.linear.weight.copy_(torch.from_numpy(net.params["W_sm"]))
            self.linear.bias.copy_(torch.from_numpy(net.params["b_sm"]))
        # torch adds weight_decay * w to the gradient: the gradient of lambda * ||w||^2 is 2 lambda w
        decayed = [self.conv.weight, self.linear.weight]
        self.optimizer = torch.optim.SGD(
            [{"params": decayed, "weight_decay": 2 * net.weight_decay},
             {"params": [self.conv.bias, self.linear.bias], "weight_decay": 0.0}],
            lr=lr, momentum=momentum)
        self.weights = decayed
        self.weight_decay = net.weight_decay
        self.loss_function = nn.CrossEntropyLoss()

    def loss(self, images, labels):
        with self.torch.no_grad():
            data_loss = self.loss_function(self.model(images), labels)
            decay = sum((w ** 2).sum() for w in self.weights) * self.weight_decay
            return float(data_loss + decay)

    def train_step(self, images, labels):
        self.optimizer.zero_grad()
        loss = self.loss_function(self.model(images), labels)
        loss.backward()
        self.optimizer.step()


def images_per_second(step, batch_size, steps):
    start = time.perf_counter()
    for _ in range(steps):
        step()
    return batch_size * steps / (time.perf_counter() - start)


def describe_blas():
    variables = {name: os.environ.get(name, "(unset)") for name in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")}
    print("environment: " + ", ".join(f"{k}={v}" for k, v in variables.items()))
    if threadpool_info is None:
        print("numpy BLAS: threadpoolctl not installed, kernel unknown")
        return
    for pool in threadpool_info():
        if pool.get("user_api") == "blas":
            print(f"numpy BLAS: {pool.get('internal_api')} {pool.get('version')}, "
                  f"kernel {pool.get('architecture')}, {pool.get('num_threads')} threads")


def main():
    arguments = parse_arguments()
    if threadpool_limits is not None:
        threadpool_limits(arguments.threads)
    try:
        import torch
    except ImportError:
        torch = None

    net = SimpleCNN()
    layered = SimpleCNN(**net.hyperparameters)  # same weights (same seed), no fused block
    layered.fused_conv_block = False
    lr, momentum = 0.1, 0.9
    images, labels = make_batch(arguments.batch_size)
    print(f"net: {net!r}")
    print(f"batch {arguments.batch_size}, float32, {arguments.threads} thread(s), "
          f"{arguments.repeats} repeats of {arguments.steps} steps after {arguments.warmup} warm-up steps")
    print(f"numpy {np.__version__}")
    describe_blas()

    numpy_loss, _ = net.loss_and_grads(images, labels)
    print(f"same weights, one batch: loss with the fused block {numpy_loss:.6f}, "
          f"with the layers {layered.loss_and_grads(images, labels)[0]:.6f}")
    timers = {"numpy": lambda: net.train_step(images, labels, lr, momentum),
              "numpy, layers": lambda: layered.train_step(images, labels, lr, momentum)}
    if torch is None:
        print("torch: not importable in this Python, timing numpy only "
              "(run with /opt/bench-venv/bin/python for the comparison)")
    else:
        torch.set_num_threads(arguments.threads)
        peer = TorchPeer(torch, net, lr, momentum)
        torch_images = torch.from_numpy(images[:, None])
        torch_labels = torch.from_numpy(labels)
        print(f"torch {torch.__version__}, {torch.get_num_threads()} thread(s)")
        print(f"same net, same weights, one batch: loss numpy {numpy_loss:.6f}, "
              f"torch {peer.loss(torch_images, torch_labels):.6f}")
        timers["torch"] = lambda: peer.train_step(torch_images, torch_labels)

    for step in timers.values():
        for _ in range(arguments.warmup):
            step()
    rates = {name: [] for name in timers}
    for _ in range(arguments.repeats):  # interleaved, so a burst of load hits both
        for name, step in timers.items():
            rates[name].append(images_per_second(step, arguments.batch_size, arguments.steps))

    medians = {name: statistics.median(values) for name, values in rates.items()}
    for name, values in rates.items():
        quartiles = statistics.quantiles(values, n=4) if len(values) > 1 else values * 3
        print(f"{name:>13}: median {medians[name]:8.0f} images/s "
              f"(quartiles {quartiles[0]:.0f} to {quartiles[2]:.0f}; "
              f"{1000 * arguments.batch_size / medians[name]:.2f} ms per step)")
    print(f"fused block gain: {medians['numpy'] / medians['numpy, layers']:.2f} "
          f"(numpy / numpy, layers; above 1: the fused block is faster)")
    if "torch" in rates:
        print(f"ratio numpy / torch: {medians['numpy'] / medians['torch']:.2f} (above 1: numpy is faster)")
        print(f"ratio numpy, layers / torch: {medians['numpy, layers'] / medians['torch']:.2f}")


if __name__ == "__main__":
    main()
