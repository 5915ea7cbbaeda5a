"""A tiny ILSVRC2012 validation folder, ILSVRC2012_img_val/ILSVRC2012_val_0000000k.JPEG for k = 1..10:
real JPEGs of 120 to 176 pixels a side, mostly RGB, one greyscale and one CMYK as the real set has,
from a fixed seed. DATASET_KWARGS are the counts that fit it (4 train images, 2 val, 2 test, 2 unused)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from datamodules.imagenet import FOLDER

# (width, height, PIL mode) of each file, in file order.
FILES = [(160, 136, "RGB"), (136, 176, "L"), (144, 144, "RGB"), (120, 168, "CMYK"), (176, 128, "RGB"),
         (128, 160, "RGB"), (152, 136, "RGB"), (136, 152, "RGB"), (144, 128, "RGB"), (128, 144, "RGB")]
DATASET_KWARGS = {"n_train_images": 4, "n_train_crops": 8, "n_val": 2, "n_test": 2}


def picture(width: int, height: int, rng: np.random.Generator) -> np.ndarray:
    """An (height, width, 3) uint8 picture: a random colour ramp with a rectangle of another colour."""
    rows, cols = np.indices((height, width)) / max(width, height)
    ramp = rng.random((3, 1, 1)) * rows + rng.random((3, 1, 1)) * cols
    top, left = rng.integers(0, height // 2), rng.integers(0, width // 2)
    ramp[:, top:top + height // 3, left:left + width // 3] = rng.random((3, 1, 1))
    return (np.clip(ramp, 0, 1) * 255).round().astype(np.uint8).transpose(1, 2, 0)


def write(root: Path) -> None:
    """Lay the tiny folder out under root as ILSVRC2012_img_val.tar extracts."""
    folder = Path(root) / FOLDER
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(2012)
    for number, (width, height, mode) in enumerate(FILES, start=1):
        image = Image.fromarray(picture(width, height, rng)).convert(mode)
        image.save(folder / f"ILSVRC2012_val_{number:08d}.JPEG", format="JPEG", quality=90)
