"""A tiny copy of the Noise2Void BSD68 archive, BSD68_reproducibility_data/: float32 noisy 180x180
training and validation stacks (Gaussian sigma 25 on 0-255, not clipped) and three test images of
41x61 or 61x41 (noisy float32, ground truth uint8) as pickled object arrays, from fixed seeds."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
from numpy.lib import format as npy_format

from datamodules.bsd68 import SIGMA, TEST_CLEAN, TEST_NOISY, TRAIN, VAL

PATCH = 180
N_TRAIN, N_VAL = 4, 2
TEST_SHAPES = ((41, 61), (61, 41), (41, 61))


def clean_image(shape: tuple[int, ...], rng: np.random.Generator) -> np.ndarray:
    """A smooth 0-255 picture: a random tilted ramp plus a bright disc."""
    rows, cols = np.indices(shape[-2:]) / max(shape[-2:])
    cy, cx, slope_y, slope_x = rng.random(4)
    disc = ((rows - cy) ** 2 + (cols - cx) ** 2 < 0.05) * 80.0
    return np.clip(60 + 100 * (slope_y * rows + slope_x * cols) + disc, 0, 255)


def noisy(clean: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """clean + 25 n, n ~ N(0, 1), not clipped."""
    return clean + SIGMA * rng.standard_normal(clean.shape)


def save_object_array(path: Path, images: list[np.ndarray]) -> None:
    """Images of different shapes as a 1-D object .npy, pickled with protocol 2 as numpy < 1.17 wrote it."""
    array = np.empty(len(images), dtype=object)
    array[:] = images
    with open(path, "wb") as file:
        npy_format.write_array_header_1_0(file, npy_format.header_data_from_array_1_0(array))
        pickle.dump(array, file, protocol=2)


def write(root: Path) -> None:
    """Lay the tiny archive out under root as the zip extracts."""
    rng = np.random.default_rng(68)
    for name in (TRAIN, VAL, TEST_NOISY):
        (Path(root) / name).parent.mkdir(parents=True, exist_ok=True)
    for name, count in ((TRAIN, N_TRAIN), (VAL, N_VAL)):
        stack = [noisy(clean_image((PATCH, PATCH), rng), rng) for _ in range(count)]
        np.save(Path(root) / name, np.stack(stack).astype(np.float32))
    clean = [np.round(clean_image(shape, rng)).astype(np.uint8) for shape in TEST_SHAPES]
    save_object_array(Path(root) / TEST_NOISY, [noisy(image, rng).astype(np.float32) for image in clean])
    save_object_array(Path(root) / TEST_CLEAN, clean)
