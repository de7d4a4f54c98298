"""Tests of course_lib.models: trained models through MATLAB files, bit for bit, and every
way a model file can be wrong. Octave (installed with ``deploy/install.sh --test-tools``)
stands in for MATLAB: it loads the export, decodes its JSON and re-saves it."""
import json

import numpy as np
import pytest

from course_lib.cnn import SimpleCNN
from course_lib.matlab import MatFileError, load_mat, save_mat
from course_lib.models import load_model, save_model
from course_lib.rnn import VanillaRNN
from octavekit import needs_octave, run_octave

RNN_INPUTS = np.random.default_rng(1).normal(size=(4, 7, 3))


def trained_rnn():
    """A VanillaRNN whose weights are not the constructor's (as after training)."""
    model = VanillaRNN(n_in=3, n_hidden=6, n_out=2, seed=5, loss="all")
    rng = np.random.default_rng(0)
    for name, value in model.params.items():
        model.params[name] = value + rng.normal(size=value.shape)
    return model


def trained_cnn():
    """A SimpleCNN with perturbed float32 weights."""
    model = SimpleCNN(n_filters=4, weight_decay=2.5e-4, pool="mean")
    rng = np.random.default_rng(2)
    for name, value in model.params.items():
        model.params[name] = value + 0.01 * rng.normal(size=value.shape).astype(value.dtype)
    return model


def cnn_inputs(model):
    side = model.hyperparameters["image_size"]
    return np.random.default_rng(3).random((5, side, side))


def assert_same_model(loaded, original, inputs):
    assert type(loaded) is type(original)
    assert loaded.hyperparameters == original.hyperparameters
    assert {k: type(v) for k, v in loaded.hyperparameters.items()} == \
        {k: type(v) for k, v in original.hyperparameters.items()}
    assert list(loaded.params) == list(original.params)
    for name, value in original.params.items():
        restored = loaded.params[name]
        assert restored.shape == value.shape and restored.dtype == value.dtype, name
        assert restored.tobytes() == np.ascontiguousarray(value).tobytes(), name  # bit for bit
    np.testing.assert_array_equal(loaded.predict(inputs), original.predict(inputs))


@pytest.mark.parametrize("make, inputs", [(trained_rnn, lambda _: RNN_INPUTS),
                                          (trained_cnn, cnn_inputs)])
def test_round_trip_is_bit_for_bit(tmp_path, make, inputs):
    model = make()
    save_model(tmp_path / "model.mat", model)
    assert_same_model(load_model(tmp_path / "model.mat"), model, inputs(model))


def test_a_model_file_is_plain_matlab_data_with_json_hyperparameters(tmp_path):
    model = trained_cnn()
    save_model(tmp_path / "cnn.mat", model)
    data = load_mat(tmp_path / "cnn.mat", squeeze=False)
    assert list(data) == ["model_class", "hyperparameters", "params"]
    assert data["model_class"] == "SimpleCNN"
    assert json.loads(data["hyperparameters"]) == model.hyperparameters
    assert '"weight_decay": 0.00025' in data["hyperparameters"]
    for name, value in model.params.items():  # plain arrays, 1-D ones as MATLAB rows
        stored = data["params"][name]
        assert stored.dtype == value.dtype and stored.shape == (value.shape if value.ndim > 1
                                                                else (1, value.size))
        np.testing.assert_array_equal(stored.reshape(value.shape), value)


@pytest.mark.parametrize("attribute, value, problem", [
    ("seed", np.int64(5), r"VanillaRNN hyperparameter 'seed' = np.int64\(5\) cannot be stored "
                          "as JSON"),
    ("loss", ("last",), r"hyperparameter 'loss' = \('last',\) \(tuple\) would come back from "
                        r"JSON as \['last'\]"),
    ("loss", {1: "last"}, r"'loss' = \{1: 'last'\} \(dict\) would come back from JSON as "
                          r"\{'1': 'last'\}"),
])
def test_save_refuses_hyperparameters_json_would_change(tmp_path, attribute, value, problem):
    model = trained_rnn()
    setattr(model, attribute, value)
    with pytest.raises(ValueError, match=problem):
        save_model(tmp_path / "rnn.mat", model)
    assert not list(tmp_path.iterdir())


def test_save_refuses_nan_hyperparameters(tmp_path):
    model = trained_cnn()
    model.weight_decay = float("nan")
    with pytest.raises(ValueError, match=r"SimpleCNN hyperparameter 'weight_decay' = nan cannot "
                                         r"be stored as JSON \(Out of range float values"):
        save_model(tmp_path / "cnn.mat", model)
    assert not list(tmp_path.iterdir())


def test_save_refuses_what_is_not_a_course_model(tmp_path):
    class MyRNN(VanillaRNN):
        pass

    for thing, name in (({"params": {}}, "dict"), (MyRNN(3, 2, 1), "MyRNN"), (None, "NoneType")):
        with pytest.raises(ValueError, match=f"model must be a SimpleCNN or a VanillaRNN, got {name}"):
            save_model(tmp_path / "x.mat", thing)
    model = trained_rnn()
    model.params["W_hh"] = np.array(["a", "b"])
    with pytest.raises(ValueError, match=r"VanillaRNN.params\['W_hh'\] must be a numeric array, "
                                         "got dtype <U1"):
        save_model(tmp_path / "x.mat", model)
    assert not list(tmp_path.iterdir())


def _saved_then_edited(tmp_path, edit):
    """Save a model, edit its variables as plain data, save them again; return the path."""
    save_model(tmp_path / "model.mat", trained_rnn())
    variables = load_mat(tmp_path / "model.mat", squeeze=False)
    edit(variables)
    save_mat(tmp_path / "edited.mat", variables)
    return tmp_path / "edited.mat"


def _set_hyperparameter(key, value):
    def edit(variables):
        decoded = json.loads(variables["hyperparameters"])
        decoded[key] = value
        variables["hyperparameters"] = json.dumps(decoded)
    return edit


@pytest.mark.parametrize("edit, problem", [
    (lambda v: v.pop("params"), r"not a saved model: variable\(s\) params missing"),
    (lambda v: v.update(model_class="Perceptron"),
     r"model_class must be one of \['SimpleCNN', 'VanillaRNN'\], got 'Perceptron'"),
    (lambda v: v.update(params=np.ones(3)), "params must be a struct, got ndarray"),
    (lambda v: v["params"].pop("W_hh"), r"params must hold exactly .*missing \['W_hh'\]"),
    (lambda v: v["params"].update(W_extra=np.ones(2)), r"unexpected \['W_extra'\]"),
    (lambda v: v["params"].update(W_hh=np.ones((5, 5))),
     r"params.W_hh must be a numeric array of shape \(6, 6\), got \(5, 5\)"),
    (lambda v: v["params"].update(W_hh="text"), r"params.W_hh must be a numeric array"),
    # the layout before hyperparameters became JSON: a struct of values
    (lambda v: v.update(hyperparameters={"n_in": 3}),
     r"hyperparameters must be JSON text \(a char row\), got dict"),
    (lambda v: v.update(hyperparameters="{'n_in': 3}"), "hyperparameters are not valid JSON"),
    (lambda v: v.update(hyperparameters='{"n_in": NaN}'), "NaN is not a JSON number"),
    (lambda v: v.update(hyperparameters="[3, 6, 2]"),
     "hyperparameters must be a JSON object of keyword arguments, got list"),
    (_set_hyperparameter("n_hidden", 2.5),
     "VanillaRNN rejects the stored hyperparameters: n_hidden must be an integer >= 1"),
    (_set_hyperparameter("colour", "red"),
     "VanillaRNN rejects the stored hyperparameters: .*unexpected keyword argument 'colour'"),
])
def test_load_model_names_what_is_missing_or_wrong(tmp_path, edit, problem):
    path = _saved_then_edited(tmp_path, edit)
    with pytest.raises(MatFileError, match=problem) as info:
        load_model(path)
    assert str(info.value).startswith(str(path))


def test_load_model_of_a_data_file_a_damaged_file_and_no_file(tmp_path):
    save_mat(tmp_path / "data.mat", {"x": 1.0})
    with pytest.raises(MatFileError, match=r"data.mat: not a saved model: variable\(s\) "
                                           r"model_class, hyperparameters, params missing"):
        load_model(tmp_path / "data.mat")
    (tmp_path / "damaged.mat").write_bytes((tmp_path / "data.mat").read_bytes()[:150])
    with pytest.raises(MatFileError, match="damaged.mat: .*truncated or corrupted"):
        load_model(tmp_path / "damaged.mat")
    with pytest.raises(FileNotFoundError, match="nowhere.mat"):
        load_model(tmp_path / "nowhere.mat")


def test_float32_weights_resaved_as_double_load_only_when_exact(tmp_path):
    model = trained_cnn()
    save_model(tmp_path / "cnn.mat", model)
    variables = load_mat(tmp_path / "cnn.mat", squeeze=False)
    variables["params"]["W_sm"] = variables["params"]["W_sm"].astype(np.float64)  # exact
    save_mat(tmp_path / "double.mat", variables)
    assert_same_model(load_model(tmp_path / "double.mat"), model, cnn_inputs(model))
    variables["params"]["W_sm"] = variables["params"]["W_sm"] + 1e-12  # not a float32 any more
    save_mat(tmp_path / "inexact.mat", variables)
    with pytest.raises(MatFileError, match="params.W_sm holds float64 values that float32 cannot"):
        load_model(tmp_path / "inexact.mat")


@needs_octave
def test_octave_loads_the_export_decodes_its_json_and_resaves_it(tmp_path):
    model = trained_rnn()
    save_model(tmp_path / "rnn.mat", model)
    # Octave checks what it sees (MATLAB indices), then re-saves the struct as v7 and v6.
    out = run_octave(
        "m = load('rnn.mat'); h = jsondecode(m.hyperparameters);"
        "printf('%s|%s|%s|%d|%s\\n', class(m), m.model_class, class(m.params.W_hh), "
        "h.n_hidden, h.loss);"
        "printf('%d ', size(m.params.W_uh), size(m.params.b_hh)); printf('\\n');"
        "printf('%.17g\\n', m.params.W_uh(2, 5));"
        "save('-v7', 'octave_v7.mat', '-struct', 'm');"
        "save('-v6', 'octave_v6.mat', '-struct', 'm');",
        tmp_path,
    )
    lines = out.split("\n")
    assert lines[0] == "struct|VanillaRNN|double|6|all"
    assert lines[1].split() == ["3", "6", "1", "6"]
    assert float(lines[2]) == model.params["W_uh"][1, 4]  # A(2,5) is a[1, 4]
    for resaved in ("octave_v7.mat", "octave_v6.mat"):
        assert_same_model(load_model(tmp_path / resaved), model, RNN_INPUTS)


@needs_octave
def test_octave_loads_the_cnn_export(tmp_path):
    model = trained_cnn()
    save_model(tmp_path / "cnn.mat", model)
    out = run_octave("m = load('cnn.mat'); names = fieldnames(m.params);"
                     "for i = 1:numel(names); w = m.params.(names{i});"
                     "printf('%s %s %d %.17g\\n', names{i}, class(w), numel(w), sum(double(w(:))));"
                     "end; h = jsondecode(m.hyperparameters); printf('%s %g\\n', h.pool, "
                     "h.weight_decay); save('-v7', 'octave_cnn.mat', '-struct', 'm');", tmp_path)
    lines = out.strip().split("\n")
    assert lines[-1] == "mean 0.00025"
    seen = {name: (kind, int(size), float(total))
            for name, kind, size, total in (line.split() for line in lines[:-1])}
    assert set(seen) == set(model.params)
    for name, value in model.params.items():
        assert seen[name][:2] == ("single", value.size)
        np.testing.assert_allclose(seen[name][2], value.astype(np.float64).sum(), rtol=1e-12)
    assert_same_model(load_model(tmp_path / "octave_cnn.mat"), model, cnn_inputs(model))
