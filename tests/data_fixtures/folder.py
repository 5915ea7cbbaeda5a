"""Tiny user folders for the `folder` dataset, one writer per layout: `write(root, layout)` lays out
root/{train,val,test}/{noisy,clean,noisy2}/ files as a user would."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from datamodules.image_io import write_image

# layout -> (file suffix, shape of one file, dtype, kinds written)
LAYOUTS = {
    "grey-clean": (".png", (40, 48), np.uint8, ("noisy", "clean")),
    "rgb-pairs": (".tif", (32, 32, 3), np.float32, ("noisy", "clean", "noisy2")),
    "volume-noisy": (".npy", (8, 32, 32), np.float32, ("noisy",)),
    "grey-recipe": (".tif", (36, 36), np.uint16, ("clean",)),
}
COUNTS = {"train": 3, "val": 1, "test": 2}


def image(shape: tuple[int, ...], dtype: type, rng: np.random.Generator) -> np.ndarray:
    """A smooth random image in dtype's units (0-255 for uint8, 0-4000 for uint16, 0-1 for floats)."""
    scale = {np.uint8: 255.0, np.uint16: 4000.0}.get(dtype, 1.0)
    grid = np.meshgrid(*[np.linspace(0, 3, s) for s in shape], indexing="ij")
    values = 0.5 + 0.4 * np.sin(sum(g * rng.uniform(0.5, 2) for g in grid))
    return (values * scale).astype(dtype)


def write(root: Path, layout: str) -> Path:
    """Write the layout's files under root; returns root."""
    suffix, shape, dtype, kinds = LAYOUTS[layout]
    rng = np.random.default_rng(0)
    for split, count in COUNTS.items():
        for index in range(count):
            clean = image(shape, dtype, rng)
            for kind in kinds:
                noise = rng.normal(0, 0.1 * float(clean.max()), shape) if kind != "clean" else 0
                data = clean if kind == "clean" else np.clip(clean + noise, 0, np.iinfo(dtype).max if
                                                              np.dtype(dtype).kind == "u" else None).astype(dtype)
                write_image(root / split / kind / f"img{index}{suffix}", data)
    return root
