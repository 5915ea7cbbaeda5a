"""The shared U-Net backbone of every trainable method, in 2-D and 3-D.

Its shape follows the network of the official Noise2Same code: a 3x3 stem, one pre-activation
residual block per resolution level, strided 2x2 convolutions down, transposed 2x2 convolutions up
with skip concatenation, and a BN-ReLU-1x1 head.

With `blind_spot=True` it is one branch of Laine et al.'s (2019) blind-spot network: every output
sees only inputs strictly before it along the first spatial axis ("above" it).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any

import torch
import torch.nn.functional as F
from pydantic import Field, PositiveInt
from torch import Tensor, nn


@dataclass(frozen=True)
class UNetConfig:
    """Size and options of the backbone.

    depth: number of resolution levels (depth - 1 down-samplings); channels double per level.
    base_channels: channels of the first level. batch_norm: BN inside the residual blocks and the
    head. residual: the network predicts a correction added to its input. bn_momentum: PyTorch
    convention (the TF code's 0.997 decay is momentum 0.003).
    """

    depth: PositiveInt = 3
    base_channels: PositiveInt = 32
    batch_norm: bool = True
    residual: bool = False
    bn_momentum: Annotated[float, Field(gt=0, le=1)] = 0.1

    @classmethod
    def paper(cls) -> "UNetConfig":
        """The configuration of the paper's code: depth 3, 96 first-layer channels, BN decay 0.997."""
        return cls(depth=3, base_channels=96, batch_norm=True, residual=False, bn_momentum=0.003)

    @property
    def size_multiple(self) -> int:
        """Spatial sizes must be multiples of this (2 ** number of down-samplings)."""
        return 2 ** (self.depth - 1)

    def receptive_radius(self, blind_spot: bool = False) -> int:
        """An upper bound on how far (in pixels, along any axis) an output sees into the input.

        Plain U-Net: stem 1 + encoder blocks 2 * 2^i + down and up 2^i each + decoder blocks 2 * 2^i,
        which sums to 2^(depth + 2) - 5. Blind-spot branches see twice as far up (k - 1 rows per 3x3
        convolution) plus one row per shift, so 2 * that + 2^depth bounds them.
        """
        plain = 2 ** (self.depth + 2) - 5
        return 2 * plain + 2**self.depth if blind_spot else plain


class _Upward:
    """Mixin for a stride-1 convolution of odd size k whose output at index i of the first spatial axis
    sees inputs at indices <= i only: zero-pad k - 1 before and none after on that axis, k // 2 on both
    sides of the others (it replaces any `padding` argument)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **{**kwargs, "padding": 0})

    def forward(self, x: Tensor) -> Tensor:
        first, *others = self.kernel_size
        pads = [p for k in reversed(others) for p in (k // 2, k // 2)] + [first - 1, 0]
        return super().forward(F.pad(x, pads))


class UpwardConv2d(_Upward, nn.Conv2d):
    """nn.Conv2d that sees only the rows at or above each output row."""


class UpwardConv3d(_Upward, nn.Conv3d):
    """nn.Conv3d that sees only the slices at or before each output slice (first spatial axis)."""


class ShiftDown(nn.Module):
    """Shift by one along the first spatial axis: zero row first, last row dropped (output i holds input i - 1)."""

    def forward(self, x: Tensor) -> Tensor:
        return F.pad(x, [0, 0] * (x.dim() - 3) + [1, 0])[:, :, :-1]


def conv_layer(spatial_dims: int, upward: bool = False) -> type[nn.Module]:
    """nn.Conv2d or nn.Conv3d; with `upward`, their variants that see only inputs at or above the output."""
    return {(2, False): nn.Conv2d, (3, False): nn.Conv3d,
            (2, True): UpwardConv2d, (3, True): UpwardConv3d}[spatial_dims, upward]


def norm_layer(spatial_dims: int, channels: int, enabled: bool, momentum: float) -> nn.Module:
    """Batch norm over the batch and spatial axes, or identity when disabled."""
    if not enabled:
        return nn.Identity()
    return {2: nn.BatchNorm2d, 3: nn.BatchNorm3d}[spatial_dims](channels, momentum=momentum)


class ResidualBlock(nn.Module):
    """Pre-activation block: y = conv3(act(bn(conv3(h)))) + shortcut(h'), h = act(bn(x)).

    The shortcut is x itself when widths match, else a 1x1 convolution of act(bn(x)). With `upward`,
    the 3x3 convolutions see only rows at or above their output row (see `UpwardConv2d`).
    """

    def __init__(self, in_ch: int, out_ch: int, spatial_dims: int, cfg: UNetConfig, upward: bool = False) -> None:
        super().__init__()
        conv = conv_layer(spatial_dims, upward)
        self.norm1 = norm_layer(spatial_dims, in_ch, cfg.batch_norm, cfg.bn_momentum)
        self.conv1 = conv(in_ch, out_ch, 3, padding=1, bias=not cfg.batch_norm)
        self.norm2 = norm_layer(spatial_dims, out_ch, cfg.batch_norm, cfg.bn_momentum)
        self.conv2 = conv(out_ch, out_ch, 3, padding=1, bias=not cfg.batch_norm)
        self.shortcut = None if in_ch == out_ch else conv(in_ch, out_ch, 1, bias=False)
        # ReLUs in place where their input is a fresh tensor nothing else reads (BN's backward keeps its input,
        # a convolution's backward its input, never their outputs): no extra activation written and kept.
        # Without BN, norm1 is the identity and x must survive for the skip, so the first one is not in place.
        self.act1 = nn.ReLU(inplace=cfg.batch_norm)
        self.act2 = nn.ReLU(inplace=True)

    def forward(self, x: Tensor) -> Tensor:
        h = self.act1(self.norm1(x))
        skip = x if self.shortcut is None else self.shortcut(h)
        h = self.conv1(h)
        h = self.conv2(self.act2(self.norm2(h)))
        return h + skip


def xavier_init(module: nn.Module) -> None:
    """Xavier-uniform weights and zero biases for every (transposed) convolution inside `module`."""
    for layer in module.modules():
        if isinstance(layer, (nn.Conv2d, nn.Conv3d, nn.ConvTranspose2d, nn.ConvTranspose3d)):
            nn.init.xavier_uniform_(layer.weight)
            if layer.bias is not None:
                nn.init.zeros_(layer.bias)


class UNet(nn.Module):
    """U-Net mapping (B, C_in, *S) to (B, C_out, *S); each of S a multiple of cfg.size_multiple.

    blind_spot: output index i along the first spatial axis sees only input indices < i (Laine et al.
    2019): 3x3 convolutions see only rows at or above their output, each down-sampling is preceded by
    a one-row shift down, and so is the head. (2x up-sampling needs no shift.)
    """

    def __init__(self, in_channels: int, out_channels: int, spatial_dims: int = 2,
                 cfg: UNetConfig = UNetConfig(), blind_spot: bool = False) -> None:
        super().__init__()
        if spatial_dims not in (2, 3):
            raise ValueError(f"spatial_dims must be 2 or 3, got {spatial_dims}")
        if cfg.depth < 1:
            raise ValueError(f"depth must be at least 1, got {cfg.depth}")
        if cfg.residual and in_channels != out_channels:
            raise ValueError("a residual U-Net needs as many output channels as input channels")
        if cfg.residual and blind_spot:
            raise ValueError("a blind-spot U-Net cannot be residual: adding the input would let each pixel see itself")
        self.cfg = cfg
        self.spatial_dims = spatial_dims
        conv = conv_layer(spatial_dims)
        conv3 = conv_layer(spatial_dims, upward=blind_spot)
        up = {2: nn.ConvTranspose2d, 3: nn.ConvTranspose3d}[spatial_dims]
        widths = [cfg.base_channels * 2**level for level in range(cfg.depth)]

        self.shift = ShiftDown() if blind_spot else nn.Identity()
        self.stem = conv3(in_channels, widths[0], 3, padding=1, bias=False)
        self.down = nn.ModuleList(conv(widths[i - 1], widths[i], 2, stride=2) for i in range(1, cfg.depth))
        self.encode = nn.ModuleList(ResidualBlock(w, w, spatial_dims, cfg, blind_spot) for w in widths)
        self.up = nn.ModuleList(up(widths[i + 1], widths[i], 2, stride=2) for i in range(cfg.depth - 1))
        self.decode = nn.ModuleList(ResidualBlock(2 * widths[i], widths[i], spatial_dims, cfg, blind_spot)
                                    for i in range(cfg.depth - 1))
        self.head = nn.Sequential(norm_layer(spatial_dims, widths[0], cfg.batch_norm, cfg.bn_momentum),
                                  nn.ReLU(inplace=True), conv(widths[0], out_channels, 1, bias=False))
        xavier_init(self)

    def forward(self, x: Tensor) -> Tensor:
        m = self.cfg.size_multiple
        if any(s % m for s in x.shape[2:]):
            raise ValueError(f"spatial size {tuple(x.shape[2:])} is not a multiple of {m}; pad the input first")
        h = self.encode[0](self.stem(x))
        skips = [h]
        for down, block in zip(self.down, self.encode[1:]):
            h = block(down(self.shift(h)))
            skips.append(h)
        skips.pop()
        for level in reversed(range(self.cfg.depth - 1)):
            h = self.up[level](h)
            h = self.decode[level](torch.cat([h, skips[level]], dim=1))
        out = self.head(self.shift(h))
        return out + x if self.cfg.residual else out
