"""Noise2Self (Batson and Royer, ICML 2019): blind-spot training with the masked pixels hidden.

The paper compares two of its replacements: a random value on the range of the image (noise masking,
Noise2Self's published setting) and the local average without the centre (donut). Loss on J only;
inference f(x), as the paper does at test time.
"""

from __future__ import annotations

from typing import Any

from methods.blind_spot import MaskedBlindSpot
from methods.masking import MaskFraction, ReplacementName
from methods.registry import register_method


@register_method("noise2self_noise")
class Noise2SelfNoise(MaskedBlindSpot):
    """J replaced by values drawn uniformly in [min, max] of each standardised sample."""

    def __init__(self, mask_fraction: MaskFraction = 0.005, replacement: ReplacementName = "uniform", **common: Any) -> None:
        super().__init__(mask_fraction=mask_fraction, replacement=replacement, **common)


@register_method("noise2self_donut")
class Noise2SelfDonut(MaskedBlindSpot):
    """J replaced by the local average of the 3^d neighbourhood without the centre."""

    def __init__(self, mask_fraction: MaskFraction = 0.005, replacement: ReplacementName = "donut", **common: Any) -> None:
        super().__init__(mask_fraction=mask_fraction, replacement=replacement, **common)
