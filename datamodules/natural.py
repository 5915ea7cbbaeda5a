"""The natural photographs bundled with scikit-image, as stand-ins that need no download.

natural-gray stands in for BSD68: the photographs in grey, Gaussian noise of std 25 on the 0-255
scale, not clipped, scored by BSD68's protocol (raw prediction, data range 255). RGB photographs are
converted with ITU-R 601 luma weights (skimage.color.rgb2gray).
natural-rgb stands in for ImageNet: the RGB photographs in [0, 1] with ImageNet's noise recipe and
protocol (prediction min-maxed jointly over channels, data range 1).
In both, train, validation and test images are disjoint; each image's two noisy draws are fixed by
`data_seed`, and so are the further draws of each test image that `test_draws` asks for.
"""

from __future__ import annotations

from typing import Any, Callable

import numpy as np
from skimage import color, data

from datamodules.base import DenoisingDataModule, Split, noisy_copies
from datamodules.noise import Gaussian, NoiseModel, imagenet_noise
from datamodules.evaluation import PSNRProtocol
from datamodules.registry import register_dataset

# name -> loader of a uint8 image (grey or RGB) that ships inside scikit-image.
_BUNDLED: dict[str, Callable[[], np.ndarray]] = {
    "brick": data.brick, "grass": data.grass, "gravel": data.gravel, "moon": data.moon, "cell": data.cell,
    "clock": data.clock, "page": data.page, "text": data.text, "hubble_deep_field": data.hubble_deep_field,
    "immunohistochemistry": data.immunohistochemistry, "retina": data.retina,
    "motorcycle": lambda: data.stereo_motorcycle()[0],
    "coins": data.coins, "rocket": data.rocket,
    "camera": data.camera, "astronaut": data.astronaut, "chelsea": data.chelsea, "coffee": data.coffee,
}
NATURAL_GRAY_SPLITS = {
    "train": ["brick", "grass", "gravel", "moon", "cell", "clock", "page", "text", "hubble_deep_field",
              "immunohistochemistry", "retina", "motorcycle"],
    "val": ["coins", "rocket"],
    "test": ["camera", "astronaut", "chelsea", "coffee"],
}
# Every bundled RGB photograph (colorwheel and logo are drawings).
NATURAL_RGB_SPLITS = {
    "train": ["hubble_deep_field", "immunohistochemistry", "retina", "motorcycle"],
    "val": ["rocket"],
    "test": ["astronaut", "chelsea", "coffee"],
}


def bundled_gray(name: str) -> np.ndarray:
    """A bundled scikit-image photograph as a (1, H, W) float32 image on the 0-255 scale."""
    image = _BUNDLED[name]()
    if image.ndim == 3:
        image = color.rgb2gray(image) * 255.0
    return image.astype(np.float32)[None]


def bundled_rgb(name: str) -> np.ndarray:
    """A bundled scikit-image RGB photograph as a (3, H, W) float32 image in [0, 1]."""
    return (_BUNDLED[name]().transpose(2, 0, 1) / 255.0).astype(np.float32)


def center_crop(image: np.ndarray, max_size: int | None) -> np.ndarray:
    """The central window of at most max_size along each spatial axis (the image itself if None)."""
    if max_size is None:
        return image
    window = [slice((s - min(s, max_size)) // 2, (s - min(s, max_size)) // 2 + min(s, max_size))
              for s in image.shape[1:]]
    return image[(slice(None), *window)]


def bundled_splits(names: dict[str, list[str]], image: Callable[[str], np.ndarray], noise: NoiseModel,
                   max_size: int | None, data_seed: int) -> dict[str, Split]:
    """Each split's photographs, centre-cropped to max_size, with two noisy draws fixed by data_seed."""
    splits = {}
    for tag, (split, split_names) in enumerate(names.items()):
        clean = [center_crop(image(name), max_size) for name in split_names]
        noisy, noisy2 = noisy_copies(clean, noise, data_seed, split_tag=tag)
        splits[split] = Split(noisy=noisy, ids=split_names, clean=clean, noisy2=noisy2)
    return splits


@register_dataset("natural-gray")
class NaturalGray(DenoisingDataModule):
    """Grey natural images with Gaussian noise (sigma on 0-255); `max_size` centre-crops every image
    (small test runs); `data_seed` fixes the noise of every split."""

    protocol = PSNRProtocol(data_range=255.0)
    paper_columns = {"test": "BSD68"}
    stand_in = True
    description = "scikit-image's bundled photographs in grey, Gaussian sigma=25 (embedded stand-in for BSD68)"

    def __init__(self, sigma: float = 25.0, max_size: int | None = None, data_seed: int = 0,
                 **common: Any) -> None:
        super().__init__(**common)
        self.sigma = sigma
        self.max_size = max_size
        self.data_seed = data_seed

    @property
    def gaussian_sigma(self) -> float:
        return self.sigma

    def load_splits(self) -> dict[str, Split]:
        return bundled_splits(NATURAL_GRAY_SPLITS, bundled_gray, Gaussian(self.sigma), self.max_size, self.data_seed)

    def test_noise(self, test_set: str) -> tuple[NoiseModel, int, int]:
        return Gaussian(self.sigma), self.data_seed, list(NATURAL_GRAY_SPLITS).index("test")


@register_dataset("natural-rgb")
class NaturalRGB(DenoisingDataModule):
    """RGB natural images with ImageNet's noise and protocol; `max_size` centre-crops every image
    (small test runs); `data_seed` fixes the noise of every split."""

    channels = 3
    protocol = PSNRProtocol(data_range=1.0, minmax=True)  # ImageNet's
    paper_columns = {"test": "ImageNet"}
    stand_in = True
    description = ("scikit-image's bundled RGB photographs, ImageNet's Poisson 30 + Gaussian 60/255 + 20% loss "
                   "(embedded stand-in for ImageNet)")

    def __init__(self, max_size: int | None = None, data_seed: int = 0, **common: Any) -> None:
        super().__init__(**common)
        self.max_size = max_size
        self.data_seed = data_seed

    def load_splits(self) -> dict[str, Split]:
        return bundled_splits(NATURAL_RGB_SPLITS, bundled_rgb, imagenet_noise(), self.max_size, self.data_seed)

    def test_noise(self, test_set: str) -> tuple[NoiseModel, int, int]:
        return imagenet_noise(), self.data_seed, list(NATURAL_RGB_SPLITS).index("test")
