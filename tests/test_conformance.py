"""Every registered method, built-in or plugin, against the method contract."""

from __future__ import annotations

import pytest
import torch

from methods import METHODS
from methods.unet import UNetConfig

SHAPES = {2: (2, 1, 16, 16), 3: (2, 1, 8, 16, 16)}
CASES = [(name, dims) for name in METHODS.names() for dims in (2, 3)
         if dims == 2 or METHODS.get(name).supports_3d]


def build(name: str, dims: int, seed: int = 0):
    cls = METHODS.get(name)
    if not cls.trainable:
        return cls()
    extra = {"gaussian_sigma": 0.5} if cls.requires_gaussian_sigma else {}
    torch.manual_seed(seed)
    return cls(in_channels=1, spatial_dims=dims, backbone=UNetConfig(depth=2, base_channels=4), seed=seed, **extra)


def batch_for(cls, dims: int) -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(0)
    clean = torch.rand(SHAPES[dims], generator=generator)
    images = {"clean": clean,
              "noisy": clean + 0.3 * torch.randn(SHAPES[dims], generator=generator),
              "noisy2": clean + 0.3 * torch.randn(SHAPES[dims], generator=generator)}
    return {key: images[key] for key in cls.train_keys}


@pytest.mark.parametrize("name, dims", CASES)
def test_denoise_keeps_shape_and_dtype(name, dims):
    method = build(name, dims)
    if method.trainable:
        method.eval()
    shape = (1, 1, 7, 10, 9) if dims == 3 else (2, 1, 11, 13)  # sizes the backbone must pad
    noisy = torch.rand(shape, dtype=torch.float64)
    out = method.denoise(noisy)
    assert out.shape == noisy.shape and out.dtype == noisy.dtype and torch.isfinite(out).all()


TRAINABLE = [(name, dims) for name, dims in CASES if METHODS.get(name).trainable]


@pytest.mark.parametrize("name, dims", TRAINABLE)
def test_a_training_step_gives_a_finite_loss_and_changes_the_weights(name, dims):
    method = build(name, dims)
    method.train()
    batch = batch_for(type(method), dims)
    before = [p.detach().clone() for p in method.parameters()]
    optimizer = torch.optim.Adam(method.parameters(), lr=1e-2)
    loss, terms = method.training_loss(batch)
    assert torch.isfinite(loss) and all(torch.isfinite(v) for v in terms.values())
    loss.backward()
    optimizer.step()
    assert any(not torch.equal(a, b) for a, b in zip(before, method.parameters()))


@pytest.mark.parametrize("name, dims", TRAINABLE)
def test_the_same_seed_gives_the_same_loss(name, dims):
    losses = [build(name, dims, seed=5).training_loss(batch_for(METHODS.get(name), dims))[0].item()
              for _ in range(2)]
    assert losses[0] == losses[1]


def test_only_noise2true_trains_on_clean_images():
    sees_clean = [name for name in METHODS.names() if "clean" in METHODS.get(name).train_keys]
    assert sees_clean == ["noise2true"]
    assert METHODS.get("noise2noise").train_keys == {"noisy", "noisy2"}
