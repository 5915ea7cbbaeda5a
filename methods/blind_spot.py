"""Training on a masked input x_Jc: the shared machinery of Noise2Void, Noise2Self and Noise2Same, and
the mask-based blind-spot loss."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from methods.base import LossTerms, TrainableDenoiser
from methods.masking import Masker, MaskFraction, Replacement, ReplacementName


def masked_mean(values: Tensor, mask: Tensor) -> Tensor:
    """sum_J v / |J| for a boolean J of v's shape, as a masked sum over every position: unlike v[J].mean() it
    needs no nonzero() (a host sync on CUDA) and no gather, and its backward is a `where`, not a scatter."""
    return torch.where(mask, values, 0).sum() / mask.sum()


def blind_spot_loss(out_masked: Tensor, x: Tensor, mask: Tensor) -> Tensor:
    """L = sum_J (f(x_Jc) - x)^2 / |J|: the network fed x_Jc is scored on J only."""
    return masked_mean((out_masked - x).pow(2), mask)


class MaskedTrainable(TrainableDenoiser):
    """A method that feeds its network x_Jc: J drawn at `mask_fraction` (stratified, per channel), its
    pixels replaced by `replacement` (gaussian:SIGMA, ups:WINDOW, donut, uniform, zero)."""

    def __init__(self, mask_fraction: MaskFraction = 0.005, replacement: ReplacementName = "gaussian:0.2",
                 **common: Any) -> None:
        super().__init__(**common)
        self.masker = Masker(mask_fraction, Replacement.parse(replacement))

    def mask(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """(x_Jc, J) for a standardised batch, from the method's seeded generator."""
        return self.masker(x, self.generator(x.device))


class MaskedBlindSpot(MaskedTrainable):
    """Mask-based blind-spot training (Noise2Void, Noise2Self): minimise sum_J (f(x_Jc) - x)^2 / |J|.
    Inference is the plain f(x), as the paper does at test time."""

    def training_loss(self, batch: dict[str, Tensor]) -> tuple[Tensor, LossTerms]:
        x = self.standardized(batch)["noisy"]
        x_masked, mask = self.mask(x)
        loss = blind_spot_loss(self(x_masked), x, mask)
        return loss, {"blind_spot": loss.detach()}
