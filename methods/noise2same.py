"""Noise2Same (Xie, Wang, Ji, NeurIPS 2020): a self-supervised bound with an invariance term."""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from methods.base import LossTerms
from methods.blind_spot import MaskedTrainable, blind_spot_loss
from methods.registry import register_method


def noise2same_loss(x: Tensor, out_full: Tensor, out_masked: Tensor, mask: Tensor,
                    lambda_inv: float) -> tuple[Tensor, LossTerms]:
    """L = sum_all (f(x) - x)^2 / m + lambda_inv * sqrt( sum_J (f(x) - f(x_Jc))^2 / |J| )   (eq. 7).

    Also returns the blind-spot MSE on J, sum_J (f(x_Jc) - x)^2 / |J|, which the official code logs.
    """
    rec = F.mse_loss(out_full, x)
    inv = (out_full - out_masked)[mask].pow(2).mean()
    blind_spot = blind_spot_loss(out_masked, x, mask)
    return rec + lambda_inv * inv.sqrt(), {"rec": rec, "inv": inv, "blind_spot": blind_spot.detach()}


@register_method("noise2same")
class Noise2Same(MaskedTrainable):
    """Trains on noisy images only; inference is one forward pass f(x).

    lambda_inv: weight of sqrt(L_inv) (2 for standardised images, Theorem 1; 2 * sigma, Theorem 2).
    mask_fraction: share of pixels in J (0.5% in the paper's code). replacement: what x_Jc holds on J.
    """

    forward_passes = 2

    def __init__(self, lambda_inv: float = 2.0, mask_fraction: float = 0.005,
                 replacement: str = "gaussian:0.2", standardize: bool = True, **common: Any) -> None:
        super().__init__(mask_fraction=mask_fraction, replacement=replacement, **common)
        self.lambda_inv = lambda_inv
        self.standardizes = standardize

    def training_loss(self, batch: dict[str, Tensor]) -> tuple[Tensor, LossTerms]:
        x = self.standardized(batch)["noisy"]
        x_masked, mask = self.mask(x)
        # One pass over [x; x_Jc] with shared weights: the two halves are f(x) and f(x_Jc).
        out_full, out_masked = self(torch.cat([x, x_masked])).chunk(2)
        return noise2same_loss(x, out_full, out_masked, mask, self.lambda_inv)
