"""The noise level a classical filter is given.

Where a dataset's noise recipe is known and the filter's Gaussian model fits it, the filter gets the
truth: the known std of additive Gaussian noise, or, for Poisson-Gaussian noise
y = a Poisson(x / a) + N(0, s^2), the generalised Anscombe transform (GAT; Makitalo and Foi, IEEE TIP
2013), z = (2 / a) sqrt(a y + 3/8 a^2 + s^2), whose noise has unit variance, filtered at sigma 1 and
mapped back by the closed-form approximation of the exact unbiased inverse. Any other noise (pixel
loss, clipping, real photographs of unknown noise) gets the wavelet-MAD estimate from the noisy image
(scikit-image's `estimate_sigma`), never anything read from the clean one.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
from skimage.restoration import estimate_sigma

from datamodules.noise import Compose, Gaussian, Poisson

# "known": the dataset's noise where it is Gaussian or Poisson-Gaussian, else the estimate;
# "estimated": always the estimate.
NoiseLevel = Literal["known", "estimated"]


@dataclass(frozen=True)
class KnownNoise:
    """y = gain Poisson(x / gain) + N(0, sigma^2) in the image's units (gain 0: Gaussian only)."""

    gain: float
    sigma: float

    @property
    def filter_sigma(self) -> float:
        """The noise std the filter sees: 1 after the GAT, else sigma."""
        return 1.0 if self.gain else self.sigma

    def forward(self, image: np.ndarray) -> np.ndarray:
        """The GAT, z = 2 sqrt(y' + 3/8 + s'^2) in counts (y' = y / gain, s' = sigma / gain); identity for Gaussian noise."""
        if not self.gain:
            return image
        return 2.0 * np.sqrt(np.maximum(image / self.gain + 3.0 / 8.0 + (self.sigma / self.gain) ** 2, 0.0))

    def inverse(self, filtered: np.ndarray) -> np.ndarray:
        """Back to the image's units: D^2/4 + sqrt(3/2)/(4D) - 11/(8D^2) + 5 sqrt(3/2)/(8D^3) - 1/8 - s'^2,
        at least 0, times the gain (Makitalo and Foi's closed form; D below 1 maps to 0)."""
        if not self.gain:
            return filtered
        d = np.maximum(filtered, 1.0)
        root = math.sqrt(1.5)
        counts = d ** 2 / 4 + root / (4 * d) - 11 / (8 * d ** 2) + 5 * root / (8 * d ** 3) - 1 / 8
        return self.gain * np.maximum(counts - (self.sigma / self.gain) ** 2, 0.0)

    def describe(self) -> str:
        """What the filter is given: 'the known Gaussian sigma 25', or the GAT with its parameters."""
        if not self.gain:
            return f"the known Gaussian sigma {self.sigma:g}"
        return (f"the generalised Anscombe transform of the known noise, Poisson peak {1 / self.gain:g} + Gaussian "
                f"{self.sigma:g}")


def known_noise(noise: Any) -> KnownNoise | None:
    """The filter's view of a dataset's noise model: Gaussian, Poisson or Poisson then Gaussian; else None."""
    steps = noise.steps if isinstance(noise, Compose) else (noise,)
    kinds = [type(step) for step in steps]
    if kinds == [Gaussian]:
        return KnownNoise(0.0, steps[0].sigma)
    if kinds == [Poisson]:
        return KnownNoise(1.0 / steps[0].peak, 0.0)
    if kinds == [Poisson, Gaussian]:
        return KnownNoise(1.0 / steps[0].peak, steps[1].sigma)
    return None


def estimated_sigma(image: np.ndarray) -> float:
    """Noise std of a (C, *S) image by the wavelet median-absolute-deviation estimator, averaged over channels."""
    return float(np.mean([estimate_sigma(channel) for channel in image]))
