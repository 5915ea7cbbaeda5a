"""Reading .npy files without trusting their pickles.

A plain .npy holds a header and raw numbers; an object-dtype .npy (the BSD68 test images) holds a
pickle, and unpickling runs whatever callables the pickle names. Here the header is read with
numpy.lib.format and the pickle with an Unpickler that resolves only the globals an object array of
numeric ndarrays needs (numpy's array and scalar reconstructors, ndarray, dtype, and _codecs.encode
to latin-1 only, which protocol-2 pickles use for bytes); any other global is refused before anything
is called.
"""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np
from numpy.lib import format as npy_format


class NpyError(ValueError):
    """A .npy file that cannot be read safely: not .npy, truncated, or a pickle asking for more than numbers."""


# Kinds of numeric dtypes an image may have: bool, signed and unsigned integers, floats.
NUMERIC_KINDS = frozenset("biuf")

_RECONSTRUCT = np.empty(0).__reduce__()[0]  # numpy's ndarray reconstructor (_core.multiarray._reconstruct)
_SCALAR = np.float64(0).__reduce__()[0]  # numpy's scalar reconstructor (_core.multiarray.scalar)


def _latin1_encode(text: str, encoding: str) -> bytes:
    """_codecs.encode as protocol-2 pickles call it for bytes objects: text.encode('latin1') and nothing else."""
    if encoding != "latin1":
        raise NpyError(f"refused to unpickle _codecs.encode with encoding {encoding!r}")
    return text.encode("latin1")


# (module, name) a pickle may ask for -> the object it gets; numpy < 2 wrote numpy.core, numpy 2 numpy._core.
ALLOWED_GLOBALS: dict[tuple[str, str], Any] = {
    **{(module, "_reconstruct"): _RECONSTRUCT for module in ("numpy.core.multiarray", "numpy._core.multiarray")},
    **{(module, "scalar"): _SCALAR for module in ("numpy.core.multiarray", "numpy._core.multiarray")},
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): np.dtype,
    ("_codecs", "encode"): _latin1_encode,
}
_HEADER_READERS = {(1, 0): npy_format.read_array_header_1_0, (2, 0): npy_format.read_array_header_2_0}


class _NumericArrayUnpickler(pickle.Unpickler):
    """An Unpickler whose find_class hands out only ALLOWED_GLOBALS and refuses anything else."""

    def find_class(self, module: str, name: str) -> Any:
        try:
            return ALLOWED_GLOBALS[(module, name)]
        except KeyError:
            raise NpyError(f"refused to unpickle {module}.{name}: only numpy arrays of numbers are allowed "
                           "(a pickle can run code)") from None


def _unpickle_object_array(file: BinaryIO, shape: tuple[int, ...]) -> np.ndarray:
    """The pickled object array that follows the header; each element must be a numeric ndarray."""
    try:
        array = _NumericArrayUnpickler(file).load()
    except NpyError:
        raise
    except Exception as error:  # a corrupt pickle fails in many ways (EOFError, UnpicklingError, ...)
        raise NpyError(f"corrupt pickled payload ({type(error).__name__}: {error})") from None
    if not isinstance(array, np.ndarray) or array.dtype != object or array.shape != shape:
        raise NpyError(f"the payload is not the object array of shape {shape} the header announces")
    for index, element in enumerate(array.flat):
        if not isinstance(element, np.ndarray) or element.dtype.kind not in NUMERIC_KINDS:
            raise NpyError(f"element {index} is {type(element).__name__}, not a numeric numpy array")
    return array


def load_npy(path: str | Path, mmap: bool = False) -> np.ndarray:
    """The array in a .npy file, plain or of object dtype, without running code from it.

    A plain array is read by np.load with allow_pickle=False (memory-mapped read-only if `mmap`); an
    object array is unpickled by the restricted Unpickler. Raises NpyError for anything else.
    """
    try:
        with open(path, "rb") as file:
            version = npy_format.read_magic(file)
            if version not in _HEADER_READERS:
                raise NpyError(f"unsupported .npy format version {version}")
            shape, _, dtype = _HEADER_READERS[version](file)
            if dtype.hasobject:
                return _unpickle_object_array(file, shape)
        return np.load(path, mmap_mode="r" if mmap else None, allow_pickle=False)
    except NpyError:
        raise
    except ValueError as error:  # numpy's messages for a bad magic string, header or size
        raise NpyError(str(error)) from None
