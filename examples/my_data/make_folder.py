"""Write examples/my_data/cells/: a microscopy folder laid out as the `folder` dataset reads it, made from
scikit-image's bundled fluorescence image `cell` (no download).

The bundled image stands in for a high-signal acquisition (`clean/`, float32 TIFF, in camera counts);
`noisy/` holds a simulated low-light shot of the same field (uint16 TIFF): Poisson counts at 20 photons
for the brightest pixel, plus Gaussian read noise of std 3 counts and an offset of 100 counts, drawn with
a fixed seed. The 20 tiles of 128 x 128 are split 14 / 2 / 4 (train / val / test), with no overlap.
Usage: python examples/my_data/make_folder.py [FOLDER]
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import tifffile
from skimage import data

PHOTONS, READ_NOISE, OFFSET, TILE = 20.0, 3.0, 100.0, 128
SPLITS = {"train": 14, "val": 2, "test": 4}


def main(folder: Path) -> None:
    image = data.cell().astype(np.float64) / 255.0
    rng = np.random.default_rng(0)
    tiles = [image[y:y + TILE, x:x + TILE] for y in range(0, image.shape[0] - TILE + 1, TILE)
             for x in range(0, image.shape[1] - TILE + 1, TILE)]
    start = 0
    for split, count in SPLITS.items():
        for index, tile in enumerate(tiles[start:start + count]):
            clean = OFFSET + PHOTONS * tile
            noisy = OFFSET + rng.poisson(PHOTONS * tile) + rng.normal(0, READ_NOISE, tile.shape)
            for kind, array in (("clean", clean.astype(np.float32)), ("noisy", np.rint(noisy).clip(0).astype(np.uint16))):
                (folder / split / kind).mkdir(parents=True, exist_ok=True)
                tifffile.imwrite(folder / split / kind / f"tile{index:02d}.tif", array)
        start += count
    print(f"wrote {sum(SPLITS.values())} noisy/clean pairs under {folder}")


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).parent / "cells")
