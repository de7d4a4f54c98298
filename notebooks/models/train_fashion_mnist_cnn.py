"""The recipe that made ``fashion_mnist_cnn.mat``, the course's pretrained Fashion-MNIST model.

Nothing here is tuned: it is ``SimpleCNN()`` trained by ``fit`` with the library's default
recipe (30 epochs, batches of 32, learning rate 0.02 on a cosine schedule, momentum 0.9,
weight decay 1e-4, seed 0), on the training images minus a validation split, as notebook 03
teaches:

* 5,000 of the 60,000 training images (500 per class, drawn with a fixed seed) are set aside
  for validation and watched after every epoch;
* the network learns from the other 55,000;
* the 10,000 test images are used once, at the end.

It writes two files beside this script (or where ``--output`` says):

``fashion_mnist_cnn.mat``
    the model, by :func:`course_lib.save_model` (read it back with :func:`course_lib.load_model`);
``fashion_mnist_cnn.json``
    the recipe, the per-epoch history, the test accuracy and the time it took.

Run it with the course's Python (about five minutes on a quiet core, half an hour or more on a
busy server; a progress bar shows how far it is), e.g. from notebook 03::

    %run models/train_fashion_mnist_cnn.py --output ~/my_fashion_cnn.mat

With the same thread count on the same machine, a run gives the same weights bit for bit.
"""
import argparse
import json
import pathlib
import platform
import time

import numpy as np
from sklearn.model_selection import train_test_split
from threadpoolctl import threadpool_limits

import course_lib
from course_lib import SimpleCNN, load_fashion_mnist, save_model
from course_lib import cnn

HERE = pathlib.Path(__file__).resolve().parent
VALIDATION_SIZE = 5000
SPLIT_SEED = 0


def parse_arguments():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--output", type=lambda path: pathlib.Path(path).expanduser(),
                        default=HERE / "fashion_mnist_cnn.mat",
                        help="the model file to write (a .mat path); the history goes beside "
                             "it, with .json in place of .mat")
    parser.add_argument("--threads", type=int, default=1,
                        help="BLAS threads (default 1: a student's share of the server)")
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    arguments = parser.parse_args()
    if arguments.output.suffix != ".mat":
        parser.error(f"--output must end in .mat, got {str(arguments.output)!r}")
    if not arguments.output.parent.is_dir():
        parser.error(f"--output: the folder {str(arguments.output.parent)!r} does not exist")
    if arguments.threads < 1:
        parser.error(f"--threads must be at least 1, got {arguments.threads}")
    return arguments


def main():
    arguments = parse_arguments()
    X_train, y_train, X_test, y_test = load_fashion_mnist()
    # stratified: the validation images have the classes in the training set's proportions
    X_fit, X_val, y_fit, y_val = train_test_split(
        X_train, y_train, test_size=VALIDATION_SIZE, stratify=y_train, random_state=SPLIT_SEED)
    net = SimpleCNN()
    recipe = {"epochs": cnn.EPOCHS, "batch_size": cnn.BATCH_SIZE, "lr": cnn.LR,
              "lr_schedule": cnn.LR_SCHEDULE, "momentum": cnn.MOMENTUM}
    print(f"{net!r}\nfit: {recipe}\n{len(X_fit)} training, {len(X_val)} validation "
          f"(stratified, random_state={SPLIT_SEED}), {len(X_test)} test images; "
          f"{arguments.threads} BLAS thread(s)", flush=True)

    started = time.perf_counter()
    with threadpool_limits(arguments.threads):
        history = net.fit(X_fit, y_fit, X_val=X_val, y_val=y_val, progress=not arguments.no_progress)
        seconds = time.perf_counter() - started
        test_accuracy = net.accuracy(X_test, y_test)  # the one look at the test set
    for epoch, (loss, val_accuracy) in enumerate(zip(history["loss"], history["val_accuracy"]), 1):
        print(f"epoch {epoch:2d}: training cost {loss:.4f}, validation accuracy {val_accuracy:.2%}")
    print(f"trained in {seconds:.0f} s; test accuracy {test_accuracy:.2%}")

    save_model(arguments.output, net)
    record = {
        "model": arguments.output.name,
        "hyperparameters": net.hyperparameters,
        "fit": recipe,
        "data": {"training": len(X_fit), "validation": len(X_val), "test": len(X_test),
                 "validation_split": f"sklearn train_test_split(test_size={VALIDATION_SIZE}, "
                                     f"stratify=y_train, random_state={SPLIT_SEED})"},
        "history": history,
        "test_accuracy": test_accuracy,
        "seconds": round(seconds),
        "blas_threads": arguments.threads,
        "machine": f"{platform.machine()}, numpy {np.__version__}, course_lib {course_lib.__version__}",
    }
    history_path = arguments.output.with_suffix(".json")
    history_path.write_text(json.dumps(record, indent=1) + "\n")
    print(f"wrote {arguments.output} and {history_path}")


if __name__ == "__main__":
    main()
