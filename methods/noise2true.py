"""Noise2True: the supervised reference, trained on (noisy, clean) pairs."""

from __future__ import annotations

from methods.paired import PairedTarget
from methods.registry import register_method


@register_method("noise2true")
class Noise2True(PairedTarget):
    """L = mean (f(x) - y)^2 against the clean image y; the only method that sees clean images in training."""

    train_keys = frozenset({"noisy", "clean"})
    target_key = "clean"
