"""Training against a second image of the same scene: the clean one (Noise2True) or another noisy draw
(Noise2Noise)."""

from __future__ import annotations

from typing import ClassVar

import torch.nn.functional as F
from torch import Tensor

from methods.base import LossTerms, TrainableDenoiser


class PairedTarget(TrainableDenoiser):
    """L = mean (f(x) - t)^2 with t = batch[target_key], both in the noisy input's standardised units."""

    target_key: ClassVar[str]

    def training_loss(self, batch: dict[str, Tensor]) -> tuple[Tensor, LossTerms]:
        units = self.standardized(batch)
        loss = F.mse_loss(self(units["noisy"]), units[self.target_key])
        return loss, {"mse": loss.detach()}
