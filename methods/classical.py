"""Methods without training: the noisy input itself, non-local means and BM3D.

NLM and BM3D need the noise level; both estimate it from the noisy image (wavelet MAD estimator of
scikit-image), never from the clean one.
"""

from __future__ import annotations

from typing import Sequence

import bm3d
import numpy as np
from pydantic import PositiveFloat, PositiveInt
from skimage.restoration import denoise_nl_means, estimate_sigma
from torch import Tensor

from methods.base import ClassicalDenoiser
from methods.registry import register_method


@register_method("input")
class Input(ClassicalDenoiser):
    """No denoising: the estimate is the noisy image, the table's lower reference, scored as it is
    (no min-max rescaling, as the paper's Input row: on ImageNet-like noise that is 9.8 dB, not 12.9)."""

    scored_as_is = True
    parallel_images = False  # a copy costs less than sending the image to another process

    def denoise(self, noisy: Tensor, tile: Sequence[int | None] | None = None) -> Tensor:
        return noisy.clone()

    def denoise_image(self, image: np.ndarray) -> np.ndarray:
        return image.copy()


def estimated_sigma(image: np.ndarray) -> float:
    """Noise std of a (C, *S) image by the wavelet median-absolute-deviation estimator, averaged over channels."""
    return float(np.mean([estimate_sigma(channel) for channel in image]))


@register_method("nlm")
class NonLocalMeans(ClassicalDenoiser):
    """Non-local means (Buades et al. 2005), scikit-image's fast variant: filter strength h = h_factor * sigma_hat."""

    def __init__(self, h_factor: PositiveFloat = 0.8, patch_size: PositiveInt = 5, patch_distance: PositiveInt = 6) -> None:
        self.h_factor = h_factor
        self.patch_size = patch_size
        self.patch_distance = patch_distance

    def denoise_image(self, image: np.ndarray) -> np.ndarray:
        sigma = estimated_sigma(image)
        multichannel = image.shape[0] > 1
        result = denoise_nl_means(image if multichannel else image[0], h=self.h_factor * sigma, sigma=sigma,
                                  fast_mode=True, patch_size=self.patch_size,
                                  patch_distance=self.patch_distance, channel_axis=0 if multichannel else None)
        return result if multichannel else result[None]


@register_method("bm3d")
class BM3D(ClassicalDenoiser):
    """BM3D (Dabov et al. 2007) from the `bm3d` package, default profile, with sigma_psd = sigma_hat.

    Grey images are filtered directly; RGB images through the package's colour variant. 2-D only.
    """

    supports_3d = False
    # The bm3d library already runs on every core (process time 2x wall time on 2 cores): more
    # processes would only compete for them.
    parallel_images = False

    def denoise_image(self, image: np.ndarray) -> np.ndarray:
        if image.ndim != 3 or image.shape[0] not in (1, 3):
            raise ValueError(f"bm3d takes 2-D grey or RGB images, got shape {image.shape}")
        sigma = estimated_sigma(image)
        if image.shape[0] == 1:
            return np.asarray(bm3d.bm3d(image[0], sigma_psd=sigma))[None]
        return np.asarray(bm3d.bm3d_rgb(image.transpose(1, 2, 0), sigma_psd=sigma)).transpose(2, 0, 1)
