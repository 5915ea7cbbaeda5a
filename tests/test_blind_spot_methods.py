"""What defines the mask-based blind-spot methods and which datasets each method applies to."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch

from methods import METHODS
from methods.blind_spot import blind_spot_loss
from methods.unet import UNetConfig

MASKED = ["noise2void", "noise2self_noise", "noise2self_donut"]


def test_blind_spot_loss_reads_outputs_on_j_only():
    x, out = torch.randn(2, 1, 8, 8), torch.randn(2, 1, 8, 8)
    mask = torch.rand_like(x) < 0.2
    moved = torch.where(mask, out, out + 7.0)
    assert blind_spot_loss(moved, x, mask) == blind_spot_loss(out, x, mask)
    assert blind_spot_loss(out, x, mask) == pytest.approx(((out - x)[mask] ** 2).mean().item())


@pytest.mark.parametrize("name", MASKED)
def test_masked_method_losses_ignore_outputs_outside_j(name):
    noisy = torch.randn(2, 1, 16, 16)

    def loss_with(bump_outside: float, bump_inside: float = 0.0) -> float:
        torch.manual_seed(0)
        method = METHODS.get(name)(backbone=UNetConfig(depth=2, base_channels=4), seed=1)
        drawn = {}
        draw, forward = method.mask, method.forward

        def recording_mask(x):
            drawn["x_masked"], drawn["J"] = draw(x)
            return drawn["x_masked"], drawn["J"]

        method.mask = recording_mask
        method.forward = lambda z: forward(z) + torch.where(drawn["J"], bump_inside, bump_outside)
        return method.training_loss({"noisy": noisy})[0].item()

    assert loss_with(50.0) == loss_with(0.0)
    assert loss_with(0.0, bump_inside=1.0) != loss_with(0.0)


@pytest.mark.parametrize("name, replacement", [("noise2void", "ups:5"), ("noise2self_noise", "uniform"),
                                               ("noise2self_donut", "donut")])
def test_each_masked_method_uses_its_replacement(name, replacement):
    method = METHODS.get(name)(backbone=UNetConfig(depth=2, base_channels=4))
    assert method.masker.replacement.kind == replacement.split(":")[0]


def dataset(**facts):
    base = dict(name="fake", provides=frozenset({"noisy", "clean", "noisy2"}), spatial_dims=2, gaussian_sigma=None)
    return SimpleNamespace(**{**base, **facts})


def test_applicability():
    no_pairs = dataset(provides=frozenset({"noisy", "clean"}))
    assert "needs noisy2" in METHODS.get("noise2noise").not_applicable_to(no_pairs)
    assert METHODS.get("noise2same").not_applicable_to(no_pairs) is None
    assert "needs clean" in METHODS.get("noise2true").not_applicable_to(dataset(provides=frozenset({"noisy"})))
    flat = type("Flat", (METHODS.get("nlm"),), {"supports_3d": False})
    assert "2-D images only" in flat.not_applicable_to(dataset(spatial_dims=3))
    assert METHODS.get("nlm").not_applicable_to(dataset(spatial_dims=3)) is None
    assert METHODS.get("bm3d").not_applicable_to(dataset(spatial_dims=3)) is None  # BM4D
