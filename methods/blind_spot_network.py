"""The blind-spot network of Laine et al. (2019), built from the shared U-Net.

One U-Net branch in blind-spot mode (`UNet(blind_spot=True)`) sees, at each output pixel, only the
half-space strictly above it. The branch runs on every orientation of the input that makes one of the
axis directions (+-H, +-W in 2-D; +-D, +-H, +-W in 3-D) "up"; the outputs are turned back, stacked on
channels and mixed by 1x1 convolutions. Every pixel other than p differs from p along some axis, so it
lies in one of the half-spaces: output p sees the whole input except p itself (strict J-invariance,
J = {p}).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from methods.unet import UNet, UNetConfig, conv_layer, xavier_init

# (k, plane): torch.rot90(x, k, plane) brings each axis direction to "up" (the first spatial axis, index 0 on top).
ORIENTATIONS: dict[int, list[tuple[int, tuple[int, int]]]] = {
    2: [(k, (2, 3)) for k in range(4)],
    3: [(k, (2, 3)) for k in range(4)] + [(1, (2, 4)), (3, (2, 4))],
}


class BlindSpotNetwork(nn.Module):
    """(B, C_in, *S) -> (B, C_out, *S), any spatial size; output p does not depend on input p.

    The branch is the shared U-Net (`cfg`) with its upward convolutions and shifts, ending in a head of
    width cfg.base_channels; the merge is, as in the official code, LeakyReLU(0.1) -> 1x1
    (n_orientations * width -> width) -> LeakyReLU(0.1) -> 1x1 (width -> C_out). Inputs are zero-padded
    at the end of each axis to the backbone's size multiple: constants, so no copy of a pixel enters
    its own receptive field (reflect padding would put one there).

    Batch norm normalises pixel by pixel with fixed statistics in eval mode, so the network is then
    exactly blind at p; in training mode its batch statistics depend (negligibly) on every pixel, p included.
    """

    def __init__(self, in_channels: int, out_channels: int, spatial_dims: int = 2,
                 cfg: UNetConfig = UNetConfig()) -> None:
        super().__init__()
        width = cfg.base_channels
        self.branch = UNet(in_channels, width, spatial_dims, cfg, blind_spot=True)
        self.orientations = ORIENTATIONS[spatial_dims]
        self.size_multiple = cfg.size_multiple
        conv = conv_layer(spatial_dims)
        self.merge = nn.Sequential(nn.LeakyReLU(0.1), conv(len(self.orientations) * width, width, 1),
                                   nn.LeakyReLU(0.1), conv(width, out_channels, 1))
        xavier_init(self.merge)

    def forward(self, x: Tensor) -> Tensor:
        sizes = x.shape[2:]
        extras = [-size % self.size_multiple for size in sizes]
        x = F.pad(x, [amount for extra in reversed(extras) for amount in (0, extra)])
        views = [torch.rot90(x, k, plane) for k, plane in self.orientations]
        if all(view.shape == views[0].shape for view in views):
            outs = self.branch(torch.cat(views)).chunk(len(views))  # square/cubic: one pass over the stack
        else:
            outs = [self.branch(view) for view in views]
        h = torch.cat([torch.rot90(out, -k, plane) for out, (k, plane) in zip(outs, self.orientations)], dim=1)
        return self.merge(h[(..., *[slice(0, size) for size in sizes])])
