"""Neighbor2Neighbor (Huang, Li, Jia, Lu, Liu, CVPR 2021) as a plugin of noise2same-bench: one module
that registers one method; the suite gives it the backbone, data, evaluation, logging and runner."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from methods import register_method
from methods.base import LossTerms, TrainableDenoiser

# The eight ordered pairs of edge-adjacent pixels of a 2x2 cell, positions numbered 2 * row + column
# (the official code's idx_pair).
NEIGHBOUR_PAIRS = torch.tensor([[0, 1], [0, 2], [1, 3], [2, 3], [1, 0], [2, 0], [3, 1], [3, 2]])


def neighbour_positions(shape: torch.Size, generator: torch.Generator) -> tuple[Tensor, Tensor]:
    """The random neighbour sub-sampler (g1, g2) of a (B, C, H, W) batch: for each sample and 2x2 cell,
    an ordered pair of edge-adjacent positions drawn uniformly from the eight, shared by the channels;
    two (B, 1, H // 2, W // 2) tensors of positions 0-3."""
    batch, _, height, width = shape
    pick = torch.randint(len(NEIGHBOUR_PAIRS), (batch, 1, height // 2, width // 2), generator=generator,
                         device=generator.device)
    pairs = NEIGHBOUR_PAIRS.to(generator.device)[pick]
    return pairs[..., 0], pairs[..., 1]


def subsample(x: Tensor, positions: Tensor) -> Tensor:
    """g(x): from each 2x2 cell of a (B, C, H, W) batch the pixel at `positions` (B, 1, H // 2, W // 2);
    (B, C, H // 2, W // 2) (an odd last row or column is dropped)."""
    batch, channels, height, width = x.shape
    cells = x[..., : height // 2 * 2, : width // 2 * 2].unfold(2, 2, 2).unfold(3, 2, 2)  # (B, C, h, w, row, col)
    cells = cells.reshape(*cells.shape[:4], 4)
    return cells.gather(-1, positions.expand(batch, channels, -1, -1).unsqueeze(-1)).squeeze(-1)


@register_method("neighbor2neighbor")
class Neighbor2Neighbor(TrainableDenoiser):
    """Neighbor2Neighbor: trains on noisy images only, on pairs of sub-images of the same noisy image.

    The sub-sampler takes two edge-adjacent pixels of each 2x2 cell of y, one into g1(y) and one into
    g2(y): their noise is independent and their signals nearly equal, so g2(y) is a noisy target for
    f(g1(y)), as in Noise2Noise. The loss, with f(y) computed without gradient (no path through it):

        L = mean (f(g1(y)) - g2(y))^2 + gamma * mean (f(g1(y)) - g2(y) - (g1(f(y)) - g2(f(y))))^2

    The regulariser asks the gap between the two sub-images to be the one the denoised image has,
    which corrects for their signals not being equal. gamma: the regulariser's weight (2 in the authors'
    code); with `gamma_ramp`, it rises linearly from gamma / T to gamma over the T steps of training,
    as the authors' code does. Inference is one pass f(y). 2-D only, as in the paper.
    """

    supports_3d = False

    def __init__(self, gamma: float = 2.0, gamma_ramp: bool = True, **common: Any) -> None:
        super().__init__(**common)
        self.gamma = gamma
        self.gamma_ramp = gamma_ramp
        self.ramp_steps: int | None = None

    def on_fit_start(self) -> None:
        """Ramp gamma over the fit's steps (when asked and the fit has a step budget)."""
        self.ramp_steps = self.trainer.max_steps if self.gamma_ramp and self.trainer.max_steps > 0 else None

    def current_gamma(self) -> float:
        """gamma * (t + 1) / T at step t of a fit of T steps when ramping; gamma otherwise."""
        if self.ramp_steps is None:
            return self.gamma
        return self.gamma * min(1.0, (self.global_step + 1) / self.ramp_steps)

    def training_loss(self, batch: dict[str, Tensor]) -> tuple[Tensor, LossTerms]:
        y = self.standardized(batch)["noisy"]
        first, second = neighbour_positions(y.shape, self.generator(y.device))
        with torch.no_grad():
            denoised = self.padded_forward(y)
        gap = self.padded_forward(subsample(y, first)) - subsample(y, second)
        rec = gap.pow(2).mean()
        reg = (gap - (subsample(denoised, first) - subsample(denoised, second))).pow(2).mean()
        return rec + self.current_gamma() * reg, {"rec": rec, "reg": reg}
