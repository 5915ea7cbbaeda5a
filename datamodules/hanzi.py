"""HanZi: Chinese characters rendered on the fly, with the Noise2Self/HanZi noise recipe.

Each character is drawn white on a black 64x64 canvas at font size 50, offset (7, -1), scaled to
[0, 1]; a noisy copy zeroes 2,048 positions drawn with replacement in [0, 62]^2, adds Gaussian noise
of std `sigma` and clips to [0, 1] (batson/hanzi generate.py). The font is Noto Sans SC, shipped by
the PyPI package pylopdf-fonts-zh-cn, so nothing is downloaded (the original font is another one).
Characters: the 6,763 of GB2312, then further CJK Unified Ideographs of GBK that the font draws, up
to the paper's 13,029. Tiles (one character, one noisy copy, plus an independent second copy for
Noise2Noise) are shuffled and split into train/val/test, 70/20/10 by default as the original
generator does (the paper: 90% train+val, 10% test). Images are made on demand, so the paper's
13,029 x 6 tiles need only the glyphs in memory.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Iterable, Sequence
from functools import lru_cache, partial
from itertools import islice
from typing import Any

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from benchmark.registry import ConfigError
from datamodules.base import DenoisingDataModule, LazyImages, Split, noisy_draw
from datamodules.noise import Clip, Compose, DrawnPixelLoss, Gaussian, NoiseModel
from datamodules.evaluation import PSNRProtocol
from datamodules.registry import register_dataset

TILE = 64
FONT_SIZE = 50
OFFSET = (7, -1)
PAPER_CHARACTERS = 13_029
PAPER_COPIES = 6
# A Unicode noncharacter: no font maps it, so FreeType draws glyph 0 (.notdef) for it.
NOTDEF_PROBE = "\uffff"


def _decoded(codec: str, leads: Iterable[int], trails: Sequence[int]) -> list[str]:
    """The characters that `codec` decodes from the two-byte codes lead+trail, in code order."""
    chars = []
    for lead in leads:
        for trail in trails:
            try:
                chars.append(bytes([lead, trail]).decode(codec))
            except UnicodeDecodeError:
                continue
    return chars


def gb2312_characters() -> list[str]:
    """The 6,763 hanzi of GB2312 (levels 1 and 2: lead bytes 0xB0-0xF7, trail bytes 0xA1-0xFE)."""
    return _decoded("gb2312", range(0xB0, 0xF8), range(0xA1, 0xFF))


@lru_cache(maxsize=1)
def hanzi_characters() -> tuple[str, ...]:
    """13,029 characters, the paper's count: GB2312, then the further CJK Unified Ideographs of GBK in
    code order (lead bytes 0x81-0xFE, trail bytes 0x40-0xFE but 0x7F) for which the font has a glyph."""
    common = gb2312_characters()
    seen = set(common)
    gbk = _decoded("gbk", range(0x81, 0xFF), [t for t in range(0x40, 0xFF) if t != 0x7F])
    further = (c for c in gbk if c not in seen and unicodedata.name(c, "").startswith("CJK UNIFIED IDEOGRAPH")
               and has_glyph(c))
    return tuple(common) + tuple(islice(further, PAPER_CHARACTERS - len(common)))


@lru_cache(maxsize=1)
def _font() -> ImageFont.FreeTypeFont:
    from pylopdf_fonts_zh_cn import sans_path
    return ImageFont.truetype(str(sans_path()), FONT_SIZE)


@lru_cache(maxsize=None)
def glyph(char: str) -> np.ndarray:
    """The (64, 64) uint8 drawing of one character, read-only; each is rendered once per process."""
    canvas = Image.new("L", (TILE, TILE), 0)
    ImageDraw.Draw(canvas).text(OFFSET, char, fill=255, font=_font())
    drawing = np.array(canvas, dtype=np.uint8)
    drawing.flags.writeable = False
    return drawing


def as_tile(drawing: np.ndarray) -> np.ndarray:
    """A uint8 drawing as a (1, 64, 64) float32 tile with values in [0, 1]."""
    return (drawing.astype(np.float32) / 255.0)[None]


def render_character(char: str) -> np.ndarray:
    """The clean (1, 64, 64) float32 tile of one character, values in [0, 1]."""
    return as_tile(glyph(char))


def has_glyph(char: str) -> bool:
    """Whether the font draws `char` itself: a non-empty drawing that is not the .notdef box."""
    drawing = glyph(char)
    return bool(drawing.any()) and not np.array_equal(drawing, glyph(NOTDEF_PROBE))


def draw_characters(n: int, rng: np.random.Generator) -> list[str]:
    """n distinct characters: a draw from GB2312 while it has enough, else all of GB2312 and a draw
    from the characters after it in `hanzi_characters()`."""
    common = gb2312_characters()
    if n <= len(common):
        return rng.choice(common, size=n, replace=False).tolist()
    further = hanzi_characters()[len(common):]
    return common + rng.choice(further, size=n - len(common), replace=False).tolist()


def hanzi_noise(sigma: float) -> Compose:
    """Pixel loss (2,048 draws in [0, 62]^2), then + sigma * N(0, 1), then clip to [0, 1]."""
    return Compose((DrawnPixelLoss(draws=2048, extent=TILE - 1), Gaussian(sigma), Clip(0.0, 1.0)))


def _tile_image(glyphs: Sequence[np.ndarray], glyph_of: np.ndarray, first: int, noise: NoiseModel, seed: int,
                draw: int | None, index: int) -> np.ndarray:
    """Tile first + index of the shuffled order, showing glyph glyph_of[first + index]: the clean image
    if `draw` is None, else its noisy draw `draw`, seeded by its position as noisy_copies seeds it (split tag 0)."""
    position = first + index
    clean = as_tile(glyphs[glyph_of[position]])
    return clean if draw is None else noisy_draw(clean, noise, seed, 0, position, draw)


class _StandInBelowPaperSize:
    """HanZi.stand_in: False for an instance at the paper's size (13,029 characters x 6 copies), the
    paper's recipe drawn with another font; True for smaller ones, and on the class, where no size is set."""

    def __get__(self, instance: HanZi | None, owner: type) -> bool:
        return instance is None or not instance.at_paper_size


@register_dataset("hanzi")
class HanZi(DenoisingDataModule):
    """n_characters characters x n_copies noisy copies at noise std `sigma`, split val_fraction /
    test_fraction / the rest for training; `data_seed` fixes the characters, the noise and the split
    (test noise included). `gaussian_only`: additive N(0, sigma^2) alone, no pixel loss and no
    clipping (the paper's Figure 4)."""

    protocol = PSNRProtocol(data_range=1.0, minmax=True)
    eval_batch_size = 64
    paper_columns = {"test": "HanZi"}
    stand_in = _StandInBelowPaperSize()  # type: ignore[assignment]
    description = ("HanZi recipe rendered from Noto Sans SC, GB2312 then GBK characters (embedded; at the "
                   "paper's 13,029 x 6 the paper's recipe with another font, smaller sizes stand in for it)")

    def __init__(self, n_characters: int = 1000, n_copies: int = 2, sigma: float = 0.7, data_seed: int = 0,
                 val_fraction: float = 0.2, test_fraction: float = 0.1, gaussian_only: bool = False,
                 **common: Any) -> None:
        super().__init__(**common)
        if not 1 <= n_characters <= PAPER_CHARACTERS:
            raise ConfigError(f"hanzi: n_characters must be between 1 and {PAPER_CHARACTERS}, got {n_characters}")
        if not (val_fraction > 0 and test_fraction > 0 and val_fraction + test_fraction < 1):
            raise ConfigError(f"hanzi: val_fraction and test_fraction must be positive with a sum below 1, "
                              f"got {val_fraction} and {test_fraction}")
        self.n_characters = n_characters
        self.n_copies = n_copies
        self.sigma = sigma
        self.data_seed = data_seed
        self.val_fraction = val_fraction
        self.test_fraction = test_fraction
        self.gaussian_only = gaussian_only

    @property
    def gaussian_sigma(self) -> float | None:
        """sigma when the noise is Gaussian only (Figure 4's HanZi); None for the recipe's mixed noise."""
        return self.sigma if self.gaussian_only else None

    @property
    def at_paper_size(self) -> bool:
        """Whether this is the paper's size: 13,029 characters x 6 noisy copies."""
        return self.n_characters == PAPER_CHARACTERS and self.n_copies == PAPER_COPIES

    def load_splits(self) -> dict[str, Split]:
        rng = np.random.default_rng(self.data_seed)
        chars = draw_characters(self.n_characters, rng)
        glyphs = [glyph(c) for c in chars]
        order = rng.permutation(self.n_characters * self.n_copies)
        glyph_of, copy_of = np.divmod(order, self.n_copies)
        ids = [f"{chars[c]}#{k}" for c, k in zip(glyph_of, copy_of)]
        n_val, n_test = round(self.val_fraction * len(order)), round(self.test_fraction * len(order))
        n_train = len(order) - n_val - n_test
        bounds = {"train": (0, n_train), "val": (n_train, n_train + n_val), "test": (n_train + n_val, len(order))}
        empty = [name for name, (start, stop) in bounds.items() if start == stop]
        if empty:
            raise ConfigError(f"hanzi: {len(order)} tiles leave the {' and '.join(empty)} split(s) empty; "
                              "raise n_characters or n_copies")
        noise = Gaussian(self.sigma) if self.gaussian_only else hanzi_noise(self.sigma)

        def images(start: int, stop: int, draw: int | None = None) -> LazyImages:
            """Tiles start to stop - 1, made on demand: clean, or noisy draw `draw`."""
            return LazyImages(partial(_tile_image, glyphs, glyph_of, start, noise, self.data_seed, draw), stop - start)

        return {name: Split(noisy=images(start, stop, 0), ids=ids[start:stop], clean=images(start, stop),
                            noisy2=images(start, stop, 1))
                for name, (start, stop) in bounds.items()}
