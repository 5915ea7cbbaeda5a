"""Prediction of large images and volumes in overlapping tiles, so that no input passes through the
network whole (Planaria's 96x1024x1024 test volumes)."""

from __future__ import annotations

import itertools
import math
from typing import Callable, Sequence

import torch
from torch import Tensor


def _windows(size: int, tile: int | None, margin: int, multiple: int) -> list[tuple[slice, slice]]:
    """(window, core) pairs along one axis: cores partition [0, size); each window adds `margin` on both
    sides where the axis allows and starts at a multiple of `multiple`."""
    if tile is None or tile >= size:
        return [(slice(0, size), slice(0, size))]
    core = (tile - 2 * margin) // multiple * multiple
    if core <= 0:
        raise ValueError(f"tile {tile} is too small for a margin of {margin} on each side")
    pairs = []
    for start in range(0, size, core):
        end = min(start + core, size)
        low = max(0, start - margin) // multiple * multiple
        pairs.append((slice(low, min(size, end + margin)), slice(start, end)))
    return pairs


def tile_count(spatial: Sequence[int], tile: Sequence[int | None], margin: int, multiple: int = 1) -> int:
    """How many windows `tiled` passes to fn for an input of these spatial sizes (for progress bars)."""
    return math.prod(len(_windows(size, t, margin, multiple)) for size, t in zip(spatial, tile))


def tiled(fn: Callable[[Tensor], Tensor], x: Tensor, tile: Sequence[int | None], margin: int,
          multiple: int = 1) -> Tensor:
    """fn(x) computed window by window: y[core] = fn(x[window])[core - window start].

    x is (B, C, *S); tile gives a window size per spatial axis (None: the whole axis). When `margin`
    is at least fn's receptive radius and fn aligns to the origin on a grid of `multiple` (as a U-Net's
    down-sampling does), the result equals fn(x) up to floating-point rounding.
    """
    spatial = x.shape[2:]
    if len(tile) != len(spatial):
        raise ValueError(f"tile {tuple(tile)} does not match the {len(spatial)} spatial axes of {tuple(x.shape)}")
    per_axis = [_windows(size, t, margin, multiple) for size, t in zip(spatial, tile)]
    out: Tensor | None = None
    for pieces in itertools.product(*per_axis):
        windows = [window for window, _ in pieces]
        cores = [core for _, core in pieces]
        y = fn(x[(..., *windows)])
        if out is None:
            out = torch.empty(*y.shape[:2], *spatial, dtype=y.dtype, device=y.device)
        local = [slice(c.start - w.start, c.stop - w.start) for w, c in zip(windows, cores)]
        out[(..., *cores)] = y[(..., *local)]
    assert out is not None
    return out
