"""A tiny copy of the official HanZi tiles: Hanzi/tiles/{training,validation,testing}.npy, each
(N, 9, 64, 64) float32 = [clean, noisy at sigma 0.3/0.5/0.7/0.9, a second copy at the same sigmas],
made with the embedded generator's recipe from fixed seeds (16 / 4 / 4 GB2312 characters)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from datamodules.hanzi import gb2312_characters, hanzi_noise, render_character
from datamodules.hanzi_tiles import SIGMA_INDEX, SPLIT_FILES, TILES_DIR

SIZES = {"training.npy": 16, "validation.npy": 4, "testing.npy": 4}


def tile(char: str, seed: list[int]) -> np.ndarray:
    """One (9, 64, 64) tile of `char`: the clean image, then two noisy copies at each sigma."""
    clean = render_character(char)
    noisy = [hanzi_noise(sigma)(clean, np.random.default_rng([*seed, copy, index]))
             for copy in (0, 1) for sigma, index in SIGMA_INDEX.items()]
    return np.concatenate([clean, *noisy]).astype(np.float32)


def write(root: Path) -> None:
    """Lay the tiny copy out under root as the distribution does."""
    folder = Path(root) / TILES_DIR
    folder.mkdir(parents=True, exist_ok=True)
    chars = iter(gb2312_characters())
    for tag, name in enumerate(SPLIT_FILES.values()):
        np.save(folder / name, np.stack([tile(next(chars), [tag, i]) for i in range(SIZES[name])]))
