"""Noise2Void (Krull, Buchholz, Jug, CVPR 2019): blind-spot training with Uniform Pixel Selection."""

from __future__ import annotations

from typing import Any

from methods.blind_spot import MaskedBlindSpot
from methods.masking import MaskFraction, ReplacementName
from methods.registry import register_method


@register_method("noise2void")
class Noise2Void(MaskedBlindSpot):
    """Each pixel of J takes the value of a pixel drawn uniformly from the 5x5 window around it, which can
    be the pixel itself (N2V's default 'uniform_withCP'), so f is not strictly J-invariant (paper, Sec. 3.2).
    Loss on J only; inference f(x)."""

    def __init__(self, mask_fraction: MaskFraction = 0.005, replacement: ReplacementName = "ups:5", **common: Any) -> None:
        super().__init__(mask_fraction=mask_fraction, replacement=replacement, **common)
