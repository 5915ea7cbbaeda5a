"""HanZi: Chinese characters rendered on the fly, with the Noise2Self/HanZi noise recipe.

Each character is drawn white on a black 64x64 canvas at font size 50, offset (7, -1), scaled to
[0, 1]; a noisy copy zeroes 2,048 positions drawn with replacement in [0, 62]^2, adds Gaussian noise
of std `sigma` and clips to [0, 1] (batson/hanzi generate.py). Characters come from the GB2312 set
(6,763 common characters) and the Noto Sans SC font shipped by the PyPI package pylopdf-fonts-zh-cn,
so nothing is downloaded. Tiles (one character, one noisy copy, plus an independent second copy for
Noise2Noise) are shuffled and split 70/20/10 into train/val/test, as the original generator does.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from datamodules.base import DenoisingDataModule, Split, noisy_copies
from datamodules.noise import Clip, Compose, DrawnPixelLoss, Gaussian
from datamodules.evaluation import PSNRProtocol
from datamodules.registry import register_dataset

TILE = 64
FONT_SIZE = 50
OFFSET = (7, -1)
SPLIT_FRACTIONS = (0.7, 0.2, 0.1)


def gb2312_characters() -> list[str]:
    """The 6,763 hanzi of GB2312 (levels 1 and 2: lead bytes 0xB0-0xF7, trail bytes 0xA1-0xFE)."""
    chars = []
    for lead in range(0xB0, 0xF8):
        for trail in range(0xA1, 0xFF):
            try:
                chars.append(bytes([lead, trail]).decode("gb2312"))
            except UnicodeDecodeError:
                continue
    return chars


@lru_cache(maxsize=1)
def _font() -> ImageFont.FreeTypeFont:
    from pylopdf_fonts_zh_cn import sans_path
    return ImageFont.truetype(str(sans_path()), FONT_SIZE)


def render_character(char: str) -> np.ndarray:
    """The clean (1, 64, 64) float32 tile of one character, values in [0, 1]."""
    canvas = Image.new("L", (TILE, TILE), 0)
    ImageDraw.Draw(canvas).text(OFFSET, char, fill=255, font=_font())
    return (np.asarray(canvas, dtype=np.float32) / 255.0)[None]


def hanzi_noise(sigma: float) -> Compose:
    """Pixel loss (2,048 draws in [0, 62]^2), then + sigma * N(0, 1), then clip to [0, 1]."""
    return Compose((DrawnPixelLoss(draws=2048, extent=TILE - 1), Gaussian(sigma), Clip(0.0, 1.0)))


@register_dataset("hanzi")
class HanZi(DenoisingDataModule):
    """n_characters GB2312 characters x n_copies noisy copies at noise std `sigma`; `data_seed` fixes the
    characters, the noise and the split (test noise included)."""

    protocol = PSNRProtocol(data_range=1.0, minmax=True)
    eval_batch_size = 64
    paper_columns = {"test": "HanZi"}
    stand_in = True
    description = "HanZi recipe rendered from Noto Sans SC (embedded; a smaller set than the paper's 13,029 x 6)"

    def __init__(self, n_characters: int = 1000, n_copies: int = 2, sigma: float = 0.7,
                 data_seed: int = 0, **common: Any) -> None:
        super().__init__(**common)
        available = len(gb2312_characters())
        if not 1 <= n_characters <= available:
            raise ValueError(f"n_characters must be between 1 and {available}, got {n_characters}")
        self.n_characters = n_characters
        self.n_copies = n_copies
        self.sigma = sigma
        self.data_seed = data_seed

    def load_splits(self) -> dict[str, Split]:
        rng = np.random.default_rng(self.data_seed)
        chars = rng.choice(gb2312_characters(), size=self.n_characters, replace=False)
        glyphs = [render_character(c) for c in chars]
        tiles = [(c, k) for c in range(self.n_characters) for k in range(self.n_copies)]
        order = rng.permutation(len(tiles))
        clean = [glyphs[tiles[t][0]] for t in order]
        ids = [f"{chars[tiles[t][0]]}#{tiles[t][1]}" for t in order]
        noisy, noisy2 = noisy_copies(clean, hanzi_noise(self.sigma), self.data_seed, split_tag=0)
        n_train = round(SPLIT_FRACTIONS[0] * len(order))
        n_val = round(SPLIT_FRACTIONS[1] * len(order))
        bounds = {"train": slice(0, n_train), "val": slice(n_train, n_train + n_val),
                  "test": slice(n_train + n_val, len(order))}
        return {name: Split(noisy=noisy[part], ids=ids[part], clean=clean[part], noisy2=noisy2[part])
                for name, part in bounds.items()}
