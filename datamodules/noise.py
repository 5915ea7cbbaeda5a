"""Synthetic noise models. Each maps a clean float image (any shape) to a noisy one, drawing from the
numpy Generator it is given, so that a dataset seed fixes every noisy image."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np


class NoiseModel(Protocol):
    def __call__(self, clean: np.ndarray, rng: np.random.Generator) -> np.ndarray: ...


@dataclass(frozen=True)
class Gaussian:
    """y = x + sigma * n, n ~ N(0, 1) i.i.d. (sigma in the image's own units)."""

    sigma: float

    def __call__(self, clean: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        return clean + self.sigma * rng.standard_normal(clean.shape)


@dataclass(frozen=True)
class Poisson:
    """y = Poisson(peak * x) / peak: shot noise whose variance is x / peak (x >= 0)."""

    peak: float

    def __call__(self, clean: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        return rng.poisson(self.peak * np.clip(clean, 0, None)) / self.peak


@dataclass(frozen=True)
class BernoulliPixelLoss:
    """y = x * b, b ~ Bernoulli(1 - p) i.i.d.: each value is lost (set to 0) with probability p."""

    p: float

    def __call__(self, clean: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        return clean * (rng.random(clean.shape) >= self.p)


@dataclass(frozen=True)
class DrawnPixelLoss:
    """The HanZi generator's pixel loss: `draws` positions drawn with replacement from the top-left
    extent x extent square of the last two axes are set to 0 (2,048 draws over 63^2 zero about 40%)."""

    draws: int
    extent: int

    def __call__(self, clean: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        rows, cols = rng.integers(0, self.extent, size=(2, self.draws))
        noisy = clean.copy()
        noisy[..., rows, cols] = 0
        return noisy


@dataclass(frozen=True)
class Clip:
    """y = min(max(x, low), high)."""

    low: float
    high: float

    def __call__(self, clean: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        return np.clip(clean, self.low, self.high)


@dataclass(frozen=True)
class Compose:
    """Apply the steps in order: y = s_n(... s_1(x))."""

    steps: tuple[NoiseModel, ...]

    def __call__(self, clean: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        for step in self.steps:
            clean = step(clean, rng)
        return clean


def imagenet_noise() -> Compose:
    """The ImageNet recipe of Noise2Self / Noise2Same on [0, 1] images: Poisson(30 x) / 30, then
    + N(0, (60/255)^2), then each value lost with probability 0.2; not clipped (the paper's Input
    PSNR: 9.69 dB)."""
    return Compose((Poisson(30.0), Gaussian(60.0 / 255.0), BernoulliPixelLoss(0.2)))
