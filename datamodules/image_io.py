"""Image files of the user's own data: TIFF, PNG and NPY read lazily (memory-mapped where the format
allows) and written back in the same format, and the axes that turn a file's array into (C, *S).

Axes strings name a file's dimensions: Y, X (2-D), Z (3-D), C (channels), e.g. "YX", "YXC", "CYX",
"ZYX", "CZYX", "ZYXC". The channels-first view of an array moves C to the front (or adds a C of 1).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import tifffile
from PIL import Image

from datamodules.safe_npy import NpyError, load_npy

SUFFIXES = (".tif", ".tiff", ".png", ".npy")
AXES = ("YX", "YXC", "CYX", "ZYX", "CZYX", "ZYXC")
MAX_GUESSED_CHANNELS = 4  # a short first or last axis is taken for channels when guessing


class ImageFileError(ValueError):
    """A file that cannot be read as an image; the message names the file and what was expected."""


def read_image(path: Path) -> np.ndarray:
    """The numeric array in an image file, memory-mapped read-only where possible (uncompressed TIFF,
    NPY), else read whole. PNG gives (H, W) or (H, W, C)."""
    suffix = path.suffix.lower()
    try:
        if suffix == ".npy":
            array = load_npy(path, mmap=True)
        elif suffix in (".tif", ".tiff"):
            try:
                array = tifffile.memmap(path, mode="r")
            except ValueError:  # compressed or not contiguous: no memory map
                array = tifffile.imread(path)
        elif suffix == ".png":
            with Image.open(path) as image:
                array = np.asarray(image)
        else:
            raise ImageFileError(f"{path}: unsupported file type; expected one of {', '.join(SUFFIXES)}")
    except (OSError, NpyError, ValueError, tifffile.TiffFileError) as error:
        if isinstance(error, ImageFileError):
            raise
        raise ImageFileError(f"cannot read {path}: {' '.join(str(error).split())}") from None
    if array.dtype.kind not in "biuf":
        raise ImageFileError(f"{path}: expected an array of numbers, found dtype {array.dtype}")
    return array


def image_shape(path: Path) -> tuple[int, ...]:
    """A file's array shape, from its header where the format has one."""
    suffix = path.suffix.lower()
    if suffix in (".tif", ".tiff"):
        try:
            with tifffile.TiffFile(path) as tiff:
                return tuple(tiff.series[0].shape)
        except (OSError, ValueError, tifffile.TiffFileError, IndexError) as error:
            raise ImageFileError(f"cannot read {path}: {' '.join(str(error).split())}") from None
    return tuple(read_image(path).shape)


def guess_axes(shape: tuple[int, ...], suffix: str) -> str:
    """The axes of an array of `shape`: 2-D is YX; PNG with 3 dims is YXC; otherwise a last (else first)
    axis of at most 4 is C, and the rest Y, X or Z, Y, X."""
    if len(shape) == 2:
        return "YX"
    if len(shape) == 3 and (suffix == ".png" or shape[-1] <= MAX_GUESSED_CHANNELS):
        return "YXC"
    if len(shape) == 3:
        return "CYX" if shape[0] <= MAX_GUESSED_CHANNELS else "ZYX"
    if len(shape) == 4 and shape[-1] <= MAX_GUESSED_CHANNELS:
        return "ZYXC"
    if len(shape) == 4 and shape[0] <= MAX_GUESSED_CHANNELS:
        return "CZYX"
    raise ValueError(f"shape {shape} is not an image: expected 2-D, 2-D with channels, 3-D or 3-D with channels")


def channels_first(array: np.ndarray, axes: str) -> np.ndarray:
    """A (C, *S) view of an array with the given axes (no copy)."""
    return np.moveaxis(array, axes.index("C"), 0) if "C" in axes else array[None]


def channels_last_as(array: np.ndarray, axes: str) -> np.ndarray:
    """The inverse of `channels_first`: a (C, *S) array back in the file's axes."""
    return np.moveaxis(array, 0, axes.index("C")) if "C" in axes else array[0]


def spatial_dims(axes: str) -> int:
    """2 for Y, X images, 3 for Z, Y, X volumes."""
    return 3 if "Z" in axes else 2


def in_dtype_range(estimate: np.ndarray, dtype: np.dtype) -> np.ndarray:
    """The estimate as `dtype`: integers rounded and clipped to the dtype's range, floats cast."""
    dtype = np.dtype(dtype)
    if dtype.kind in "iu":
        info = np.iinfo(dtype)
        return np.clip(np.rint(estimate), info.min, info.max).astype(dtype)
    if dtype.kind == "b":
        return estimate >= 0.5
    return estimate.astype(dtype, copy=False)


def write_image(path: Path, array: np.ndarray) -> None:
    """Write an array in the format of path's suffix (TIFF, PNG or NPY)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    suffix = path.suffix.lower()
    if suffix == ".npy":
        np.save(path, array)
    elif suffix in (".tif", ".tiff"):
        tifffile.imwrite(path, array)
    elif suffix == ".png":
        Image.fromarray(array).save(path)
    else:
        raise ImageFileError(f"{path}: unsupported file type; expected one of {', '.join(SUFFIXES)}")
