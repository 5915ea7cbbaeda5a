"""synthetic-3d: an embedded stand-in for Planaria C1-C3, made procedurally from a fixed seed.

A clean volume is nuclei-like fluorescence: point sources (density 0.001 per voxel, brightness
U(0.2, 1)) blurred by an anisotropic Gaussian PSF (sigma 1 voxel in Z, 1.5 in Y and X), scaled to a
maximum of 1, on a dark background. Condition k adds Poisson-Gaussian noise,
y = Poisson(peak_k x) / peak_k + N(0, sigma_k^2), from C1 (least noisy) to C3 (noisiest).
As Planaria's, the training volumes mix the three conditions, the three test sets share their clean
volumes, noisy volumes are normalised like Planaria's input (percentiles 2 / 99.8), clean ones like
its ground truth (0.1 / 99.9), and scoring is Planaria's least-squares-fit PSNR. Each noisy volume
has an independent second draw (noisy2) for Noise2Noise.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy import ndimage

from datamodules.base import DenoisingDataModule, Split, noisy_copies
from datamodules.noise import Compose, Gaussian, NoiseModel, Poisson
from datamodules.planaria import GT_PERCENTILES, INPUT_PERCENTILES, PLANARIA_COLUMNS, Planaria, percentile_normalize
from datamodules.registry import register_dataset

SOURCE_DENSITY = 0.001
BRIGHTNESS = (0.2, 1.0)
PSF_SIGMA = (1.0, 1.5, 1.5)
# (peak, sigma) per condition: the protocol's Input PSNR comes out near the paper's 21.52 / 21.09 / 20.82.
CONDITION_NOISE: dict[str, NoiseModel] = {
    "C1": Compose((Poisson(2.5), Gaussian(0.02))),
    "C2": Compose((Poisson(1.5), Gaussian(0.03))),
    "C3": Compose((Poisson(1.0), Gaussian(0.05))),
}
SPLIT_TAGS = {"train": 0, "val": 1, "test": 2}


def nuclei_volume(shape: tuple[int, int, int], rng: np.random.Generator) -> np.ndarray:
    """A clean (1, Z, Y, X) volume in [0, 1]: sparse point sources of random brightness blurred by the PSF."""
    sources = (rng.random(shape) < SOURCE_DENSITY) * rng.uniform(*BRIGHTNESS, size=shape)
    volume = ndimage.gaussian_filter(sources, PSF_SIGMA)
    return (volume / max(volume.max(), 1e-12)).astype(np.float32)[None]


def condition_draws(clean: list[np.ndarray], conditions: list[str], seed: int,
                    split_tag: int) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Two independent noisy draws of clean[i] under the noise of conditions[i] (noisy_copies per condition,
    tagged split_tag * 3 + condition index), each normalised like Planaria's input."""
    noisy: list[np.ndarray] = [np.empty(0)] * len(clean)
    noisy2: list[np.ndarray] = [np.empty(0)] * len(clean)
    for index, (name, noise) in enumerate(CONDITION_NOISE.items()):
        members = [i for i, condition in enumerate(conditions) if condition == name]
        draws = noisy_copies([clean[i] for i in members], noise, seed, split_tag=split_tag * 3 + index)
        for i, first, second in zip(members, *draws):
            noisy[i] = percentile_normalize(first, *INPUT_PERCENTILES)
            noisy2[i] = percentile_normalize(second, *INPUT_PERCENTILES)
    return noisy, noisy2


@register_dataset("synthetic-3d")
class Synthetic3D(DenoisingDataModule):
    """Procedural nuclei volumes of `depth` slices: train_volumes and val_volumes of train_size^2 voxels
    per slice (conditions C1, C2, C3 in turn), test_volumes of test_size^2 seen under each condition;
    `data_seed` fixes the volumes and every noise draw."""

    spatial_dims = 3
    protocol = Planaria.protocol
    test_sets = Planaria.test_sets
    paper_columns = PLANARIA_COLUMNS
    stand_in = True
    description = ("procedural nuclei-like 3-D fluorescence volumes, Poisson-Gaussian noise at three levels "
                   "(embedded stand-in for Planaria C1-C3)")
    # Wide enough for the blind-spot network's margin at backbone depth 3 (2 x 62 voxels), narrower than
    # the default test volumes, so that test prediction runs in tiles.
    inference_tile = (None, 160, 160)

    def __init__(self, depth: int = 16, train_size: int = 64, test_size: int = 192, train_volumes: int = 12,
                 val_volumes: int = 3, test_volumes: int = 3, data_seed: int = 0, **common: Any) -> None:
        super().__init__(**common)
        self.depth = depth
        self.train_size = train_size
        self.test_size = test_size
        self.train_volumes = train_volumes
        self.val_volumes = val_volumes
        self.test_volumes = test_volumes
        self.data_seed = data_seed

    def known_noise(self, test_set: str) -> NoiseModel:
        """The Poisson-Gaussian noise of condition `test_set` (C1, C2, C3)."""
        return CONDITION_NOISE[test_set]

    def clean_volumes(self, split: str, count: int, size: int) -> list[np.ndarray]:
        """`count` clean volumes of shape (1, depth, size, size); volume i drawn from (data_seed, split tag, i)."""
        shape, tag = (self.depth, size, size), SPLIT_TAGS[split]
        return [nuclei_volume(shape, np.random.default_rng([self.data_seed, tag, i])) for i in range(count)]

    def load_splits(self) -> dict[str, Split]:
        splits = {}
        for split, count in (("train", self.train_volumes), ("val", self.val_volumes)):
            clean = self.clean_volumes(split, count, self.train_size)
            conditions = [self.test_sets[i % len(self.test_sets)] for i in range(count)]
            noisy, noisy2 = condition_draws(clean, conditions, self.data_seed, SPLIT_TAGS[split])
            ids = [f"{split}{i:02d}-{condition}" for i, condition in enumerate(conditions)]
            splits[split] = Split(noisy=noisy, ids=ids, noisy2=noisy2,
                                  clean=[percentile_normalize(volume, *GT_PERCENTILES) for volume in clean])
        clean = self.clean_volumes("test", self.test_volumes, self.test_size)
        ground_truth = [percentile_normalize(c, *GT_PERCENTILES) for c in clean]
        ids = [f"volume{i:02d}" for i in range(len(clean))]
        for condition in self.test_sets:
            noisy, _ = condition_draws(clean, [condition] * len(clean), self.data_seed, SPLIT_TAGS["test"])
            splits[condition] = Split(noisy=noisy, ids=ids, clean=ground_truth)
        return splits
