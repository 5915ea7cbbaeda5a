"""planaria: CARE's 3-D fluorescence microscopy of Schmidtea mediterranea, read from disk.

Layout (the Noise2Same data notes; the data of Weigert et al., Nat. Methods 2018):
`Denoising_Planaria/train_data/data_label.npz` holds 'X', 17,005 noisy 16x64x64 patches (N, 1, 16, 64, 64)
mixing the three imaging conditions, already normalised, and 'Y', their clean targets (csbdeep's
`save_training_data` writes both; the Noise2Same notebook reads only 'X'). The first 90% train, the last
10% validate, as in the official notebook. `test_data/{GT,condition_1,condition_2,condition_3}/*.tif`
hold 20 volumes of 96x1024x1024 under identical names; each condition is a test set of its own.

Protocol (official notebook and CARE's evaluation code): input normalize(x, 2, 99.8), ground truth
normalize(gt, 0.1, 99.9), both without clipping; the prediction is fitted to the ground truth by least
squares (`norm_minmse`) and scored by PSNR with data range 1; the mean over volumes per condition.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Callable, TypeVar

import numpy as np
import tifffile
from torch import Tensor

from benchmark.registry import ConfigError
from datamodules.base import DataFileError, DenoisingDataModule, LazyImages, MissingDataError, Split
from datamodules.evaluation import PSNRProtocol
from datamodules.registry import register_dataset

T = TypeVar("T")

TRAIN_FILE = "Denoising_Planaria/train_data/data_label.npz"
TEST_DIR = "Denoising_Planaria/test_data"
# Test set -> the folder of its noisy volumes under TEST_DIR; the ground truth is in TEST_DIR/GT.
CONDITIONS = {"C1": "condition_1", "C2": "condition_2", "C3": "condition_3"}
TRAIN_FRACTION = 0.9
INPUT_PERCENTILES = (2.0, 99.8)
GT_PERCENTILES = (0.1, 99.9)
PLANARIA_COLUMNS = {"C1": "Planaria C1", "C2": "Planaria C2", "C3": "Planaria C3"}
SOURCE = ("the CARE paper's data (Weigert et al. 2018, https://publications.mpi-cbg.de/publications-sites/7207/), "
          "as listed in divelab/Noise2Same Denoising_data/README.md")


def percentile_normalize(x: np.ndarray, low: float, high: float) -> np.ndarray:
    """CARE's normalize(x, low, high), no clipping: (x - p_low) / (p_high - p_low + 1e-20) in float32,
    p_q the q-th percentile of all of x."""
    x = np.asarray(x, dtype=np.float32)
    p_low, p_high = np.percentile(x, (low, high)).astype(np.float32)
    return (x - p_low) / (p_high - p_low + np.float32(1e-20))


@dataclass(frozen=True)
class NormMinMSEProtocol(PSNRProtocol):
    """CARE's norm_minmse, then PSNR and SSIM: with p, g the prediction and the ground truth minus their
    means, PSNR_i = 10 log10(R^2 / mean((s p - g)^2)) and SSIM_i = ssim(s p, g, R), s = cov(p, g) / var(p):
    the least-squares affine fit of the prediction to the ground truth (cov with ddof 1 over var with
    ddof 0, as the official code; per image, over all channels and voxels).

    SSIM as the official Planaria scoring (divelab/Noise2Same, utils/evaluation_utils.py `get_scores`):
    `compare_ssim(gt_, x_, data_range=1.)` on the whole 3-D arrays that norm_minmse returns (both centred,
    not shifted back), so a volume is scored by 3-D SSIM, with R = 1. Its window was scikit-image's
    default (7 voxels, uniform, sample covariance); ours is the standard Gaussian one every column uses
    (`datamodules.evaluation.ssim_per_image`).
    """

    def pair(self, pred: Tensor, clean: Tensor, transform: bool = True) -> tuple[Tensor, Tensor]:
        """(s p, g) of each image of a (B, C, *S) batch, in float64, for every method, Input included
        (`transform` is ignored): the fit is part of CARE's score, and only the fitted score of the noisy
        input comes near the paper's Planaria Input row (21.5 / 21.1 / 20.8 dB) on Planaria-like noise
        (raw: 19.9 / 17.3 / 17.3)."""
        p = pred.double().flatten(1)
        g = clean.to(pred.device).double().flatten(1)
        p = p - p.mean(1, keepdim=True)
        g = g - g.mean(1, keepdim=True)
        n = p.shape[1]
        scale = ((p * g).sum(1, keepdim=True) / (n - 1)) / ((p * p).sum(1, keepdim=True) / n)
        return (scale * p).view(pred.shape), g.view(pred.shape)


def read_checked(path: Path, read: Callable[[Path], T]) -> T:
    """read(path); any failure of the reader is a one-line DataFileError naming the file."""
    try:
        return read(path)
    except Exception as error:  # a damaged file fails in many ways (zip, zlib, TIFF structure, EOF, ...)
        raise DataFileError.about(path, f"{type(error).__name__}: {error}", SOURCE) from None


def training_arrays(path: Path) -> dict[str, np.ndarray]:
    """The arrays 'X' and (if present) 'Y' of a csbdeep training file, as float32."""
    with np.load(path) as data:
        return {key: data[key].astype(np.float32, copy=False) for key in ("X", "Y") if key in data.files}


def tiff_shape(path: Path) -> tuple[int, ...]:
    """The shape of a TIFF's first series, from its header."""
    with tifffile.TiffFile(path) as tiff:
        return tuple(tiff.series[0].shape)


def normalized_volume(paths: list[Path], percentiles: tuple[float, float], index: int) -> np.ndarray:
    """The TIFF paths[index] as a (1, Z, Y, X) float32 volume, percentile-normalised."""
    return percentile_normalize(read_checked(paths[index], tifffile.imread), *percentiles)[None]


@register_dataset("planaria")
class Planaria(DenoisingDataModule):
    """CARE Planaria from data_dir: training patches from data_label.npz, test volumes C1-C3 from TIFFs,
    each read when it is scored."""

    spatial_dims = 3
    protocol = NormMinMSEProtocol(data_range=1.0)
    eval_batch_size = 1
    test_sets = tuple(CONDITIONS)
    paper_columns = PLANARIA_COLUMNS
    description = "CARE Planaria 3-D fluorescence microscopy from disk, conditions C1-C3 scored separately"
    # 'Y' is taken to be present (csbdeep writes it; public code reads it from this very file). Without
    # it, methods that train on clean images stop with a one-line error, and validation is skipped.
    provides = frozenset({"noisy", "clean"})
    expected_files = (TRAIN_FILE, f"{TEST_DIR}/GT", *(f"{TEST_DIR}/{folder}" for folder in CONDITIONS.values()))
    source = SOURCE
    inference_tile = (None, 256, 256)

    def load_splits(self) -> dict[str, Split]:
        noisy, clean = self.training_patches()
        n_train = int(len(noisy) * TRAIN_FRACTION)
        ids = [f"patch{i:05d}" for i in range(len(noisy))]
        train_clean = clean[:n_train] if clean is not None and "clean" in self.train_keys else None
        val_clean = None if clean is None else clean[n_train:].copy()  # a copy: an unused Y is freed
        splits = {"train": Split(noisy=noisy[:n_train], ids=ids[:n_train], clean=train_clean),
                  "val": Split(noisy=noisy[n_train:], ids=ids[n_train:], clean=val_clean)}
        names, paths = self.test_volumes()
        ground_truth = LazyImages(partial(normalized_volume, paths["GT"], GT_PERCENTILES), len(names))
        for test_set, folder in CONDITIONS.items():
            noisy_volumes = LazyImages(partial(normalized_volume, paths[folder], INPUT_PERCENTILES), len(names))
            splits[test_set] = Split(noisy=noisy_volumes, ids=names, clean=ground_truth)
        return splits

    def training_patches(self) -> tuple[np.ndarray, np.ndarray | None]:
        """'X' and 'Y' (None if absent) of the training file, each (N, 1, Z, Y, X) float32."""
        path = self.data_dir / TRAIN_FILE
        arrays = read_checked(path, training_arrays)
        noisy, clean = arrays.get("X"), arrays.get("Y")
        expected = noisy is not None and noisy.ndim == 5 and noisy.shape[1] == 1
        if not expected or (clean is not None and clean.shape != noisy.shape):
            found = ", ".join(f"{key} of shape {array.shape}" for key, array in arrays.items()) or "neither"
            raise DataFileError.about(path, f"expected 'X' (and 'Y') of shape (N, 1, Z, Y, X), found {found}",
                                      SOURCE)
        if clean is None and "clean" in self.train_keys:
            raise ConfigError(f"{path} has no 'Y' (clean targets): methods that train on clean images do not "
                              "apply to this copy of planaria")
        return noisy, clean

    def test_volumes(self) -> tuple[list[str], dict[str, list[Path]]]:
        """The volume names in GT and each folder's paths to them; every folder must hold every name, as
        a 3-D volume of its ground truth's shape (checked from the TIFF headers)."""
        test_dir = self.data_dir / TEST_DIR
        names = sorted(path.stem for path in (test_dir / "GT").glob("*.tif"))
        if not names:
            raise MissingDataError(f"planaria: no .tif volumes in {test_dir / 'GT'} (source: {SOURCE})")
        paths = {folder: [test_dir / folder / f"{name}.tif" for name in names]
                 for folder in ("GT", *CONDITIONS.values())}
        missing = [str(path) for folder in paths.values() for path in folder if not path.exists()]
        if missing:
            raise MissingDataError(f"planaria: missing {', '.join(missing)} (GT and every condition folder hold "
                                   f"the same volume names; source: {SOURCE})")
        for index, gt_path in enumerate(paths["GT"]):
            shape = read_checked(gt_path, tiff_shape)
            if len(shape) != 3:
                raise DataFileError.about(gt_path, f"expected a 3-D (Z, Y, X) volume, found shape {shape}", SOURCE)
            for folder in CONDITIONS.values():
                if (found := read_checked(paths[folder][index], tiff_shape)) != shape:
                    raise DataFileError.about(paths[folder][index], f"shape {found}, but its ground truth "
                                              f"{gt_path} has {shape}", SOURCE)
        return names, paths
