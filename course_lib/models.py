"""Trained models in MATLAB files: :func:`save_model` and :func:`load_model`.

A model file is an ordinary MATLAB v7 ``.mat`` file (written by
:func:`course_lib.matlab.save_mat`) holding three variables, so that ``m = load('cnn.mat')``
in MATLAB or Octave gives a struct with

``m.model_class``
    the class name, ``'SimpleCNN'`` or ``'VanillaRNN'``;
``m.hyperparameters``
    the constructor's keyword arguments as one JSON text, e.g.
    ``'{"n_filters": 8, "pool": "max", ...}'``; ``jsondecode(m.hyperparameters)`` turns it
    into a struct, and JSON keeps ints, floats, booleans, text and ``null`` apart, so
    :func:`load_model` gets back exactly the Python values;
``m.params``
    a struct of the weights as plain numeric arrays with numpy's shape and indices
    (``W[i, j]`` is ``m.params.W(i+1, j+1)``; 1-D arrays are 1xN rows).
"""
import importlib
import json
import pathlib

import numpy as np

from course_lib.matlab import MatFileError, load_mat, save_mat

__all__ = ["save_model", "load_model"]

#: The models a file can hold: class name -> module.
_MODEL_CLASSES = {"SimpleCNN": "course_lib.cnn", "VanillaRNN": "course_lib.rnn"}

#: The variables of a model file, which MATLAB's load() returns as struct fields.
_MODEL_VARIABLES = ("model_class", "hyperparameters", "params")


def _model_class(name):
    return getattr(importlib.import_module(_MODEL_CLASSES[name]), name)


def save_model(path, model):
    """Write a trained :class:`~course_lib.cnn.SimpleCNN` or :class:`~course_lib.rnn.VanillaRNN`.

    The file is written atomically (see :func:`course_lib.matlab.save_mat`) and holds the
    variables ``model_class``, ``hyperparameters`` (JSON text) and ``params`` described at
    the top of this module.

    Parameters
    ----------
    path : str or os.PathLike
        Where to write; must end in ``.mat``.
    model : SimpleCNN or VanillaRNN

    Raises
    ------
    ValueError
        If ``model`` is not one of the two models, a hyperparameter does not come back
        unchanged from JSON (e.g. a numpy number, a tuple, NaN), a weight is not a numeric
        array, or the path is not a ``.mat`` path.
    FileNotFoundError
        If the folder of ``path`` does not exist.
    """
    name = type(model).__name__
    if name not in _MODEL_CLASSES or type(model) is not _model_class(name):
        raise ValueError(f"model must be a SimpleCNN or a VanillaRNN, got {name}")
    params = {}
    for key, value in model.params.items():
        array = np.asarray(value)
        if array.dtype.kind not in "fiub":
            raise ValueError(f"{name}.params[{key!r}] must be a numeric array, got dtype {array.dtype}")
        params[key] = array
    save_mat(path, {"model_class": name,
                    "hyperparameters": _hyperparameters_json(name, model.hyperparameters),
                    "params": params})


def _hyperparameters_json(model_name, hyperparameters):
    """The hyperparameters as JSON text, after checking JSON gives them back unchanged."""
    for key, value in hyperparameters.items():
        try:
            text = json.dumps(value, allow_nan=False)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"{model_name} hyperparameter {key!r} = {value!r} cannot be stored "
                             f"as JSON ({exc})") from exc
        if not _same_json_value(json.loads(text), value):
            raise ValueError(f"{model_name} hyperparameter {key!r} = {value!r} "
                             f"({type(value).__name__}) would come back from JSON as "
                             f"{json.loads(text)!r}; use int, float, bool, str, None or a list")
    return json.dumps(hyperparameters, allow_nan=False)


def _same_json_value(decoded, original):
    """Equal, and of the same types all the way down (1 is not 1.0, a list is not a tuple)."""
    if type(decoded) is not type(original):
        return False
    if isinstance(original, list):
        return len(decoded) == len(original) and all(map(_same_json_value, decoded, original))
    return decoded == original


def load_model(path):
    """Rebuild a model that :func:`save_model` wrote (or MATLAB/Octave loaded and re-saved).

    The class is rebuilt from its stored hyperparameters, then every weight array is
    replaced by the stored one, bit for bit: the loaded model predicts exactly what the
    saved one did.

    Parameters
    ----------
    path : str or os.PathLike
        A ``.mat`` file written by :func:`save_model`.

    Returns
    -------
    SimpleCNN or VanillaRNN

    Raises
    ------
    FileNotFoundError
        If ``path`` does not exist.
    MatFileError
        (a ``ValueError``) if the file is not MATLAB, is damaged, or lacks what the model
        needs (a missing variable or field, an unknown class, hyperparameters that are not
        JSON text of an object, a weight of the wrong size or class); the message starts
        with the file's path.
    """
    variables = load_mat(path, squeeze=False)
    path = pathlib.Path(path)
    missing = [name for name in _MODEL_VARIABLES if name not in variables]
    if missing:
        raise MatFileError(
            f"{path}: not a saved model: variable(s) {', '.join(missing)} missing "
            f"(a model file holds {', '.join(_MODEL_VARIABLES)})"
        )
    class_name = variables["model_class"]
    if class_name not in _MODEL_CLASSES:
        raise MatFileError(
            f"{path}: model_class must be one of {sorted(_MODEL_CLASSES)}, got {class_name!r}"
        )
    if not isinstance(variables["params"], dict):
        raise MatFileError(f"{path}: params must be a struct, got "
                           f"{type(variables['params']).__name__}")
    hyperparameters = _decoded_hyperparameters(path, variables["hyperparameters"])
    try:
        model = _model_class(class_name)(**hyperparameters)
    except (TypeError, ValueError) as exc:
        raise MatFileError(f"{path}: {class_name} rejects the stored hyperparameters: {exc}") from exc
    model.params = _restored_params(path, variables["params"], model.params)
    return model


def _decoded_hyperparameters(path, text):
    """The constructor's keyword arguments from the stored JSON text."""
    if not isinstance(text, str):
        raise MatFileError(f"{path}: hyperparameters must be JSON text (a char row), got "
                           f"{type(text).__name__}")
    try:
        decoded = json.loads(text, parse_constant=_reject_constant)
    except ValueError as exc:
        raise MatFileError(f"{path}: hyperparameters are not valid JSON ({exc}): {text!r}") from exc
    if not isinstance(decoded, dict):
        raise MatFileError(f"{path}: hyperparameters must be a JSON object of keyword "
                           f"arguments, got {type(decoded).__name__}: {text!r}")
    return decoded


def _reject_constant(name):
    raise ValueError(f"{name} is not a JSON number")


def _restored_params(path, stored, expected):
    """The stored weights, checked against and shaped like a fresh model's ``expected``."""
    missing = sorted(set(expected) - set(stored))
    extra = sorted(set(stored) - set(expected))
    if missing or extra:
        raise MatFileError(
            f"{path}: params must hold exactly {sorted(expected)}; "
            f"missing {missing}, unexpected {extra}"
        )
    restored = {}
    for key, reference in expected.items():
        value = stored[key]
        array = np.asarray(value)
        reference = np.asarray(reference)
        # MATLAB has no 1-D arrays and drops trailing singleton dimensions, so compare the
        # sizes without their singleton dimensions, then give back numpy's exact shape.
        if (not isinstance(value, np.ndarray) or array.dtype.kind not in "fiub"
                or np.squeeze(array).shape != np.squeeze(reference).shape):
            raise MatFileError(
                f"{path}: params.{key} must be a numeric array of shape {reference.shape}, "
                f"got {getattr(array, 'shape', type(value).__name__)} {array.dtype}"
            )
        # MATLAB users may re-save float32 weights as double: accept that only when the
        # conversion back is exact, so the model stays bit for bit what was exported.
        converted = array.astype(reference.dtype)
        if not np.array_equal(converted, array):
            raise MatFileError(
                f"{path}: params.{key} holds {array.dtype} values that {reference.dtype} "
                "cannot represent exactly"
            )
        restored[key] = np.ascontiguousarray(converted.reshape(reference.shape))
    return restored
