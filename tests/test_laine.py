import math

import numpy as np
import pytest
import torch

from methods.base import standardize
from methods.laine import Laine, LaineBayes, gaussian_nll, gaussian_prior, posterior_mean
from methods.registry import METHODS
from methods.unet import UNetConfig

CFG = UNetConfig(depth=2, base_channels=4)


def build(name: str, channels: int = 1, dims: int = 2, seed: int = 0):
    torch.manual_seed(seed)
    extra = {"gaussian_sigma": 0.5} if METHODS.get(name).requires_gaussian_sigma else {}
    return METHODS.get(name)(in_channels=channels, spatial_dims=dims, backbone=CFG, seed=seed, **extra)


def probe_pixels(shape: tuple[int, ...]) -> list[tuple[int, ...]]:
    """Border pixels (three corners), pixels one step inside the border (where a reflect padding's copies
    land) and the centre."""
    return [tuple(0 for _ in shape), tuple(s - 1 for s in shape), (0, *[s - 1 for s in shape[1:]]),
            (1, *[s - 2 for s in shape[1:]]), tuple(s - 2 for s in shape), tuple(s // 2 for s in shape)]


# Non-square / non-cubic sizes that are not multiples of the down-sampling factor (2).
@pytest.mark.parametrize("name, channels, shape", [
    ("laine", 1, (7, 10)), ("laine", 1, (5, 6, 7)),
    ("laine_bayes", 3, (7, 10)), ("laine_bayes", 1, (5, 6, 7)),
])
def test_each_output_pixel_has_zero_gradient_with_respect_to_its_own_input_pixel(name, channels, shape):
    model = build(name, channels, dims=len(shape)).eval()
    x = torch.randn(1, channels, *shape, generator=torch.Generator().manual_seed(1), requires_grad=True)
    out = model.padded_forward(x)  # laine_bayes: the prior mean and A, all channels
    directions_seen = set()
    for p in probe_pixels(shape):
        (grad,) = torch.autograd.grad(out[(0, slice(None), *p)].sum(), x, retain_graph=True)
        seen = grad[0].abs().sum(0) > 0  # input pixels output p depends on
        assert not seen[p], f"output {p} depends on its own input pixel"
        for axis, index in enumerate(p):
            line = seen[p[:axis] + (slice(None),) + p[axis + 1:]]  # the pixels in line with p along `axis`
            directions_seen |= {(axis, -1)} if line[:index].any() else set()
            directions_seen |= {(axis, +1)} if line[index + 1:].any() else set()
    # Not vacuous: in line with p, only one orientation sees each direction; all of them must be there.
    assert directions_seen == {(axis, side) for axis in range(len(shape)) for side in (-1, +1)}


@pytest.mark.parametrize("name", ["laine", "laine_bayes"])
@pytest.mark.parametrize("shape", [(8, 8), (6, 9), (4, 4, 4), (3, 4, 5)])  # stacked and one-by-one orientations
def test_changing_an_input_pixel_leaves_its_own_output_unchanged(name, shape):
    model = build(name, dims=len(shape)).eval()
    x = torch.randn(1, 1, *shape, generator=torch.Generator().manual_seed(2))
    out = model.padded_forward(x)
    for p in probe_pixels(shape):
        changed = x.clone()
        changed[(0, 0, *p)] += 100.0
        out_changed = model.padded_forward(changed)
        assert torch.equal(out_changed[(0, slice(None), *p)], out[(0, slice(None), *p)])
        assert not torch.equal(out_changed, out)


def test_grey_posterior_mean_and_loss_on_a_hand_made_case():
    # Two pixels: prior mean (0, 1), a = (1, 2) so sigma_x^2 = (1, 4); noisy y = (2, -1); noise variance 1.
    out = torch.tensor([[[[0.0, 1.0]], [[1.0, 2.0]]]])  # (B, mu + a, H, W) = (1, 2, 1, 2)
    mu, sigma_x = gaussian_prior(out, 1)
    y = torch.tensor([[[[2.0, -1.0]]]]).double().movedim(1, -1)
    noise_var = torch.ones(1, 1, 1, 1, dtype=torch.float64)
    estimate = posterior_mean(y, mu, sigma_x, noise_var).flatten().tolist()
    assert estimate == pytest.approx([(2 * 1 + 0 * 1) / 2, (-1 * 4 + 1 * 1) / 5])
    assert 0 <= estimate[0] <= 2 and -1 <= estimate[1] <= 1  # between the prior mean and the noisy value
    loss = gaussian_nll(y, mu, sigma_x, noise_var).item()
    assert loss == pytest.approx(((2**2 / 2 + math.log(2)) + (2**2 / 5 + math.log(5))) / 2)


def test_rgb_posterior_mean_and_loss_on_a_hand_made_case():
    a = np.array([[1.0, 0.5, -0.3], [0.0, 0.8, 0.2], [0.0, 0.0, 1.5]])  # upper-triangular A
    mu_, y_, noise_var_ = np.array([0.2, -0.1, 0.4]), np.array([1.0, 0.5, -0.7]), np.array([0.25, 0.5, 1.0])
    out = torch.tensor(np.concatenate([mu_, a[np.triu_indices(3)]])).reshape(1, 9, 1, 1)
    mu, sigma_x = gaussian_prior(out, 3)
    y, noise_var = torch.tensor(y_).reshape(1, 1, 1, 3), torch.tensor(noise_var_).reshape(1, 1, 1, 3)
    sigma_x_ = a.T @ a
    sigma_y = sigma_x_ + np.diag(noise_var_)
    np.testing.assert_allclose(sigma_x.reshape(3, 3).numpy(), sigma_x_, rtol=1e-12)
    expected = mu_ + sigma_x_ @ np.linalg.solve(sigma_y, y_ - mu_)  # the Gaussian posterior mean
    np.testing.assert_allclose(posterior_mean(y, mu, sigma_x, noise_var).flatten().numpy(), expected, rtol=1e-5)
    d = y_ - mu_
    nll = 0.5 * math.log(np.linalg.det(sigma_y)) + 0.5 * d @ np.linalg.solve(sigma_y, d)
    assert gaussian_nll(y, mu, sigma_x, noise_var).item() == pytest.approx(nll, rel=1e-10)


def test_the_noise_std_is_taken_in_standardised_units_per_channel():
    model = LaineBayes(gaussian_sigma=2.0, in_channels=3, backbone=CFG)
    noisy = torch.randn(2, 3, 8, 8) * torch.tensor([1.0, 4.0, 1e4]).reshape(1, 3, 1, 1)
    z, _, std = standardize(noisy)
    expected = (2.0 / std.double()).clamp(min=1e-3).pow(2).movedim(1, -1)
    assert model.noise_var(std).flatten().tolist() == pytest.approx(expected.flatten().tolist())
    assert model.noise_var(std)[..., 2].max().item() == pytest.approx(1e-6)  # floored at s = 1e-3
    model.eval()
    loss, _ = model.training_loss({"noisy": noisy})
    mu, sigma_x = gaussian_prior(model(z), 3)
    assert loss.item() == pytest.approx(gaussian_nll(z.double().movedim(1, -1), mu, sigma_x, expected).item())


def test_laine_bayes_needs_the_noise_std():
    with pytest.raises(ValueError, match="gaussian_sigma"):
        LaineBayes(backbone=CFG)
    assert LaineBayes.requires_gaussian_sigma and not Laine.requires_gaussian_sigma


@pytest.mark.parametrize("name, channels", [("laine", 1), ("laine_bayes", 1), ("laine_bayes", 3)])
@pytest.mark.parametrize("shape", [(8, 8), (4, 8, 8)])
def test_a_training_step_gives_a_finite_loss_and_changes_the_weights(name, channels, shape):
    model = build(name, channels, dims=len(shape)).train()
    batch = {"noisy": torch.rand(2, channels, *shape, generator=torch.Generator().manual_seed(3))}
    optimizer = model.configure_optimizers()["optimizer"]
    before = [p.detach().clone() for p in model.parameters()]
    loss, terms = model.training_loss(batch)
    assert torch.isfinite(loss) and all(torch.isfinite(v) for v in terms.values())
    loss.backward()
    optimizer.step()
    assert any(not torch.equal(a, b) for a, b in zip(before, model.parameters()))
