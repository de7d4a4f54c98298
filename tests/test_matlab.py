"""Tests of course_lib.matlab: load_mat and save_mat on MATLAB-written files, every error path.

MATLAB-written files: scipy ships them with its own tests (``scipy/io/matlab/tests/data``,
versions 4 to 7.4 from several platforms, plus corrupted ones); they are read from the
installed scipy, never copied here. Every file of that folder is in the tables below: the
class and dtype each of its variables must load as, and whether MATLAB wrote it.

Octave (Debian's, installed with ``deploy/install.sh --test-tools``) stands in for MATLAB on
the way back: it loads what save_mat wrote next to the original file and compares class, size
and values, then re-saves it for load_mat.

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
import warnings

import h5py
import numpy as np
import pytest
import scipy.io
import scipy.sparse

from course_lib import matlab
from course_lib.matlab import (MatFileError, OldStyleObject, StructArray, load_mat,
                               mat_file_version, save_mat)
from octavekit import needs_octave, run_octave

DATA = pathlib.Path(scipy.io.__file__).parent / "matlab" / "tests" / "data"

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

#: The sound files MATLAB did not write (told by their header text: scipy writes "Platform:
#: posix", Octave names itself; the v4 files without header come from scipy's own tests).
NOT_WRITTEN_BY_MATLAB = {
    "big_endian.mat": "header 'Platform: Windows 7', not a MATLAB platform name",
    "broken_utf8.mat": "scipy, with invalid UTF-8 on purpose",
    "miuint32_for_miint32.mat": "scipy, with a mislabelled integer type on purpose",
    "miutf8_array_name.mat": "scipy",
    "one_by_zero_char.mat": "Octave 3.2.3",
    "test_mat4_le_floats.mat": "scipy's byte-order test (v4, no header)",
}

#: What load_mat returns for every sound file of the folder (see describe()): MATLAB's class
#: is kept, a double is float64 even where the file stores it as uint8 or int16 (testmatrix,
#: testminus, testcell, ...), a logical is bool, a 1x1 double a float, a 1x1 of another
#: class a numpy scalar, a char matrix an array of str, a struct array a StructArray.
CLASSES = {
    "big_endian.mat": {"floats": "float32(2, 2)", "strings": "[str, str]"},
    "broken_utf8.mat": {"bad_string": "str"},
    "little_endian.mat": {"floats": "float32(2, 2)", "strings": "[str, str]"},
    "logical_sparse.mat": {"sp_log_5_4": "sparse bool(5, 4)"},
    "miuint32_for_miint32.mat": {"an_array": "int64(10,)"},
    "miutf8_array_name.mat": {"array_name": "np.int64"},
    "nasty_duplicate_fieldnames.mat": {"Summary": "{" + ", ".join(
        [f"{name}: float64(34,)" for name in ("Top_Q", "Middle_Q", "Bottom_Q", "Left_Q",
                                               "Right_Q", "Total_Q", "Depth", "Cells")]
        + [f"{name}: float64(34, {n})" for name, n in (("Track", 2), ("Mean_Vel", 2),
                                                       ("Boat_Vel", 4))]
        + [f"{name}: float64(34,)" for name in ("Station_Q", "_1_Station_Q", "_2_Station_Q",
                                                 "_3_Station_Q", "Track_Reference")]
        + ["Units: {" + ", ".join(f"{name}: str" for name in (
            "Top_Q", "Middle_Q", "Bottom_Q", "Left_Q", "Right_Q", "Total_Q", "Depth", "Cells",
            "Track", "Mean_Vel", "Boat_Vel", "Station_Q", "Track_Reference")) + "}"]) + "}"},
    "one_by_zero_char.mat": {"var": "str"},
    "parabola.mat": {"parabola": "None"},
    "single_empty_string.mat": {"a": "str"},
    "some_functions.mat": {"a": "float", "b": "float", "c": "float", "sqr": "None",
                           "parabola": "None", "nCf": "None"},
    "sqr.mat": {"sqr": "None"},
    "test_empty_struct.mat": {"a": "{}"},
    "test_mat4_le_floats.mat": {"a": "float64(2,)"},
    "test_skip_variable.mat": {"first": "float64(100, 100)", "second": "str"},
    "testbool_8_WIN64.mat": {"testbools": "bool(2,)"},
    "testfunc_7.4_GLNX86.mat": {"testfunc": "None"},
    "testhdf5_7.4_GLNX86.mat": {"testdouble": "float64(9,)"},
    "testmulti_4.2c_SOL2.mat": {"a": "float64(3, 5)", "theta": "float64(9,)"},
    "testmulti_7.1_GLNX86.mat": {"theta": "float64(9,)", "a": "float64(3, 5)"},
    "testmulti_7.4_GLNX86.mat": {"a": "float64(3, 5)", "theta": "float64(9,)"},
    "testscalarcell_7.4_GLNX86.mat": {"testscalarcell": "[float]"},
    "testsimplecell.mat": {"s": "{mycell: [str, str, str]}"},
    "testsparsefloat_7.4_GLNX86.mat": {"testsparsefloat": "sparse float64(1, 6)"},
    "testvec_4_GLNX86.mat": {"fit_params": "float64(2,)", "xdot_filt": "float64(2,)"},
}
#: The test cases MATLAB wrote once per version: one variable named after the case.
_PER_VERSION = {
    "test3dmatrix": "float64(2, 3, 4)",
    "testcell": "[str, float, float64(2,), float64(3,)]",
    "testcellnest": "[float, [float, float, [float, float]]]",
    "testcomplex": "complex128(9,)",
    "testdouble": "float64(9,)",
    "testemptycell": "[float, float, float64(0, 0), float64(0, 0), float]",
    "testmatrix": "float64(3, 5)",
    "testminus": "float",
    "testobject": "OldStyleObject inline{expr: str, inputExpr: str, args: str, isEmpty: float, "
                  "numArgs: float, version: float}",
    "testonechar": "str",
    "testsparse": "sparse float64(3, 5)",
    "testsparsecomplex": "sparse complex128(3, 5)",
    "teststring": "str",
    "teststringarray": "char(3,)",
    "teststruct": "{stringfield: str, doublefield: float64(3,), complexfield: complex128(3,)}",
    "teststructarr": "StructArray(2,)[{one: float, two: float}, {one: str, two: str}]",
    "teststructnest": "{one: float, two: {three: str}}",
    "testunicode": "str",
}
for _case, _description in _PER_VERSION.items():
    for _file in DATA.glob(f"{_case}_[0-9]*.mat"):
        CLASSES[_file.name] = {_case: _description}

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


def quietly(function, *args, **kwargs):
    """Call ``function`` with the warnings about function handles silenced."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        return function(*args, **kwargs)


def describe(value):
    """A value's Python type, dtype and shape, recursively: ``[str, float64(2,)]``."""
    if scipy.sparse.issparse(value):
        return f"sparse {value.dtype}{value.shape}"
    if value is None:
        return "None"
    if isinstance(value, StructArray):
        return f"StructArray{value.shape}[" + ", ".join(map(describe, value.flat)) + "]"
    if isinstance(value, OldStyleObject):
        return f"OldStyleObject {value.classname}" + describe(dict(value))
    if isinstance(value, dict):
        return "{" + ", ".join(f"{key}: {describe(item)}" for key, item in value.items()) + "}"
    if isinstance(value, list):
        return "[" + ", ".join(map(describe, value)) + "]"
    if isinstance(value, np.ndarray):
        if value.dtype == object:
            return f"cell{value.shape}[" + ", ".join(map(describe, value.flat)) + "]"
        return f"{'char' if value.dtype.kind == 'U' else value.dtype}{value.shape}"
    if isinstance(value, np.generic):
        return f"np.{value.dtype}"
    return type(value).__name__


def assert_same(actual, expected, where="value"):
    """Deep equality that also requires the same types, dtypes, shapes (and fields)."""
    assert type(actual) is type(expected), f"{where}: {type(actual)} vs {type(expected)}"
    if scipy.sparse.issparse(expected):
        assert actual.shape == expected.shape and actual.dtype == expected.dtype, where
        np.testing.assert_array_equal(actual.toarray(), expected.toarray(), err_msg=where)
    elif isinstance(expected, dict):
        assert list(actual) == list(expected), where
        assert getattr(actual, "classname", None) == getattr(expected, "classname", None), where
        for key in expected:
            assert_same(actual[key], expected[key], f"{where}[{key!r}]")
    elif isinstance(expected, list):
        assert len(actual) == len(expected), where
        for i, (a, e) in enumerate(zip(actual, expected)):
            assert_same(a, e, f"{where}[{i}]")
    elif isinstance(expected, np.ndarray):
        assert actual.dtype == expected.dtype and actual.shape == expected.shape, \
            f"{where}: {actual.dtype}{actual.shape} vs {expected.dtype}{expected.shape}"
        if isinstance(expected, StructArray):
            assert actual.fields == expected.fields, where
        if expected.dtype == object:
            for index in np.ndindex(expected.shape):
                assert_same(actual[index], expected[index], f"{where}[{index}]")
        else:
            assert actual.flags.c_contiguous and actual.dtype.isnative, where
            np.testing.assert_array_equal(actual, expected, err_msg=where)
    else:
        assert actual == expected, f"{where}: {actual!r} vs {expected!r}"


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
    """Write values as ``load_mat(squeeze=False)`` returns them in MATLAB's v7.3 layout."""
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
        kind = "logical" if csc.dtype == bool else "double"
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
    if isinstance(value, StructArray):
        group = parent.create_group(name)
        _matlab_class_attr(group, "struct")
        group.attrs["MATLAB_fields"] = _field_names(value.fields)
        for key in value.fields:
            field = np.empty(value.shape, dtype=object)
            for index in np.ndindex(value.shape):
                field[index] = value[index][key]
            _write_refs(h5file, group, key, field, counter)
        return group
    if isinstance(value, str):
        value = np.array([value])
    if value.dtype == object:  # a cell array
        if value.size == 0:
            return _write_empty(parent, name, value.shape, "cell")
        dataset = _write_refs(h5file, parent, name, value, counter)
        _matlab_class_attr(dataset, "cell")
        return dataset
    if value.dtype.kind == "U":  # chars: one string per row
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
    target = tmp_path / f"{pathlib.Path(name).stem}_v73.mat"
    write_mat73(target, load_mat(data_file(name), squeeze=False))
    return target


# --------------------------------------------------------------------------------------------
# load_mat on every file scipy ships: MATLAB's class, whatever the file stores
# --------------------------------------------------------------------------------------------
def test_every_file_of_the_folder_is_in_the_tables():
    shipped = {path.name for path in DATA.glob("*.mat")}
    assert shipped == set(CLASSES) | set(CORRUPTED), (
        f"new: {sorted(shipped - set(CLASSES) - set(CORRUPTED))}, "
        f"gone: {sorted(set(CLASSES) | set(CORRUPTED) - shipped)}")
    assert set(NOT_WRITTEN_BY_MATLAB) <= set(CLASSES)


@pytest.mark.parametrize("name", sorted(CLASSES))
def test_each_variable_loads_in_its_matlab_class(name):
    data = quietly(load_mat, data_file(name))
    assert {key: describe(value) for key, value in data.items()} == CLASSES[name]


#: scipy.io.whosmat reads each variable's class from its header, independently of how its
#: values are stored: the Python types each top-level class may load as.
WHOS_CLASSES = {
    "double": lambda v: isinstance(v, (float, complex)) or getattr(v, "dtype", None) in (
        np.float64, np.complex128),
    "single": lambda v: v.dtype in (np.float32, np.complex64),
    "int64": lambda v: v.dtype == np.int64,
    "logical": lambda v: isinstance(v, bool) or v.dtype == bool,
    "char": lambda v: isinstance(v, str) or v.dtype.kind == "U",
    "cell": lambda v: isinstance(v, list) or (type(v) is np.ndarray and v.dtype == object),
    "struct": lambda v: isinstance(v, (dict, StructArray)),
    "object": lambda v: isinstance(v, OldStyleObject),
    "sparse": lambda v: isinstance(v, scipy.sparse.csc_array) and v.dtype in (
        np.float64, np.complex128),
    "function": lambda v: v is None,
}


@pytest.mark.parametrize("name", sorted(set(CLASSES) - {"testhdf5_7.4_GLNX86.mat"}))
def test_top_level_classes_agree_with_scipy_whosmat(name):
    data = quietly(load_mat, data_file(name))
    for variable, _, matlab_class in quietly(scipy.io.whosmat, data_file(name)):
        if variable.startswith("__"):
            continue
        assert WHOS_CLASSES[matlab_class](data[variable]), \
            f"{variable}: MATLAB class {matlab_class}, loaded as {describe(data[variable])}"


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
def test_matrix_keeps_matlab_indices_and_class(name):
    # MATLAB stores this integer-valued double matrix compactly as uint8 (v6, v7)
    matrix = load_mat(data_file(name))["testmatrix"]
    assert_same(matrix, MATRIX)  # float64, and A(2,1) == 2 is matrix[1, 0]


@pytest.mark.parametrize("name", versions("test3dmatrix"))
def test_3d_matrix_is_column_major_reshape(name):
    # MATLAB wrote reshape(1:24, 2, 3, 4): column-major, so numpy needs order="F"
    expected = np.arange(1.0, 25.0).reshape((2, 3, 4), order="F")
    assert_same(load_mat(data_file(name))["test3dmatrix"], np.ascontiguousarray(expected))


@pytest.mark.parametrize("name", versions("testcomplex"))
def test_complex(name):
    assert_same(load_mat(data_file(name))["testcomplex"], np.cos(THETA) + 1j * np.sin(THETA))


@pytest.mark.parametrize("name", versions("testminus"))
def test_one_by_one_double_is_a_python_float(name):
    # v6/v7 store MATLAB's -1 as int16; it is still a double
    assert_same(load_mat(data_file(name))["testminus"], -1.0)
    assert_same(load_mat(data_file(name), squeeze=False)["testminus"], np.array([[-1.0]]))


def test_logical_is_bool_in_every_version(tmp_path):
    assert_same(load_mat(data_file("testbool_8_WIN64.mat"))["testbools"], np.array([True, False]))
    assert_same(load_mat(data_file("logical_sparse.mat"))["sp_log_5_4"].dtype, np.dtype(bool))
    path = tmp_path / "flags.mat"
    write_mat73(path, {"flag": np.array([[True]]), "mask": np.array([[True, False, True]])})
    assert_same(load_mat(path), {"flag": True, "mask": np.array([True, False, True])})
    # v4 has no logical class: MATLAB 4 saved logicals as doubles


def test_other_classes_stay_numpy_scalars(tmp_path):
    assert_same(load_mat(data_file("miutf8_array_name.mat"))["array_name"], np.int64(1))
    path = tmp_path / "scalars.mat"
    save_mat(path, {"i": np.int32(-7), "u": np.uint8(200), "s": np.float32(0.5),
                    "z": np.complex64(1 + 2j), "d": 2.5, "c": 1 - 1j, "b": False})
    assert_same(load_mat(path), {"i": np.int32(-7), "u": np.uint8(200), "s": np.float32(0.5),
                                 "z": np.complex64(1 + 2j), "d": 2.5, "c": 1 - 1j, "b": False})


def test_squeeze_false_keeps_matlab_shapes():
    data = load_mat(data_file("testmulti_7.4_GLNX86.mat"), squeeze=False)
    assert data["theta"].shape == (1, 9) and data["a"].shape == (3, 5)
    assert load_mat(data_file("testvec_4_GLNX86.mat"), squeeze=False)["fit_params"].shape == (2, 1)
    assert load_mat(data_file("testvec_4_GLNX86.mat"))["fit_params"].shape == (2,)
    cell = load_mat(data_file("testcell_7.4_GLNX86.mat"), squeeze=False)["testcell"]
    assert type(cell) is np.ndarray and cell.dtype == object and cell.shape == (1, 4)
    assert_same(cell[0, 2], np.array([[1.0, 2.0]]))
    structs = load_mat(data_file("teststructarr_7.4_GLNX86.mat"), squeeze=False)["teststructarr"]
    assert isinstance(structs, StructArray) and structs.shape == (1, 2)
    assert structs[0, 1]["one"] == "number 1"


@pytest.mark.parametrize("name", versions("teststring"))
def test_string(name):
    assert_same(load_mat(data_file(name))["teststring"],
                '"Do nine men interpret?" "Nine men," I nod.')


@pytest.mark.parametrize("name", versions("teststringarray"))
def test_char_matrix_is_an_array_of_rows(name):
    assert_same(load_mat(data_file(name))["teststringarray"],
                np.array(["one  ", "two  ", "three"]))


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
def test_struct_array_is_a_struct_array(name):
    assert_same(load_mat(data_file(name))["teststructarr"],
                StructArray([{"one": 1.0, "two": 2.0}, {"one": "number 1", "two": "number 2"}]))


@pytest.mark.parametrize("name", versions("teststructnest"))
def test_nested_struct(name):
    assert_same(load_mat(data_file(name))["teststructnest"],
                {"one": 1.0, "two": {"three": "number 3"}})


def test_struct_without_fields_and_struct_of_cells():
    assert_same(load_mat(data_file("test_empty_struct.mat"))["a"], {})
    assert_same(load_mat(data_file("testsimplecell.mat"))["s"], {"mycell": ["a", "b", "c"]})


@pytest.mark.parametrize("name", versions("testcell"))
def test_cell_is_a_list_of_doubles_and_text(name):
    cell = load_mat(data_file(name))["testcell"]
    assert_same(cell, ["This cell contains this string and 3 arrays of increasing length",
                       1.0, np.array([1.0, 2.0]), np.array([1.0, 2.0, 3.0])])


@pytest.mark.parametrize("name", versions("testcellnest"))
def test_nested_cells(name):
    assert_same(load_mat(data_file(name))["testcellnest"], [1.0, [2.0, 3.0, [4.0, 5.0]]])


def test_cell_with_empties_and_scalar_cell():
    cell = load_mat(data_file("testemptycell_7.4_GLNX86.mat"))["testemptycell"]
    empty = np.zeros((0, 0))
    assert_same(cell, [1.0, 2.0, empty, empty, 3.0])
    assert_same(load_mat(data_file("testscalarcell_7.4_GLNX86.mat"))["testscalarcell"], [1.0])


def test_two_dimensional_cell_is_an_object_array(tmp_path):
    cell = np.empty((2, 3), dtype=object)
    for index in np.ndindex(cell.shape):
        cell[index] = float(10 * index[0] + index[1])
    save_mat(tmp_path / "grid.mat", {"grid": cell})
    assert_same(load_mat(tmp_path / "grid.mat")["grid"], cell)


@pytest.mark.parametrize("name", versions("testsparse") + versions("testsparsecomplex"))
def test_sparse_is_a_double_csc_array(name):
    # MATLAB 6.1 stores this sparse double's values compactly as uint8
    value = next(iter(load_mat(data_file(name)).values()))
    expected = MATRIX.astype(complex) + (1j if "complex" in name else 0) * (MATRIX == 1) * \
        np.eye(3, 5)
    assert_same(value, scipy.sparse.csc_array(expected if "complex" in name else expected.real))


@pytest.mark.parametrize("name", ["big_endian.mat", "little_endian.mat"])
def test_byte_order_is_native(name):
    data = load_mat(data_file(name))
    assert_same(data["floats"], np.array([[2.0, 3.0], [3.0, 4.0]], dtype=np.float32))
    assert_same(data["strings"], ["hello", "world"])  # a 2x1 cell


@pytest.mark.parametrize("name", versions("testobject"))
def test_old_style_object_is_the_dict_of_its_fields_and_its_class(name):
    value = load_mat(data_file(name))["testobject"]
    assert isinstance(value, OldStyleObject) and value.classname == "inline"
    assert value["expr"] == "x" and value["numArgs"] == 1.0 and set(value) >= {"args", "version"}
    assert repr(value).startswith("OldStyleObject({'expr': 'x', ") and \
        repr(value).endswith(", classname='inline')")


@pytest.mark.parametrize("name", sorted(FUNCTION_HANDLES))
def test_function_handles_are_none_with_a_warning(name):
    with pytest.warns(UserWarning, match=r"function handle.*read as None") as record:
        data = load_mat(data_file(name))
    assert any(name in str(w.message) for w in record)
    assert any(value is None for value in data.values())
    if name == "some_functions.mat":
        assert_same(data["a"], -3.9)
        assert_same(data["b"], 52.0)


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
    "one_by_zero_char.mat", "nasty_duplicate_fieldnames.mat", "testbool_8_WIN64.mat",
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
    assert_same(data["count"], np.int32(7))
    assert_same(data["no_text"], "")
    assert_same(data["no_cells"], [])
    assert_same(data["blank_sparse"], scipy.sparse.csc_array((4, 2)))
    assert_same(load_mat(path, squeeze=False)["no_cells"], np.empty((0, 0), dtype=object))


def test_v73_struct_without_field_list_uses_group_order(tmp_path):
    path = tmp_path / "fields.mat"
    write_mat73(path, {"s": {"alpha": np.array([[1.0]]), "beta": "text"}})
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
    with pytest.raises(FileNotFoundError, match="nowhere.mat: no such file"):
        load_mat(tmp_path / "nowhere.mat")


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
    write_mat73(path, {"text": "ab"})
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
# save_mat(path, load_mat(f)) writes back what MATLAB wrote
# --------------------------------------------------------------------------------------------
#: Sound files whose values MATLAB could not take back, and the error save_mat gives.
REFUSED_ON_SAVE = {
    **{name: "MATLAB has no None" for name in FUNCTION_HANDLES},  # read as None
    "logical_sparse.mat": "MATLAB sparse matrices are double",
    # scipy renames MATLAB's duplicated field names to _1_Station_Q, ...
    "nasty_duplicate_fieldnames.mat": "names must be MATLAB names",
}


@pytest.mark.parametrize("squeeze", [True, False])
@pytest.mark.parametrize("name", sorted(set(CLASSES) - set(REFUSED_ON_SAVE)))
def test_saving_what_load_mat_read_gives_it_back(tmp_path, name, squeeze):
    original = load_mat(data_file(name), squeeze=squeeze)
    save_mat(tmp_path / "again.mat", original)
    assert_same(load_mat(tmp_path / "again.mat", squeeze=squeeze), original)


@pytest.mark.parametrize("name", sorted(set(CLASSES) - set(REFUSED_ON_SAVE)
                                        - {"testhdf5_7.4_GLNX86.mat", "one_by_zero_char.mat"}))
def test_written_back_with_the_class_and_size_matlab_wrote(tmp_path, name):
    # scipy.io.whosmat reads class and size from the headers: the file's and ours agree.
    # (Left out: whosmat cannot read v7.3; scipy writes every empty char as 0x0, so
    # Octave's 1x0 one_by_zero_char comes back 0x0, also an empty text for MATLAB.)
    save_mat(tmp_path / "again.mat", load_mat(data_file(name), squeeze=False))
    written = {name: (shape, kind) for name, shape, kind in scipy.io.whosmat(tmp_path / "again.mat")}
    for variable, shape, kind in quietly(scipy.io.whosmat, data_file(name)):
        assert written[variable] == (shape, kind), variable


@pytest.mark.parametrize("name", sorted(REFUSED_ON_SAVE))
def test_values_matlab_cannot_take_back_are_refused(tmp_path, name):
    with pytest.raises(ValueError, match=REFUSED_ON_SAVE[name]):
        save_mat(tmp_path / "again.mat", quietly(load_mat, data_file(name)))
    assert not list(tmp_path.iterdir())


def test_python_values_become_matlab_classes(tmp_path):
    variables = {
        "count": 3,                                     # a Python int is a double
        "big": -(2**53),                                # still exactly a double
        "rate": 0.5,
        "flag": True,
        "z": 2 - 1j,
        "name": "digits",
        "rows": np.array(["ab", "cd"]),                 # a char matrix
        "mixed": ["text", 1, np.array([1, 2], dtype=np.int8)],   # a cell, not a char matrix
        "pair": (1.5, "x"),                             # a tuple is a cell too
        "none": [],                                     # MATLAB's {}
        "structs": StructArray([{"a": 1, "b": "x"}, {"a": 2.5, "b": [1]}]),
        "cell_of_structs": [{"a": 1}, {"a": 2}],        # a list of dicts stays a cell
        "opts": {"epochs": 3, "tags": np.array([1.0, 2.0]), "inner": {}},
        "mask": np.array([True, False]),
        "cube": np.arange(24, dtype=np.int16).reshape(2, 3, 4),
        "sparse": scipy.sparse.csr_array(np.eye(2)),
    }
    save_mat(tmp_path / "vars.mat", variables)
    assert_same(load_mat(tmp_path / "vars.mat"), {
        "count": 3.0, "big": -float(2**53), "rate": 0.5, "flag": True, "z": 2 - 1j,
        "name": "digits", "rows": np.array(["ab", "cd"]),
        "mixed": ["text", 1.0, np.array([1, 2], dtype=np.int8)],
        "pair": [1.5, "x"], "none": [],
        "structs": StructArray([{"a": 1.0, "b": "x"}, {"a": 2.5, "b": [1.0]}]),
        "cell_of_structs": [{"a": 1.0}, {"a": 2.0}],
        "opts": {"epochs": 3.0, "tags": np.array([1.0, 2.0]), "inner": {}},
        "mask": np.array([True, False]),
        "cube": variables["cube"],
        "sparse": scipy.sparse.csc_array(np.eye(2)),
    })
    assert load_mat(tmp_path / "vars.mat", squeeze=False)["none"].shape == (0, 0)


@pytest.mark.parametrize("value, problem", [
    (np.datetime64("2024-05-01"), r"variables\['x'\]: MATLAB has no class for numpy datetime64"),
    (np.array(["2024-05-01"], dtype="datetime64[D]"), r"no class for numpy datetime64\[D\]"),
    (np.timedelta64(3, "s"), r"no class for numpy timedelta64\[s\]"),
    (np.float16(1.0), r"no class for numpy float16; expected bool, int8"),
    (np.ones(2, dtype=np.longdouble), "no class for numpy float128"),
    (np.array([b"ab"]), r"got bytes \(\|S2\); decode them to str"),
    (None, "MATLAB has no None; got None"),
    ({"when": np.datetime64("2024-05-01")}, r"variables\['x'\]\['when'\]: MATLAB has no class"),
    ([1.0, None], r"variables\['x'\]\[1\]: MATLAB has no None"),
    (np.array([1.0, {1, 2}], dtype=object), r"variables\['x'\]\[1\]: a set has no MATLAB class"),
    (StructArray([{"t": 1.0}, {"t": None}]), r"variables\['x'\]\[1\]\['t'\]: MATLAB has no None"),
    (2**53 + 1, r"the int 9007199254740993 is not exactly a double.*np.int64"),
    (np.ma.masked_array([1.0, 2.0], mask=[0, 1]), "MATLAB has no masked arrays"),
    (scipy.sparse.csc_array(np.eye(2, dtype=bool)), "got a sparse bool matrix"),
    (scipy.sparse.csc_array(np.eye(2, dtype=np.int32)), "got a sparse int32 matrix"),
    (print, "a builtin_function_or_method has no MATLAB class"),
    (StructArray([], fields=()), "a StructArray without fields cannot be written"),
])
def test_save_refuses_values_matlab_cannot_hold(tmp_path, value, problem):
    (tmp_path / "x.mat").write_bytes(b"previous file")
    with pytest.raises(ValueError, match=problem):
        save_mat(tmp_path / "x.mat", {"x": value})
    assert (tmp_path / "x.mat").read_bytes() == b"previous file"
    assert [p.name for p in tmp_path.iterdir()] == ["x.mat"]


def test_save_wants_a_dict(tmp_path):
    with pytest.raises(ValueError, match="variables must be a dict of variable names to values, "
                                         "got list"):
        save_mat(tmp_path / "x.mat", [1, 2])

    class Model:
        params = {}

    with pytest.raises(ValueError, match=r"got Model \(save a model with "
                                         r"course_lib.models.save_model\)"):
        save_mat(tmp_path / "x.mat", Model())
    assert not list(tmp_path.iterdir())


@pytest.mark.parametrize("elements, fields, problem", [
    ([{"a": 1}, 2], None, "elements must all be dicts, got int at flat index 1"),
    ([{"a": 1}, {"b": 2}], None, r"elements must all have the fields \['a'\], got \['b'\] at "
                                 "flat index 1"),
    ([{"a": 1}], ["a", "b"], r"fields \['a', 'b'\], got \['a'\] at flat index 0"),
    ([], None, "fields must be given for an empty StructArray"),
])
def test_struct_array_rejects_mismatched_elements(elements, fields, problem):
    with pytest.raises(ValueError, match=problem):
        StructArray(elements, fields=fields)


def test_struct_array_indexing_and_empty_struct_arrays(tmp_path):
    structs = StructArray([[{"a": 1.0}, {"a": 2.0}], [{"a": 3.0}, {"a": 4.0}]])
    assert structs.shape == (2, 2) and structs[1, 0]["a"] == 3.0 and structs.fields == ("a",)
    assert structs[0].fields == ("a",)  # a row of it is a struct array too
    save_mat(tmp_path / "s.mat", {"grid": structs, "none": StructArray([], fields=["a", "b"])})
    data = load_mat(tmp_path / "s.mat")
    assert_same(data["grid"], structs)
    assert_same(data["none"], StructArray(np.empty((0, 0)), fields=["a", "b"]))


def test_save_replaces_an_existing_file_and_keeps_its_mode(tmp_path):
    path = tmp_path / "x.mat"
    path.write_bytes(b"old content")
    path.chmod(0o640)
    save_mat(path, {"x": 1.0})
    assert (path.stat().st_mode & 0o777) == 0o640
    assert load_mat(path) == {"x": 1.0}
    assert [p.name for p in tmp_path.iterdir()] == ["x.mat"]


def test_failed_save_writes_nothing_half_way(tmp_path, monkeypatch):
    path = tmp_path / "x.mat"
    path.write_bytes(b"previous file")

    def broken_savemat(stream, variables, **kwargs):
        stream.write(b"MATLAB 5.0 MAT-file, half written")
        raise OSError("disk full")

    # A real disk-full error cannot be caused here: scipy's writer is replaced by one that fails.
    monkeypatch.setattr(scipy.io, "savemat", broken_savemat)
    with pytest.raises(OSError, match="disk full"):
        save_mat(path, {"x": 1.0})
    assert path.read_bytes() == b"previous file"
    assert [p.name for p in tmp_path.iterdir()] == ["x.mat"]  # no temporary file left


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


NAME_RULE = r"names must be MATLAB names \(a letter, then letters, digits or underscores, at " \
    r"most 63 characters\), got "


@pytest.mark.parametrize("variables, where, name", [
    ({"1x": 1.0}, "variables", "'1x'"),
    ({"a-b": 1.0}, "variables", "'a-b'"),
    ({"_x": 1.0}, "variables", "'_x'"),
    ({"x" * 64: 1.0}, "variables", "'x{64}'"),
    ({3: 1.0}, "variables", "3"),
    ({"ok": {"bad key": 1.0}}, r"variables\['ok'\]", "'bad key'"),
    ({"ok": StructArray([{"bad key": 1.0}])}, r"variables\['ok'\]", "'bad key'"),
])
def test_save_rejects_names_matlab_cannot_use(tmp_path, variables, where, name):
    with pytest.raises(ValueError, match=f"^{where} {NAME_RULE}{name}$"):
        save_mat(tmp_path / "x.mat", variables)
    assert not list(tmp_path.iterdir())


# --------------------------------------------------------------------------------------------
# Octave, a MATLAB-language interpreter: it reads what save_mat writes, and load_mat reads
# what it writes back
# --------------------------------------------------------------------------------------------
#: A recursive comparison in the MATLAB language: isequal alone ignores the class.
SAME_MATLAB_VALUE = r"""
function problem = same_matlab_value(a, b, where)
  problem = '';
  if ~strcmp(class(a), class(b))
    problem = sprintf('%s: class %s vs %s', where, class(a), class(b)); return;
  end
  if ~isequal(size(a), size(b))
    problem = sprintf('%s: size %s vs %s', where, mat2str(size(a)), mat2str(size(b))); return;
  end
  if isnumeric(a) || islogical(a)
    if issparse(a) ~= issparse(b) || (isnumeric(a) && iscomplex(a) ~= iscomplex(b))
      problem = sprintf('%s: sparse or complex differ', where);
    elseif ~isequaln(a, b)
      problem = sprintf('%s: values differ', where);
    end
  elseif ischar(a)
    if ~isequal(a, b), problem = sprintf('%s: text differs', where); end
  elseif iscell(a)
    for k = 1:numel(a)
      problem = same_matlab_value(a{k}, b{k}, sprintf('%s{%d}', where, k));
      if ~isempty(problem), return; end
    end
  elseif isstruct(a)
    if ~isequal(fieldnames(a), fieldnames(b))
      problem = sprintf('%s: fields differ', where); return;
    end
    names = fieldnames(a);
    for k = 1:numel(a)
      for f = 1:numel(names)
        problem = same_matlab_value(a(k).(names{f}), b(k).(names{f}), ...
                                    sprintf('%s(%d).%s', where, k, names{f}));
        if ~isempty(problem), return; end
      end
    end
  else
    problem = sprintf('%s: unexpected class %s', where, class(a));
  end
end
"""

#: Files left out of the Octave round trip, and why.
NOT_FOR_OCTAVE = {
    **{name: "refused by save_mat" for name in REFUSED_ON_SAVE},
    "testunicode_7.1_GLNX86.mat": "Octave 7 misreads UTF-8 char data (MATLAB reads it)",
    "testunicode_7.4_GLNX86.mat": "Octave 7 misreads UTF-8 char data (MATLAB reads it)",
    "broken_utf8.mat": "invalid UTF-8 on purpose: Octave keeps the bytes, scipy replaces them",
    "miuint32_for_miint32.mat": "Octave cannot load scipy's mislabelled original",
}
OCTAVE_CASES = sorted(set(CLASSES) - set(NOT_FOR_OCTAVE))


@pytest.fixture(scope="module")
def octave_round_trips(tmp_path_factory):
    """One Octave run over every case: it compares the original with what save_mat wrote
    from ``load_mat(original, squeeze=False)``, then re-saves ours as v7."""
    folder = tmp_path_factory.mktemp("octave")
    (folder / "same_matlab_value.m").write_text(SAME_MATLAB_VALUE)
    for name in OCTAVE_CASES:
        save_mat(folder / f"ours_{name}", load_mat(data_file(name), squeeze=False))
    names = ", ".join(f"'{name}'" for name in OCTAVE_CASES)
    out = run_octave(
        f"warning('off', 'all'); names = {{{names}}};"
        "for i = 1:numel(names)"
        f"  original = load(fullfile('{DATA}', names{{i}})); ours = load(['ours_' names{{i}}]);"
        "  problem = same_matlab_value(original, ours, names{i});"
        "  save('-v7', ['octave_' names{i}], '-struct', 'ours');"
        "  printf('%s|%s\\n', names{i}, problem);"
        "end", folder)
    compared = dict(line.split("|", 1) for line in out.strip().split("\n"))
    return folder, compared


@needs_octave
@pytest.mark.parametrize("name", OCTAVE_CASES)
def test_octave_reads_what_we_write_and_we_read_what_it_writes(octave_round_trips, name):
    folder, compared = octave_round_trips
    assert compared[name] == "", compared[name]  # same class, size and values in Octave
    resaved, original = (load_mat(path, squeeze=False)
                         for path in (folder / f"octave_{name}", data_file(name)))
    # Octave has no old-style classes such as inline: it loads those objects as structs
    original = {key: dict(value) if isinstance(value, OldStyleObject) else value
                for key, value in original.items()}
    assert_same(dict(sorted(resaved.items())), dict(sorted(original.items())))  # Octave sorts


@needs_octave
def test_octave_sees_python_values_in_matlab_classes(tmp_path):
    save_mat(tmp_path / "py.mat", {
        "count": 3, "flag": True, "name": "abc", "rows": np.array(["ab", "cd"]),
        "mixed": ["text", 1], "structs": StructArray([{"a": 1}, {"a": "x"}]),
        "cell_of_structs": [{"a": 1}], "opts": {"n": np.int32(4)}, "wide": np.arange(3.0)})
    out = run_octave(
        "v = load('py.mat'); names = fieldnames(v);"
        "for i = 1:numel(names); x = v.(names{i});"
        "  printf('%s %s %s\\n', names{i}, class(x), mat2str(size(x))); end;"
        "printf('%s %s %d\\n', class(v.structs(2).a), class(v.cell_of_structs{1}), v.opts.n);",
        tmp_path)
    assert out.split("\n") == [
        "count double [1 1]", "flag logical [1 1]", "name char [1 3]", "rows char [2 2]",
        "mixed cell [1 2]", "structs struct [1 2]", "cell_of_structs cell [1 1]",
        "opts struct [1 1]", "wide double [1 3]", "char struct 4", ""]
