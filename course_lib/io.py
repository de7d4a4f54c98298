"""MATLAB files in and out: plain Python values from any ``.mat`` file, and model export.

MATLAB has written four file formats over the years. Versions 4, 6 and 7 are MATLAB's own
binary layout, which :func:`scipy.io.loadmat` reads; version 7.3 is an HDF5 file behind a
512-byte MATLAB header, which :mod:`h5py` reads. :func:`load_mat` hides the difference and
returns the same plain values for the same MATLAB data whatever the version:

=======================  ===============================================================
MATLAB                   what :func:`load_mat` returns
=======================  ===============================================================
numeric / logical array  C-ordered ndarray; ``a[i, j]`` is MATLAB's ``A(i+1, j+1)``
1x1 array                Python ``int``/``float``/``complex``/``bool`` (``squeeze=True``)
char row                 ``str`` (several rows: ``list`` of ``str``)
struct (1x1)             ``dict`` of field name to value
struct array, cell       (nested) ``list`` following the array's shape
sparse matrix            :class:`scipy.sparse.csc_array`
=======================  ===============================================================

:func:`save_mat` writes a trained :class:`~course_lib.cnn.SimpleCNN` or
:class:`~course_lib.rnn.VanillaRNN` (or a dict of arrays) as a version 7 file that MATLAB and
Octave load into a struct; :func:`load_model` rebuilds the identical model from it.
"""
import contextlib
import importlib
import os
import pathlib
import struct
import tempfile
import warnings

import numpy as np
import scipy.io
import scipy.sparse

__all__ = ["MatFileError", "load_mat", "mat_file_version", "save_mat", "load_model"]

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

#: How error messages name the formats that mat_file_version tells apart.
_FORMAT_NAMES = {"4": "v4", "5": "v6/v7", "7.3": "v7.3 (HDF5)"}

#: Groups inside a v7.3 file that hold MATLAB's bookkeeping, not variables.
_HDF5_INTERNAL_GROUPS = ("#refs#", "#subsystem#")


class MatFileError(ValueError):
    """A file that cannot be read as MATLAB data, or not as a saved model.

    The message always starts with the file's path, then says what is wrong with it.
    """


# --------------------------------------------------------------------------------------------
# load_mat
# --------------------------------------------------------------------------------------------
def load_mat(path, *, squeeze=True):
    """Read every variable of a MATLAB ``.mat`` file into plain Python and numpy values.

    Works for all formats MATLAB writes: v4, v6 and v7 through :func:`scipy.io.loadmat`,
    v7.3 (HDF5) through :mod:`h5py`. Both paths give the same values for the same data:

    * numeric and logical arrays keep MATLAB's shape and indices (``a[i, j]`` is
      ``A(i+1, j+1)``) as C-ordered (row-major) arrays in the machine's byte order;
    * with ``squeeze=True`` singleton dimensions are dropped (a 1xN row becomes shape
      ``(N,)``) and a 1x1 array becomes a Python scalar;
    * a char row becomes ``str``, a char matrix a list of its rows;
    * a 1x1 struct becomes a ``dict``; struct arrays and cell arrays become (nested) lists
      following their shape (a cell is always a list, even 1x1);
    * sparse matrices become :class:`scipy.sparse.csc_array`.

    Function handles and MATLAB class objects (``string``, ``table``, ...) have no numpy
    equivalent: they come back as ``None``, with a warning naming the variable.
    Old-style MATLAB objects (``@class`` folders) become the dict of their fields.

    Parameters
    ----------
    path : str or os.PathLike
        The ``.mat`` file.
    squeeze : bool, default True
        Drop singleton dimensions and return 1x1 arrays as scalars. Use ``False`` to keep
        every numeric array at its full MATLAB shape (always at least 2-D).

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

    Notes
    -----
    scipy's v4-v7 reader returns MATLAB ``logical`` arrays as ``uint8`` (it keeps the logical
    flag only for sparse matrices), so they come back as 0/1 integers from those files and
    as ``bool`` from v7.3 files.

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
    """Read a v4/v6/v7 file with scipy and convert its values."""
    try:
        raw = scipy.io.loadmat(
            path,
            squeeze_me=False,  # squeezing is ours, done the same way for v7.3
            struct_as_record=True,
            chars_as_strings=True,
            mat_dtype=False,
        )
    except Exception as exc:  # noqa: BLE001 - scipy raises many types on bad data; see below
        # On corrupted input scipy's reader fails with whatever the broken bytes trigger
        # (ValueError, zlib.error, TypeError, UnicodeDecodeError, struct.error, ...): the
        # student needs the file and the reason, with scipy's error chained for detail.
        raise MatFileError(
            f"{path}: MATLAB {_FORMAT_NAMES[version]} file is truncated or corrupted "
            f"({type(exc).__name__}: {exc})"
        ) from exc
    converter = _Converter(path, squeeze)
    return {
        name: converter.classic(value, name)
        for name, value in raw.items()
        if not (name.startswith("__") and name.endswith("__"))
    }


def _load_hdf5_mat(path, squeeze):
    """Read a v7.3 (HDF5) file with h5py and convert its values."""
    import h5py  # only v7.3 files need it; keeps `import course_lib.io` light

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


class _Converter:
    """Turns scipy's or h5py's view of MATLAB values into plain values, by the same rules."""

    def __init__(self, path, squeeze):
        self.path = path
        self.squeeze = squeeze

    # -- shared rules -------------------------------------------------------------------------
    def numeric(self, array):
        """A numeric array in MATLAB's shape -> native, C-ordered array (or scalar)."""
        array = np.asarray(array)
        if not array.dtype.isnative:
            array = array.astype(array.dtype.newbyteorder("="))
        if self.squeeze:
            array = np.squeeze(array)
            if array.ndim == 0:
                return array.item()
        return np.ascontiguousarray(array)

    def nested(self, elements):
        """An object array of converted elements -> nested lists in its (squeezed) shape."""
        if self.squeeze:
            elements = np.squeeze(elements)
            if elements.ndim == 0:
                elements = elements.reshape(1)
        return elements.tolist()

    @staticmethod
    def text(rows):
        """Strings of a char array's rows -> one ``str`` for a row vector, else a list."""
        if len(rows) == 0:
            return ""
        return rows[0] if len(rows) == 1 else list(rows)

    def struct_array(self, dicts):
        """An object array of dicts -> a dict if it holds one struct, else nested lists."""
        return dicts.flat[0] if dicts.size == 1 else self.nested(dicts)

    def unsupported(self, variable, what):
        warnings.warn(
            f"{self.path}: variable {variable!r} holds a MATLAB {what}, which has no numpy "
            "equivalent; it is read as None",
            UserWarning,
            stacklevel=4,
        )
        return None

    # -- scipy (v4, v6, v7) -------------------------------------------------------------------
    def classic(self, value, variable):
        """Convert one value as scipy.io.loadmat(squeeze_me=False) returns it."""
        from scipy.io.matlab import MatlabFunction, MatlabObject, MatlabOpaque

        if scipy.sparse.issparse(value):
            return scipy.sparse.csc_array(value)
        if isinstance(value, MatlabFunction):
            return self.unsupported(variable, "function handle")
        if isinstance(value, MatlabOpaque):
            return self.unsupported(variable, "class object")
        if value is None:
            # scipy's way of writing a struct that has no fields at all
            return {}
        if not isinstance(value, np.ndarray):
            raise MatFileError(f"{self.path}: unexpected value of type {type(value).__name__} "
                               f"in variable {variable!r}")
        if value.dtype.names is not None or isinstance(value, MatlabObject):
            names = value.dtype.names or ()
            dicts = np.empty(value.shape, dtype=object)
            for index in np.ndindex(value.shape):
                dicts[index] = {name: self.classic(value[index][name], variable) for name in names}
            return self.struct_array(dicts)
        if value.dtype == object:
            cells = np.empty(value.shape, dtype=object)
            for index in np.ndindex(value.shape):
                cells[index] = self.classic(value[index], variable)
            if value.size and all(element is None for element in value.flat):
                # scipy writes an array of field-less structs as an object array of None;
                # a real cell never holds None (its elements are arrays)
                return self.struct_array(cells)
            return self.nested(cells)
        if value.dtype.kind == "U":
            # chars_as_strings already joined each row; 2-D char matrices arrive as 1-D
            return self.text([str(row) for row in value.reshape(-1)])
        return self.numeric(value)

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
            return self.nested(self._dereference(node, variable))
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
        if matlab_class == "char":
            return ""
        if matlab_class in ("cell", "struct"):
            return []
        dims = tuple(int(d) for d in np.asarray(dataset[()]).reshape(-1))
        dtype = _NUMERIC_CLASSES.get(matlab_class, np.float64)  # "canonical empty" is []
        return self.numeric(np.zeros(dims if len(dims) >= 2 else (0, 0), dtype=dtype))

    def _hdf5_char(self, codes, variable):
        # MATLAB stores chars as UTF-16 code units; after the transpose each row is a string.
        codes = _from_hdf5_layout(np.asarray(codes, dtype=np.uint16))
        rows = codes.reshape(-1, codes.shape[-1]) if codes.ndim > 1 else codes.reshape(1, -1)
        try:
            return self.text([row.astype("<u2").tobytes().decode("utf-16-le") for row in rows])
        except UnicodeDecodeError as exc:
            raise MatFileError(f"{self.path}: variable {variable!r} holds invalid UTF-16 "
                               f"characters ({exc})") from exc

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
        return self.struct_array(dicts)

    def _hdf5_sparse(self, group, matlab_class, variable):
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
    """A v7.3 dataset's values, with complex data (a real/imag compound) as complex."""
    data = dataset[()]
    if data.dtype.names is not None:
        if set(data.dtype.names) != {"real", "imag"}:
            raise MatFileError(f"{dataset.file.filename}: dataset {dataset.name!r} has "
                               f"unexpected fields {data.dtype.names}")
        return data["real"] + 1j * data["imag"]
    if matlab_class == "logical":
        return np.asarray(data).astype(bool)
    return data


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
# save_mat and load_model
# --------------------------------------------------------------------------------------------
#: Models save_mat can export, by the class name stored in the file.
_MODEL_CLASSES = {"SimpleCNN": "course_lib.cnn", "VanillaRNN": "course_lib.rnn"}

#: The variables of an exported model file, which MATLAB's load() returns as struct fields.
_MODEL_FIELDS = ("model_class", "hyperparameters", "hyperparameter_types", "params")

#: MATLAB variable and field names: a letter, then letters, digits or underscores, <= 63 long.
_MATLAB_NAME_LENGTH = 63


def save_mat(path, model_or_dict):
    """Write a model or a dict of variables to a MATLAB v7 ``.mat`` file, atomically.

    A model (:class:`~course_lib.cnn.SimpleCNN` or :class:`~course_lib.rnn.VanillaRNN`)
    is written as four variables, so that MATLAB's or Octave's ``m = load(path)`` gives a
    struct with

    ``m.model_class``
        the class name, e.g. ``'SimpleCNN'``;
    ``m.hyperparameters``
        a struct of the constructor's keyword arguments;
    ``m.hyperparameter_types``
        a struct naming each one's Python type (``'int'``, ``'float'``, ``'str'``, ``'bool'``,
        ``'none'``, ``'tuple'``, ``'list'``), so :func:`load_model` restores them exactly;
    ``m.params``
        a struct of the weight arrays, with numpy's shape and indices
        (``W[i, j]`` is ``m.params.W(i+1, j+1)``).

    A dict is written as one variable per key (nested dicts become structs).

    The file is first written next to ``path`` under a temporary name and then renamed,
    so an error never leaves a half-written file (and never damages an existing one).

    Parameters
    ----------
    path : str or os.PathLike
        Where to write; must end in ``.mat`` (MATLAB's ``load`` reads other names as text).
    model_or_dict : SimpleCNN, VanillaRNN or dict
        What to write.

    Raises
    ------
    ValueError
        On a path without ``.mat``, a name MATLAB cannot use, or a value MATLAB cannot hold.
    FileNotFoundError
        If the folder of ``path`` does not exist.
    """
    path = _mat_path(path)
    if _is_model(model_or_dict):
        variables = _model_variables(model_or_dict)
    elif isinstance(model_or_dict, dict):
        variables = model_or_dict
    else:
        raise ValueError(
            "model_or_dict must be a SimpleCNN, a VanillaRNN or a dict of variables, "
            f"got {type(model_or_dict).__name__}"
        )
    _check_matlab_names(variables, "model_or_dict")
    _write_atomically(path, variables)


def load_model(path):
    """Rebuild a model that :func:`save_mat` exported (or MATLAB/Octave re-saved).

    The class is rebuilt from its stored hyper-parameters, then every weight array is
    replaced by the stored one, bit for bit: the loaded model predicts exactly what the
    saved one did.

    Parameters
    ----------
    path : str or os.PathLike
        A ``.mat`` file written by :func:`save_mat` from a model.

    Returns
    -------
    SimpleCNN or VanillaRNN

    Raises
    ------
    FileNotFoundError
        If ``path`` does not exist.
    MatFileError
        (a ``ValueError``) if the file is not MATLAB, is damaged, or lacks what the model
        needs (a missing variable or field, an unknown class, a weight of the wrong size).
    """
    variables = load_mat(path, squeeze=False)
    path = pathlib.Path(path)
    missing = [name for name in _MODEL_FIELDS if name not in variables]
    if missing:
        raise MatFileError(
            f"{path}: not a saved model: variable(s) {', '.join(missing)} missing "
            f"(a model file holds {', '.join(_MODEL_FIELDS)})"
        )
    class_name = variables["model_class"]
    if class_name not in _MODEL_CLASSES:
        raise MatFileError(
            f"{path}: model_class must be one of {sorted(_MODEL_CLASSES)}, got {class_name!r}"
        )
    for name in ("hyperparameters", "hyperparameter_types", "params"):
        if not isinstance(variables[name], dict):
            raise MatFileError(f"{path}: {name} must be a struct, got "
                               f"{type(variables[name]).__name__}")
    hyperparameters = _decode_hyperparameters(
        path, variables["hyperparameters"], variables["hyperparameter_types"]
    )
    model_class = getattr(importlib.import_module(_MODEL_CLASSES[class_name]), class_name)
    try:
        model = model_class(**hyperparameters)
    except (TypeError, ValueError) as exc:
        raise MatFileError(f"{path}: {class_name} rejects the stored hyperparameters: {exc}") from exc
    model.params = _restored_params(path, variables["params"], model.params)
    return model


def _is_model(value):
    return type(value).__name__ in _MODEL_CLASSES and hasattr(value, "hyperparameters") \
        and hasattr(value, "params")


def _model_variables(model):
    """The four variables that describe ``model`` in a ``.mat`` file."""
    name = type(model).__name__
    hyperparameters, types = {}, {}
    for key, value in model.hyperparameters.items():
        hyperparameters[key], types[key] = _encode_hyperparameter(name, key, value)
    params = {}
    for key, value in model.params.items():
        array = np.asarray(value)
        if array.dtype.kind not in "fiub":
            raise ValueError(f"{name}.params[{key!r}] must be a numeric array, got dtype {array.dtype}")
        params[key] = array
    return {
        "model_class": name,
        "hyperparameters": hyperparameters,
        "hyperparameter_types": types,
        "params": params,
    }


def _encode_hyperparameter(model_name, key, value):
    """``(value as MATLAB can hold it, Python type tag)`` for one hyper-parameter."""
    # bool before int: True is an int in Python, but must come back as True.
    if isinstance(value, (bool, np.bool_)):
        return np.int64(value), "bool"
    if isinstance(value, (int, np.integer)):
        return np.int64(value), "int"
    if isinstance(value, (float, np.floating)):
        return np.float64(value), "float"
    if isinstance(value, str):
        return value, "str"
    if value is None:
        return np.zeros((0, 0)), "none"  # MATLAB's [] is the closest thing to None
    if isinstance(value, (tuple, list)):
        array = np.asarray(value)
        kinds = {type(item) for item in value}
        if value and (array.ndim != 1 or not (kinds <= {int} or kinds <= {float})):
            raise ValueError(
                f"{model_name} hyperparameter {key!r} must be a flat tuple/list of all ints or "
                f"all floats to be saved, got {value!r}"
            )
        return array.astype(np.int64 if kinds <= {int} else np.float64), type(value).__name__
    raise ValueError(
        f"{model_name} hyperparameter {key!r} has type {type(value).__name__}, which a .mat "
        "file cannot hold (expected int, float, bool, str, None, or a tuple/list of numbers)"
    )


def _decode_hyperparameters(path, values, types):
    """The constructor's keyword arguments from the stored structs (read with squeeze=False)."""
    if set(values) != set(types):
        raise MatFileError(
            f"{path}: hyperparameters and hyperparameter_types name different fields: "
            f"{sorted(values)} vs {sorted(types)}"
        )
    decoded = {}
    for key, value in values.items():
        kind = types[key]
        try:
            if kind == "str":
                if not isinstance(value, str):
                    raise TypeError("expected text")
                decoded[key] = value
            elif kind == "none":
                decoded[key] = None
            elif kind in ("tuple", "list"):
                items = np.asarray(value).reshape(-1).tolist()
                decoded[key] = tuple(items) if kind == "tuple" else items
            elif kind in ("int", "float", "bool"):
                array = np.asarray(value)
                if array.size != 1 or array.dtype.kind not in "fiub":
                    raise TypeError("expected one number")
                number = array.reshape(-1)[0].item()
                if kind == "float":
                    decoded[key] = float(number)
                elif number != int(number):
                    raise TypeError(f"expected a whole number, got {number}")
                else:
                    decoded[key] = bool(number) if kind == "bool" else int(number)
            else:
                raise TypeError(f"unknown type tag {kind!r}")
        except TypeError as exc:
            raise MatFileError(
                f"{path}: hyperparameter {key!r} cannot be read as {kind!r}: {exc} "
                f"(got {value!r})"
            ) from exc
    return decoded


def _restored_params(path, stored, expected):
    """The stored weights, checked against and shaped like a fresh model's ``expected``."""
    missing = sorted(set(expected) - set(stored))
    extra = sorted(set(stored) - set(expected))
    if missing or extra:
        raise MatFileError(
            f"{path}: params must hold exactly {sorted(expected)}; "
            f"missing {missing}, unexpected {extra}"
        )
    restored = {}
    for key, reference in expected.items():
        value = stored[key]
        array = np.asarray(value)
        reference = np.asarray(reference)
        # MATLAB has no 1-D arrays and drops trailing singleton dimensions, so compare the
        # shapes without their singleton dimensions, then give back numpy's exact shape.
        if (not isinstance(value, np.ndarray) or array.dtype.kind not in "fiub"
                or np.squeeze(array).shape != np.squeeze(reference).shape):
            raise MatFileError(
                f"{path}: params.{key} must be a numeric array of shape {reference.shape}, "
                f"got {getattr(array, 'shape', type(value).__name__)} {array.dtype}"
            )
        # MATLAB users may re-save float32 weights as double: accept that only when the
        # conversion back is exact, so the model stays bit for bit what was exported.
        converted = array.astype(reference.dtype)
        if not np.array_equal(converted, array):
            raise MatFileError(
                f"{path}: params.{key} holds {array.dtype} values that {reference.dtype} "
                "cannot represent exactly"
            )
        restored[key] = np.ascontiguousarray(converted.reshape(reference.shape))
    return restored


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


def _check_matlab_names(variables, argument, prefix=""):
    """Check every key (recursively through dicts) is a valid MATLAB variable/field name."""
    for key, value in variables.items():
        shown = f"{prefix}{key}"
        if not (isinstance(key, str) and key.isascii() and key[:1].isalpha()
                and key.replace("_", "a").isalnum() and len(key) <= _MATLAB_NAME_LENGTH):
            raise ValueError(
                f"{argument} names must be MATLAB names (a letter, then letters, digits or "
                f"underscores, at most {_MATLAB_NAME_LENGTH} characters), got {shown!r}"
            )
        if isinstance(value, dict):
            _check_matlab_names(value, argument, prefix=f"{shown}.")


def _write_atomically(path, variables):
    """Write ``variables`` with scipy into a temporary file beside ``path``, then rename it."""
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
