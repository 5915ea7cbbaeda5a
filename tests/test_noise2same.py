import math

import pytest
import torch

from methods.noise2same import Noise2Same, noise2same_loss
from methods.unet import UNetConfig


def test_loss_equals_the_formula_on_a_hand_made_case():
    x = torch.tensor([[[[1.0, 2.0], [3.0, 4.0]]]])
    full = torch.tensor([[[[1.5, 2.0], [2.0, 4.0]]]])
    masked = torch.tensor([[[[0.5, 2.0], [3.0, 4.0]]]])
    mask = torch.tensor([[[[True, False], [True, False]]]])
    loss, terms = noise2same_loss(x, full, masked, mask, lambda_inv=2.0)
    rec = (0.5**2 + 0 + 1.0**2 + 0) / 4           # over all 4 pixels
    inv = ((1.5 - 0.5) ** 2 + (2.0 - 3.0) ** 2) / 2  # over |J| = 2 pixels
    assert terms["rec"].item() == pytest.approx(rec)
    assert terms["inv"].item() == pytest.approx(inv)
    assert loss.item() == pytest.approx(rec + 2.0 * math.sqrt(inv))
    assert terms["blind_spot"].item() == pytest.approx(((0.5 - 1.0) ** 2 + 0) / 2)


def test_invariance_term_ignores_outputs_outside_j():
    x = torch.randn(2, 1, 8, 8)
    full, masked = torch.randn_like(x), torch.randn_like(x)
    mask = torch.rand_like(x) < 0.1
    _, before = noise2same_loss(x, full, masked, mask, 2.0)
    masked_changed = torch.where(mask, masked, masked + 5.0)
    _, after = noise2same_loss(x, full, masked_changed, mask, 2.0)
    assert after["inv"].item() == pytest.approx(before["inv"].item())


def test_training_loss_is_seeded_and_logs_both_terms():
    batch = {"noisy": torch.randn(4, 1, 16, 16)}
    losses = []
    for _ in range(2):
        torch.manual_seed(0)
        model = Noise2Same(backbone=UNetConfig(depth=2, base_channels=4), seed=3)
        loss, terms = model.training_loss(batch)
        losses.append(loss.item())
        assert {"rec", "inv"} <= set(terms) and torch.isfinite(loss)
    assert losses[0] == losses[1]


def test_raw_value_mode_trains_and_denoises_without_standardising():
    # Theorem 2's setting (Figure 4): f sees x itself, so its output is in the data's units.
    torch.manual_seed(0)
    raw = Noise2Same(backbone=UNetConfig(depth=2, base_channels=4), standardize=False).eval()
    x = 3.0 + 0.5 * torch.randn(2, 1, 16, 16)
    assert torch.allclose(raw.denoise(x), raw(x), atol=1e-6)
    loss, terms = raw.training_loss({"noisy": x})
    assert terms["rec"].item() == pytest.approx(torch.nn.functional.mse_loss(raw(x), x).item(), rel=1e-5)
    standardised = Noise2Same(backbone=UNetConfig(depth=2, base_channels=4))
    standardised.load_state_dict(raw.state_dict())
    standardised.eval()
    assert not torch.allclose(standardised.denoise(x), raw.denoise(x), atol=1e-3)
