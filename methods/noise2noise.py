"""Noise2Noise (Lehtinen et al., ICML 2018): trained on pairs of independent noisy draws of one image."""

from __future__ import annotations

from methods.paired import PairedTarget
from methods.registry import register_method


@register_method("noise2noise")
class Noise2Noise(PairedTarget):
    """L = mean (f(x) - x')^2 with x' an independent noisy draw of the same clean image (zero-mean noise
    makes its minimiser the one of the clean target); never sees a clean image."""

    train_keys = frozenset({"noisy", "noisy2"})
    target_key = "noisy2"
