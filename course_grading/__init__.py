"""Checks behind the course's nbgrader assignments: the student's code must be the student's own.

Each assignment asks for a function that :mod:`course_lib` already has (``conv_backward``,
``affine_backward``, the RNN's backpropagation through time, ...). A submission that simply
calls course_lib's implementation gets no points for that part. The assignments' tests use
two checks, one reading the code and one watching it run:

:func:`own_code`
    reads a student's function (and the helpers written in the notebook that it calls): it
    fails if the function *is* course_lib's, or refers to a forbidden function, however it
    was imported (``from course_lib.layers import conv_forward as f``, a module alias, a
    local import, ``.unchecked``, a default argument).
:class:`forbidden`
    a context manager: while it is active, the forbidden functions are replaced by
    tripwires, in their modules, in every course_lib module and in the notebook, so that
    any call of them, by whatever name, is recorded and raises. On leaving it fails if any
    was called, even if the student's code caught the error.

:func:`reference` gives a hidden test the genuine course_lib function to compare with, even
if a submission replaced it in its module. The groups below (:data:`CONVOLUTION`, ...) name
what each kind of part must compute itself; :func:`layer_twins` names a layer's reference
version (:mod:`course_lib.layers`) and its fast twin (:mod:`course_lib.fast_layers`).

Forbidden things are named by dotted paths, ``"course_lib.layers.conv_forward"``,
``"course_lib.rnn.VanillaRNN.loss_and_grads"``, or ``"course_lib.cnn.SimpleCNN.*"`` for every
method of a class. A path that does not exist is an error: when course_lib renames a
function, the assignments' tests say so instead of silently guarding nothing.
"""
import dis
import importlib
import inspect
import os
import sys
import types

__all__ = [
    "ForbiddenCall", "own_code", "forbidden", "reference", "compare", "layer_twins", "gradient_verdict",
    "CONVOLUTION", "MAX_POOLING", "AFFINE", "SOFTMAX_CROSS_ENTROPY", "MOMENTUM", "CNN_MODEL",
    "RNN_TRAINING", "CLIPPING",
]

#: The module a notebook's cells run in: the functions defined there are the student's.
NOTEBOOK_MODULE = "__main__"
_MISSING = object()


def layer_twins(*names):
    """The dotted paths of each layer function in :mod:`course_lib.layers` and its fast twin.

    >>> layer_twins("affine_forward")
    ('course_lib.layers.affine_forward', 'course_lib.fast_layers.affine_forward')
    """
    return tuple(f"course_lib.{module}.{name}" for name in names for module in ("layers", "fast_layers"))


#: scipy's 2-D convolutions and correlations: a convolution part is written in numpy.
SCIPY_CONVOLUTIONS = (
    "scipy.signal.convolve2d", "scipy.signal.correlate2d", "scipy.signal.convolve",
    "scipy.signal.correlate", "scipy.signal.fftconvolve", "scipy.signal.oaconvolve",
    "scipy.ndimage.convolve", "scipy.ndimage.correlate",
)
CONVOLUTION = (layer_twins("conv_forward", "conv_backward")
               + ("course_lib.cnn.correlate2d", "course_lib.cnn.convolve2d") + SCIPY_CONVOLUTIONS)
MAX_POOLING = layer_twins("max_pool_forward", "max_pool_backward")
AFFINE = layer_twins("affine_forward", "affine_backward")
SOFTMAX_CROSS_ENTROPY = layer_twins("softmax_cross_entropy_forward", "softmax_cross_entropy_backward")
MOMENTUM = ("course_lib.optim.sgd_momentum_step",)
#: The whole network: it trains with course_lib's own affine and softmax layers.
CNN_MODEL = ("course_lib.cnn.SimpleCNN.*",)
RNN_TRAINING = ("course_lib.rnn.VanillaRNN.loss_and_grads", "course_lib.rnn.train",
                "course_lib.rnn.train_many")
CLIPPING = ("course_lib.optim.gradient_norm", "course_lib.optim.clip_gradients")


class ForbiddenCall(AssertionError):
    """Raised by a tripwire: the student's code called a function the part forbids."""


# ---------------------------------------------------------------------------------------------
# finding the forbidden objects
# ---------------------------------------------------------------------------------------------

def _locate(path):
    """``(owner, attribute, value)`` for a dotted path: the module or class that holds it."""
    if not isinstance(path, str) or "." not in path:
        raise ValueError(f"path must be a dotted name like 'course_lib.layers.conv_forward', got {path!r}")
    parts = path.split(".")
    for split in range(len(parts) - 1, 0, -1):  # the longest importable prefix is the module
        module_name = ".".join(parts[:split])
        try:
            owner = importlib.import_module(module_name)
        except ImportError:
            continue
        for attribute in parts[split:-1]:  # a class inside the module
            if not hasattr(owner, attribute):
                break
            owner = getattr(owner, attribute)
        else:
            if parts[-1] == "*" and isinstance(owner, type) or hasattr(owner, parts[-1]):
                return owner, parts[-1], getattr(owner, parts[-1], None)
        break
    raise LookupError(
        f"{path} does not exist (course_lib renamed or removed it?): update the assignment's "
        f"list of forbidden functions"
    )


def _as_paths(forbid):
    """``forbid`` as a tuple of paths, refusing a lone string (a sequence of its characters)."""
    if isinstance(forbid, str) or not all(isinstance(path, str) for path in forbid):
        raise ValueError(f"forbid must be a sequence of dotted paths (e.g. AFFINE), got {forbid!r}")
    return tuple(forbid)


def _expand(paths):
    """Every ``(path, owner, attribute, original)``, with ``Class.*`` spelled out method by method."""
    found = []
    for path in paths:
        owner, attribute, value = _locate(path)
        if attribute == "*":
            prefix = path[:-2]
            for name, member in vars(owner).items():
                if isinstance(member, types.FunctionType) and (not name.startswith("__") or name == "__init__"):
                    found.append((f"{prefix}.{name}", owner, name, member))
        else:
            found.append((path, owner, attribute, value))
    return found


def _relatives(function):
    """The objects that run the function's code under other names: ``{attribute: object}``.

    ``functools.wraps`` keeps the undecorated function as ``__wrapped__``; course_lib's layers
    also offer it as ``.unchecked`` (the same layer without its argument checks).
    """
    return {name: getattr(function, name) for name in ("unchecked", "__wrapped__")
            if callable(getattr(function, name, None))}


def _forbidden_objects(paths):
    """``{id(obj): path}`` for every forbidden object and its relatives (and ``Class`` of ``Class.*``)."""
    objects = {}
    for path in paths:
        owner, attribute, _ = _locate(path)
        if attribute == "*":
            objects[id(owner)] = path[:-2]
    for path, _, _, original in _expand(paths):
        for relative in (original, *_relatives(original).values()):
            objects.setdefault(id(relative), path)
    return objects


def _packages(paths):
    """The top-level packages where forbidden functions live (course_lib's at least)."""
    return {"course_lib"} | {path.split(".")[0] for path in paths}


# ---------------------------------------------------------------------------------------------
# the static check: what the student's code refers to
# ---------------------------------------------------------------------------------------------

class _CodeReader:
    """Follows the names a function's bytecode loads, and the attributes read from them."""

    def __init__(self, forbidden_ids, notebook, packages):
        self.forbidden_ids = forbidden_ids
        self.notebook = notebook
        self.packages = packages  # the packages of the forbidden paths: the only ones it imports
        self.found = []  # (what the student wrote, forbidden path)
        self.seen = set()

    def module(self, name):
        """The module an import in the student's code names, if loaded or one of ``packages``."""
        if name in sys.modules:
            return sys.modules[name]
        if name.split(".")[0] not in self.packages:
            return None  # reading the code must not run the student's imports
        try:
            return importlib.import_module(name)
        except ImportError:
            return None

    def note(self, obj, spelled):
        path = self.forbidden_ids.get(id(obj))
        if path is not None:
            self.found.append((spelled, path))
        elif isinstance(obj, types.FunctionType) and obj.__module__ == self.notebook:
            self.read_function(obj)  # a helper the student wrote: read it too
        elif isinstance(obj, type) and obj.__module__ == self.notebook:
            for member in vars(obj).values():
                if isinstance(member, types.FunctionType):
                    self.read_function(member)

    def read_function(self, function):
        if id(function) in self.seen:
            return
        self.seen.add(id(function))
        for value in (function.__defaults__ or ()) + tuple((function.__kwdefaults__ or {}).values()):
            self.note(value, f"a default argument of {function.__name__}")
        closure = {}
        for name, cell in zip(function.__code__.co_freevars, function.__closure__ or ()):
            try:
                closure[name] = cell.cell_contents
            except ValueError:  # an empty cell
                pass
        self.read_code(function.__code__, function.__globals__, closure)

    def read_code(self, code, globals_, closure):
        builtins = globals_.get("__builtins__", {})
        builtins = vars(builtins) if isinstance(builtins, types.ModuleType) else builtins
        locals_ = {}  # local names bound by an import inside the function
        current, spelled = None, ""  # the object the last load left on the stack, and its spelling
        imported = None  # what the last IMPORT_NAME pushed
        instructions = list(dis.get_instructions(code))
        for index, ins in enumerate(instructions):
            op, arg = ins.opname, ins.argval
            if op in ("LOAD_GLOBAL", "LOAD_NAME"):
                current = globals_.get(arg, builtins.get(arg))
                spelled = arg
            elif op in ("LOAD_DEREF", "LOAD_CLASSDEREF"):
                current, spelled = closure.get(arg), arg
            elif op == "LOAD_FAST":
                current, spelled = locals_.get(arg), arg
            elif op in ("LOAD_ATTR", "LOAD_METHOD") and current is not None:
                current = getattr(current, arg, None)
                spelled = f"{spelled}.{arg}"
            elif op == "IMPORT_NAME":
                fromlist = instructions[index - 1].argval if index else None
                # `import a.b` pushes the package a; `from a.b import c` pushes a.b
                imported = self.module(arg if fromlist else arg.split(".")[0])
                if imported is not None and not fromlist:
                    self.module(arg)  # the submodule, so that a.b resolves as an attribute
                current, spelled = imported, arg
            elif op == "IMPORT_FROM" and imported is not None:
                current = getattr(imported, arg, None)
                spelled = f"{getattr(imported, '__name__', '?')}.{arg}"
            elif op in ("STORE_FAST", "STORE_NAME", "STORE_GLOBAL") and current is not None:
                if instructions[index - 1].opname in ("IMPORT_NAME", "IMPORT_FROM"):
                    locals_[arg] = current
                current = None
                continue
            else:
                current = None
                continue
            if current is not None:
                self.note(current, spelled)
        for constant in code.co_consts:
            if isinstance(constant, types.CodeType):  # a nested function, lambda or comprehension
                self.read_code(constant, globals_, closure)


def own_code(function, forbid, name=None, notebook=NOTEBOOK_MODULE):
    """Fail unless ``function`` is the student's own and refers to none of ``forbid``.

    Parameters
    ----------
    function : object
        What the notebook calls by the part's name.
    forbid : sequence of str
        Dotted paths of what the part must not use (see the module docstring).
    name : str, optional
        The part's name in messages (default: the function's name).
    notebook : str
        The name of the module the notebook's code runs in.

    Raises
    ------
    AssertionError
        If ``function`` is not a function written in the notebook (for instance course_lib's
        own, imported under the part's name), or its code, or that of a notebook function it
        calls, refers to a forbidden function.
    """
    name = name or getattr(function, "__name__", repr(function))
    if not isinstance(function, types.FunctionType) or function.__module__ != notebook:
        origin = getattr(function, "__module__", None) or type(function).__name__
        raise AssertionError(
            f"{name} must be a function you write in this notebook, got one from {origin}: "
            f"this part gets no points"
        )
    forbid = _as_paths(forbid)
    reader = _CodeReader(_forbidden_objects(forbid), notebook, _packages(forbid))
    reader.read_function(function)
    if reader.found:
        first_spelling = {}
        for spelled, path in reader.found:
            first_spelling.setdefault(path, spelled)
        uses = "; ".join(path if spelled == path else f"{spelled} (that is {path})"
                         for path, spelled in first_spelling.items())
        raise AssertionError(
            f"{name} uses {uses}: this part must be your own code, and gets no points this way"
        )


# ---------------------------------------------------------------------------------------------
# the runtime check: tripwires in place of the forbidden functions
# ---------------------------------------------------------------------------------------------

def _tripwire(path, calls):
    def tripwire(*args, **kwargs):
        calls.append(path)
        raise ForbiddenCall(f"{path} was called: this part must be your own code")
    tripwire.__name__ = tripwire.__qualname__ = path.rsplit(".", 1)[-1]
    return tripwire


def _namespaces_to_search(paths, notebook):
    """The modules whose globals may hold a forbidden function under another name."""
    packages = _packages(paths)
    return [module for name, module in list(sys.modules.items())
            if isinstance(module, types.ModuleType)
            and (name == notebook or name.split(".")[0] in packages)]


class forbidden:
    """Replace the forbidden functions by tripwires while the ``with`` block runs.

    Every binding of a forbidden function (or of its ``.unchecked`` / ``__wrapped__``
    versions) is replaced: the attribute at its path, and any module-level name in the
    notebook, in course_lib and in the path's package that refers to it, also inside a
    module-level dict or tuple (course_lib's tables of layers). A call records the path and
    raises :class:`ForbiddenCall`. Leaving the block restores everything and raises
    ``AssertionError`` naming what was called, even if the student's code caught the error.

    Parameters
    ----------
    forbid : sequence of str
        Dotted paths (see the module docstring).
    notebook : str
        The name of the module the notebook's code runs in.

    Attributes
    ----------
    calls : list of str
        The forbidden paths called so far, in order.
    """

    def __init__(self, forbid, notebook=NOTEBOOK_MODULE):
        self.paths = _as_paths(forbid)
        self.notebook = notebook
        self.calls = []
        self._undo = []

    def _set(self, owner, key, value):
        if isinstance(owner, dict):
            old = owner[key]
            owner[key] = value
            self._undo.append(lambda: owner.__setitem__(key, old))
            return
        old = vars(owner).get(key, _MISSING)  # its own entry, not an inherited or lazy one
        setattr(owner, key, value)
        if old is _MISSING:
            self._undo.append(lambda: delattr(owner, key))
        else:
            self._undo.append(lambda: setattr(owner, key, old))

    def __enter__(self):
        try:
            replacements = {}  # id(original or relative) -> tripwire
            for path, owner, attribute, original in _expand(self.paths):
                wire = _tripwire(path, self.calls)
                for name, relative in _relatives(original).items():  # wire.unchecked trips too
                    inner = replacements.setdefault(id(relative), _tripwire(path, self.calls))
                    setattr(wire, name, inner)
                replacements[id(original)] = wire
                self._set(owner, attribute, wire)
            for module in _namespaces_to_search(self.paths, self.notebook):
                namespace = vars(module)
                for key, value in list(namespace.items()):
                    if id(value) in replacements:
                        self._set(module, key, replacements[id(value)])
                    elif isinstance(value, dict):
                        for inner_key, inner in list(value.items()):
                            swapped = _swap(inner, replacements)
                            if swapped is not inner:
                                self._set(value, inner_key, swapped)
                    elif isinstance(value, tuple) and _swap(value, replacements) is not value:
                        self._set(module, key, _swap(value, replacements))
        except BaseException:
            self._restore()
            raise
        return self

    def _restore(self):
        while self._undo:
            self._undo.pop()()

    def __exit__(self, exc_type, exc, traceback):
        self._restore()
        if self.calls:
            called = ", ".join(dict.fromkeys(self.calls))
            raise AssertionError(
                f"your code called {called}: this part must be your own code, and gets no "
                f"points this way"
            ) from exc
        return False


def _swap(value, replacements):
    """``value`` with forbidden functions replaced, for a function or a tuple of them."""
    if id(value) in replacements:
        return replacements[id(value)]
    if isinstance(value, tuple) and any(id(item) in replacements for item in value):
        return tuple(replacements.get(id(item), item) for item in value)
    return value


# ---------------------------------------------------------------------------------------------
# the genuine reference, for hidden tests
# ---------------------------------------------------------------------------------------------

def reference(path):
    """The genuine function at ``path``, checked to be the installed package's own code.

    A submission could assign its own function to ``course_lib.layers.conv_forward`` so that
    a hidden test compares the submission with itself; this refuses such a replacement, and a
    package loaded from the submission's folder.

    Raises
    ------
    AssertionError
        If the function's code lies outside its package's folder, or the package lies inside
        the current working directory (the submission's folder during grading).
    """
    _, _, function = _locate(path)
    package = sys.modules[path.split(".")[0]]
    package_dir = os.path.dirname(os.path.abspath(package.__file__))
    source = inspect.getsourcefile(inspect.unwrap(function)) or ""
    if os.path.commonpath([package_dir, os.path.abspath(source)]) != package_dir:
        raise AssertionError(f"{path} has been replaced by code from {source}: cannot grade against it")
    working_dir = os.path.abspath(os.getcwd())
    if os.path.commonpath([working_dir, package_dir]) == working_dir:
        raise AssertionError(
            f"{package.__name__} is loaded from {package_dir}, inside the submission's folder: "
            f"cannot grade against it"
        )
    return function


# ---------------------------------------------------------------------------------------------
# messages of the visible tests
# ---------------------------------------------------------------------------------------------

def gradient_verdict(name, error, tolerance=1e-7, hint=""):
    """Say how a gradient check went; raise ``AssertionError`` if ``error`` is not below ``tolerance``.

    The message gives the relative error and the bound, never the expected numbers.

    Parameters
    ----------
    name : str
        What was checked, e.g. ``"dw"``.
    error : float
        The relative error against centred differences (:func:`course_lib.gradcheck.gradient_check`).
    tolerance : float
        The bound a correct gradient stays below in float64.
    hint : str
        What to look at if the check fails.

    Returns
    -------
    str
        The verdict, for printing.
    """
    if not error < tolerance:  # also catches NaN
        raise AssertionError(
            f"{name}: relative error {error:.1e} against centred differences, it should be "
            f"below {tolerance:g}. {hint}".rstrip()
        )
    return f"{name}: relative error {error:.1e} (below {tolerance:g}): correct"


def compare(name, got, expected, tolerance=1e-7, floor=1e-6):
    r"""Fail unless ``got`` has ``expected``'s shape and values, saying how far off, never what.

    For the hidden tests: the message gives the shapes and the error, not the expected numbers.
    The error is the largest elementwise relative error,

    .. math:: \max_i \frac{|g_i - e_i|}{\max(|g_i| + |e_i|,\ \text{floor} \cdot \max_j |e_j|)},

    where the floor keeps entries near zero, whose rounding noise is of the size of the large
    entries' (a millionth by default), from counting as large errors. For an expected value
    that is itself a numerical estimate, ``floor=1`` measures every difference against the
    largest entry.

    Parameters
    ----------
    name : str
        What is compared, for the message.
    got, expected : array_like
    tolerance : float
        The error must be below it.
    floor : float
        See above.

    Raises
    ------
    AssertionError
        On a value that is not a numeric array, a wrong shape, NaN, or an error not below
        ``tolerance``.
    """
    import numpy as np  # only the tests need numpy: importing the package stays light

    expected = np.asarray(expected, dtype=np.float64)
    try:
        got = np.asarray(got, dtype=np.float64)
    except (TypeError, ValueError):
        raise AssertionError(f"{name} must be a numeric array, got {type(got).__name__}") from None
    if got.shape != expected.shape:
        raise AssertionError(f"{name} must have shape {expected.shape}, got {got.shape}")
    if not np.isfinite(got).all():
        raise AssertionError(f"{name} contains NaN or infinite values")
    if expected.size == 0:
        return
    smallest = max(floor * np.abs(expected).max(), np.finfo(np.float64).tiny)
    error = np.max(np.abs(got - expected) / np.maximum(np.abs(got) + np.abs(expected), smallest))
    if not error < tolerance:
        raise AssertionError(f"{name}: wrong values (relative error {error:.1e})")
