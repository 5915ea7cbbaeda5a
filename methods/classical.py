"""Methods without training: the noisy input itself, non-local means and BM3D (BM4D on volumes).

NLM and BM3D need the noise level: by default the dataset's known noise where its recipe is Gaussian
or Poisson-Gaussian (the latter through the generalised Anscombe transform), else an estimate from the
noisy image (methods.noise_level); never anything from the clean image.
"""

from __future__ import annotations

from abc import abstractmethod
from typing import Sequence

import bm3d
import bm4d
import numpy as np
from pydantic import PositiveFloat, PositiveInt
from skimage.restoration import denoise_nl_means
from torch import Tensor

from methods.base import ClassicalDenoiser
from methods.noise_level import KnownNoise, NoiseLevel, estimated_sigma, known_noise
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


class NoiseAwareFilter(ClassicalDenoiser):
    """A filter for Gaussian noise of a given std: `filter(image, sigma)` on a (C, *S) array. With
    noise_level "known" and a test set whose noise is Gaussian or Poisson-Gaussian (`given_noise`), it
    filters the stabilised image at its known std and maps the result back; otherwise it filters the
    image at the estimated std."""

    def __init__(self, noise_level: NoiseLevel = "known") -> None:
        self.noise_level = noise_level
        self.known: KnownNoise | None = None

    def given_noise(self, noise: object) -> None:
        """The noise model of the test set about to be denoised (None: unknown)."""
        self.known = known_noise(noise) if noise is not None and self.noise_level == "known" else None

    def denoise_image(self, image: np.ndarray) -> np.ndarray:
        if self.known is None:
            return self.filter(image, estimated_sigma(image))
        return self.known.inverse(self.filter(self.known.forward(image), self.known.filter_sigma))

    @abstractmethod
    def filter(self, image: np.ndarray, sigma: float) -> np.ndarray:
        """The (C, *S) image filtered for additive Gaussian noise of std `sigma`."""


@register_method("nlm")
class NonLocalMeans(NoiseAwareFilter):
    """Non-local means (Buades et al. 2005), scikit-image's fast variant (2-D and 3-D): filter strength
    h = h_factor * sigma."""

    def __init__(self, h_factor: PositiveFloat = 0.8, patch_size: PositiveInt = 5, patch_distance: PositiveInt = 6,
                 noise_level: NoiseLevel = "known") -> None:
        super().__init__(noise_level)
        self.h_factor = h_factor
        self.patch_size = patch_size
        self.patch_distance = patch_distance

    def filter(self, image: np.ndarray, sigma: float) -> np.ndarray:
        multichannel = image.shape[0] > 1
        result = denoise_nl_means(image if multichannel else image[0], h=self.h_factor * sigma, sigma=sigma,
                                  fast_mode=True, patch_size=self.patch_size,
                                  patch_distance=self.patch_distance, channel_axis=0 if multichannel else None)
        return result if multichannel else result[None]


@register_method("bm3d")
class BM3D(NoiseAwareFilter):
    """BM3D (Dabov et al. 2007) from the `bm3d` package, default profile, sigma_psd = sigma: grey images
    directly, RGB images through the package's colour variant; volumes through its sibling BM4D
    (Maggioni et al. 2013, the `bm4d` package)."""

    # The bm3d library already runs on every core (process time 2x wall time on 2 cores): more
    # processes would only compete for them.
    parallel_images = False
    # Its threads aggregate blocks in no fixed order: "slightly different results each application"
    # (bm3d.profiles.BM3DProfile.num_threads); about 1e-5 dB of PSNR on the smoke preset.
    bit_reproducible = False

    def filter(self, image: np.ndarray, sigma: float) -> np.ndarray:
        if image.shape[0] == 3 and image.ndim == 3:
            return np.asarray(bm3d.bm3d_rgb(image.transpose(1, 2, 0), sigma_psd=sigma)).transpose(2, 0, 1)
        if image.shape[0] != 1 or image.ndim not in (3, 4):
            raise ValueError(f"bm3d takes 2-D grey or RGB images or grey volumes, got shape {image.shape}")
        if image.ndim == 4:
            return np.asarray(bm4d.bm4d(image[0], sigma_psd=sigma)).reshape(image.shape)
        return np.asarray(bm3d.bm3d(image[0], sigma_psd=sigma))[None]
