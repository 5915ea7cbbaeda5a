"""The blind-spot set J and what replaces the pixels in it: one sampler and one set of strategies.

Noise2Void, Noise2Self, Noise2Same and the D(f) metric all draw J and build x_Jc here. Every
function works on (B, C, *S) tensors with S two- or three-dimensional, on the tensor's device, and
takes its randomness from an explicit torch.Generator so that a seed fixes the result.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Annotated

import torch
import torch.nn.functional as F
from pydantic import AfterValidator, Field
from torch import Tensor


def stratified_box_side(fraction: float, spatial_dims: int) -> int:
    """Side b of the strata so that one pixel per box of b^d pixels gives the asked fraction: b = round(fraction^(-1/d))."""
    if not 0 < fraction <= 1:
        raise ValueError(f"mask fraction must be in (0, 1], got {fraction}")
    return max(1, round(fraction ** (-1.0 / spatial_dims)))


def sample_stratified_mask(shape: torch.Size | tuple[int, ...], fraction: float,
                           generator: torch.Generator) -> Tensor:
    """Boolean J of the given (B, C, *S) shape: one uniform pixel in every box of side b (per sample and channel).

    Boxes tile S from the origin; a point drawn in a partial box at the far border that falls
    outside the image is dropped, as in the Noise2Void and Noise2Same samplers.
    """
    batch_shape, spatial = tuple(shape[:2]), tuple(shape[2:])
    device = generator.device
    side = stratified_box_side(fraction, len(spatial))
    grid = [torch.arange(0, s, side, device=device) for s in spatial]
    starts = torch.stack(torch.meshgrid(*grid, indexing="ij"), dim=-1).reshape(-1, len(spatial))
    offsets = torch.randint(0, side, (*batch_shape, starts.shape[0], len(spatial)),
                            generator=generator, device=device)
    points = starts + offsets
    # Row-major flat index and the in-image test, axis by axis with Python-int sizes: no host-to-device copy.
    flat_index, inside = torch.zeros_like(points[..., 0]), torch.ones_like(points[..., 0], dtype=torch.bool)
    for axis, size in enumerate(spatial):
        flat_index = flat_index * size + points[..., axis]
        inside &= points[..., axis] < size
    n_pixels = math.prod(spatial)
    index = torch.where(inside, flat_index, n_pixels)  # dropped points go to a spare slot
    flat = torch.zeros(*batch_shape, n_pixels + 1, dtype=torch.bool, device=device)
    flat.scatter_(-1, index, True)
    return flat[..., :n_pixels].reshape(shape)


def ups_values(x: Tensor, window: int, generator: torch.Generator) -> Tensor:
    """Uniform Pixel Selection: for every position, the value of a uniformly drawn pixel of the window
    of side `window` around it, clipped at the borders; the centre itself can be drawn (N2V 'withCP')."""
    if window % 2 == 0 or window < 1:
        raise ValueError(f"UPS window must be an odd positive size, got {window}")
    radius = window // 2
    spatial = x.shape[2:]
    index = torch.zeros((), dtype=torch.long, device=x.device)
    for axis, size in enumerate(spatial):
        pos = torch.arange(size, device=x.device).view([-1 if i == axis else 1 for i in range(len(spatial))])
        low = (pos - radius).clamp(min=0)
        count = (pos + radius).clamp(max=size - 1) - low + 1
        u = torch.rand(x.shape, generator=generator, device=x.device)
        picked = low + (u * count).long().clamp(max=count - 1)
        index = index * size + picked
    flat = x.flatten(2)
    return flat.gather(-1, index.flatten(2)).view_as(x)


def donut_values(x: Tensor) -> Tensor:
    """Local average without the centre, per channel: sum_k w_k x_{p+k} / sum_k w_k over the in-image
    neighbours of the 3^d window, w = 1 / (number of non-zero offset coordinates), w_centre = 0.

    In 2-D this is the [[.5,1,.5],[1,0,1],[.5,1,.5]] / 6 kernel of Noise2Self and Noise2Same,
    renormalised at the border instead of zero-padded.
    """
    dims = x.dim() - 2
    offsets = torch.stack(torch.meshgrid(*[torch.arange(-1, 2)] * dims, indexing="ij"), dim=0)
    nonzero = (offsets != 0).sum(0).to(x.dtype)
    kernel = torch.where(nonzero > 0, 1.0 / nonzero.clamp(min=1), torch.zeros_like(nonzero)).to(x.device)
    conv = {2: F.conv2d, 3: F.conv3d}[dims]
    channels = x.shape[1]
    weight = kernel.expand(channels, 1, *kernel.shape).contiguous()
    total = conv(x, weight, padding=1, groups=channels)
    norm = conv(torch.ones_like(x[:, :1]), kernel[None, None], padding=1)
    return total / norm


@dataclass(frozen=True)
class Replacement:
    """What x_Jc holds on J. Written as a string in specs:
    'gaussian:S' (N(0, S^2) samples, in standardised units), 'ups:W' (UPS over a WxW window),
    'donut' (local mean without centre), 'uniform' (uniform in the sample's [min, max]), 'zero'.
    """

    kind: str
    param: float | None = None

    KINDS = ("gaussian", "ups", "donut", "uniform", "zero")

    @classmethod
    def parse(cls, text: str) -> "Replacement":
        """Replacement from 'kind' or 'kind:param'; raises ValueError listing the valid forms."""
        kind, _, param = text.partition(":")
        if kind not in cls.KINDS:
            raise ValueError(f"unknown replacement {text!r}; valid: gaussian:SIGMA, ups:WINDOW, donut, uniform, zero")
        needs_param = kind in ("gaussian", "ups")
        if needs_param != bool(param):
            hint = "give a parameter, e.g. gaussian:0.2 or ups:5" if needs_param else f"{kind} takes no parameter"
            raise ValueError(f"replacement {text!r}: {hint}")
        try:
            value = float(param) if param else None
        except ValueError:
            value = None
        if param and not (value is not None and value > 0 and (kind != "ups" or value == int(value))):
            raise ValueError(f"replacement {text!r}: the parameter must be a positive number (ups: a whole window size)")
        return cls(kind, value)

    def values(self, x: Tensor, generator: torch.Generator) -> Tensor:
        """Candidate values at every position (only those on J are used)."""
        if self.kind == "gaussian":
            return self.param * torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)
        if self.kind == "ups":
            return ups_values(x, int(self.param), generator)
        if self.kind == "donut":
            return donut_values(x)
        if self.kind == "uniform":
            flat = x.flatten(2)
            low = flat.amin(-1).view(*x.shape[:2], *[1] * (x.dim() - 2))
            high = flat.amax(-1).view_as(low)
            return low + (high - low) * torch.rand(x.shape, generator=generator, device=x.device, dtype=x.dtype)
        return torch.zeros_like(x)


def valid_replacement(text: str) -> str:
    """The replacement's text if Replacement.parse accepts it (a spec is checked before anything runs)."""
    Replacement.parse(text)
    return text


# Hyperparameter types of the masked methods, checked when a spec is resolved.
MaskFraction = Annotated[float, Field(gt=0, le=1)]
ReplacementName = Annotated[str, AfterValidator(valid_replacement)]


@dataclass(frozen=True)
class Masker:
    """Draws J at `fraction` (stratified) and returns (x_Jc, J)."""

    fraction: float
    replacement: Replacement

    def __call__(self, x: Tensor, generator: torch.Generator) -> tuple[Tensor, Tensor]:
        mask = sample_stratified_mask(x.shape, self.fraction, generator)
        return torch.where(mask, self.replacement.values(x, generator), x), mask
