"""Noise2Same (Xie, Wang, Ji, NeurIPS 2020): a self-supervised bound with an invariance term."""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from pydantic import NonNegativeFloat
from torch import Tensor

from methods.base import LossTerms
from methods.blind_spot import MaskedTrainable, masked_mean
from methods.masking import MaskFraction, ReplacementName
from methods.registry import register_method


SQRT_FLOOR = 1e-12  # below it, sqrt(L_inv) passes no gradient (sqrt's derivative at 0 is infinite)


def noise2same_loss(x: Tensor, out_full: Tensor, out_masked: Tensor, mask: Tensor,
                    lambda_inv: float) -> tuple[Tensor, LossTerms]:
    """L = sum_all (f(x) - x)^2 / m + lambda_inv * sqrt( sum_J (f(x) - f(x_Jc))^2 / |J| )   (eq. 7).

    Also returns the blind-spot MSE on J, sum_J (f(x_Jc) - x)^2 / |J|, which the official code logs
    (computed without a graph: it is not part of L). The square root is taken of max(L_inv, 1e-12):
    the same value and gradient wherever L_inv > 1e-12, and no infinite gradient where a network that
    has collapsed to a constant output makes L_inv exactly 0 (natural-rgb, seed 2, step 94 of the cpu
    preset: an infinite gradient there turned every weight into NaN).
    """
    rec = F.mse_loss(out_full, x)
    inv = masked_mean((out_full - out_masked).pow(2), mask)
    with torch.no_grad():
        blind_spot = masked_mean((out_masked - x).pow(2), mask)
    return rec + lambda_inv * inv.clamp_min(SQRT_FLOOR).sqrt(), {"rec": rec, "inv": inv, "blind_spot": blind_spot}


@register_method("noise2same")
class Noise2Same(MaskedTrainable):
    """Trains on noisy images only; inference is one forward pass f(x).

    lambda_inv: weight of sqrt(L_inv) (2 for standardised images, Theorem 1; 2 * sigma, Theorem 2).
    mask_fraction: share of pixels in J (0.5% in the paper's code). replacement: what x_Jc holds on J.
    two_passes: how f(x) and f(x_Jc) are computed in training. True (default): two passes, f(x) then f(x_Jc),
    each normalised by its own batch's statistics, running statistics updated once per pass, as in the
    official code; on a CPU it is also the faster (README, "Noise2Same's step"). False: one pass over the 2B
    batch [x; x_Jc], batch norm statistics shared by the halves (the suite's step before December 2026).
    Without batch norm the two give the same loss.
    """

    forward_passes = 2

    def __init__(self, lambda_inv: NonNegativeFloat = 2.0, mask_fraction: MaskFraction = 0.005,
                 replacement: ReplacementName = "gaussian:0.2", standardize: bool = True, two_passes: bool = True,
                 **common: Any) -> None:
        super().__init__(mask_fraction=mask_fraction, replacement=replacement, **common)
        self.lambda_inv = lambda_inv
        self.standardizes = standardize
        self.two_passes = two_passes

    def training_loss(self, batch: dict[str, Tensor]) -> tuple[Tensor, LossTerms]:
        x = self.standardized(batch)["noisy"]
        x_masked, mask = self.mask(x)
        if self.two_passes:
            out_full, out_masked = self(x), self(x_masked)
        else:
            out_full, out_masked = self(torch.cat([x, x_masked])).chunk(2)
        return noise2same_loss(x, out_full, out_masked, mask, self.lambda_inv)
