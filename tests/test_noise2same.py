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


def test_a_constant_output_gives_a_finite_gradient_and_elsewhere_the_gradient_is_sqrts():
    x = torch.randn(2, 1, 8, 8)
    mask = torch.rand_like(x) < 0.2
    collapsed = torch.zeros_like(x, requires_grad=True)  # f(x) = f(x_Jc) = 0: L_inv is exactly 0
    loss, terms = noise2same_loss(x, collapsed, collapsed, mask, 2.0)
    loss.backward()
    assert terms["inv"].item() == 0.0 and torch.isfinite(collapsed.grad).all()
    full = torch.randn_like(x, requires_grad=True)
    masked = torch.randn_like(x)
    loss, terms = noise2same_loss(x, full, masked, mask, 2.0)
    loss.backward()
    reference = full.detach().clone().requires_grad_(True)
    inv = ((reference - masked) ** 2)[mask].mean()
    (((reference - x) ** 2).mean() + 2.0 * inv.sqrt()).backward()
    torch.testing.assert_close(full.grad, reference.grad)


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


# --- the training step: equal to the previous formulation, without host syncs ------------------------
def previous_loss(model: Noise2Same, batch: dict) -> torch.Tensor:
    """The suite's step before December 2026: the invariance term by boolean indexing (nonzero and a gather)."""
    x = model.standardized(batch)["noisy"]
    x_masked, mask = model.mask(x)
    full, masked = model(torch.cat([x, x_masked])).chunk(2)
    return torch.nn.functional.mse_loss(full, x) + model.lambda_inv * (full - masked)[mask].pow(2).mean().sqrt()


@pytest.mark.parametrize("batch_norm, two_passes", [(True, False), (False, False), (False, True)])
def test_the_step_keeps_the_previous_loss_over_training_steps(batch_norm, two_passes):
    """Same weights, generator seed and batches; three Adam steps each: the losses agree to 1e-5 (with batch
    norm on, for the one pass; the default two passes change the batch statistics, pinned below)."""
    batches = [{"noisy": torch.rand(4, 1, 16, 16, generator=torch.Generator().manual_seed(i))} for i in range(3)]
    runs = []
    for loss_of in (lambda model, batch: model.training_loss(batch)[0], previous_loss):
        torch.manual_seed(0)
        model = Noise2Same(backbone=UNetConfig(depth=2, base_channels=4, batch_norm=batch_norm), seed=5,
                           two_passes=two_passes)
        optimizer = torch.optim.Adam(model.parameters(), lr=4e-4)
        losses = []
        for batch in batches:
            loss = loss_of(model, batch)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            losses.append(loss.item())
        runs.append(losses)
    assert runs[0] == pytest.approx(runs[1], abs=1e-5, rel=0)
    assert len(set(runs[0])) == 3  # the steps did train


def test_by_default_each_pass_is_normalised_by_its_own_batch_as_in_the_official_code():
    tiny = UNetConfig(depth=2, base_channels=4, batch_norm=True)
    torch.manual_seed(0)
    model = Noise2Same(backbone=tiny, seed=5)
    twin = Noise2Same(backbone=tiny, seed=5)
    twin.load_state_dict(model.state_dict())
    batch = {"noisy": torch.rand(4, 1, 16, 16, generator=torch.Generator().manual_seed(0))}
    loss, _ = model.training_loss(batch)
    # By hand: f(x) and f(x_Jc) from two separate train-mode calls (batch statistics of B images each).
    x = twin.standardized(batch)["noisy"]
    x_masked, mask = twin.mask(x)
    expected, _ = noise2same_loss(x, twin(x), twin(x_masked), mask, twin.lambda_inv)
    assert loss.item() == pytest.approx(expected.item(), abs=1e-6)
    for key, value in model.state_dict().items():  # running statistics updated once per pass, as by hand
        torch.testing.assert_close(value, twin.state_dict()[key], msg=key)
    joint = Noise2Same(backbone=tiny, seed=5, two_passes=False)  # a different function when BN is on
    joint.load_state_dict(twin.state_dict())
    assert abs(joint.training_loss(batch)[0].item() - loss.item()) > 1e-6


@pytest.mark.parametrize("two_passes", [True, False])
def test_the_step_has_no_host_sync(two_passes):
    """No operator that reads a device value back to the host (nonzero for boolean indexing, item): on CUDA
    those stall the step until the GPU catches up."""
    model = Noise2Same(backbone=UNetConfig(depth=2, base_channels=4), two_passes=two_passes)
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as profiler:
        loss, terms = model.training_loss({"noisy": torch.rand(2, 1, 16, 16)})
        loss.backward()
    names = {event.key for event in profiler.key_averages()}
    assert not names & {"aten::nonzero", "aten::item", "aten::_local_scalar_dense", "aten::masked_select"}
    assert not terms["blind_spot"].requires_grad
