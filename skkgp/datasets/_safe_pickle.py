"""Read and write pickled numpy arrays without ever running code from the file.

DEAP's Python release is a set of pickles written by Python 2's ``cPickle``. Plain
``pickle.load`` would call any function a crafted file names; :class:`ArrayUnpickler`
only resolves the few numpy names needed to rebuild arrays and refuses everything else.
:func:`dump_py2_arrays` writes the same byte layout as Python 2's ``cPickle`` (protocol
2) so that simulated files exercise the exact path real DEAP files take.
"""

from __future__ import annotations

import io
import pickle
import struct
from typing import Any, BinaryIO

import numpy as np

__all__ = ["ArrayUnpickler", "UnsafePickleError", "load_arrays", "dump_py2_arrays"]


def _numpy_names() -> dict[tuple[str, str], Any]:
    try:  # numpy >= 2
        from numpy._core.multiarray import _reconstruct
        from numpy._core.numeric import _frombuffer
    except ImportError:  # numpy 1.x
        from numpy.core.multiarray import _reconstruct
        from numpy.core.numeric import _frombuffer
    # Both module spellings occur: numpy 1.x (and Python 2) pickles say numpy.core,
    # numpy 2 pickles say numpy._core. _frombuffer rebuilds arrays of protocol 5 pickles.
    return {
        ("numpy.core.multiarray", "_reconstruct"): _reconstruct,
        ("numpy._core.multiarray", "_reconstruct"): _reconstruct,
        ("numpy.core.numeric", "_frombuffer"): _frombuffer,
        ("numpy._core.numeric", "_frombuffer"): _frombuffer,
        ("numpy", "ndarray"): np.ndarray,
        ("numpy", "dtype"): np.dtype,
    }


class UnsafePickleError(pickle.UnpicklingError, ValueError):
    """A pickle asked for something other than numpy arrays and plain containers."""


class ArrayUnpickler(pickle.Unpickler):
    """Unpickler that rebuilds numpy arrays, dicts, lists, strings and numbers only.

    Any other global (``os.system``, ``builtins.eval``, ``subprocess.Popen``, ...) and
    any persistent id raise :class:`UnsafePickleError` before it could be called.
    Python 3 pickles ``bytes`` (an array's buffer) at protocols 0-2 as
    ``_codecs.encode(text, "latin1")``; that name resolves to a function that encodes
    a ``str`` to latin-1 and refuses any other argument or encoding.

    Parameters
    ----------
    file : binary file object
    source : str, default="<pickle>"
        Name of the file, for error messages.
    **kwargs
        Passed to :class:`pickle.Unpickler` (e.g. ``encoding="latin1"`` for Python 2).
    """

    _allowed = _numpy_names()

    def __init__(self, file: BinaryIO, *, source: str = "<pickle>", **kwargs):
        super().__init__(file, **kwargs)
        self.source = source

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) == ("_codecs", "encode"):
            return self._latin1_bytes
        try:
            return self._allowed[(module, name)]
        except KeyError:
            raise UnsafePickleError(
                f"{self.source}: refusing to load {module}.{name}; only numpy arrays are "
                "allowed in a DEAP data file, so this file is corrupt or crafted."
            ) from None

    def _latin1_bytes(self, text: Any, encoding: Any = None, *rest: Any) -> bytes:
        # What Python 3 writes for bytes at protocols 0-2, and nothing else: the name
        # is codecs.encode, which would run any codec a crafted file names.
        if rest or not isinstance(text, str) or encoding not in ("latin1", "latin-1"):
            raise UnsafePickleError(
                f"{self.source}: refusing to load _codecs.encode with "
                f"{type(text).__name__} and encoding {encoding!r}; a pickle of numpy arrays "
                "only encodes text to latin1, so this file is corrupt or crafted.")
        return text.encode("latin1")

    def persistent_load(self, pid: Any) -> Any:
        raise UnsafePickleError(f"{self.source}: persistent ids are not allowed ({pid!r}).")


def load_arrays(file: BinaryIO, *, source: str = "<pickle>", encoding: str = "latin1") -> Any:
    """Unpickle ``file`` with :class:`ArrayUnpickler`.

    Parameters
    ----------
    file : binary file object
    source : str
        Name of the file, for error messages.
    encoding : str, default="latin1"
        How Python 2 ``str`` objects are decoded; ``latin1`` keeps array bytes intact.

    Returns
    -------
    obj : object
        The unpickled object (for DEAP: ``{"data": ndarray, "labels": ndarray}``).
    """
    return ArrayUnpickler(file, source=source, encoding=encoding).load()


# --- writing: the opcodes of Python 2's cPickle.dump(obj, f, 2) --------------------------


def _string(out: io.BufferedIOBase, raw: bytes) -> None:
    # Python 2 str: SHORT_BINSTRING below 256 bytes, else BINSTRING with a 4-byte length.
    if len(raw) < 256:
        out.write(pickle.SHORT_BINSTRING + bytes([len(raw)]) + raw)
    else:
        out.write(pickle.BINSTRING + struct.pack("<i", len(raw)) + raw)


def _global(out: io.BufferedIOBase, module: str, name: str) -> None:
    out.write(pickle.GLOBAL + f"{module}\n{name}\n".encode("ascii"))


def _int(out: io.BufferedIOBase, value: int) -> None:
    if 0 <= value < 256:
        out.write(pickle.BININT1 + bytes([value]))
    else:
        out.write(pickle.BININT + struct.pack("<i", value))


def _dtype(out: io.BufferedIOBase, dtype: np.dtype) -> None:
    # What numpy 1.x's dtype.__reduce__ produced under Python 2 for a simple dtype.
    _global(out, "numpy", "dtype")
    _string(out, dtype.str[1:].encode("ascii"))
    out.write(pickle.BININT1 + b"\x00" + pickle.BININT1 + b"\x01" + pickle.TUPLE3)
    out.write(pickle.REDUCE)
    out.write(pickle.MARK)
    _int(out, 3)
    _string(out, b"<" if dtype.byteorder in "<=" and dtype.itemsize > 1 else b"|")
    out.write(pickle.NONE + pickle.NONE + pickle.NONE)
    _int(out, -1)
    _int(out, -1)
    _int(out, 0)
    out.write(pickle.TUPLE + pickle.BUILD)


def _array(out: io.BufferedIOBase, array: np.ndarray) -> None:
    array = np.ascontiguousarray(array)
    if array.dtype.byteorder == ">":
        array = array.astype(array.dtype.newbyteorder("<"))
    _global(out, "numpy.core.multiarray", "_reconstruct")
    _global(out, "numpy", "ndarray")
    _int(out, 0)
    out.write(pickle.TUPLE1)
    _string(out, b"b")
    out.write(pickle.TUPLE3 + pickle.REDUCE)
    out.write(pickle.MARK)
    _int(out, 1)
    out.write(pickle.MARK)
    for dim in array.shape:
        _int(out, int(dim))
    out.write(pickle.TUPLE)
    _dtype(out, array.dtype)
    out.write(pickle.NEWFALSE)
    raw = memoryview(array).cast("B") if array.size else memoryview(b"")
    out.write(pickle.BINSTRING + struct.pack("<i", raw.nbytes))
    out.write(raw)  # straight from the array's buffer: no 100 MB copy
    out.write(pickle.TUPLE + pickle.BUILD)


def dump_py2_arrays(arrays: dict[str, np.ndarray], file: BinaryIO) -> None:
    """Pickle a dict of str -> ndarray exactly as Python 2's ``cPickle`` (protocol 2) did.

    The file loads with ``pickle.load(f, encoding="latin1")`` under Python 3 (the way
    DEAP's documentation tells users to read it) and with :func:`load_arrays`.

    Parameters
    ----------
    arrays : dict of str to ndarray
        Numeric arrays (little-endian on disk).
    file : binary file object
    """
    file.write(pickle.PROTO + b"\x02" + pickle.EMPTY_DICT)
    if arrays:
        file.write(pickle.MARK)
        for key, value in arrays.items():
            _string(file, key.encode("ascii"))
            _array(file, np.asarray(value))
        file.write(pickle.SETITEMS)
    file.write(pickle.STOP)
