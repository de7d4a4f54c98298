"""The pretrained Fashion-MNIST network that notebook 03 loads: made by the library with its
default recipe, as its record says, and still scoring on the test set what it scored when
it was trained. Also the recipe script's refusals of bad arguments."""
import json
import pathlib
import subprocess
import sys

import pytest
from threadpoolctl import threadpool_limits

from course_lib import cnn
from course_lib.cnn import SimpleCNN
from course_lib.data import FASHION_MNIST_DIR, load_fashion_mnist
from course_lib.models import load_model

MODELS = pathlib.Path(__file__).resolve().parents[1] / "notebooks" / "models"
SCRIPT = MODELS / "train_fashion_mnist_cnn.py"


@pytest.fixture(scope="module")
def shipped():
    return load_model(MODELS / "fashion_mnist_cnn.mat"), json.loads((MODELS / "fashion_mnist_cnn.json").read_text())


def test_the_model_is_the_default_network_trained_with_the_default_recipe(shipped):
    model, record = shipped
    assert isinstance(model, SimpleCNN)
    assert model.hyperparameters == SimpleCNN().hyperparameters == record["hyperparameters"]
    assert record["fit"] == {"epochs": cnn.EPOCHS, "batch_size": cnn.BATCH_SIZE, "lr": cnn.LR,
                             "lr_schedule": cnn.LR_SCHEDULE, "momentum": cnn.MOMENTUM}
    assert record["data"] == {**record["data"], "training": 55000, "validation": 5000, "test": 10000}
    assert len(record["history"]["val_accuracy"]) == cnn.EPOCHS
    assert record["test_accuracy"] >= 0.87, "the course's goal for Fashion-MNIST"


@pytest.mark.skipif(not FASHION_MNIST_DIR.is_dir(), reason="Fashion-MNIST (dataset-fashion-mnist) not installed")
def test_the_model_scores_what_it_scored_when_it_was_trained(shipped):
    model, record = shipped
    _, _, X_test, y_test = load_fashion_mnist()
    with threadpool_limits(limits=record["blas_threads"]):  # the same rounding as when it was made
        assert model.accuracy(X_test, y_test) == record["test_accuracy"]


@pytest.mark.parametrize("arguments, message", [
    (["--output", "model.txt"], "--output must end in .mat, got 'model.txt'"),
    (["--output", "/no/such/folder/model.mat"], "--output: the folder '/no/such/folder' does not exist"),
    (["--threads", "0"], "--threads must be at least 1, got 0"),
])
def test_the_recipe_script_refuses_bad_arguments_before_training(arguments, message):
    done = subprocess.run([sys.executable, str(SCRIPT), *arguments], capture_output=True, text=True, timeout=120)
    assert done.returncode == 2
    assert message in done.stderr
