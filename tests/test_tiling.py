"""Tiled inference equals whole-image inference when the overlap covers the receptive field."""

from __future__ import annotations

import pytest
import torch

from methods import METHODS
from methods.tiling import tiled
from methods.unet import UNetConfig


def trained_like(name: str, dims: int, batch_norm: bool = True):
    torch.manual_seed(0)
    method = METHODS.get(name)(spatial_dims=dims, backbone=UNetConfig(depth=2, base_channels=4, batch_norm=batch_norm))
    for parameter in method.parameters():  # move away from the initialisation, biases included
        parameter.data.add_(0.05 * torch.randn_like(parameter))
    return method.eval()


@pytest.mark.parametrize("name, dims, shape, tile", [
    ("noise2same", 2, (1, 1, 70, 61), (32, 40)),
    ("noise2same", 3, (1, 1, 9, 50, 47), (None, 32, 30)),
    ("laine", 2, (1, 1, 90, 75), (64, 60)),
])
def test_tiled_denoising_equals_whole_image_denoising(name, dims, shape, tile):
    method = trained_like(name, dims)
    volume = torch.rand(shape)
    whole = method.denoise(volume)
    torch.testing.assert_close(method.denoise(volume, tile=tile), whole, rtol=1e-4, atol=1e-4)


def test_the_margin_is_what_makes_tiles_exact():
    method = trained_like("noise2same", 2)
    z = torch.randn(1, 1, 64, 64)
    whole = method.padded_forward(z)
    exact = tiled(method.padded_forward, z, (32, 32), method.receptive_margin, method.size_multiple)
    short = tiled(method.padded_forward, z, (16, 16), 2, method.size_multiple)
    torch.testing.assert_close(exact, whole, rtol=1e-4, atol=1e-4)
    assert (short - whole).abs().max() > 1e-3


def test_tiles_cover_every_pixel_once():
    calls = []

    def record(x):
        calls.append(x.shape[2:])
        return x * 2

    x = torch.arange(100.0).view(1, 1, 10, 10)
    torch.testing.assert_close(tiled(record, x, (6, None), margin=1, multiple=1), x * 2)
    assert len(calls) == 3  # cores of 4, 4, 2 rows


def test_a_tile_too_small_for_its_margin_is_an_error():
    with pytest.raises(ValueError, match="too small"):
        tiled(lambda x: x, torch.zeros(1, 1, 50, 50), (10, 10), margin=5, multiple=2)
