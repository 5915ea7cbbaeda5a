import pytest
import torch

from methods.masking import (Masker, Replacement, donut_values, sample_stratified_mask, stratified_box_side,
                             ups_values)


@pytest.mark.parametrize("fraction, shape", [(0.005, (8, 1, 196, 196)), (0.02, (4, 2, 70, 70)),
                                              (0.005, (2, 1, 18, 72, 72)), (0.25, (2, 1, 64, 64))])
def test_mask_hits_the_asked_fraction(fraction, shape, generator):
    mask = sample_stratified_mask(shape, fraction, generator)
    side = stratified_box_side(fraction, len(shape) - 2)
    assert mask.shape == shape and mask.dtype == torch.bool
    # Sizes are multiples of the box side here, so every box holds exactly one point.
    boxes = 1
    for s in shape[2:]:
        assert s % side == 0
        boxes *= s // side
    assert (mask.flatten(2).sum(-1) == boxes).all()
    assert mask.float().mean().item() == pytest.approx(fraction, rel=0.15)


def test_mask_is_stratified_one_point_per_box(generator):
    mask = sample_stratified_mask((3, 1, 56, 56), 1 / 49, generator)  # box side 7
    per_box = mask.view(3, 1, 8, 7, 8, 7).sum(dim=(3, 5))
    assert (per_box == 1).all()


def test_partial_border_boxes_drop_points_outside(generator):
    mask = sample_stratified_mask((64, 1, 64, 64), 0.005, generator)  # box 14: 4 full + 1 partial per axis
    counts = mask.flatten(1).sum(1).float()
    assert counts.min() >= 16 and counts.max() <= 25
    assert counts.mean().item() == pytest.approx((4 + 8 / 14) ** 2, rel=0.05)


def test_mask_is_seeded():
    a = sample_stratified_mask((2, 1, 32, 32), 0.05, torch.Generator().manual_seed(7))
    b = sample_stratified_mask((2, 1, 32, 32), 0.05, torch.Generator().manual_seed(7))
    c = sample_stratified_mask((2, 1, 32, 32), 0.05, torch.Generator().manual_seed(8))
    assert torch.equal(a, b) and not torch.equal(a, c)


@pytest.mark.parametrize("replacement", ["gaussian:0.2", "ups:5", "donut", "uniform", "zero"])
@pytest.mark.parametrize("shape", [(2, 3, 32, 32), (2, 1, 8, 16, 16)])
def test_masking_never_touches_pixels_outside_j(replacement, shape, generator):
    x = torch.randn(shape)
    masked, mask = Masker(0.05, Replacement.parse(replacement))(x, generator)
    assert torch.equal(masked[~mask], x[~mask])
    assert mask.any()
    if replacement != "ups:5":  # UPS can draw the centre itself
        assert (masked[mask] != x[mask]).float().mean() > 0.9


def test_gaussian_replacement_replaces_rather_than_adds(generator):
    x = torch.full((4, 1, 64, 64), 100.0)
    masked, mask = Masker(0.05, Replacement.parse("gaussian:0.5"))(x, generator)
    values = masked[mask]
    assert values.abs().max() < 5  # N(0, 0.5^2) samples, not 100 + noise
    assert values.std().item() == pytest.approx(0.5, rel=0.2)


def test_donut_is_the_local_mean_without_centre():
    x = torch.randn(1, 1, 6, 7)
    donut = donut_values(x)
    w = torch.tensor([[0.5, 1, 0.5], [1, 0, 1], [0.5, 1, 0.5]])
    i, j = 2, 3
    assert donut[0, 0, i, j] == pytest.approx((x[0, 0, i - 1:i + 2, j - 1:j + 2] * w).sum().item() / 6, rel=1e-5)
    # At a corner only the three in-image neighbours count.
    corner = (x[0, 0, 0, 1] + x[0, 0, 1, 0] + 0.5 * x[0, 0, 1, 1]) / 2.5
    assert donut[0, 0, 0, 0] == pytest.approx(corner.item(), rel=1e-5)
    # The centre has no weight: changing it leaves its own donut value unchanged.
    y = x.clone()
    y[0, 0, i, j] += 10
    assert donut_values(y)[0, 0, i, j] == pytest.approx(donut[0, 0, i, j].item(), rel=1e-5)


def test_ups_picks_inside_the_window(generator):
    h, w = 12, 9
    coords = torch.arange(h * w, dtype=torch.float32).view(1, 1, h, w).expand(64, 1, h, w).contiguous()
    picked = ups_values(coords, 5, generator).long()
    rows, cols = picked // w, picked % w
    own_rows = torch.arange(h).view(1, 1, h, 1)
    own_cols = torch.arange(w).view(1, 1, 1, w)
    assert ((rows - own_rows).abs() <= 2).all() and ((cols - own_cols).abs() <= 2).all()
    centre = (rows == own_rows) & (cols == own_cols)
    interior = centre[..., 2:-2, 2:-2].float().mean().item()
    assert interior == pytest.approx(1 / 25, abs=0.01)


@pytest.mark.parametrize("text", ["gauss:0.2", "gaussian", "donut:3", "ups"])
def test_bad_replacement_names_fail_clearly(text):
    with pytest.raises(ValueError, match="replacement"):
        Replacement.parse(text)
