"""MATLAB files in and out: plain Python values from any ``.mat`` file, and back.

MATLAB has written four file formats over the years. Versions 4, 6 and 7 are MATLAB's own
binary layout, which :func:`scipy.io.loadmat` reads; version 7.3 is an HDF5 file behind a
512-byte MATLAB header, which :mod:`h5py` reads. :func:`load_mat` hides the difference and
returns the same values for the same MATLAB data whatever the version; :func:`save_mat` writes
those values back (as a version 7 file) in the MATLAB class they came from, so
``save_mat(path, load_mat(f))`` gives MATLAB back what it wrote:

=====================  ==========================================  ===========================
MATLAB                 :func:`load_mat` returns                    :func:`save_mat` writes it
                                                                   from
=====================  ==========================================  ===========================
double array           float64 ndarray, also where the file        float64 ndarray
                       stores integer values compactly as uint8,
                       int16, ...
1x1 double             Python ``float``                            ``float``, ``int`` (when
                                                                   exact), ``np.float64``
other numeric class    ndarray of that class's dtype: ``single``   ndarray or numpy scalar of
                       is float32, ``int8`` int8, ..., complex     that dtype
                       data complex64/complex128; a 1x1 one is
                       a numpy scalar (``np.int32(7)``)
1x1 complex double     Python ``complex``                          ``complex``
logical                bool ndarray; 1x1: Python ``bool``          bool ndarray, ``bool``
char row               ``str``                                     ``str``
char matrix            ndarray of ``str``, one per row             ndarray of ``str``
1x1 struct             ``dict`` of field name to value             ``dict``
struct array           :class:`StructArray` (ndarray of dicts)     :class:`StructArray`
cell (a vector)        ``list``                                    ``list`` or ``tuple``
cell (2-D or more)     object ndarray of the cell's shape          object ndarray
sparse matrix          :class:`scipy.sparse.csc_array`             scipy sparse, float64 or
                                                                   complex128
old-style object       :class:`OldStyleObject` (the dict of its    :class:`OldStyleObject`
(``@class`` folder)    fields, and its ``classname``)
=====================  ==========================================  ===========================

``a[i, j]`` is MATLAB's ``A(i+1, j+1)`` throughout. By default (``squeeze=True``) singleton
dimensions are dropped: a 1xN row is an array of shape ``(N,)``, a 1xN struct array or cell has
``N`` elements; ``save_mat`` writes such vectors back as 1xN rows, so an Nx1 column comes back
as a row. With ``squeeze=False`` every array, cell and struct array keeps MATLAB's full shape
(a cell is then always an object ndarray) and the round trip is exact, shapes included.

A list and a struct array are told apart by type: a ``list`` is always a cell (also a list of
dicts: a cell of structs), a :class:`StructArray` always a struct array.

Function handles and MATLAB class objects (``string``, ``table``, ...) have no numpy
equivalent: :func:`load_mat` reads them as ``None`` with a warning, and :func:`save_mat`
refuses ``None``, as it refuses every value MATLAB cannot hold (``datetime64``, ``float16``,
``bytes``, ...) with an error naming it, instead of writing something else in its place.
"""
import contextlib
import numbers
import os
import pathlib
import struct
import tempfile
import warnings

import numpy as np

# scipy.io and scipy.sparse are imported where a file is read or written: together they take
# longer to import than the rest of course_lib, and `import course_lib` runs in every
# student's first cell (see README, "Sizing the server").

__all__ = ["MatFileError", "OldStyleObject", "StructArray", "load_mat", "mat_file_version",
           "save_mat"]

#: Every HDF5 file carries this signature; MATLAB v7.3 files put it after a 512-byte header.
_HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"
_MAT73_USERBLOCK = 512

#: MATLAB class names of v7.3 datasets that hold plain numbers, and their numpy types.
_NUMERIC_CLASSES = {
    "double": np.float64,
    "single": np.float32,
    "int8": np.int8,
    "uint8": np.uint8,
    "int16": np.int16,
    "uint16": np.uint16,
    "int32": np.int32,
    "uint32": np.uint32,
    "int64": np.int64,
    "uint64": np.uint64,
    "logical": np.bool_,
}

#: The dtypes that are MATLAB numeric classes (the values of _NUMERIC_CLASSES, and complex).
_MATLAB_DTYPES = frozenset(np.dtype(t) for t in _NUMERIC_CLASSES.values()) | {
    np.dtype(np.complex64), np.dtype(np.complex128)}

#: 1x1 values of these dtypes become the matching Python type; other classes stay numpy
#: scalars, so that save_mat writes them back in their class.
_PYTHON_SCALAR_DTYPES = frozenset(np.dtype(t) for t in (np.float64, np.complex128, np.bool_))

#: How error messages name the formats that mat_file_version tells apart.
_FORMAT_NAMES = {"4": "v4", "5": "v6/v7", "7.3": "v7.3 (HDF5)"}

#: Groups inside a v7.3 file that hold MATLAB's bookkeeping, not variables.
_HDF5_INTERNAL_GROUPS = ("#refs#", "#subsystem#")

#: MATLAB variable and field names: a letter, then letters, digits or underscores, <= 63 long.
_MATLAB_NAME_LENGTH = 63

#: The largest integer up to which every Python int is exactly a double.
_EXACT_DOUBLE_INTEGER = 2**53


class MatFileError(ValueError):
    """A file that cannot be read as MATLAB data, or not as a saved model.

    The message always starts with the file's path, then says what is wrong with it.
    """


class StructArray(np.ndarray):
    """A MATLAB struct array: an ndarray of dicts that all have the same fields.

    ``s[1]["one"]`` is MATLAB's ``s(2).one``; ``s.fields`` lists the field names in MATLAB's
    order (also for an empty struct array). A 1x1 struct is a plain ``dict``; a
    ``StructArray`` is what :func:`load_mat` returns for every other struct array and what
    :func:`save_mat` writes back as one (a ``list`` of dicts is a cell of structs).

    Parameters
    ----------
    elements : sequence of dict, nested sequences of dict, or ndarray of dict
        The structs, in the array's shape: ``StructArray([{"a": 1.0}, {"a": 2.0}])`` is a
        1x2 struct array.
    fields : sequence of str, optional
        The field names, in order; default: those of the first element. Needed for an
        empty struct array.

    Raises
    ------
    ValueError
        If an element is not a dict, or its fields differ from the others'.
    """

    def __new__(cls, elements, fields=None):
        array = np.array(elements, dtype=object)
        if array.size == 0 and fields is None:
            raise ValueError("fields must be given for an empty StructArray")
        for index, element in enumerate(array.flat):
            if not isinstance(element, dict):
                raise ValueError(f"elements must all be dicts, got {type(element).__name__} "
                                 f"at flat index {index}")
        names = tuple(array.flat[0]) if fields is None else tuple(fields)
        for index, element in enumerate(array.flat):
            if set(element) != set(names):
                raise ValueError(f"elements must all have the fields {list(names)}, got "
                                 f"{list(element)} at flat index {index}")
        struct_array = array.view(cls)
        struct_array.fields = names
        return struct_array

    def __array_finalize__(self, obj):
        self.fields = getattr(obj, "fields", None)


class OldStyleObject(dict):
    """A 1x1 object of an old-style MATLAB class (an ``@class`` folder, e.g. ``inline``).

    The dict of its fields, like a struct, plus ``classname``, so that :func:`save_mat`
    writes it back as an object of that class rather than as a plain struct. (Classes defined
    with ``classdef`` are stored differently and read as ``None``.)

    Parameters
    ----------
    fields : dict
        Field name to value.
    classname : str
        The MATLAB class.
    """

    def __init__(self, fields, classname):
        super().__init__(fields)
        self.classname = classname

    def __repr__(self):
        return f"OldStyleObject({dict.__repr__(self)}, classname={self.classname!r})"


# --------------------------------------------------------------------------------------------
# load_mat
# --------------------------------------------------------------------------------------------
def load_mat(path, *, squeeze=True):
    """Read every variable of a MATLAB ``.mat`` file into plain Python and numpy values.

    Works for all formats MATLAB writes: v4, v6 and v7 through :func:`scipy.io.loadmat`,
    v7.3 (HDF5) through :mod:`h5py`, and gives the same values for the same MATLAB data,
    in the types of the module's table: each value keeps its MATLAB class (a double is
    float64 even where the file stores it compactly as integers, a logical is bool), numeric
    arrays keep MATLAB's indices (``a[i, j]`` is ``A(i+1, j+1)``) as C-ordered arrays in the
    machine's byte order.

    Function handles and MATLAB class objects (``string``, ``table``, ...) come back as
    ``None``, with a warning naming the variable. Objects of old-style MATLAB classes
    (``@class`` folders) become an :class:`OldStyleObject`, the dict of their fields.

    Parameters
    ----------
    path : str or os.PathLike
        The ``.mat`` file.
    squeeze : bool, default True
        Drop singleton dimensions and return 1x1 arrays as scalars. Use ``False`` to keep
        every array, cell and struct array at its full MATLAB shape (always at least 2-D).

    Returns
    -------
    dict
        Variable name to value, in the file's order.

    Raises
    ------
    FileNotFoundError
        If ``path`` does not exist.
    MatFileError
        (a ``ValueError``) if the file is not a MATLAB file, or is truncated or corrupted.

    Examples
    --------
    >>> data = load_mat("results.mat")          # doctest: +SKIP
    >>> data["opts"]["learning_rate"]           # doctest: +SKIP
    0.01
    """
    path = _existing_file(path)
    squeeze = _check_bool(squeeze, "squeeze")
    version = mat_file_version(path)
    if version == "7.3":
        return _load_hdf5_mat(path, squeeze)
    return _load_classic_mat(path, version, squeeze)


def mat_file_version(path):
    """Return the MATLAB format of a file: ``"4"``, ``"5"`` (MATLAB 5 to 7.2) or ``"7.3"``.

    Only the header is read, and checked well enough that a file of another kind is told
    apart from a MATLAB file.

    Raises
    ------
    FileNotFoundError
        If ``path`` does not exist.
    MatFileError
        If the file is empty or is not a MATLAB file.
    """
    path = _existing_file(path)
    with open(path, "rb") as stream:
        head = stream.read(_MAT73_USERBLOCK + len(_HDF5_SIGNATURE))
    if not head:
        raise MatFileError(f"{path}: the file is empty, not a MATLAB file")
    if head.startswith(_HDF5_SIGNATURE):
        # HDF5 with no MATLAB header in front: Octave's "-hdf5" format, or plain HDF5.
        raise MatFileError(
            f"{path}: an HDF5 file without MATLAB's 512-byte header (Octave's -hdf5 format or "
            "plain HDF5), not a MATLAB file; save it with -v7 (or -v7.3 from MATLAB)"
        )
    # A v5+ header is 116 bytes of text (normally "MATLAB 5.0 MAT-file..."), 8 bytes of
    # subsystem offset, the version (0x0100 for MATLAB 5 to 7.2, 0x0200 for 7.3) and the
    # endian mark "IM"/"MI" at bytes 126-127. Some writers change the text, so the version
    # and the mark decide, as they do for scipy and MATLAB.
    endian = head[126:128]
    if endian in (b"IM", b"MI"):
        (version,) = struct.unpack("<H" if endian == b"IM" else ">H", head[124:126])
        if version == 0x0100:
            return "5"
        if version == 0x0200:
            if head[_MAT73_USERBLOCK:].startswith(_HDF5_SIGNATURE):
                return "7.3"
            raise MatFileError(
                f"{path}: the header says MATLAB v7.3 but no HDF5 data follows it "
                "(truncated or corrupted file)"
            )
        if head.startswith(b"MATLAB"):
            raise MatFileError(f"{path}: unknown MATLAB file version 0x{version:04x} in the header")
    elif head.startswith(b"MATLAB") and len(head) >= 128:
        raise MatFileError(f"{path}: malformed MATLAB header (no endian mark at bytes 126-127)")
    if _looks_like_v4(head):
        return "4"
    if head.startswith(b"MATLAB"):
        raise MatFileError(f"{path}: truncated MATLAB file (header shorter than 128 bytes)")
    raise MatFileError(f"{path}: not a MATLAB file (no MATLAB header at its start)")


def _looks_like_v4(head):
    """Whether ``head`` starts with a plausible MATLAB v4 matrix header.

    A v4 file has no text header: each matrix starts with five int32 numbers (type code,
    rows, columns, imaginary flag, name length). The type code is ``1000*M + 100*O + 10*P + T``
    with machine ``M`` 0-4, ``O`` always 0, precision ``P`` 0-5 and matrix type ``T`` 0-2.
    scipy accepts any file whose first four bytes hold a zero; checking the whole header
    keeps arbitrary binary files from being read as matrices.
    """
    if len(head) < 20:
        return False
    for byte_order in ("<", ">"):
        mopt, rows, cols, imagf, namelen = struct.unpack(byte_order + "5i", head[:20])
        machine, rest = divmod(mopt, 1000)
        zero, rest = divmod(rest, 100)
        precision, matrix_type = divmod(rest, 10)
        if (
            0 <= mopt
            and machine <= 4
            and zero == 0
            and precision <= 5
            and matrix_type <= 2
            and rows >= 0
            and cols >= 0
            and imagf in (0, 1)
            and 1 <= namelen <= 256
        ):
            return True
    return False


def _load_classic_mat(path, version, squeeze):
    """Read a v4/v6/v7 file with scipy and convert its values.

    scipy gives each numeric array either in the type the file stores it in (MATLAB stores
    integer-valued doubles compactly as uint8, int16, ...; logicals as uint8) or, with
    ``mat_dtype=True``, in its MATLAB class, but then without the imaginary part of complex
    data. So the file is read both ways and each array takes its class from the second
    reading and its values from the first.
    """
    stored, typed = (_scipy_variables(path, version, mat_dtype) for mat_dtype in (False, True))
    converter = _Converter(path, squeeze)
    return {name: converter.classic(value, typed[name], name) for name, value in stored.items()}


def _scipy_variables(path, version, mat_dtype):
    """The variables of a v4/v6/v7 file as :func:`scipy.io.loadmat` returns them."""
    import scipy.io
    try:
        with warnings.catch_warnings():
            # mat_dtype=True drops imaginary parts, with a warning; _in_class restores them
            warnings.simplefilter("ignore", np.exceptions.ComplexWarning)
            raw = scipy.io.loadmat(
                path,
                squeeze_me=False,  # squeezing is ours, done the same way for v7.3
                struct_as_record=True,
                chars_as_strings=True,
                mat_dtype=mat_dtype,
            )
    except Exception as exc:  # noqa: BLE001 - scipy raises many types on bad data; see below
        # On corrupted input scipy's reader fails with whatever the broken bytes trigger
        # (ValueError, zlib.error, TypeError, UnicodeDecodeError, struct.error, ...): the
        # student needs the file and the reason, with scipy's error chained for detail.
        raise MatFileError(
            f"{path}: MATLAB {_FORMAT_NAMES[version]} file is truncated or corrupted "
            f"({type(exc).__name__}: {exc})"
        ) from exc
    return {name: value for name, value in raw.items()
            if not (name.startswith("__") and name.endswith("__"))}


def _load_hdf5_mat(path, squeeze):
    """Read a v7.3 (HDF5) file with h5py and convert its values."""
    import h5py  # only v7.3 files need it; keeps `import course_lib.matlab` light

    converter = _Converter(path, squeeze)
    try:
        with h5py.File(path, "r") as h5file:
            return {
                name: converter.hdf5(h5file[name], name)
                for name in h5file
                if name not in _HDF5_INTERNAL_GROUPS
            }
    except MatFileError:
        raise
    except Exception as exc:  # noqa: BLE001 - h5py reports damage as OSError, KeyError, ...
        raise MatFileError(
            f"{path}: MATLAB v7.3 (HDF5) file is truncated or corrupted "
            f"({type(exc).__name__}: {exc})"
        ) from exc


def _in_class(stored, typed):
    """One numeric array in its MATLAB class: ``typed``'s dtype, with ``stored``'s imaginary part.

    ``typed`` was read with ``mat_dtype=True`` (right class, imaginary part dropped),
    ``stored`` without (storage type, imaginary part kept).
    """
    if np.iscomplexobj(stored) and not np.iscomplexobj(typed):
        return stored.astype(np.result_type(typed.dtype, np.complex64))
    return typed


def _sparse_class(stored_dtype):
    """The dtype of a sparse matrix's MATLAB class, from the type its values are stored in.

    MATLAB's sparse matrices are double (real or complex) or logical. scipy returns their
    values as stored, which for a double may be compact (MATLAB 6 writes uint8), and cannot
    apply ``mat_dtype`` to them.
    """
    if stored_dtype == np.bool_:
        return np.bool_
    return np.complex128 if stored_dtype.kind == "c" else np.float64


class _Converter:
    """Turns scipy's or h5py's view of MATLAB values into the module table's values."""

    def __init__(self, path, squeeze):
        self.path = path
        self.squeeze = squeeze

    # -- shared rules -------------------------------------------------------------------------
    def numeric(self, array):
        """A numeric array in MATLAB's shape and class -> native, C-ordered array (or scalar)."""
        array = np.asarray(array)
        if not array.dtype.isnative:
            array = array.astype(array.dtype.newbyteorder("="))
        if self.squeeze:
            array = np.squeeze(array)
            if array.ndim == 0:
                scalar = array[()]
                return scalar.item() if array.dtype in _PYTHON_SCALAR_DTYPES else scalar
        return np.ascontiguousarray(array)

    def cell(self, elements):
        """An object array of converted elements -> a list (a vector cell) or an object array."""
        if not self.squeeze:
            return elements
        elements = np.squeeze(elements)
        if elements.ndim == 0:
            return [elements[()]]
        return elements.tolist() if elements.ndim == 1 or elements.size == 0 else elements

    def struct_array(self, dicts, fields):
        """An object array of dicts -> a dict if it is 1x1, else a :class:`StructArray`."""
        if dicts.size == 1 and dicts.ndim == 2:
            return dicts.flat[0]
        return StructArray(np.squeeze(dicts) if self.squeeze else dicts, fields=fields)

    @staticmethod
    def text(rows):
        """Strings of a char array's rows -> one ``str`` for a row (or empty), else an array."""
        rows = np.asarray(rows, dtype=str)
        if rows.size == 0:
            return ""
        return str(rows.flat[0]) if rows.size == 1 else np.ascontiguousarray(rows)

    def unsupported(self, variable, what):
        warnings.warn(
            f"{self.path}: variable {variable!r} holds a MATLAB {what}, which has no numpy "
            "equivalent; it is read as None",
            UserWarning,
            stacklevel=4,
        )
        return None

    # -- scipy (v4, v6, v7) -------------------------------------------------------------------
    def classic(self, stored, typed, variable):
        """Convert one value as scipy.io.loadmat(squeeze_me=False) returns it both ways."""
        import scipy.sparse
        from scipy.io.matlab import MatlabFunction, MatlabObject, MatlabOpaque

        if scipy.sparse.issparse(stored):
            return scipy.sparse.csc_array(stored.astype(_sparse_class(stored.dtype)))
        if isinstance(stored, MatlabFunction):
            return self.unsupported(variable, "function handle")
        if isinstance(stored, MatlabOpaque):
            return self.unsupported(variable, "class object")
        if stored is None:
            # scipy's way of writing a struct that has no fields at all
            return {}
        if not isinstance(stored, np.ndarray):
            raise MatFileError(f"{self.path}: unexpected value of type {type(stored).__name__} "
                               f"in variable {variable!r}")
        if stored.dtype.names is not None or isinstance(stored, MatlabObject):
            names = stored.dtype.names or ()
            dicts = np.empty(stored.shape, dtype=object)
            for index in np.ndindex(stored.shape):
                dicts[index] = {name: self.classic(stored[index][name], typed[index][name],
                                                   variable) for name in names}
            if isinstance(stored, MatlabObject) and stored.size == 1:
                return OldStyleObject(dicts.flat[0], stored.classname)
            return self.struct_array(dicts, names)
        if stored.dtype == object:
            elements = np.empty(stored.shape, dtype=object)
            for index in np.ndindex(stored.shape):
                elements[index] = self.classic(stored[index], typed[index], variable)
            if stored.size and all(element is None for element in stored.flat):
                # scipy reads an array of field-less structs as an object array of None;
                # a real cell never holds None (its elements are arrays)
                return self.struct_array(elements, ())
            return self.cell(elements)
        if stored.dtype.kind == "U":
            return self.text(stored)  # chars_as_strings already joined each row
        return self.numeric(_in_class(stored, typed))

    # -- h5py (v7.3) --------------------------------------------------------------------------
    def hdf5(self, node, variable):
        """Convert one HDF5 dataset or group laid out as MATLAB v7.3 writes it."""
        import h5py

        attrs = node.attrs
        matlab_class = _attr_text(attrs.get("MATLAB_class", b""))
        if "MATLAB_object_decode" in attrs:
            return self.unsupported(variable, f"{matlab_class or 'class'} object")
        if isinstance(node, h5py.Group):
            if "MATLAB_sparse" in attrs:
                return self._hdf5_sparse(node, matlab_class, variable)
            if matlab_class == "struct":
                return self._hdf5_struct(node, variable)
            return self.unsupported(variable, matlab_class or "group")
        if matlab_class == "canonical empty" or int(np.asarray(attrs.get("MATLAB_empty", 0))):
            return self._hdf5_empty(node, matlab_class)
        if h5py.check_dtype(ref=node.dtype) is h5py.Reference:
            # a cell array: the dataset holds references to its elements in "#refs#"
            return self.cell(self._dereference(node, variable))
        if matlab_class == "char":
            return self._hdf5_char(node[()], variable)
        if matlab_class in _NUMERIC_CLASSES:
            return self.numeric(_from_hdf5_layout(_hdf5_values(node, matlab_class)))
        return self.unsupported(variable, matlab_class or "value of unknown class")

    def _dereference(self, dataset, variable):
        """The elements a reference dataset points to, as an object array in MATLAB's shape."""
        references = dataset[()]
        elements = np.empty(references.shape, dtype=object)
        for index in np.ndindex(references.shape):
            elements[index] = self.hdf5(dataset.file[references[index]], variable)
        return _from_hdf5_layout(elements)

    def _hdf5_empty(self, dataset, matlab_class):
        # An empty MATLAB array is stored as its dimension vector with MATLAB_empty set.
        dims = tuple(int(d) for d in np.asarray(dataset[()]).reshape(-1))
        shape = dims if len(dims) >= 2 else (0, 0)  # "canonical empty" is []
        if matlab_class == "char":
            return ""
        if matlab_class == "cell":
            return self.cell(np.empty(shape, dtype=object))
        if matlab_class == "struct":
            return self.struct_array(np.empty(shape, dtype=object), ())
        return self.numeric(np.zeros(shape, dtype=_NUMERIC_CLASSES.get(matlab_class, np.float64)))

    def _hdf5_char(self, codes, variable):
        # MATLAB stores chars as UTF-16 code units; after the transpose each row is a string.
        codes = _from_hdf5_layout(np.asarray(codes, dtype=np.uint16))
        rows = codes.reshape(-1, codes.shape[-1]) if codes.ndim > 1 else codes.reshape(1, -1)
        try:
            strings = [row.astype("<u2").tobytes().decode("utf-16-le") for row in rows]
        except UnicodeDecodeError as exc:
            raise MatFileError(f"{self.path}: variable {variable!r} holds invalid UTF-16 "
                               f"characters ({exc})") from exc
        # scipy joins the last axis of a char array into strings: do the same here
        return self.text(np.array(strings, dtype=str).reshape(codes.shape[:-1] or (1,)))

    def _hdf5_struct(self, group, variable):
        import h5py

        if "MATLAB_fields" in group.attrs:
            names = [_attr_text(field) for field in group.attrs["MATLAB_fields"]]
        else:
            names = list(group)
        fields = {name: group[name] for name in names}
        is_array = fields and all(
            isinstance(node, h5py.Dataset)
            and "MATLAB_class" not in node.attrs
            and h5py.check_dtype(ref=node.dtype) is h5py.Reference
            for node in fields.values()
        )
        if not is_array:
            # a scalar struct: each field is an ordinary variable inside the group
            return {name: self.hdf5(node, variable) for name, node in fields.items()}
        # a struct array: each field holds one reference per element, in the array's shape
        per_field = {name: self._dereference(node, variable) for name, node in fields.items()}
        shape = next(iter(per_field.values())).shape
        dicts = np.empty(shape, dtype=object)
        for index in np.ndindex(shape):
            dicts[index] = {name: values[index] for name, values in per_field.items()}
        return self.struct_array(dicts, names)

    def _hdf5_sparse(self, group, matlab_class, variable):
        import scipy.sparse
        # MATLAB's own compressed-column form: row indices "ir", column starts "jc", values
        # "data" (absent when the matrix has no non-zeros); MATLAB_sparse is the row count.
        rows = int(np.asarray(group.attrs["MATLAB_sparse"]))
        starts = np.asarray(group["jc"][()], dtype=np.int64).reshape(-1)
        dtype = _NUMERIC_CLASSES.get(matlab_class)
        if dtype is None:
            return self.unsupported(variable, f"sparse {matlab_class}")
        if "data" in group:
            values = np.asarray(_hdf5_values(group["data"], matlab_class)).reshape(-1)
            row_indices = np.asarray(group["ir"][()], dtype=np.int64).reshape(-1)
        else:
            values = np.zeros(0, dtype=dtype)
            row_indices = np.zeros(0, dtype=np.int64)
        return scipy.sparse.csc_array(
            (values, row_indices, starts), shape=(rows, len(starts) - 1)
        )


def _from_hdf5_layout(array):
    """Reverse the axes of an array read from HDF5 so its indices are MATLAB's.

    MATLAB stores arrays column-major; HDF5 describes them row-major with the dimensions
    reversed, so the transpose restores MATLAB's shape and ``a[i, j] == A(i+1, j+1)``.
    """
    return np.asarray(array).T


def _hdf5_values(dataset, matlab_class):
    """A v7.3 dataset's values in its MATLAB class; complex data (a real/imag compound) as complex."""
    data = dataset[()]
    dtype = np.dtype(_NUMERIC_CLASSES[matlab_class])
    if data.dtype.names is not None:
        if set(data.dtype.names) != {"real", "imag"}:
            raise MatFileError(f"{dataset.file.filename}: dataset {dataset.name!r} has "
                               f"unexpected fields {data.dtype.names}")
        return (data["real"] + 1j * data["imag"]).astype(np.result_type(dtype, np.complex64))
    return np.asarray(data).astype(dtype)


def _attr_text(value):
    """An HDF5 attribute holding text (bytes, str or an array of single chars) as str."""
    if isinstance(value, bytes):
        return value.decode("ascii", errors="replace")
    if isinstance(value, np.ndarray):
        return "".join(_attr_text(part) for part in value.reshape(-1))
    return str(value)


def _existing_file(path):
    """``path`` as a :class:`pathlib.Path` after checking it names an existing file."""
    if not isinstance(path, (str, os.PathLike)):
        raise ValueError(f"path must be a str or os.PathLike, got {type(path).__name__}")
    path = pathlib.Path(path)
    if not path.exists():
        raise FileNotFoundError(2, f"{path}: no such file", str(path))
    if not path.is_file():
        raise MatFileError(f"{path}: is a directory or special file, not a MATLAB file")
    return path


def _check_bool(value, name):
    if not isinstance(value, (bool, np.bool_)):
        raise ValueError(f"{name} must be True or False, got {value!r}")
    return bool(value)


# --------------------------------------------------------------------------------------------
# save_mat
# --------------------------------------------------------------------------------------------
def save_mat(path, variables):
    """Write a dict of variables to a MATLAB v7 ``.mat`` file, atomically.

    Each key becomes a MATLAB variable, each value the MATLAB class of the module's table, so
    that ``save_mat(path, load_mat(f))`` writes back what MATLAB wrote (its shapes too with
    ``load_mat(f, squeeze=False)``). In particular a Python ``int`` becomes a double (MATLAB's
    ``x = 3``), a ``list`` a cell (whatever it holds), a :class:`StructArray` a struct array,
    a ``dict`` a struct (its keys become field names). 1-D arrays become 1xN rows.

    The file is first written next to ``path`` under a temporary name and then renamed,
    so an error never leaves a half-written file (and never damages an existing one).
    To save a trained model, use :func:`course_lib.models.save_model`.

    Parameters
    ----------
    path : str or os.PathLike
        Where to write; must end in ``.mat`` (MATLAB's ``load`` reads other names as text).
    variables : dict
        Variable name to value.

    Raises
    ------
    ValueError
        On a path without ``.mat``, a name MATLAB cannot use, or a value MATLAB cannot hold
        (the message names it, e.g. ``variables['opts']['when']``); nothing is written.
    FileNotFoundError
        If the folder of ``path`` does not exist.
    """
    path = _mat_path(path)
    if not isinstance(variables, dict):
        hint = (" (save a model with course_lib.models.save_model)"
                if hasattr(variables, "params") else "")
        raise ValueError(f"variables must be a dict of variable names to values, "
                         f"got {type(variables).__name__}{hint}")
    writeable = {name: _writeable(value, f"variables[{name!r}]")
                 for name, value in _checked_names(variables, "variables").items()}
    _write_atomically(path, writeable)


def _writeable(value, where):
    """``value`` as scipy's writer turns it into the MATLAB class of the module's table.

    Raises ValueError naming ``where`` for a value MATLAB cannot hold.
    """
    import scipy.sparse
    if isinstance(value, OldStyleObject):
        from scipy.io.matlab import MatlabObject

        fields = {key: _writeable(item, f"{where}[{key!r}]")
                  for key, item in _checked_names(value, where).items()}
        record = np.empty((1, 1), dtype=[(name, object) for name in fields])
        for name, item in fields.items():
            record[name][0, 0] = item
        return MatlabObject(record, value.classname)
    if isinstance(value, dict):
        return {key: _writeable(item, f"{where}[{key!r}]")
                for key, item in _checked_names(value, where).items()}
    if isinstance(value, StructArray):
        return _writeable_struct_array(value, where)
    if isinstance(value, (list, tuple)):
        elements = np.empty(len(value), dtype=object)
        for index, item in enumerate(value):
            elements[index] = _writeable(item, f"{where}[{index}]")
        return elements if len(value) else np.empty((0, 0), dtype=object)  # {} is 0x0
    if isinstance(value, str):
        return str(value)
    if isinstance(value, (bool, np.bool_)):
        return np.array(value, dtype=bool)
    if isinstance(value, numbers.Integral) and not isinstance(value, np.integer):
        return _exact_double(value, where)
    if isinstance(value, (float, complex)) and not isinstance(value, np.generic):
        return np.array(value, dtype=np.complex128 if isinstance(value, complex) else np.float64)
    if scipy.sparse.issparse(value):
        return _writeable_sparse(value, where)
    if isinstance(value, np.ma.MaskedArray):
        raise ValueError(f"{where}: MATLAB has no masked arrays; got a numpy MaskedArray "
                         "(write its .filled(np.nan) or its data and mask separately)")
    if isinstance(value, (np.ndarray, np.generic)):
        return _writeable_array(np.asarray(value), where)
    if value is None:
        raise ValueError(f"{where}: MATLAB has no None; got None (use np.zeros((0, 0)) for "
                         "MATLAB's [], or leave the variable out)")
    raise ValueError(f"{where}: a {type(value).__name__} has no MATLAB class; expected a "
                     "number, array, str, dict, list, StructArray or sparse matrix")


def _writeable_array(array, where):
    kind = array.dtype.kind
    if kind == "O":
        elements = np.empty(array.shape, dtype=object)
        for index in np.ndindex(array.shape):
            elements[index] = _writeable(array[index], f"{where}[{', '.join(map(str, index))}]")
        return elements
    if kind == "U":
        return array.astype(array.dtype.newbyteorder("="))
    if kind in "Mm":
        raise ValueError(f"{where}: MATLAB has no class for numpy {array.dtype}; convert it to "
                         "numbers (e.g. seconds since an epoch) or to str first")
    if kind == "S":
        raise ValueError(f"{where}: got bytes ({array.dtype}); decode them to str to write "
                         "MATLAB chars")
    if array.dtype.newbyteorder("=") not in _MATLAB_DTYPES:
        raise ValueError(f"{where}: MATLAB has no class for numpy {array.dtype}; expected "
                         "bool, int8-int64, uint8-uint64, float32, float64, complex64 or "
                         "complex128")
    return array.astype(array.dtype.newbyteorder("="), copy=False)


def _exact_double(value, where):
    """A Python int as a double, MATLAB's class for ``x = 3``, if the double is exact."""
    if abs(value) > _EXACT_DOUBLE_INTEGER:
        raise ValueError(f"{where}: the int {value} is not exactly a double (MATLAB's class "
                         "for a number); pass np.int64(...) to write an int64")
    return np.array(float(value))


def _writeable_sparse(matrix, where):
    import scipy.sparse
    if matrix.dtype not in (np.float64, np.complex128):
        raise ValueError(
            f"{where}: MATLAB sparse matrices are double (or logical, which MATLAB, Octave and "
            f"scipy do not write alike); got a sparse {matrix.dtype} matrix (convert it with "
            ".astype(np.float64), or write a dense array)")
    return scipy.sparse.csc_matrix(matrix)


def _writeable_struct_array(structs, where):
    if not structs.fields:
        raise ValueError(f"{where}: a StructArray without fields cannot be written")
    fields = list(_checked_names(dict.fromkeys(structs.fields), where))
    records = np.empty(structs.shape, dtype=[(name, object) for name in fields])
    for index in np.ndindex(structs.shape):
        element = structs[index]
        shown = f"{where}[{', '.join(map(str, index))}]"
        for name in fields:
            records[name][index] = _writeable(element[name], f"{shown}[{name!r}]")
    return records


def _checked_names(variables, where):
    """``variables`` after checking each key is a valid MATLAB variable or field name."""
    for key in variables:
        if not (isinstance(key, str) and key.isascii() and key[:1].isalpha()
                and key.replace("_", "a").isalnum() and len(key) <= _MATLAB_NAME_LENGTH):
            raise ValueError(
                f"{where} names must be MATLAB names (a letter, then letters, digits or "
                f"underscores, at most {_MATLAB_NAME_LENGTH} characters), got {key!r}"
            )
    return variables


def _mat_path(path):
    if not isinstance(path, (str, os.PathLike)):
        raise ValueError(f"path must be a str or os.PathLike, got {type(path).__name__}")
    path = pathlib.Path(path)
    if path.suffix != ".mat":
        raise ValueError(
            f"path must end in .mat (MATLAB's load reads any other name as a text file), "
            f"got {str(path)!r}"
        )
    if not path.parent.is_dir():
        raise FileNotFoundError(2, f"{path.parent}: no such folder to write {path.name} in",
                                str(path.parent))
    return path


def _write_atomically(path, variables):
    """Write ``variables`` with scipy into a temporary file beside ``path``, then rename it."""
    import scipy.io
    descriptor, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp",
                                             dir=path.parent)
    try:
        with os.fdopen(descriptor, "wb") as stream:
            try:
                scipy.io.savemat(stream, variables, format="5", do_compression=True,
                                 oned_as="row", long_field_names=True)
            except (TypeError, ValueError) as exc:
                raise ValueError(f"{path}: cannot write these values as MATLAB data: {exc}") from exc
            stream.flush()
            os.fsync(stream.fileno())
        # mkstemp makes the file private (0600); give it the mode a plain open() would have.
        os.chmod(temporary, _new_file_mode(path))
        os.replace(temporary, path)  # atomic on POSIX: readers see the old or the new file
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temporary)
        raise


def _new_file_mode(path):
    """The permission bits of ``path`` if it exists, else those open() gives (0666 - umask)."""
    with contextlib.suppress(FileNotFoundError):
        return path.stat().st_mode & 0o7777
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask
