"""hanzi-tiles: the official pre-generated HanZi of Noise2Same, read from disk.

Under data_dir, Hanzi/tiles/{training,validation,testing}.npy each hold (N, 9, 64, 64) floats: index 0
the clean character, 1-4 a noisy copy at sigma 0.3 / 0.5 / 0.7 / 0.9, 5-8 a second noisy copy at the
same sigmas (divelab/Noise2Same's data notes; generated with batson/hanzi). The paper uses sigma 0.7:
noisy = index 3, noisy2 = index 7. Files are read through read-only memory maps and never unpickled.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from numpy.lib import format as npy_format

from benchmark.registry import ConfigError
from datamodules.base import DataFileError, DenoisingDataModule, Split
from datamodules.hanzi import HanZi
from datamodules.registry import register_dataset

SOURCE = "divelab/Noise2Same's Denoising_data (HanZi generated with batson/hanzi)"
TILES_DIR = "Hanzi/tiles"
SPLIT_FILES = {"train": "training.npy", "val": "validation.npy", "test": "testing.npy"}
TILE_SHAPE = (9, 64, 64)
CLEAN_INDEX = 0
# Noise std -> index of the first noisy copy; the second copy sits SECOND_COPY indices further.
SIGMA_INDEX = {0.3: 1, 0.5: 2, 0.7: 3, 0.9: 4}
SECOND_COPY = 4


def _header(path: Path) -> tuple[tuple[int, ...], np.dtype]:
    """The shape and dtype a .npy header announces, read without loading anything."""
    with open(path, "rb") as file:
        version = npy_format.read_magic(file)
        read = npy_format.read_array_header_1_0 if version == (1, 0) else npy_format.read_array_header_2_0
        shape, _, dtype = read(file)
    return shape, dtype


def open_tiles(path: Path) -> np.ndarray:
    """A read-only memory map of an (N, 9, 64, 64) float .npy file, N >= 1; DataFileError otherwise
    (an object array is refused from its header, never unpickled)."""
    expected = f"expected floats of shape (N, {', '.join(map(str, TILE_SHAPE))}) with N >= 1"
    try:
        shape, dtype = _header(path)
    except (ValueError, OSError, EOFError) as error:
        raise DataFileError.about(path, f"not a .npy file ({error}); {expected}", SOURCE) from None
    if dtype.kind != "f" or len(shape) != 4 or shape[1:] != TILE_SHAPE or shape[0] == 0:
        raise DataFileError.about(path, f"it holds {dtype} of shape {shape}; {expected}", SOURCE)
    try:
        return np.load(path, mmap_mode="r", allow_pickle=False)
    except (ValueError, OSError) as error:
        raise DataFileError.about(path, f"truncated or unreadable ({error})", SOURCE) from None


class TileChannel(Sequence[np.ndarray]):
    """Channel `index` of every tile of one .npy file, each as a (1, 64, 64) float32 copy; pickles as
    its path, so loader workers map the file themselves instead of copying it."""

    def __init__(self, path: Path, index: int, tiles: np.ndarray | None = None) -> None:
        self.path = path
        self.index = index
        self.tiles = open_tiles(path) if tiles is None else tiles

    def __reduce__(self) -> tuple[type, tuple[Path, int]]:
        return type(self), (self.path, self.index)

    def __len__(self) -> int:
        return len(self.tiles)

    def __getitem__(self, item: int) -> np.ndarray:  # type: ignore[override]
        return np.array(self.tiles[item, self.index], dtype=np.float32)[None]


@register_dataset("hanzi-tiles")
class HanZiTiles(DenoisingDataModule):
    """The official HanZi tiles at noise std `sigma` (0.3, 0.5, 0.7 or 0.9; the paper's Table 3: 0.7)."""

    protocol = HanZi.protocol
    eval_batch_size = 64
    paper_columns = {"test": "HanZi"}
    stand_in = False
    description = "the official HanZi tiles of Noise2Same (13,029 characters x 6 noisy copies, 64x64), read from disk"
    expected_files = tuple(f"{TILES_DIR}/{name}" for name in SPLIT_FILES.values())
    source = SOURCE

    def __init__(self, sigma: float = 0.7, **common: Any) -> None:
        super().__init__(**common)
        if sigma not in SIGMA_INDEX:
            raise ConfigError(f"hanzi-tiles: sigma must be one of {', '.join(map(str, SIGMA_INDEX))}, got {sigma}")
        self.sigma = sigma

    def load_splits(self) -> dict[str, Split]:
        noisy = SIGMA_INDEX[self.sigma]
        splits = {}
        for split, name in SPLIT_FILES.items():
            path = self.data_dir / TILES_DIR / name
            tiles = open_tiles(path)
            splits[split] = Split(noisy=TileChannel(path, noisy, tiles),
                                  ids=[f"{Path(name).stem}/{i}" for i in range(len(tiles))],
                                  clean=TileChannel(path, CLEAN_INDEX, tiles),
                                  noisy2=TileChannel(path, noisy + SECOND_COPY, tiles))
        return splits
