"""Crops of test images as a gallery shows them: one window of the noisy image, the prediction after the
protocol's transform T and the clean image, as uint8 in the protocol's display scale.

The window is the `CROP_SIZE` square of highest variance of the clean image (over its channels and views,
the first such square on ties), so every method scored on an image is cut at the same place. A 2-D image
has one view, its crop; a volume two, the crop of its central slice and of its maximum projection over
depth.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from torch import Tensor

    from datamodules.evaluation import PSNRProtocol

CROP_SIZE = 96  # pixels of a crop's side (less where the image is smaller)
CROP_IMAGES = 2  # test images of each test set a cell keeps crops of
VOLUME_VIEWS = ("central slice", "max projection")
IMAGE_VIEWS = ("crop",)


@dataclass(frozen=True)
class ImageCrop:
    """One test image cut down for display. `noisy`, `prediction` and `clean`: (V, h, w) or (V, h, w, 3)
    uint8 arrays, one panel per name in `views`; `corner`: the crop's top-left (row, column) in the image;
    `noisy_psnr`: the PSNR of the noisy image as it is (the Input row's score of this image)."""

    image: str
    views: tuple[str, ...]
    corner: tuple[int, int]
    noisy: np.ndarray
    prediction: np.ndarray
    clean: np.ndarray
    noisy_psnr: float


def views_of(image: np.ndarray) -> np.ndarray:
    """A (C, H, W) image as one view (1, C, H, W); a (C, D, H, W) volume as its central slice and its
    maximum projection over depth (2, C, H, W)."""
    if image.ndim == 3:
        return image[None]
    return np.stack([image[:, image.shape[1] // 2], image.max(axis=1)])


def window_variance(planes: np.ndarray, size: int) -> np.ndarray:
    """The variance of every size x size window of (N, H, W) planes, summed over the planes: (H-size+1,
    W-size+1), from integral images."""
    def window_sums(values: np.ndarray) -> np.ndarray:
        integral = np.pad(values.cumsum(1).cumsum(2), ((0, 0), (1, 0), (1, 0)))
        return (integral[:, size:, size:] - integral[:, :-size, size:] - integral[:, size:, :-size]
                + integral[:, :-size, :-size])

    values = planes.astype(np.float64)
    mean = window_sums(values) / size**2
    return (window_sums(values**2) / size**2 - mean**2).sum(0)


def crop_window(clean_views: np.ndarray, size: int) -> tuple[int, int]:
    """Top-left (row, column) of the size x size window of highest variance of (V, C, H, W) views."""
    variance = window_variance(clean_views.reshape(-1, *clean_views.shape[-2:]), size)
    row, column = np.unravel_index(int(np.argmax(variance)), variance.shape)
    return int(row), int(column)


def channels_last(views: np.ndarray) -> np.ndarray:
    """(V, C, h, w) -> (V, h, w) for one channel, (V, h, w, C) otherwise."""
    return views[:, 0] if views.shape[1] == 1 else views.transpose(0, 2, 3, 1)


def crop_image(protocol: PSNRProtocol, image_id: str, noisy: Tensor, estimate: Tensor, clean: Tensor,
               transform: bool = True, size: int = CROP_SIZE) -> ImageCrop:
    """The crop of one (C, *S) test image: noisy, T(estimate) (the estimate as it is when not
    `transform`) and clean, cut at the clean image's window of highest variance."""
    shown = [views_of(image) for image in protocol.displayed(noisy, estimate, clean, transform)]
    size = min(size, *shown[2].shape[-2:])
    top, left = crop_window(shown[2], size)
    noisy_view, predicted, clean_view = (channels_last(v[..., top:top + size, left:left + size]) for v in shown)
    noisy_psnr = float(protocol.psnr(noisy[None], clean[None], transform=False)[0])
    return ImageCrop(image_id, VOLUME_VIEWS if noisy.dim() == 4 else IMAGE_VIEWS, (top, left), noisy_view, predicted,
                     clean_view, noisy_psnr)
