"""ImageNet as the paper built it: ILSVRC2012 validation JPEGs with the Noise2Self noise recipe.

The JPEGs sorted by file name: the first `n_train_images` (20,000) give `n_train_crops` (60,000)
training crops of crop x crop (128x128), crop k taken from image k mod n_train_images at a corner
drawn from (data_seed, k); the next `n_val` (1,000) are the validation images and the next `n_test`
(1,000) the test images, whole. Images are read with PIL, converted to RGB, scaled to [0, 1].
Noise: `imagenet_noise` (Poisson 30, + Gaussian 60/255, 20% of values lost, not clipped), each image's
two draws fixed by data_seed. Nothing is held in memory (60,000 crops would take 12 GB per key): each
crop, image and noisy draw is made from its JPEG on access, deterministically, and a small cache keeps
the last JPEGs decoded so that the keys of one item decode it once.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache, partial
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from benchmark.registry import ConfigError
from datamodules.base import DataFileError, DenoisingDataModule, LazyImages, MissingDataError, Split, lazy_noisy_split
from datamodules.evaluation import PSNRProtocol
from datamodules.noise import imagenet_noise
from datamodules.registry import register_dataset

FOLDER = "ILSVRC2012_img_val"
PATTERN = "ILSVRC2012_val_*.JPEG"
SOURCE = ("ILSVRC2012_img_val.tar, the ILSVRC2012 validation set from https://image-net.org (free registration), "
          f"extracted into data_dir/{FOLDER}")


@lru_cache(maxsize=8)
def read_rgb(path: Path) -> np.ndarray:
    """A JPEG as a read-only (3, H, W) uint8 array, converted to RGB (the set holds grey and CMYK files)."""
    try:
        with Image.open(path) as image:
            array = np.asarray(image.convert("RGB")).transpose(2, 0, 1).copy()
    except (OSError, ValueError, SyntaxError) as error:
        raise DataFileError.about(path, error, SOURCE) from None
    array.setflags(write=False)
    return array


def whole_image(files: tuple[Path, ...], index: int) -> np.ndarray:
    """Image `index` of `files` as (3, H, W) float32 in [0, 1]."""
    return read_rgb(files[index]).astype(np.float32) / 255.0


@dataclass(frozen=True)
class TrainingCrops:
    """Crop k: the crop x crop window of image k mod len(files) at a corner drawn from (seed, k), as
    (3, crop, crop) float32 in [0, 1]; an image smaller than the window is first mirrored out to it."""

    files: tuple[Path, ...]
    crop: int
    seed: int

    def __call__(self, k: int) -> np.ndarray:
        image = read_rgb(self.files[k % len(self.files)])
        short = [(0, max(0, self.crop - size)) for size in image.shape[1:]]
        if any(after for _, after in short):
            image = np.pad(image, [(0, 0), *short], mode="symmetric")
        rng = np.random.default_rng([self.seed, k])
        top, left = (int(rng.integers(0, size - self.crop + 1)) for size in image.shape[1:])
        return image[:, top:top + self.crop, left:left + self.crop].astype(np.float32) / 255.0


@register_dataset("imagenet")
class ImageNet(DenoisingDataModule):
    """ILSVRC2012 validation JPEGs under data_dir/ILSVRC2012_img_val; the counts and the crop size are
    the paper's by default (smaller ones for tests); `data_seed` fixes the crops and every noisy draw."""

    channels = 3
    # The official code min-maxes the prediction jointly over the channels, peak 255 on 0-255 images.
    protocol = PSNRProtocol(data_range=1.0, minmax=True)
    eval_batch_size = 1  # image sizes vary
    paper_columns = {"test": "ImageNet"}
    stand_in = False
    description = ("ImageNet (ILSVRC2012 val JPEGs): 60,000 128x128 crops of the first 20,000 for training, "
                   "the next 1,000 val and 1,000 test; Poisson 30 + Gaussian 60/255 + 20% of values lost")
    expected_files = (FOLDER,)
    source = SOURCE

    def __init__(self, n_train_images: int = 20000, n_train_crops: int = 60000, n_val: int = 1000,
                 n_test: int = 1000, crop: int = 128, data_seed: int = 0, **common: Any) -> None:
        super().__init__(**common)
        counts = {"n_train_images": n_train_images, "n_train_crops": n_train_crops, "n_val": n_val,
                  "n_test": n_test, "crop": crop}
        for name, value in counts.items():
            if value < 1:
                raise ConfigError(f"imagenet: {name} must be at least 1, got {value}")
        self.n_train_images = n_train_images
        self.n_train_crops = n_train_crops
        self.n_val = n_val
        self.n_test = n_test
        self.crop = crop
        self.data_seed = data_seed

    @property
    def n_images(self) -> int:
        """JPEGs the splits need: train, then val, then test, in file-name order."""
        return self.n_train_images + self.n_val + self.n_test

    def jpeg_files(self) -> list[Path]:
        """The ILSVRC2012_val_*.JPEG files of the folder, sorted by name."""
        return sorted((self.data_dir / FOLDER).glob(PATTERN))

    def check_files(self) -> None:
        """The folder must exist and hold at least `n_images` JPEGs."""
        super().check_files()
        found = len(self.jpeg_files())
        if found < self.n_images:
            raise MissingDataError(
                f"{self.name}: found {found} {PATTERN} files in {self.data_dir / FOLDER}, need {self.n_images} "
                f"({self.n_train_images} train + {self.n_val} val + {self.n_test} test); source: {SOURCE}")

    def load_splits(self) -> dict[str, Split]:
        files = self.jpeg_files()
        noise = imagenet_noise()
        n_train, n_val = self.n_train_images, self.n_val
        train, val, test = (tuple(files[start:end]) for start, end in
                            ((0, n_train), (n_train, n_train + n_val), (n_train + n_val, self.n_images)))
        crops = LazyImages(TrainingCrops(train, self.crop, self.data_seed), self.n_train_crops)
        splits = {"train": lazy_noisy_split(crops, [f"crop_{k:05d}" for k in range(self.n_train_crops)],
                                            noise, self.data_seed, split_tag=0)}
        for tag, (name, part) in enumerate((("val", val), ("test", test)), start=1):
            images = LazyImages(partial(whole_image, part), len(part))
            splits[name] = lazy_noisy_split(images, [path.stem for path in part], noise, self.data_seed, split_tag=tag)
        return splits
