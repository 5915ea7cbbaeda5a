"""NLM and BM3D (BM4D on volumes) given the known noise: the dataset's Gaussian std, or the generalised
Anscombe transform for Poisson-Gaussian noise; the wavelet estimate where the noise is anything else."""

from __future__ import annotations

import numpy as np
import torch
import pytest

from datamodules import DATASETS
from datamodules.hanzi import hanzi_noise
from datamodules.noise import Compose, Gaussian, Poisson, imagenet_noise
from methods import classical
from methods.classical import BM3D, NonLocalMeans
from methods.noise_level import KnownNoise, known_noise


def test_the_filters_view_of_each_noise_recipe():
    assert known_noise(Gaussian(25.0)) == KnownNoise(0.0, 25.0)
    assert known_noise(Compose((Poisson(2.5), Gaussian(0.02)))) == KnownNoise(0.4, 0.02)
    assert known_noise(Poisson(10.0)) == KnownNoise(0.1, 0.0)
    assert known_noise(imagenet_noise()) is None and known_noise(hanzi_noise(0.8)) is None  # pixel loss


@pytest.mark.parametrize("counts", [3.0, 10.0, 40.0])
def test_the_anscombe_transform_gives_unit_variance_and_its_inverse_is_unbiased(counts):
    noise = KnownNoise(gain=0.25, sigma=0.1)  # y = 0.25 Poisson(4 x) + N(0, 0.1^2)
    clean = counts * noise.gain
    rng = np.random.default_rng(0)
    noisy = noise.gain * rng.poisson(counts, 400_000) + noise.sigma * rng.standard_normal(400_000)
    stabilized = noise.forward(noisy)
    assert stabilized.std() == pytest.approx(1.0, abs=0.06)
    assert noise.inverse(np.array([stabilized.mean()]))[0] == pytest.approx(clean, rel=0.02)
    assert noise.inverse(noise.forward(np.array([clean]))) == pytest.approx(clean, rel=0.1)  # close to algebraic


def test_a_known_noise_level_is_used_and_an_unknown_one_estimated(monkeypatch):
    estimates = []
    monkeypatch.setattr(classical, "estimated_sigma", lambda image: estimates.append(1) or 20.0)
    image = np.random.default_rng(0).normal(128, 25, (1, 24, 24))
    filters = []
    monkeypatch.setattr(NonLocalMeans, "filter", lambda self, image, sigma: filters.append(sigma) or image)
    nlm = NonLocalMeans()
    nlm.given_noise(Gaussian(25.0))
    nlm.denoise_image(image)
    nlm.given_noise(imagenet_noise())
    nlm.denoise_image(image)
    estimating = NonLocalMeans(noise_level="estimated")
    estimating.given_noise(Gaussian(25.0))
    estimating.denoise_image(image)
    assert filters == [25.0, 20.0, 20.0] and len(estimates) == 2


def test_bm3d_denoises_a_poisson_gaussian_volume_through_bm4d():
    data = DATASETS.get("synthetic-3d")(depth=8, test_size=32, test_volumes=1)
    noisy = np.asarray(data.splits["C3"].noisy[0], dtype=np.float64)
    bm3d = BM3D()
    bm3d.given_noise(data.known_noise("C3"))
    denoised = bm3d.denoise_image(noisy)
    assert denoised.shape == noisy.shape and np.isfinite(denoised).all()
    blurred = np.asarray(data.splits["C3"].clean[0], dtype=np.float64)
    # Closer to the clean volume's structure than the noisy input, after matching scale (correlation).
    assert np.corrcoef(denoised.ravel(), blurred.ravel())[0, 1] > np.corrcoef(noisy.ravel(), blurred.ravel())[0, 1]


def test_nlm_with_the_chosen_3d_window_beats_the_noisy_volume_where_the_usual_window_does_not():
    """examples/nlm_volumes: at synthetic-3d's photon counts the usual 13^3 search window averages the
    nuclei away; the 3^3 window the cpu preset uses gains dB over the input (PSNR by the table's protocol)."""
    data = DATASETS.get("synthetic-3d")(test_size=48, test_volumes=1)
    split = data.splits["C2"]
    noisy, clean = (torch.from_numpy(np.asarray(images[0], dtype=np.float64))[None] for images in (split.noisy, split.clean))

    def psnr(method: NonLocalMeans) -> float:
        method.given_noise(data.known_noise("C2"))
        return data.protocol.psnr(method.denoise(noisy), clean).item()

    noisy_psnr = data.protocol.psnr(noisy, clean, transform=False).item()
    assert psnr(NonLocalMeans(patch_size=3, patch_distance=1)) > noisy_psnr + 2
    assert psnr(NonLocalMeans()) < noisy_psnr + 0.5
