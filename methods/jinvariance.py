"""The J-invariance metric of Noise2Same (Section 3.1, eq. 5, Tables 1 and 2):

    D(f) = E_J E_x ||f(x_Jc)_J - f(x)_J||^2 / |J|,

with J drawn by saturated stratified sampling (0.01% of the pixels, at least one per image and channel),
x_Jc holding N(0, sigma_m^2) on J (sigma_m = 0.5), and x, x_Jc and f's output in standardised units,
i.e. before the estimate is rescaled to the data's units.
"""

from __future__ import annotations

from typing import Any, Iterable, Sequence

import torch
from torch import Tensor
from tqdm.auto import tqdm

from methods.base import TrainableDenoiser
from methods.masking import Masker, Replacement


def saturated_fraction(spatial: Sequence[int], fraction: float) -> float:
    """max(fraction, min(S)^-d): the stratified box side round(fraction^(-1/d)) is capped at the
    shortest side of S, so the box at the origin lies inside the image and J is never empty."""
    return max(fraction, min(spatial) ** -len(spatial))


def j_invariance(method: TrainableDenoiser, images: Iterable[Tensor], fraction: float = 1e-4,
                 sigma_m: float = 0.5, draws: int = 10, seed: int = 0,
                 tile: Sequence[int | None] | None = None, description: str = "D(f)") -> float:
    """D(f) of a trainable method: the mean over the images' samples and `draws` draws of J of
    sum_J (f(z_Jc) - f(z))^2 / |J| per sample (J over all its channels).

    images: (B, C, *S) noisy batches in the data's units; each is standardised as the method does it
    (z = (x - mean) / std; z = x for a method on raw values) and f(z) is
    `method.denoise_standardized(z, tile, std=std)` in eval mode, on the method's device.
    J and the replacement values come from a torch.Generator seeded with `seed`.
    """
    replacement = Replacement.parse(f"gaussian:{sigma_m}")
    generator = torch.Generator(device=method.device).manual_seed(seed)
    was_training = method.training
    method.eval()
    scores = []
    try:
        with torch.no_grad():
            for noisy in tqdm(images, desc=description, leave=False, unit="batch"):
                z, _, std = method.normalize(noisy.to(method.device, torch.float32))
                full = method.denoise_standardized(z, tile, std=std)
                masker = Masker(saturated_fraction(z.shape[2:], fraction), replacement)
                for _ in range(draws):
                    z_masked, mask = masker(z, generator)
                    squared = (method.denoise_standardized(z_masked, tile, std=std) - full).double().pow(2)
                    scores.append((squared * mask).flatten(1).sum(1) / mask.flatten(1).sum(1))
    finally:
        method.train(was_training)
    return torch.cat(scores).mean().item()


def j_invariance_on(method: TrainableDenoiser, datamodule: Any, test_set: str = "test", **options: Any) -> float:
    """D(f) over the noisy images of a datamodule's split, tiled by the datamodule's `inference_tile`
    unless `tile` is given; other options as in `j_invariance`."""
    options.setdefault("tile", datamodule.inference_tile)
    images = (batch["noisy"] for batch in datamodule.eval_dataloader(test_set))
    return j_invariance(method, images, **options)
