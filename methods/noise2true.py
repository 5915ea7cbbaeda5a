"""Noise2True: the supervised reference, trained on (noisy, clean) pairs."""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor

from methods.base import LossTerms, TrainableDenoiser
from methods.registry import register_method


@register_method("noise2true")
class Noise2True(TrainableDenoiser):
    """L = mean (f(x) - y)^2 against the clean image y, in the noisy input's standardised units."""

    train_keys = frozenset({"noisy", "clean"})

    def training_loss(self, batch: dict[str, Tensor]) -> tuple[Tensor, LossTerms]:
        units = self.standardized(batch)
        loss = F.mse_loss(self(units["noisy"]), units["clean"])
        return loss, {"mse": loss.detach()}
