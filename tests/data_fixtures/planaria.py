"""A tiny copy of CARE's Denoising_Planaria, from fixed seeds: train_data/data_label.npz with 'X' and 'Y'
(10 patches of (1, 16, 64, 64) float32, axes 'SCZYX', as csbdeep's save_training_data writes them) and
test_data/{GT,condition_1,condition_2,condition_3}/ with two uint16 TIFF volumes of 8x40x48 under the
same names: GT = dark level + 1000 x, condition k = dark level + Poisson(peak_k x) + N(0, 2^2), rounded."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import tifffile

N_PATCHES = 10
PATCH = (16, 64, 64)
TEST_SHAPE = (8, 40, 48)
TEST_NAMES = ("EXP278_Smed_fixed_RedDot1_sub_5_N7_m0012", "EXP278_Smed_fixed_RedDot1_sub_5_N7_m0013")
PEAKS = {"condition_1": 60.0, "condition_2": 20.0, "condition_3": 5.0}  # photons at the brightest voxel
DARK = 100.0  # the camera's offset


def clean_volume(shape: tuple[int, ...], rng: np.random.Generator, blobs: int = 12) -> np.ndarray:
    """A [0, 1] volume of `blobs` Gaussian nuclei (sigma 1 in Z, 2 in Y and X) of random brightness."""
    grid = np.indices(shape, dtype=np.float32)
    volume = np.zeros(shape, np.float32)
    for centre, brightness in zip(rng.random((blobs, 3)) * np.array(shape), rng.uniform(0.3, 1.0, blobs)):
        distance = sum(((axis - c) / s) ** 2 for axis, c, s in zip(grid, centre, (1.0, 2.0, 2.0)))
        volume += brightness * np.exp(-0.5 * distance)
    return volume / volume.max()


def camera(clean: np.ndarray, peak: float, rng: np.random.Generator) -> np.ndarray:
    """uint16 counts: dark level + Poisson(peak x) + N(0, 2^2), rounded."""
    counts = DARK + rng.poisson(peak * clean) + rng.normal(0.0, 2.0, clean.shape)
    return np.round(counts).clip(0, 65535).astype(np.uint16)


def write(root: Path) -> None:
    """Lay the tiny Denoising_Planaria out under root as the download unpacks."""
    rng = np.random.default_rng(7207)
    base = Path(root) / "Denoising_Planaria"
    (base / "train_data").mkdir(parents=True, exist_ok=True)
    clean = np.stack([clean_volume(PATCH, rng, blobs=30)[None] for _ in range(N_PATCHES)])
    noisy = (camera(clean, 10.0, rng).astype(np.float32) - DARK) / 10.0
    np.savez(base / "train_data" / "data_label.npz", X=noisy, Y=clean.astype(np.float32), axes="SCZYX")
    for folder in ("GT", *PEAKS):
        (base / "test_data" / folder).mkdir(parents=True, exist_ok=True)
    for name in TEST_NAMES:
        volume = clean_volume(TEST_SHAPE, rng)
        tifffile.imwrite(base / "test_data" / "GT" / f"{name}.tif", np.round(DARK + 1000 * volume).astype(np.uint16))
        for folder, peak in PEAKS.items():
            tifffile.imwrite(base / "test_data" / folder / f"{name}.tif", camera(volume, peak, rng))
