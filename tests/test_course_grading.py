"""course_grading: the checks that an assignment's function is the student's own code.

A "notebook" here is a fresh module into which student code is executed, as ipykernel runs a
notebook's cells in ``__main__``; the checks are told its name.
"""
import functools
import os
import sys
import types

import numpy as np
import pytest

import course_grading
import course_lib.cnn
import course_lib.fast_layers
import course_lib.layers
import course_lib.optim
import course_lib.rnn
from course_grading import (AFFINE, CONVOLUTION, ForbiddenCall, compare, forbidden, gradient_verdict,
                            own_code, reference)

NOTEBOOK = "student_notebook_under_test"


@pytest.fixture
def notebook(monkeypatch):
    """Run student code in a module of its own, as a kernel runs a notebook's cells."""
    module = types.ModuleType(NOTEBOOK)
    monkeypatch.setitem(sys.modules, NOTEBOOK, module)

    def run(source):
        exec(compile(source, "<cell>", "exec"), vars(module))
        return module

    return run


OWN_AFFINE = """
import numpy as np
import course_lib.fast_layers as F


def affine_forward(x, w, b):
    return x @ w.T + b, (x, w)


def features(x, w, b):
    return F.conv_forward(x, w, b)[0]  # allowed: the convolution is not forbidden here
"""


def test_own_code_accepts_the_students_function_with_course_libs_name(notebook):
    module = notebook(OWN_AFFINE)
    own_code(module.affine_forward, AFFINE, notebook=NOTEBOOK)
    own_code(module.features, AFFINE, notebook=NOTEBOOK)


CHEATS = {
    "imported under the part's name": ("from course_lib.layers import affine_forward", None),
    "module alias": ("import course_lib.fast_layers as F\n"
                     "def affine_forward(x, w, b):\n    return F.affine_forward(x, w, b)", "F.affine_forward"),
    "full dotted path": ("import course_lib.layers\n"
                         "def affine_forward(x, w, b):\n    return course_lib.layers.affine_forward(x, w, b)",
                         "course_lib.layers.affine_forward"),
    "from-import alias": ("from course_lib.layers import affine_forward as helper\n"
                          "def affine_forward(x, w, b):\n    return helper(x, w, b)", "helper"),
    "import inside the function": ("def affine_forward(x, w, b):\n"
                                   "    from course_lib.fast_layers import affine_forward as f\n"
                                   "    return f(x, w, b)", "course_lib.fast_layers.affine_forward"),
    "through a helper": ("import course_lib.layers as L\n"
                         "def helper(*args):\n    return L.affine_backward(*args)\n"
                         "def affine_forward(x, w, b):\n    return helper(x, w, b)", "L.affine_backward"),
    "default argument": ("from course_lib import layers\n"
                         "def affine_forward(x, w, b, f=layers.affine_forward):\n    return f(x, w, b)",
                         "a default argument"),
    "closure": ("def make():\n    from course_lib.layers import affine_forward as f\n"
                "    def affine_forward(x, w, b):\n        return f(x, w, b)\n    return affine_forward\n"
                "affine_forward = make()", "f"),
    "lambda": ("import course_lib.layers as L\n"
               "def affine_forward(x, w, b):\n    go = lambda: L.affine_forward(x, w, b)\n    return go()",
               "L.affine_forward"),
    "method of a notebook class": ("import course_lib.fast_layers as F\n"
                                   "class Layer:\n    def run(self, *a):\n        return F.affine_forward(*a)\n"
                                   "def affine_forward(x, w, b):\n    return Layer().run(x, w, b)",
                                   "F.affine_forward"),
}


@pytest.mark.parametrize("case", sorted(CHEATS))
def test_own_code_finds_course_lib_however_it_is_reached(notebook, case):
    source, spelled = CHEATS[case]
    module = notebook(source)
    with pytest.raises(AssertionError) as failure:
        own_code(module.affine_forward, AFFINE, notebook=NOTEBOOK)
    message = str(failure.value)
    if spelled is None:
        assert "must be a function you write in this notebook, got one from course_lib.layers" in message
    else:
        assert spelled in message and "course_lib." in message and "must be your own code" in message


def test_reading_the_code_runs_none_of_its_imports(notebook, monkeypatch, tmp_path):
    (tmp_path / "import_probe_under_test.py").write_text(
        "import pathlib\npathlib.Path(__file__).with_name('imported').touch()\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    module = notebook("def mine(x):\n    import import_probe_under_test\n    return x\n")
    own_code(module.mine, AFFINE, notebook=NOTEBOOK)
    assert not (tmp_path / "imported").exists()
    assert "import_probe_under_test" not in sys.modules


def test_own_code_follows_unchecked_and_wrapped_versions(notebook, monkeypatch):
    # a decorated layer keeps its undecorated self as __wrapped__ (functools.wraps) and .unchecked
    fake = types.ModuleType("fake_layers_under_test")

    def core(x):
        return x

    @functools.wraps(core)
    def layer(x):
        return core(x)

    layer.unchecked = core
    fake.layer = layer
    monkeypatch.setitem(sys.modules, "fake_layers_under_test", fake)
    module = notebook("import fake_layers_under_test as fl\n"
                      "def mine(x):\n    return fl.layer.unchecked(x)\n"
                      "def mine_too(x):\n    return fl.layer.__wrapped__(x)\n")
    for function in (module.mine, module.mine_too):
        with pytest.raises(AssertionError, match="fake_layers_under_test.layer"):
            own_code(function, ("fake_layers_under_test.layer",), notebook=NOTEBOOK)
        with pytest.raises(AssertionError, match="your code called fake_layers_under_test.layer"):
            with forbidden(("fake_layers_under_test.layer",), notebook=NOTEBOOK):
                function(1)
    assert fake.layer is layer and fake.layer.unchecked is core


def test_forbidden_trips_every_binding_and_restores_them(notebook):
    module = notebook("import course_lib.fast_layers as F\n"
                      "from course_lib.layers import affine_forward as mine\n"
                      "def cheat(x, w, b):\n    return F.affine_forward(x, w, b)\n")
    originals = {"fast": course_lib.fast_layers.affine_forward, "reference": course_lib.layers.affine_forward,
                 "backward": course_lib.fast_layers.affine_backward}
    x, w, b = np.ones((2, 3)), np.ones((4, 3)), np.zeros(4)
    with pytest.raises(AssertionError, match="course_lib.fast_layers.affine_forward"):
        with forbidden(AFFINE, notebook=NOTEBOOK) as guard:
            assert course_lib.fast_layers.affine_forward is not originals["fast"]
            assert module.mine is not originals["reference"]  # the notebook's own binding too
            with pytest.raises(ForbiddenCall):
                module.cheat(x, w, b)
            with pytest.raises(ForbiddenCall):
                module.mine(x, w, b)
            assert guard.calls == ["course_lib.fast_layers.affine_forward", "course_lib.layers.affine_forward"]
            # what is not forbidden still works
            course_lib.fast_layers.relu_forward(x)
    assert course_lib.fast_layers.affine_forward is originals["fast"]
    assert course_lib.layers.affine_forward is originals["reference"]
    assert course_lib.fast_layers.affine_backward is originals["backward"]
    assert module.mine is originals["reference"]


def test_a_swallowed_forbidden_call_still_fails(notebook):
    module = notebook("import course_lib.optim\n"
                      "def step(p, g, v, lr, mu):\n"
                      "    try:\n        course_lib.optim.sgd_momentum_step(p, g, v, lr, mu)\n"
                      "    except Exception:\n        pass\n")
    with pytest.raises(AssertionError, match="your code called course_lib.optim.sgd_momentum_step"):
        with forbidden(course_grading.MOMENTUM, notebook=NOTEBOOK):
            module.step({}, {}, {}, 0.1, 0.9)


def test_forbidden_replaces_methods_and_whole_classes():
    model = course_lib.rnn.VanillaRNN(3, 2, 1)
    u, y = np.zeros((1, 4, 3)), np.zeros((1, 4, 1))
    with pytest.raises(AssertionError, match="VanillaRNN.loss_and_grads"):
        with forbidden(course_grading.RNN_TRAINING):
            model.loss_and_grads(u, y)
    assert isinstance(model.loss_and_grads(u, y)[0], float)  # restored
    with pytest.raises(AssertionError, match="SimpleCNN.__init__"):
        with forbidden(course_grading.CNN_MODEL):
            course_lib.cnn.SimpleCNN()
    assert isinstance(course_lib.cnn.SimpleCNN(), course_lib.cnn.SimpleCNN)


def test_forbidden_lets_other_errors_through_and_replaces_nothing_for_a_missing_path():
    with pytest.raises(ZeroDivisionError):
        with forbidden(AFFINE):
            1 / 0
    before = course_lib.layers.affine_forward
    with pytest.raises(LookupError, match="course_lib.layers.no_such_layer does not exist"):
        with forbidden(AFFINE + ("course_lib.layers.no_such_layer",)):
            pass
    assert course_lib.layers.affine_forward is before


@pytest.mark.parametrize("group", ["CONVOLUTION", "MAX_POOLING", "AFFINE", "SOFTMAX_CROSS_ENTROPY", "MOMENTUM",
                                   "CNN_MODEL", "RNN_TRAINING", "CLIPPING"])
def test_every_forbidden_path_exists(group):
    # when course_lib renames a function, this says which list to update
    assert course_grading._expand(getattr(course_grading, group))


def test_bad_paths_are_refused_clearly(notebook):
    module = notebook(OWN_AFFINE)
    with pytest.raises(ValueError, match="forbid must be a sequence of dotted paths .* got 'course_lib.layers"):
        own_code(module.affine_forward, "course_lib.layers.affine_forward", notebook=NOTEBOOK)
    with pytest.raises(ValueError, match="forbid must be a sequence of dotted paths .* got \\(None,\\)"):
        forbidden((None,))
    with pytest.raises(ValueError, match="path must be a dotted name"):
        course_grading._expand(("conv_forward",))
    with pytest.raises(LookupError, match="no_module_like_this.f does not exist"):
        course_grading._expand(("no_module_like_this.f",))


def test_reference_refuses_a_replaced_function_and_a_package_in_the_submission(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    genuine = reference("course_lib.layers.conv_forward")
    assert genuine is course_lib.layers.conv_forward
    monkeypatch.setattr(course_lib.layers, "conv_forward", lambda x, w, b: (x, (x, w)))
    with pytest.raises(AssertionError, match="has been replaced by code from"):
        reference("course_lib.layers.conv_forward")
    monkeypatch.chdir(os.path.dirname(course_lib.__path__[0]))
    with pytest.raises(AssertionError, match="inside the submission's folder"):
        reference("course_lib.layers.conv_backward")


def test_compare_says_how_far_off_without_the_expected_numbers():
    expected = np.array([[1.25, -3.5], [7.75, 0.0]])
    compare("x", expected * (1 + 1e-12), expected)
    compare("x", expected + 1e-15, expected)  # noise on the zero entry is measured against the largest
    with pytest.raises(AssertionError) as failure:
        compare("dw", expected + 0.5, expected)
    assert "dw: wrong values (relative error" in str(failure.value)
    assert not any(str(value) in str(failure.value) for value in (1.25, 3.5, 7.75, 1.75))
    with pytest.raises(AssertionError, match=r"dw must have shape \(2, 2\), got \(4,\)"):
        compare("dw", expected.ravel(), expected)
    with pytest.raises(AssertionError, match="NaN or infinite"):
        compare("dw", expected * np.nan, expected)
    with pytest.raises(AssertionError, match="must be a numeric array, got dict"):
        compare("dw", {}, expected)
    with pytest.raises(AssertionError):  # a numerical estimate: measured against the largest entry
        compare("du", [1.0, 1e-3], [1.0, 0.0], floor=1.0)
    compare("du", [1.0, 1e-9], [1.0, 0.0], floor=1.0)


def test_gradient_verdict():
    assert gradient_verdict("dw", 3e-10) == "dw: relative error 3.0e-10 (below 1e-07): correct"
    with pytest.raises(AssertionError, match=r"^dx: relative error 2\.0e-01 .* below 1e-07\. Look at the flip\.$"):
        gradient_verdict("dx", 0.2, hint="Look at the flip.")
    with pytest.raises(AssertionError, match="relative error nan"):
        gradient_verdict("db", float("nan"))


def test_scipy_convolutions_are_forbidden_in_convolution_parts(notebook):
    module = notebook("import scipy.signal\n"
                      "def full(a, k):\n    return scipy.signal.convolve2d(a, k, mode='full')\n")
    with pytest.raises(AssertionError, match="scipy.signal.convolve2d"):
        own_code(module.full, CONVOLUTION, notebook=NOTEBOOK)
    with pytest.raises(AssertionError, match="your code called scipy.signal.convolve2d"):
        with forbidden(CONVOLUTION, notebook=NOTEBOOK):
            module.full(np.ones((2, 2)), np.ones((2, 2)))
    assert module.full(np.ones((2, 2)), np.ones((2, 2))).shape == (3, 3)
