"""Tests of course_lib.io: load_mat on MATLAB-written files, model export, every error path.

MATLAB-written files: scipy ships them with its own tests (``scipy/io/matlab/tests/data``,
versions 4 to 7.4 from several platforms, plus corrupted ones); they are read from the
installed scipy, never copied here.

Version 7.3 (HDF5): that folder holds one real MATLAB v7.3 file (``testhdf5_7.4_GLNX86.mat``,
a double row), and Octave cannot write MATLAB's v7.3 layout ("-v7.3 is not yet implemented";
its ``-hdf5`` format is a different layout). So the richer v7.3 files (structs, struct arrays,
cells, strings, sparse, empty values, complex, logical) are written here with h5py following
MATLAB's v7.3 layout: a 512-byte MATLAB header in the HDF5 user block, datasets of the
transposed (column-major) data with a ``MATLAB_class`` attribute, chars as UTF-16 code units,
empty arrays as their dimension vector with ``MATLAB_empty``, cells and struct arrays as object
references into ``#refs#``, structs as groups with ``MATLAB_fields``, sparse matrices as groups
of ``data``/``ir``/``jc`` with ``MATLAB_sparse``. Each such file re-encodes what a real v7 file
holds, and must load to exactly what the real file loads to.
"""
import pathlib
import shutil
import subprocess
import warnings

import h5py
import numpy as np
import pytest
import scipy.io
import scipy.sparse

from course_lib import io as matio
from course_lib.io import MatFileError, load_mat, load_model, mat_file_version, save_mat
from course_lib.rnn import VanillaRNN

DATA = pathlib.Path(scipy.io.__file__).parent / "matlab" / "tests" / "data"
OCTAVE = shutil.which("octave-cli") or shutil.which("octave")

#: scipy's files that are damaged on purpose, each with a word of the reason scipy gives.
CORRUPTED = {
    "corrupted_zlib_checksum.mat": "incorrect data check",
    "corrupted_zlib_data.mat": "compressed",
    "malformed1.mat": "malformed",
    "bad_miuint32.mat": "miUINT32",
    "bad_miutf8_array_name.mat": "ascii",
    "debigged_m4.mat": "Not enough bytes",
}
FUNCTION_HANDLES = {"parabola.mat", "sqr.mat", "some_functions.mat", "testfunc_7.4_GLNX86.mat"}

THETA = np.pi / 4 * np.arange(9.0)
MATRIX = np.zeros((3, 5))
MATRIX[0] = np.arange(1, 6)
MATRIX[:, 0] = np.arange(1, 4)


def data_file(name):
    path = DATA / name
    assert path.is_file(), f"scipy no longer ships {name}"
    return path


def versions(stem, tags=("4.2c_SOL2", "6.1_SOL2", "6.5.1_GLNX86", "7.1_GLNX86", "7.4_GLNX86")):
    """The scipy files of one test case, for every MATLAB version that wrote one."""
    names = [f"{stem}_{tag}.mat" for tag in tags]
    return [name for name in names if (DATA / name).is_file()]


def assert_same(actual, expected, where="value"):
    """Deep equality that also requires the same types, dtypes and shapes."""
    if scipy.sparse.issparse(expected):
        assert isinstance(actual, scipy.sparse.csc_array), where
        assert actual.shape == expected.shape and actual.dtype == expected.dtype, where
        np.testing.assert_array_equal(actual.toarray(), expected.toarray(), err_msg=where)
    elif isinstance(expected, dict):
        assert isinstance(actual, dict), where
        assert list(actual) == list(expected), where
        for key in expected:
            assert_same(actual[key], expected[key], f"{where}[{key!r}]")
    elif isinstance(expected, list):
        assert isinstance(actual, list) and len(actual) == len(expected), where
        for i, (a, e) in enumerate(zip(actual, expected)):
            assert_same(a, e, f"{where}[{i}]")
    elif isinstance(expected, np.ndarray):
        assert isinstance(actual, np.ndarray), f"{where}: {type(actual)}"
        assert actual.dtype == expected.dtype and actual.shape == expected.shape, \
            f"{where}: {actual.dtype}{actual.shape} vs {expected.dtype}{expected.shape}"
        assert actual.flags.c_contiguous and actual.dtype.isnative, where
        np.testing.assert_array_equal(actual, expected, err_msg=where)
    else:
        assert type(actual) is type(expected) and actual == expected, f"{where}: {actual!r}"


# --------------------------------------------------------------------------------------------
# A writer of MATLAB's v7.3 layout (see the module docstring for why it exists)
# --------------------------------------------------------------------------------------------
_H5_CLASSES = {
    "f8": "double", "f4": "single", "i1": "int8", "u1": "uint8", "i2": "int16", "u2": "uint16",
    "i4": "int32", "u4": "uint32", "i8": "int64", "u8": "uint64",
}


class MCOSString:
    """Stands for a MATLAB ``string`` object (stored as opaque uint32 data in v7.3)."""


class FunctionHandle:
    """Stands for a MATLAB function handle."""


def write_mat73(path, variables):
    """Write scipy-style raw values (``loadmat(squeeze_me=False)``) in MATLAB's v7.3 layout."""
    with h5py.File(path, "w", userblock_size=512) as h5file:
        counter = iter(range(1, 10**6))
        for name, value in variables.items():
            _write_h5(h5file, h5file, name, value, counter)
    header = b"MATLAB 7.3 MAT-file, Platform: GLNXA64, Created on: test. HDF5 schema 1.00 ."
    header = header.ljust(116, b" ") + b"\0" * 8 + b"\x00\x02" + b"IM"
    with open(path, "r+b") as stream:
        stream.write(header.ljust(512, b"\0"))


def _matlab_class_attr(node, name):
    node.attrs["MATLAB_class"] = np.bytes_(name)


def _write_empty(parent, name, dims, matlab_class):
    dataset = parent.create_dataset(name, data=np.asarray(dims, dtype=np.uint64))
    _matlab_class_attr(dataset, matlab_class)
    dataset.attrs["MATLAB_empty"] = np.uint8(1)
    return dataset


def _field_names(names):
    """MATLAB_fields: one variable-length array of single characters per field name."""
    attribute = np.empty(len(names), dtype=h5py.vlen_dtype(np.dtype("S1")))
    for i, name in enumerate(names):
        attribute[i] = np.frombuffer(name.encode(), dtype="S1")
    return attribute


def _write_refs(h5file, parent, name, elements, counter):
    """Write each element into #refs# and a dataset of references (dims reversed)."""
    refs_group = h5file.require_group("#refs#")
    references = np.empty(elements.shape, dtype=h5py.ref_dtype)
    for index in np.ndindex(elements.shape):
        item = _write_h5(h5file, refs_group, f"r{next(counter)}", elements[index], counter)
        references[index] = item.ref
    return parent.create_dataset(name, data=references.T)


def _write_h5(h5file, parent, name, value, counter):
    if isinstance(value, FunctionHandle):
        group = parent.create_group(name)
        _matlab_class_attr(group, "function_handle")
        return group
    if isinstance(value, MCOSString):
        dataset = parent.create_dataset(name, data=np.array([[3707764736, 2, 1, 1, 1, 1]],
                                                            dtype=np.uint32))
        _matlab_class_attr(dataset, "string")
        dataset.attrs["MATLAB_object_decode"] = np.int32(3)
        return dataset
    if scipy.sparse.issparse(value):
        csc = scipy.sparse.csc_array(value)
        csc.sort_indices()
        group = parent.create_group(name)
        kind = "logical" if csc.dtype == bool else _H5_CLASSES[csc.dtype.str[1:]] \
            if csc.dtype.kind != "c" else "double"
        _matlab_class_attr(group, kind)
        group.attrs["MATLAB_sparse"] = np.uint64(csc.shape[0])
        group.create_dataset("jc", data=csc.indptr.astype(np.uint64))
        if csc.nnz:
            group.create_dataset("ir", data=csc.indices.astype(np.uint64))
            group.create_dataset("data", data=_h5_numbers(csc.data))
        return group
    if isinstance(value, dict):  # a scalar struct
        group = parent.create_group(name)
        _matlab_class_attr(group, "struct")
        group.attrs["MATLAB_fields"] = _field_names(list(value))
        for key, item in value.items():
            _write_h5(h5file, group, key, item, counter)
        return group
    value = np.asarray(value) if not isinstance(value, np.ndarray) else value
    if value.dtype.names is not None:  # scipy's struct (array)
        if value.size == 1:
            return _write_h5(h5file, parent, name,
                             {key: value.flat[0][key] for key in value.dtype.names}, counter)
        group = parent.create_group(name)
        _matlab_class_attr(group, "struct")
        group.attrs["MATLAB_fields"] = _field_names(value.dtype.names)
        for key in value.dtype.names:
            field = np.empty(value.shape, dtype=object)
            for index in np.ndindex(value.shape):
                field[index] = value[index][key]
            _write_refs(h5file, group, key, field, counter)
        return group
    if value.dtype == object:  # a cell array
        if value.size == 0:
            return _write_empty(parent, name, value.shape, "cell")
        dataset = _write_refs(h5file, parent, name, value, counter)
        _matlab_class_attr(dataset, "cell")
        return dataset
    if value.dtype.kind == "U":  # chars: scipy joined each row into one string
        rows = [str(row) for row in value.reshape(-1)]
        if not rows or not rows[0]:
            return _write_empty(parent, name, (len(rows), 0), "char")
        codes = np.array([np.frombuffer(row.encode("utf-16-le"), dtype="<u2") for row in rows])
        dataset = parent.create_dataset(name, data=codes.T)
        _matlab_class_attr(dataset, "char")
        dataset.attrs["MATLAB_int_decode"] = np.int32(2)
        return dataset
    matlab_class = "logical" if value.dtype == bool else _H5_CLASSES[
        (value.real if value.dtype.kind == "c" else value).dtype.str[1:]]
    if value.size == 0:
        return _write_empty(parent, name, value.shape, matlab_class)
    dataset = parent.create_dataset(name, data=_h5_numbers(value).T)
    _matlab_class_attr(dataset, matlab_class)
    if matlab_class == "logical":
        dataset.attrs["MATLAB_int_decode"] = np.int32(1)
    return dataset


def _h5_numbers(array):
    """Numbers as MATLAB stores them: native dtype, logical as uint8, complex as a compound."""
    array = np.asarray(array)
    if array.dtype == bool:
        return array.astype(np.uint8)
    if array.dtype.kind == "c":
        part = array.real.dtype.newbyteorder("=")
        compound = np.empty(array.shape, dtype=[("real", part), ("imag", part)])
        compound["real"], compound["imag"] = array.real, array.imag
        return compound
    return array.astype(array.dtype.newbyteorder("="))


def as_v73(tmp_path, name):
    """Re-encode the scipy file ``name`` as a MATLAB v7.3 file; return its path."""
    raw = scipy.io.loadmat(data_file(name), squeeze_me=False, chars_as_strings=True)
    target = tmp_path / f"{pathlib.Path(name).stem}_v73.mat"
    write_mat73(target, {k: v for k, v in raw.items() if not k.startswith("__")})
    return target


# --------------------------------------------------------------------------------------------
# load_mat on MATLAB's own files, every version
# --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", versions("testdouble") + ["testhdf5_7.4_GLNX86.mat"])
def test_double_row_from_every_version_including_real_v73(name):
    data = load_mat(data_file(name))
    assert list(data) == ["testdouble"]
    assert_same(data["testdouble"], THETA)


def test_version_detection_on_real_files():
    assert mat_file_version(data_file("testdouble_4.2c_SOL2.mat")) == "4"
    assert mat_file_version(data_file("testvec_4_GLNX86.mat")) == "4"
    assert mat_file_version(data_file("testdouble_6.1_SOL2.mat")) == "5"
    assert mat_file_version(data_file("testdouble_7.4_GLNX86.mat")) == "5"
    assert mat_file_version(data_file("testhdf5_7.4_GLNX86.mat")) == "7.3"


@pytest.mark.parametrize("name", versions("testmatrix"))
def test_matrix_keeps_matlab_indices(name):
    matrix = load_mat(data_file(name))["testmatrix"]
    np.testing.assert_array_equal(matrix, MATRIX)  # A(2,1) == 2 is matrix[1, 0]
    assert matrix.flags.c_contiguous


@pytest.mark.parametrize("name", versions("test3dmatrix"))
def test_3d_matrix_is_column_major_reshape(name):
    # MATLAB wrote reshape(1:24, 2, 3, 4): column-major, so numpy needs order="F"
    expected = np.arange(1, 25).reshape((2, 3, 4), order="F")
    cube = load_mat(data_file(name))["test3dmatrix"]
    assert cube.shape == (2, 3, 4) and cube.flags.c_contiguous
    np.testing.assert_array_equal(cube, expected)


@pytest.mark.parametrize("name", versions("testcomplex"))
def test_complex(name):
    assert_same(load_mat(data_file(name))["testcomplex"], np.cos(THETA) + 1j * np.sin(THETA))


@pytest.mark.parametrize("name", versions("testminus"))
def test_one_by_one_is_a_python_scalar(name):
    value = load_mat(data_file(name))["testminus"]
    assert value == -1 and isinstance(value, (int, float))
    full = load_mat(data_file(name), squeeze=False)["testminus"]
    assert isinstance(full, np.ndarray) and full.shape == (1, 1) and full[0, 0] == -1


def test_squeeze_false_keeps_matlab_shapes():
    data = load_mat(data_file("testmulti_7.4_GLNX86.mat"), squeeze=False)
    assert data["theta"].shape == (1, 9) and data["a"].shape == (3, 5)
    assert load_mat(data_file("testvec_4_GLNX86.mat"), squeeze=False)["fit_params"].shape == (2, 1)
    assert load_mat(data_file("testvec_4_GLNX86.mat"))["fit_params"].shape == (2,)


@pytest.mark.parametrize("name", versions("teststring"))
def test_string(name):
    assert_same(load_mat(data_file(name))["teststring"],
                '"Do nine men interpret?" "Nine men," I nod.')


@pytest.mark.parametrize("name", versions("teststringarray"))
def test_char_matrix_is_a_list_of_rows(name):
    assert_same(load_mat(data_file(name))["teststringarray"], ["one  ", "two  ", "three"])


@pytest.mark.parametrize("name", versions("testonechar") + versions("testunicode"))
def test_one_char_and_unicode(name):
    value = next(iter(load_mat(data_file(name)).values()))
    assert isinstance(value, str)
    assert value == "r" or value.startswith("Japanese: \nすべての人間は")


@pytest.mark.parametrize("name", ["one_by_zero_char.mat", "single_empty_string.mat"])
def test_empty_string(name):
    assert_same(next(iter(load_mat(data_file(name)).values())), "")


@pytest.mark.parametrize("name", versions("teststruct"))
def test_struct_is_a_dict(name):
    roots = np.array([np.sqrt(2), np.e, np.pi])
    struct = load_mat(data_file(name))["teststruct"]
    assert list(struct) == ["stringfield", "doublefield", "complexfield"]
    assert struct["stringfield"] == "Rats live on no evil star."
    # MATLAB's exp(1) on some platforms is one ulp away from numpy's e
    np.testing.assert_allclose(struct["doublefield"], roots, rtol=1e-15)
    np.testing.assert_allclose(struct["complexfield"], roots * (1 + 1j), rtol=1e-15)
    assert struct["doublefield"].shape == (3,) and struct["complexfield"].dtype == complex


@pytest.mark.parametrize("name", versions("teststructarr"))
def test_struct_array_is_a_list_of_dicts(name):
    assert_same(load_mat(data_file(name))["teststructarr"],
                [{"one": 1, "two": 2}, {"one": "number 1", "two": "number 2"}])


@pytest.mark.parametrize("name", versions("teststructnest"))
def test_nested_struct(name):
    assert_same(load_mat(data_file(name))["teststructnest"],
                {"one": 1, "two": {"three": "number 3"}})


def test_struct_without_fields_and_struct_of_cells():
    assert_same(load_mat(data_file("test_empty_struct.mat"))["a"], {})
    assert_same(load_mat(data_file("testsimplecell.mat"))["s"], {"mycell": ["a", "b", "c"]})


@pytest.mark.parametrize("name", versions("testcell"))
def test_cell_is_a_list(name):
    cell = load_mat(data_file(name))["testcell"]
    assert_same(cell, ["This cell contains this string and 3 arrays of increasing length",
                       1, np.array([1, 2], dtype=np.uint8), np.array([1, 2, 3], dtype=np.uint8)])


@pytest.mark.parametrize("name", versions("testcellnest"))
def test_nested_cells(name):
    assert load_mat(data_file(name))["testcellnest"] == [1, [2, 3, [4, 5]]]


def test_cell_with_empties_and_scalar_cell():
    cell = load_mat(data_file("testemptycell_7.4_GLNX86.mat"))["testemptycell"]
    empty = np.zeros((0, 0), dtype=np.uint8)
    assert_same(cell, [1, 2, empty, empty, 3])
    assert_same(load_mat(data_file("testscalarcell_7.4_GLNX86.mat"))["testscalarcell"], [1])


@pytest.mark.parametrize("name", versions("testsparse") + versions("testsparsecomplex"))
def test_sparse_is_csc_array(name):
    value = next(iter(load_mat(data_file(name)).values()))
    assert isinstance(value, scipy.sparse.csc_array) and value.shape == (3, 5)
    expected = MATRIX.astype(complex) + (1j if "complex" in name else 0) * (MATRIX == 1) * \
        np.eye(3, 5)
    np.testing.assert_array_equal(value.toarray(), expected)


def test_logical_sparse():
    value = load_mat(data_file("logical_sparse.mat"))["sp_log_5_4"]
    assert isinstance(value, scipy.sparse.csc_array) and value.dtype == bool
    assert value.shape == (5, 4) and value.nnz == 5


@pytest.mark.parametrize("name", ["big_endian.mat", "little_endian.mat"])
def test_byte_order_is_native(name):
    data = load_mat(data_file(name))
    assert_same(data["floats"], np.array([[2.0, 3.0], [3.0, 4.0]], dtype=np.float32))
    assert data["strings"] == ["hello", "world"]


@pytest.mark.parametrize("name", versions("testobject"))
def test_old_style_object_is_the_dict_of_its_fields(name):
    value = load_mat(data_file(name))["testobject"]
    assert value["expr"] == "x" and value["numArgs"] == 1 and set(value) >= {"args", "version"}


@pytest.mark.parametrize("name", sorted(FUNCTION_HANDLES))
def test_function_handles_are_none_with_a_warning(name):
    with pytest.warns(UserWarning, match=r"function handle.*read as None") as record:
        data = load_mat(data_file(name))
    assert any(name in str(w.message) for w in record)
    assert any(value is None for value in data.values())
    if name == "some_functions.mat":
        assert data["a"] == -3.9 and data["b"] == 52


@pytest.mark.parametrize(
    "name", sorted(p.name for p in DATA.glob("*.mat") if p.name not in CORRUPTED)
)
def test_every_sound_scipy_file_loads(name):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        data = load_mat(data_file(name))
    assert data and all(isinstance(key, str) and not key.startswith("__") for key in data)


# --------------------------------------------------------------------------------------------
# v7.3 (HDF5): the same values as the v7 files they re-encode
# --------------------------------------------------------------------------------------------
V73_CASES = [
    "testdouble_7.4_GLNX86.mat", "testmatrix_7.4_GLNX86.mat", "test3dmatrix_7.4_GLNX86.mat",
    "testcomplex_7.4_GLNX86.mat", "testminus_7.4_GLNX86.mat", "testmulti_7.4_GLNX86.mat",
    "teststring_7.4_GLNX86.mat", "teststringarray_7.4_GLNX86.mat", "testonechar_7.4_GLNX86.mat",
    "testunicode_7.4_GLNX86.mat", "teststruct_7.4_GLNX86.mat", "teststructarr_7.4_GLNX86.mat",
    "teststructnest_7.4_GLNX86.mat", "testcell_7.4_GLNX86.mat", "testcellnest_7.4_GLNX86.mat",
    "testemptycell_7.4_GLNX86.mat", "testscalarcell_7.4_GLNX86.mat", "testsimplecell.mat",
    "testsparse_7.4_GLNX86.mat", "testsparsecomplex_7.4_GLNX86.mat",
    "testsparsefloat_7.4_GLNX86.mat", "logical_sparse.mat", "big_endian.mat",
    "one_by_zero_char.mat", "nasty_duplicate_fieldnames.mat",
]


@pytest.mark.parametrize("name", V73_CASES)
@pytest.mark.parametrize("squeeze", [True, False])
def test_v73_loads_like_v7(tmp_path, name, squeeze):
    v73 = as_v73(tmp_path, name)
    assert mat_file_version(v73) == "7.3"
    assert_same(load_mat(v73, squeeze=squeeze), load_mat(data_file(name), squeeze=squeeze))


def test_v73_logical_empty_and_integer_values(tmp_path):
    path = tmp_path / "misc.mat"
    write_mat73(path, {
        "mask": np.array([[True, False, True]]),
        "nothing": np.zeros((0, 3)),
        "count": np.array([[7]], dtype=np.int32),
        "no_text": np.array([""], dtype="U1"),
        "no_cells": np.empty((0, 0), dtype=object),
        "blank_sparse": scipy.sparse.csc_array((4, 2)),
    })
    data = load_mat(path)
    assert_same(data["mask"], np.array([True, False, True]))
    assert_same(data["nothing"], np.zeros((0, 3)))
    assert_same(data["count"], 7)
    assert_same(data["no_text"], "")
    assert_same(data["no_cells"], [])
    assert_same(data["blank_sparse"], scipy.sparse.csc_array((4, 2)))


def test_v73_struct_without_field_list_uses_group_order(tmp_path):
    path = tmp_path / "fields.mat"
    write_mat73(path, {"s": {"alpha": np.array([[1.0]]), "beta": np.array(["text"])}})
    with h5py.File(path, "r+") as h5file:
        del h5file["s"].attrs["MATLAB_fields"]
    assert_same(load_mat(path)["s"], {"alpha": 1.0, "beta": "text"})


def test_v73_class_objects_and_function_handles_are_none_with_a_warning(tmp_path):
    path = tmp_path / "objects.mat"
    write_mat73(path, {"label": MCOSString(), "handle": FunctionHandle(),
                       "kept": np.array([[2.0]])})
    with pytest.warns(UserWarning) as record:
        data = load_mat(path)
    assert data == {"label": None, "handle": None, "kept": 2.0}
    messages = " ".join(str(w.message) for w in record)
    assert "'label' holds a MATLAB string object" in messages
    assert "'handle' holds a MATLAB function_handle" in messages


# --------------------------------------------------------------------------------------------
# load_mat: bad input, each a clear error naming the file
# --------------------------------------------------------------------------------------------
def test_missing_file(tmp_path):
    missing = tmp_path / "nowhere.mat"
    with pytest.raises(FileNotFoundError, match="nowhere.mat: no such file"):
        load_mat(missing)
    with pytest.raises(FileNotFoundError, match="nowhere.mat"):
        load_model(missing)


def test_directory_is_not_a_mat_file(tmp_path):
    with pytest.raises(MatFileError, match="is a directory"):
        load_mat(tmp_path)


@pytest.mark.parametrize("content, reason", [
    (b"", "the file is empty"),
    (b"x = [1 2 3];\ndisp(x)\n" * 10, "not a MATLAB file"),
    (b"\x89PNG\r\n\x1a\n" + bytes(200), "not a MATLAB file"),
    (bytes(range(256)) * 2, "not a MATLAB file"),
    (b"MATLAB 5.0 MAT-file, truncated", "header shorter than 128 bytes"),
    (b"MATLAB 5.0 MAT-file".ljust(124) + b"\x00\x01XX", "malformed MATLAB header"),
    (b"MATLAB 5.0 MAT-file".ljust(124) + b"\x00\x03IM", "unknown MATLAB file version 0x0300"),
    (b"MATLAB 7.3 MAT-file".ljust(124) + b"\x00\x02IM" + bytes(600), "no HDF5 data follows"),
])
def test_files_that_are_not_matlab(tmp_path, content, reason):
    path = tmp_path / "fake.mat"
    path.write_bytes(content)
    with pytest.raises(MatFileError, match=reason) as info:
        load_mat(path)
    assert str(info.value).startswith(str(path))


def test_header_text_other_than_matlab_is_accepted(tmp_path):
    # Only the version and endian mark at bytes 124-127 identify a v5+ file (as for scipy).
    content = bytearray(data_file("teststruct_7.4_GLNX86.mat").read_bytes())
    content[:20] = b"Written by a tool   "
    path = tmp_path / "renamed_header.mat"
    path.write_bytes(bytes(content))
    assert mat_file_version(path) == "5"
    assert load_mat(path)["teststruct"]["stringfield"] == "Rats live on no evil star."


def test_v73_invalid_text_and_complex_layout(tmp_path):
    path = tmp_path / "bad_text.mat"
    write_mat73(path, {"text": np.array(["ab"])})
    with h5py.File(path, "r+") as h5file:
        h5file["text"][0, 0] = 0xD800  # half of a UTF-16 surrogate pair, alone
    with pytest.raises(MatFileError, match=r"bad_text.mat: variable 'text' holds invalid UTF-16"):
        load_mat(path)
    path = tmp_path / "bad_complex.mat"
    write_mat73(path, {"z": np.array([[1.0]])})
    with h5py.File(path, "r+") as h5file:
        del h5file["z"]
        h5file["z"] = np.zeros(2, dtype=[("re", "f8"), ("im", "f8")])
        h5file["z"].attrs["MATLAB_class"] = np.bytes_("double")
    with pytest.raises(MatFileError, match=r"dataset '/z' has unexpected fields \('re', 'im'\)"):
        load_mat(path)


def test_plain_hdf5_is_not_matlab(tmp_path):
    path = tmp_path / "plain.mat"
    with h5py.File(path, "w") as h5file:
        h5file["x"] = np.arange(3.0)
    with pytest.raises(MatFileError, match=r"plain.mat: an HDF5 file without MATLAB's 512-byte"):
        load_mat(path)


@pytest.mark.parametrize("name", sorted(CORRUPTED))
def test_scipy_corrupted_files(name):
    with pytest.raises(MatFileError, match="truncated or corrupted") as info:
        load_mat(data_file(name))
    message = str(info.value)
    assert name in message and CORRUPTED[name].lower() in message.lower()
    assert info.value.__cause__ is not None  # scipy's own error is chained for detail


@pytest.mark.parametrize("name, keep", [
    ("teststruct_7.4_GLNX86.mat", 0.5),       # compressed v7
    ("teststruct_6.5.1_GLNX86.mat", 0.6),     # uncompressed v6
    ("testmulti_4.2c_SOL2.mat", 0.5),         # v4
    ("testhdf5_7.4_GLNX86.mat", 0.5),         # v7.3
])
def test_truncated_files(tmp_path, name, keep):
    content = data_file(name).read_bytes()
    path = tmp_path / f"cut_{name}"
    path.write_bytes(content[: int(len(content) * keep)])
    with pytest.raises(MatFileError, match="truncated or corrupted") as info:
        load_mat(path)
    assert str(info.value).startswith(str(path))


def test_damaged_v73_data_is_reported(tmp_path):
    content = bytearray(data_file("testhdf5_7.4_GLNX86.mat").read_bytes())
    content[520:600] = bytes(80)  # wipe part of the HDF5 superblock
    path = tmp_path / "damaged.mat"
    path.write_bytes(bytes(content))
    with pytest.raises(MatFileError, match=r"damaged.mat: MATLAB v7.3 \(HDF5\) file is truncated"):
        load_mat(path)


def test_bad_arguments():
    with pytest.raises(ValueError, match="path must be a str or os.PathLike, got int"):
        load_mat(3)
    with pytest.raises(ValueError, match="squeeze must be True or False, got 'yes'"):
        load_mat(data_file("testdouble_7.4_GLNX86.mat"), squeeze="yes")


# --------------------------------------------------------------------------------------------
# save_mat and load_model
# --------------------------------------------------------------------------------------------
def trained_rnn():
    """A VanillaRNN whose weights are not the constructor's (as after training)."""
    model = VanillaRNN(n_in=3, n_hidden=6, n_out=2, seed=5, loss="all")
    rng = np.random.default_rng(0)
    for name, value in model.params.items():
        model.params[name] = value + rng.normal(size=value.shape)
    return model


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
    if hasattr(original, "predict_proba"):
        np.testing.assert_array_equal(loaded.predict_proba(inputs), original.predict_proba(inputs))


RNN_INPUTS = np.random.default_rng(1).normal(size=(4, 7, 3))


def test_rnn_round_trip(tmp_path):
    model = trained_rnn()
    save_mat(tmp_path / "rnn.mat", model)
    assert_same_model(load_model(tmp_path / "rnn.mat"), model, RNN_INPUTS)


def test_saved_model_reads_as_a_plain_struct(tmp_path):
    model = trained_rnn()
    save_mat(tmp_path / "rnn.mat", model)
    data = load_mat(tmp_path / "rnn.mat")
    assert data["model_class"] == "VanillaRNN"
    assert data["hyperparameters"] == model.hyperparameters
    assert data["hyperparameter_types"]["loss"] == "str"
    np.testing.assert_array_equal(data["params"]["W_hh"], model.params["W_hh"])


def simple_cnn():
    """A SimpleCNN with perturbed weights, or skip while course_lib.cnn has no SimpleCNN."""
    cnn = pytest.importorskip("course_lib.cnn")
    if not hasattr(cnn, "SimpleCNN"):
        pytest.skip("course_lib.cnn has no SimpleCNN yet")
    model = cnn.SimpleCNN()
    rng = np.random.default_rng(2)
    for name, value in model.params.items():
        model.params[name] = value + 0.01 * rng.normal(size=value.shape).astype(value.dtype)
    return model


def cnn_inputs(model):
    return np.random.default_rng(3).random((5, model.image_size, model.image_size))


def test_cnn_round_trip(tmp_path):
    model = simple_cnn()
    save_mat(tmp_path / "cnn.mat", model)
    assert_same_model(load_model(tmp_path / "cnn.mat"), model, cnn_inputs(model))


def test_dict_round_trip(tmp_path):
    variables = {
        "weights": np.arange(12.0).reshape(3, 4),
        "cube": np.arange(24, dtype=np.int16).reshape(2, 3, 4),
        "name": "digits",
        "opts": {"rate": 0.5, "epochs": np.int64(3), "tags": np.array([1.0, 2.0])},
    }
    save_mat(tmp_path / "vars.mat", variables)
    assert_same(load_mat(tmp_path / "vars.mat"), {
        "weights": variables["weights"], "cube": variables["cube"], "name": "digits",
        "opts": {"rate": 0.5, "epochs": 3, "tags": np.array([1.0, 2.0])},
    })


def test_hyperparameter_types_round_trip(tmp_path, monkeypatch):
    """bool, None, float, tuple and list hyper-parameters come back with their types."""
    hyperparameters = {"n_in": 2, "flag": True, "rate": 0.25, "name": "x", "extra": None,
                       "sizes": (3, 4), "scales": [0.5, 1.5], "empty": ()}

    class VanillaRNN:  # same name as a real model, so load_model looks it up
        def __init__(self, **kwargs):
            self.hyperparameters = kwargs
            self.params = {"w": np.ones((2, 1))}

    model = VanillaRNN(**hyperparameters)
    save_mat(tmp_path / "fake.mat", model)
    monkeypatch.setattr("course_lib.rnn.VanillaRNN", VanillaRNN)
    loaded = load_model(tmp_path / "fake.mat")
    assert loaded.hyperparameters == hyperparameters
    assert {k: type(v) for k, v in loaded.hyperparameters.items()} == \
        {k: type(v) for k, v in hyperparameters.items()}


def test_save_replaces_an_existing_file_and_keeps_its_mode(tmp_path):
    path = tmp_path / "rnn.mat"
    path.write_bytes(b"old content")
    path.chmod(0o640)
    save_mat(path, trained_rnn())
    assert (path.stat().st_mode & 0o777) == 0o640
    assert load_model(path).hyperparameters == trained_rnn().hyperparameters
    assert [p.name for p in tmp_path.iterdir()] == ["rnn.mat"]


def test_failed_save_writes_nothing_half_way(tmp_path, monkeypatch):
    path = tmp_path / "rnn.mat"
    path.write_bytes(b"previous file")

    def broken_savemat(stream, variables, **kwargs):
        stream.write(b"MATLAB 5.0 MAT-file, half written")
        raise OSError("disk full")

    monkeypatch.setattr(matio.scipy.io, "savemat", broken_savemat)
    with pytest.raises(OSError, match="disk full"):
        save_mat(path, trained_rnn())
    assert path.read_bytes() == b"previous file"
    assert [p.name for p in tmp_path.iterdir()] == ["rnn.mat"]  # no temporary file left


@pytest.mark.parametrize("target, problem", [
    ("model.txt", r"path must end in \.mat .*got '.*model.txt'"),
    ("model", r"path must end in \.mat"),
])
def test_save_path_must_end_in_mat(tmp_path, target, problem):
    with pytest.raises(ValueError, match=problem):
        save_mat(tmp_path / target, {"x": 1.0})
    assert not list(tmp_path.iterdir())


def test_save_into_missing_folder(tmp_path):
    with pytest.raises(FileNotFoundError, match="no such folder"):
        save_mat(tmp_path / "missing" / "x.mat", {"x": 1.0})


@pytest.mark.parametrize("variables, problem", [
    ({"1x": 1.0}, "got '1x'"),
    ({"a-b": 1.0}, "got 'a-b'"),
    ({"_x": 1.0}, "got '_x'"),
    ({"x" * 64: 1.0}, "at most 63 characters"),
    ({"ok": {"bad key": 1.0}}, "got 'ok.bad key'"),
    ({3: 1.0}, "got '3'"),
])
def test_save_rejects_names_matlab_cannot_use(tmp_path, variables, problem):
    with pytest.raises(ValueError, match=f"model_or_dict names must be MATLAB names.*{problem}"):
        save_mat(tmp_path / "x.mat", variables)
    assert not list(tmp_path.iterdir())


def test_save_rejects_values_matlab_cannot_hold(tmp_path):
    with pytest.raises(ValueError, match=r"x.mat: cannot write these values as MATLAB data"):
        save_mat(tmp_path / "x.mat", {"f": {"a", "set"}})
    assert not list(tmp_path.iterdir())
    with pytest.raises(ValueError, match="model_or_dict must be a SimpleCNN, a VanillaRNN or a "
                                         "dict of variables, got list"):
        save_mat(tmp_path / "x.mat", [1, 2])


def test_save_rejects_hyperparameters_matlab_cannot_hold(tmp_path):
    class VanillaRNN:
        hyperparameters = {"act": print}
        params = {}

    with pytest.raises(ValueError, match="hyperparameter 'act' has type builtin_function"):
        save_mat(tmp_path / "x.mat", VanillaRNN())
    VanillaRNN.hyperparameters = {"sizes": (1, 2.5)}
    with pytest.raises(ValueError, match="'sizes' must be a flat tuple/list of all ints or all"):
        save_mat(tmp_path / "x.mat", VanillaRNN())
    assert not list(tmp_path.iterdir())


def _saved_then_edited(tmp_path, edit):
    """Save a model, edit its variables as plain data, save them again; return the path."""
    save_mat(tmp_path / "model.mat", trained_rnn())
    variables = load_mat(tmp_path / "model.mat", squeeze=False)
    edit(variables)
    save_mat(tmp_path / "edited.mat", variables)
    return tmp_path / "edited.mat"


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
    (lambda v: v["hyperparameters"].pop("seed"), "name different fields"),
    (lambda v: v["hyperparameters"].update(n_hidden=np.array([[2.5]])),
     "hyperparameter 'n_hidden' cannot be read as 'int': .*whole number"),
    (lambda v: v["hyperparameters"].update(loss=np.array([[1.0]])),
     "hyperparameter 'loss' cannot be read as 'str'"),
    (lambda v: v["hyperparameter_types"].update(loss="complex"), "unknown type tag 'complex'"),
    (lambda v: v["hyperparameters"].update(n_hidden=np.array([[0]])),
     "VanillaRNN rejects the stored hyperparameters: n_hidden must be an integer >= 1"),
])
def test_load_model_names_what_is_missing_or_wrong(tmp_path, edit, problem):
    path = _saved_then_edited(tmp_path, edit)
    with pytest.raises(MatFileError, match=problem) as info:
        load_model(path)
    assert str(info.value).startswith(str(path))


def test_load_model_of_a_data_file(tmp_path):
    with pytest.raises(MatFileError, match=r"testdouble_7.4_GLNX86.mat: not a saved model: "
                                           r"variable\(s\) model_class, hyperparameters"):
        load_model(data_file("testdouble_7.4_GLNX86.mat"))
    with pytest.raises(MatFileError, match="corrupted"):
        load_model(data_file("corrupted_zlib_data.mat"))


# --------------------------------------------------------------------------------------------
# A real MATLAB-language interpreter reads what save_mat writes
# --------------------------------------------------------------------------------------------
def run_octave(script, cwd):
    result = subprocess.run([OCTAVE, "--no-gui", "--no-window-system", "--quiet", "--norc",
                             "--eval", script], cwd=cwd, capture_output=True, text=True,
                            timeout=300)
    assert result.returncode == 0, result.stderr
    return result.stdout


@pytest.mark.skipif(OCTAVE is None, reason="octave is not installed")
def test_octave_loads_the_export_and_resaves_it(tmp_path):
    model = trained_rnn()
    save_mat(tmp_path / "rnn.mat", model)
    # Octave checks what it sees (MATLAB indices), then re-saves the struct as v7 and v6.
    out = run_octave(
        "m = load('rnn.mat');"
        "printf('%s|%s|%s|%d|%s\\n', class(m), m.model_class, class(m.params.W_hh), "
        "m.hyperparameters.n_hidden, m.hyperparameters.loss);"
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


@pytest.mark.skipif(OCTAVE is None, reason="octave is not installed")
def test_octave_loads_the_cnn_export(tmp_path):
    model = simple_cnn()
    save_mat(tmp_path / "cnn.mat", model)
    out = run_octave("m = load('cnn.mat'); names = fieldnames(m.params);"
                     "for i = 1:numel(names); w = m.params.(names{i});"
                     "printf('%s %d %.17g\\n', names{i}, numel(w), sum(double(w(:)))); end;"
                     "save('-v7', 'octave_cnn.mat', '-struct', 'm');", tmp_path)
    seen = {name: (int(size), float(total))
            for name, size, total in (line.split() for line in out.strip().split("\n"))}
    assert set(seen) == set(model.params)
    for name, value in model.params.items():
        assert seen[name][0] == value.size
        np.testing.assert_allclose(seen[name][1], value.astype(np.float64).sum(), rtol=1e-12)
    assert_same_model(load_model(tmp_path / "octave_cnn.mat"), model, cnn_inputs(model))


def test_float32_weights_resaved_as_double_load_only_when_exact(tmp_path):
    model = simple_cnn()
    save_mat(tmp_path / "cnn.mat", model)
    variables = load_mat(tmp_path / "cnn.mat", squeeze=False)
    variables["params"]["W_sm"] = variables["params"]["W_sm"].astype(np.float64)  # exact
    save_mat(tmp_path / "double.mat", variables)
    assert_same_model(load_model(tmp_path / "double.mat"), model, cnn_inputs(model))
    variables["params"]["W_sm"] = variables["params"]["W_sm"] + 1e-12  # not a float32 any more
    save_mat(tmp_path / "inexact.mat", variables)
    with pytest.raises(MatFileError, match="params.W_sm holds float64 values that float32 cannot"):
        load_model(tmp_path / "inexact.mat")
