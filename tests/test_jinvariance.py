import math

import numpy as np
import pytest
import torch

from datamodules.base import DenoisingDataModule, Split
from datamodules.evaluation import PSNRProtocol
from methods.base import standardize
from methods.jinvariance import j_invariance, j_invariance_on, saturated_fraction
from methods.masking import Masker, Replacement, sample_stratified_mask
from methods.registry import METHODS
from methods.unet import UNetConfig

CFG = UNetConfig(depth=2, base_channels=4)


def build(name: str, channels: int = 1, dims: int = 2, **kwargs):
    torch.manual_seed(0)
    if METHODS.get(name).requires_gaussian_sigma:
        kwargs.setdefault("gaussian_sigma", 0.5)
    return METHODS.get(name)(in_channels=channels, spatial_dims=dims, backbone=CFG, **kwargs)


def identity_method():
    """noise2true whose network is the identity: f(z) = z, so D(f) = E ||z_Jc - z||^2_J / |J|."""
    method = build("noise2true")
    method.net = torch.nn.Identity()
    return method


def noisy(*shape: int, seed: int = 1) -> torch.Tensor:
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("shape", [(3, 1, 8, 8), (1, 1, 5, 5), (1, 1, 4, 4, 4), (2, 1, 5, 5, 5)])
def test_blind_spot_network_is_exactly_j_invariant_when_j_holds_one_pixel(shape):
    # At 0.01% the box is larger than the image and shrinks to it, so J is one pixel per sample: the
    # blind-spot output on that pixel never sees its input, and D(f) is 0 to the last bit.
    laine = build("laine", dims=len(shape) - 2)
    assert j_invariance(laine, [noisy(*shape)]) == 0.0


@pytest.mark.parametrize("shape, fraction", [((1, 1, 16, 16), 1 / 16), ((1, 1, 7, 12), 1e-4)])
def test_blind_spot_network_is_not_j_invariant_when_j_pixels_see_each_other(shape, fraction):
    # The output on one pixel of J sees the replaced values of the other pixels of J in its receptive
    # field: J of 4x4 boxes on 16x16, or two boxes of side 7 on 7x12 (the second one partial).
    laine = build("laine")
    assert j_invariance(laine, [noisy(*shape)], fraction=fraction) > 1e-6


def test_laine_bayes_is_scored_through_its_posterior_mean():
    # The prior mean is blind to the pixel, the posterior mean (y var_x + mu var_n) / (var_x + var_n) is not.
    assert j_invariance(build("laine_bayes"), [noisy(2, 1, 8, 8)]) > 1e-4


def test_identity_network_gives_d_of_the_replacement_and_the_image():
    method = identity_method()
    x = noisy(2, 1, 64, 64)
    d = j_invariance(method, [x], fraction=0.01, draws=20, seed=3)
    # E (n - z)^2 = sigma_m^2 + E z^2 = 0.25 + 1 for a standardised image.
    assert 1.0 < d < 1.5
    # And exactly eq. 5 for f = identity, with J and the noise drawn as the metric draws them.
    z, _, _ = standardize(x)
    masker, generator = Masker(0.01, Replacement.parse("gaussian:0.5")), torch.Generator().manual_seed(3)
    per_draw = []
    for _ in range(20):
        z_masked, mask = masker(z, generator)
        per_draw += [((z_masked - z)[i][mask[i]].double().pow(2).mean()) for i in range(len(z))]
    assert d == pytest.approx(torch.stack(per_draw).mean().item(), rel=1e-9)


@pytest.mark.parametrize("method", [identity_method(), build("noise2same")], ids=["identity", "noise2same"])
def test_d_is_computed_on_the_standardised_output(method):
    x = noisy(2, 1, 32, 32)
    d = j_invariance(method, [x], fraction=0.01)
    rescaled = j_invariance(method, [255 * x + 10], fraction=0.01)
    # On outputs in the data's units the second would be about 255^2 times the first.
    assert rescaled == pytest.approx(d, rel=1e-4) and d > 1e-3


def test_laine_bayes_d_follows_the_noise_level_in_standardised_units():
    x = noisy(2, 1, 8, 8)
    d = j_invariance(build("laine_bayes", gaussian_sigma=0.5), [x])
    assert j_invariance(build("laine_bayes", gaussian_sigma=0.5 * 255), [255 * x + 10]) == pytest.approx(d, rel=1e-4)
    assert j_invariance(build("laine_bayes", gaussian_sigma=0.05), [x]) != pytest.approx(d, rel=1e-2)


@pytest.mark.parametrize("shape", [(2, 3, 7, 10), (2, 3, 5, 20), (2, 2, 4, 6, 5)])
def test_saturated_sampling_puts_a_pixel_of_j_in_every_image_and_channel(shape):
    spatial = shape[2:]
    generator = torch.Generator().manual_seed(0)
    masker = Masker(saturated_fraction(spatial, 1e-4), Replacement.parse("gaussian:0.5"))
    for _ in range(50):
        _, mask = masker(torch.zeros(shape), generator)
        assert mask.flatten(2).sum(-1).min() >= 1
    # The plain sampler at 0.01% leaves J empty on images this small (one box, mostly outside).
    plain = torch.stack([sample_stratified_mask(shape, 1e-4, generator) for _ in range(50)])
    assert (plain.flatten(3).sum(-1) == 0).any()
    # 1 / n_pixels would not do on a non-square image: 5x20 has boxes of side 10, mostly outside.
    assert saturated_fraction(spatial, 1e-4) >= 1 / math.prod(spatial)


def test_saturated_sampling_keeps_the_fraction_on_large_images():
    assert saturated_fraction((250, 250), 1e-4) == 1e-4
    assert saturated_fraction((40, 250, 250), 1e-4) == 1e-4


@pytest.mark.parametrize("shape", [(1, 1, 12, 12), (1, 1, 4, 8, 8)])
def test_seeded_and_in_2d_and_3d(shape):
    method = build("noise2same", dims=len(shape) - 2)
    images = [noisy(*shape, seed=1), noisy(*shape, seed=2)]
    d = j_invariance(method, images, draws=3, seed=5)
    assert d > 1e-4 and math.isfinite(d)
    assert j_invariance(method, images, draws=3, seed=5) == d
    assert j_invariance(method, images, draws=3, seed=6) != d


def test_training_mode_is_restored():
    method = build("noise2same").train()
    j_invariance(method, [noisy(1, 1, 8, 8)], draws=1)
    assert method.training


class TinyData(DenoisingDataModule):
    registered_name = "tiny"
    protocol = PSNRProtocol(data_range=1.0)
    inference_tile = (None, 32)

    def load_splits(self) -> dict[str, Split]:
        rng = np.random.default_rng(0)
        images = [rng.normal(size=(1, 12, 64)).astype(np.float32) for _ in range(3)]
        return {"test": Split(noisy=images, ids=["a", "b", "c"], clean=images)}


def test_j_invariance_on_a_datamodule_split_tiles_by_the_datamodule():
    method, data = build("noise2same"), TinyData()
    images = [torch.from_numpy(image[None]) for image in data.splits["test"].noisy]
    d = j_invariance_on(method, data, draws=2)
    assert d == pytest.approx(j_invariance(method, images, draws=2, tile=(None, 32)))
    assert d == pytest.approx(j_invariance(method, images, draws=2), rel=1e-4)  # tiles change only rounding
