"""Convolution, max pooling and matrix-product speed of notebook 07's numpy versions beside PyTorch.

Times, on one batch of random 28x28 float32 images and the course CNN's 20 kernels of 9x9:

* the convolution layer's forward pass written four vectorised ways (stride tricks + einsum,
  im2col + matmul, scipy.signal per image-kernel pair, the course's banded single matmul),
  and ``torch.nn.functional.conv2d`` when torch is importable;
* 2x2 max pooling of the resulting maps: a reshape + max, the course's layer (which also
  keeps the argmax for the backward pass), and ``torch.nn.functional.max_pool2d``;
* a 1024 x 1024 float32 matrix product, numpy against ``torch.matmul``, in GFLOP/s.

Every repeat times each implementation once, in turn, so all of them see the same machine
load; the script prints the median time per call and, when torch is there, the ratio
``torch time / numpy time`` (above 1: numpy is faster). Before timing it checks that every
version computes the same maps as the first one (and as torch's). The Python-loop versions
of the notebook are left out: they take seconds per batch.

Usage, from the repository root::

    /opt/bench-venv/bin/python bench/speed_conv_pool.py          # numpy, scipy and torch
    /opt/dlcourse/venv/bin/python bench/speed_conv_pool.py       # without torch
    python bench/speed_conv_pool.py --batch-size 256 --repeats 30 --threads 1

On a shared machine the figures move from run to run: compare medians and ratios of
several runs.
"""
import argparse
import os
import pathlib
import statistics
import sys
import time

import numpy as np
import scipy.signal
from numpy.lib.stride_tricks import sliding_window_view

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))  # this checkout's course_lib

from course_lib import fast_layers  # noqa: E402

try:
    from threadpoolctl import threadpool_limits
except ImportError:  # threadpoolctl comes with scikit-learn (an mlxtend dependency)
    threadpool_limits = None


def parse_arguments():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--threads", type=int, default=os.cpu_count(),
                        help="threads for numpy's BLAS and for torch (default: all cores)")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=20, help="timed repeats (median reported)")
    arguments = parser.parse_args()
    for name in ("threads", "batch_size", "repeats"):
        if getattr(arguments, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be >= 1, got {getattr(arguments, name)}")
    return arguments


# -- the numpy versions of notebook 07 ------------------------------------------------------
def conv_einsum(images, kernels):
    windows = sliding_window_view(images, kernels.shape[1:], axis=(1, 2))
    return np.einsum("nijab,fab->nfij", windows, kernels)


def conv_im2col(images, kernels):
    n_kernels, k, _ = kernels.shape
    windows = sliding_window_view(images, (k, k), axis=(1, 2))
    m = windows.shape[1]
    columns = windows.reshape(len(images) * m * m, k * k)
    product = columns @ kernels.reshape(n_kernels, k * k).T
    return product.reshape(len(images), m, m, n_kernels).transpose(0, 3, 1, 2)


def conv_scipy(images, kernels):
    return np.array([[scipy.signal.correlate2d(image, kernel, mode="valid") for kernel in kernels]
                     for image in images])


def conv_banded(images, kernels):
    return fast_layers.conv_forward(images, kernels, np.zeros(len(kernels), dtype=kernels.dtype))[0]


def pool_reshape(maps, p=2):
    n, f, size, _ = maps.shape
    return maps.reshape(n, f, size // p, p, size // p, p).max(axis=(3, 5))


def pool_course(maps, p=2):
    return fast_layers.max_pool_forward(maps, p)[0]


def median_times(functions, repeats):
    """Median seconds per call of each function, timed in turn within every repeat."""
    for function in functions.values():  # warm-up: caches, threads, lazily built tables
        function()
    samples = {name: [] for name in functions}
    for _ in range(repeats):
        for name, function in functions.items():
            start = time.perf_counter()
            function()
            samples[name].append(time.perf_counter() - start)
    return {name: statistics.median(values) for name, values in samples.items()}


def report(title, medians, peer_name=None):
    print(f"\n{title}")
    peer = medians.get(peer_name)
    for name, seconds in medians.items():
        ratio = "" if peer is None or name == peer_name else \
            f"   ratio torch / this: {peer / seconds:6.2f}"
        print(f"  {name:34} median {seconds * 1e3:9.3f} ms{ratio}")


def main():
    arguments = parse_arguments()
    limits = threadpool_limits(arguments.threads) if threadpool_limits else None
    try:
        import torch
    except ImportError:
        torch = None
    else:
        torch.set_num_threads(arguments.threads)

    rng = np.random.default_rng(0)
    images = rng.random((arguments.batch_size, 28, 28), dtype=np.float32)
    kernels = rng.uniform(-0.1, 0.1, (20, 9, 9)).astype(np.float32)
    print(f"batch {arguments.batch_size} images 28x28, 20 kernels 9x9, float32, "
          f"{arguments.threads} thread(s), median of {arguments.repeats} repeats")
    print(f"numpy {np.__version__}, threadpoolctl {'on' if limits else 'absent'}, "
          f"torch {torch.__version__ if torch else 'not installed'}")

    convolutions = {
        "stride tricks + einsum": lambda: conv_einsum(images, kernels),
        "im2col + matmul": lambda: conv_im2col(images, kernels),
        "scipy.signal per pair": lambda: conv_scipy(images, kernels),
        "course_lib banded matmul": lambda: conv_banded(images, kernels),
    }
    maps = conv_banded(images, kernels)
    poolings = {
        "reshape + max": lambda: pool_reshape(maps),
        "course_lib (keeps the argmax)": lambda: pool_course(maps),
    }
    size = 1024
    a, b = rng.random((size, size), dtype=np.float32), rng.random((size, size), dtype=np.float32)
    products = {"numpy a @ b": lambda: a @ b}

    if torch is not None:
        images_t = torch.from_numpy(images)[:, None]  # (N, 1, 28, 28)
        kernels_t = torch.from_numpy(kernels)[:, None]  # (20, 1, 9, 9); conv2d correlates
        maps_t = torch.from_numpy(np.ascontiguousarray(maps))
        a_t, b_t = torch.from_numpy(a), torch.from_numpy(b)
        # tensors made from numpy arrays do not require gradients: no autograd bookkeeping
        convolutions["torch conv2d"] = lambda: torch.nn.functional.conv2d(images_t, kernels_t)
        poolings["torch max_pool2d"] = lambda: torch.nn.functional.max_pool2d(maps_t, 2)
        products["torch.matmul"] = lambda: torch.matmul(a_t, b_t)

    # every version must compute the same thing before its speed means anything
    for name, function in convolutions.items():
        result = np.asarray(function())
        assert np.allclose(result, maps, atol=1e-5), f"{name} disagrees with the banded layer"
    for name, function in poolings.items():
        assert np.array_equal(np.asarray(function()), pool_reshape(maps)), f"{name} disagrees"
    print("check: every convolution and pooling version gives the same maps")

    peer = "torch conv2d" if torch is not None else None
    report("convolution layer, forward", median_times(convolutions, arguments.repeats), peer)
    peer = "torch max_pool2d" if torch is not None else None
    report("2x2 max pooling", median_times(poolings, arguments.repeats), peer)
    medians = median_times(products, arguments.repeats)
    peer = "torch.matmul" if torch is not None else None
    report(f"{size} x {size} float32 matrix product", medians, peer)
    for name, seconds in medians.items():
        print(f"  {name:34} {2 * size**3 / seconds / 1e9:9.1f} GFLOP/s")


if __name__ == "__main__":
    main()
