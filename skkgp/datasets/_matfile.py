"""Read and write the MATLAB files of the EEG releases: v5 through scipy, v7.3 through h5py.

The public releases (DEAP, SEED, SEED-IV, DREAMER) ship MATLAB v5 files; a user who
re-saved one in MATLAB with ``-v7.3`` has an HDF5 file instead, which
:func:`scipy.io.loadmat` refuses. :func:`read_mat` reads both kinds, for files that
hold numeric variables at the top level, and turns every failure into a
:class:`ValueError` that names the file. :func:`write_mat` writes either kind, with the
512-byte MATLAB header of a v7.3 file, so that tests read files in both layouts.
:func:`checked_variable` checks one variable as read (numeric, its axes and their sizes,
finite values), with the messages every loader gives. Nothing here unpickles or
evaluates anything from a file.
"""

from __future__ import annotations

import io
import os
import time
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import BinaryIO

import numpy as np

from .._atomic import atomic_file
from ._checks import check_samples

__all__ = ["MAT_FORMATS", "checked_variable", "is_mat_v73", "read_mat", "write_mat"]

#: File formats :func:`write_mat` writes: MATLAB v5 (scipy) and v7.3 (HDF5, h5py).
MAT_FORMATS: tuple[str, ...] = ("v5", "v7.3")

_HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"
_V73_USERBLOCK = 512
_NUMERIC_CLASSES = {"double", "single", "int8", "uint8", "int16", "uint16", "int32",
                    "uint32", "int64", "uint64", "logical"}
# An HDF5 dataset's declared size is read from the file; a damaged header can declare
# terabytes. Uncompressed data cannot be larger than the file; compressed data rarely
# expands beyond this factor.
_MAX_EXPANSION = 1000


def is_mat_v73(file: str | os.PathLike) -> bool:
    """Whether ``file`` is a MATLAB v7.3 (HDF5) file: its HDF5 signature sits after the header."""
    with open(file, "rb") as f:
        head = f.read(_V73_USERBLOCK + len(_HDF5_SIGNATURE))
    return (head[:len(_HDF5_SIGNATURE)] == _HDF5_SIGNATURE
            or head[_V73_USERBLOCK:] == _HDF5_SIGNATURE)


def read_mat(file: str | os.PathLike, *, what: str,
             variable_names: Iterable[str] | None = None) -> dict[str, np.ndarray]:
    """The numeric variables of a MATLAB v5 or v7.3 file.

    Parameters
    ----------
    file : path-like
        The file, opened read-only.
    what : str
        What the file should be (``"SEED .mat file"``), for error messages.
    variable_names : iterable of str, default=None
        Read only these variables (others are skipped unread); ``None`` reads all.

    Returns
    -------
    variables : dict of str to ndarray
        In MATLAB's axis order (a v7.3 array is transposed back from HDF5's order).
        v5 files may also hold structs and cells as scipy returns them; v7.3 files give
        their numeric arrays only.

    Raises
    ------
    ValueError
        A truncated, corrupt or unreadable file, named with ``what``.
    """
    names = None if variable_names is None else list(variable_names)
    source = str(file)
    try:
        v73 = is_mat_v73(file)
    except OSError as exc:
        raise OSError(f"Cannot read {source!r}: {exc}") from exc
    if v73:
        return _read_v73(file, what=what, names=names)
    from scipy.io import loadmat

    try:
        with open(file, "rb") as f:
            content = loadmat(f, variable_names=names)
    except Exception as exc:  # scipy raises many types for broken files
        raise ValueError(f"{source!r} is not a readable {what} ({type(exc).__name__}: {exc}); "
                         "is it truncated?") from exc
    return {key: value for key, value in content.items() if not key.startswith("__")}


def _read_v73(file, *, what: str, names: list[str] | None) -> dict[str, np.ndarray]:
    try:
        import h5py
    except ImportError:  # pragma: no cover - h5py is a dependency of the test extra
        raise ValueError(f"{str(file)!r} is a MATLAB v7.3 (HDF5) file; reading it needs h5py "
                         "(pip install h5py), or re-save it in MATLAB with -v7.") from None
    limit = os.path.getsize(file) * _MAX_EXPANSION
    out: dict[str, np.ndarray] = {}
    try:
        with h5py.File(file, "r") as h5:
            for key in h5:
                if key.startswith("#") or (names is not None and key not in names):
                    continue
                node = h5[key]
                if not isinstance(node, h5py.Dataset):
                    continue  # structs and cells: none of the releases' data live there
                matlab_class = node.attrs.get("MATLAB_class", b"")
                if isinstance(matlab_class, bytes):
                    matlab_class = matlab_class.decode("ascii", "replace")
                if matlab_class not in _NUMERIC_CLASSES or node.dtype.kind not in "fiub":
                    continue
                declared = int(np.prod(node.shape, dtype=np.float64)) * node.dtype.itemsize
                bound = limit if node.compression else os.path.getsize(file)
                if declared > bound:
                    raise ValueError(f"variable {key!r} declares {declared} bytes, more than "
                                     "the file could hold")
                # HDF5 stores MATLAB's column-major arrays with the axes reversed.
                out[key] = np.asarray(node[()]).T
    except ValueError as exc:
        raise ValueError(f"{str(file)!r} is not a readable {what} (MATLAB v7.3: {exc}); is it "
                         "truncated?") from exc
    except Exception as exc:  # h5py raises OSError, KeyError, RuntimeError, ... on damage
        raise ValueError(f"{str(file)!r} is not a readable {what} (MATLAB v7.3, "
                         f"{type(exc).__name__}: {exc}); is it truncated?") from exc
    return out


def checked_variable(
    value, *, source: str, name: str, axes: Sequence[str],
    sizes: Mapping[str, int] | None = None, values: str = "samples",
    why: Mapping[str, str] | None = None, label: str | None = None,
) -> np.ndarray:
    """A variable read from a release file, checked: a numeric array of the given axes.

    Parameters
    ----------
    value : object
        The variable as read (:func:`read_mat`, a pickle, a struct field).
    source : str
        The file, for messages.
    name : str
        The variable or struct field, for messages.
    axes : sequence of str
        Name of each axis (``("channels", "samples")``); the array must have as many.
    sizes : mapping of str to int, default=None
        Lengths some axes must have (``{"channels": 62}``).
    values : {"samples", "finite", "unchecked"}, default="samples"
        ``"samples"``: finite and within float32's range (windows are float32);
        ``"finite"``: finite (values kept as float64, ratings); ``"unchecked"``: the
        caller checks them (part of the array, later).
    why : mapping of str to str, default=None
        Why an axis of ``sizes`` has its length, appended to the message when it has
        another (``{"channels": "SEED recordings have 62"}``).
    label : str, default=None
        How shape messages write the variable; ``None``: ``repr(name)``.

    Returns
    -------
    value : ndarray
        ``value`` itself.

    Raises
    ------
    ValueError
        Naming ``source``, the variable, the expected axes and the shape found.
    """
    sizes = {} if sizes is None else dict(sizes)
    why = {} if why is None else dict(why)
    label = repr(name) if label is None else label
    expected = "(" + ", ".join(f"{sizes[axis]} {axis}" if axis in sizes else axis
                               for axis in axes) + ")"
    if (not isinstance(value, np.ndarray) or value.dtype.kind not in "fiu"
            or value.ndim != len(axes)):
        found = (f"shape {value.shape} of dtype {value.dtype}" if isinstance(value, np.ndarray)
                 else type(value).__name__)
        raise ValueError(f"{source!r}: {label} must be a numeric {expected} array; got "
                         f"{found}.")
    for axis, length in zip(axes, value.shape, strict=True):
        if axis in sizes and length != sizes[axis]:
            raise ValueError(f"{source!r}: {label} has shape {value.shape} where {expected} is "
                             f"expected: {label} has {length} {axis}"
                             + (f"; {why[axis]}." if axis in why else "."))
    if values != "unchecked":
        check_samples(value, source=source, name=name, float32=values == "samples")
    return value


def write_mat(path: str | os.PathLike, variables: Mapping[str, np.ndarray], *,
              format: str = "v5") -> None:
    """Write numeric variables as a MATLAB file, atomically.

    Parameters
    ----------
    path : path-like
        Destination; its folder must exist. A crash mid-write leaves any old file intact.
    variables : mapping of str to ndarray
        For ``"v5"`` anything :func:`scipy.io.savemat` takes (structs, cells);
        for ``"v7.3"`` numeric arrays only.
    format : {"v5", "v7.3"}, default="v5"
        MATLAB v5 (what the releases ship) or v7.3 (HDF5, MATLAB's ``-v7.3``).
    """
    if format not in MAT_FORMATS:
        raise ValueError(f"format must be one of {MAT_FORMATS}; got {format!r}.")
    path = Path(path)
    with atomic_file(path) as f:
        if format == "v5":
            from scipy.io import savemat

            savemat(f, dict(variables), format="5", do_compression=False)
        else:
            _write_v73(f, variables)


def _write_v73(f: BinaryIO, variables: Mapping[str, np.ndarray]) -> None:
    import h5py

    buffer = io.BytesIO()  # h5py needs a readable file; the atomic stream is write-only
    with h5py.File(buffer, "w", userblock_size=_V73_USERBLOCK) as h5:
        for key, value in variables.items():
            array = np.asarray(value)
            if array.dtype.kind not in "fiu":
                raise ValueError(f"write_mat v7.3 writes numeric arrays only; {key!r} has "
                                 f"dtype {array.dtype}.")
            matlab_class = {"f8": "double", "f4": "single"}.get(
                array.dtype.str[1:], f"{'u' if array.dtype.kind == 'u' else ''}int"
                f"{8 * array.dtype.itemsize}")
            if array.ndim < 2:  # MATLAB has no 1-D arrays: a row vector
                array = array.reshape(1, -1)
            dataset = h5.create_dataset(key, data=array.T)
            dataset.attrs["MATLAB_class"] = np.bytes_(matlab_class)
    # MATLAB's text header in the user block, as MATLAB writes it.
    header = (f"MATLAB 7.3 MAT-file, Platform: GLNXA64, Created on: "
              f"{time.strftime('%a %b %d %H:%M:%S %Y')} HDF5 schema 1.00 .").encode("ascii")
    block = header.ljust(116, b" ") + b"\x00" * 8 + b"\x00\x02" + b"IM"
    content = bytearray(buffer.getvalue())
    content[:128] = block.ljust(128, b"\x00")
    f.write(content)
