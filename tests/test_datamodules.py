import numpy as np
import pytest
import torch

from benchmark.registry import ConfigError
from datamodules.hanzi import HanZi, gb2312_characters, hanzi_noise
from datamodules.natural import NaturalGray
from datamodules.noise import BernoulliPixelLoss, Compose, DrawnPixelLoss, Gaussian, Poisson
from methods import METHODS
from methods.unet import UNetConfig


def small_hanzi(**kwargs):
    return HanZi(n_characters=30, n_copies=2, batch_size=4, patch_size=64, train_samples=8, **kwargs)


def test_self_supervised_training_batches_have_no_clean_image():
    method_cls = METHODS.get("noise2same")
    dm = small_hanzi(train_keys=method_cls.train_keys)
    batch = next(iter(dm.train_dataloader()))
    assert set(batch) == {"noisy"}
    assert dm.train_dataloader().dataset.arrays.keys() == {"noisy"}  # the loader holds no clean image at all


def test_supervised_training_batches_carry_clean_and_only_the_declared_keys():
    dm = small_hanzi(train_keys=METHODS.get("noise2true").train_keys)
    batch = next(iter(dm.train_dataloader()))
    assert set(batch) == {"noisy", "clean"}
    assert batch["noisy"].shape == batch["clean"].shape == (4, 1, 64, 64)


def test_a_method_refuses_a_training_batch_with_undeclared_keys():
    model = METHODS.get("noise2same")(backbone=UNetConfig(depth=2, base_channels=4))
    batch = {"noisy": torch.randn(2, 1, 16, 16), "clean": torch.randn(2, 1, 16, 16)}
    with pytest.raises(RuntimeError, match="clean"):
        model.training_step(batch, 0)


def test_patches_share_crop_and_augmentation_across_keys():
    dm = NaturalGray(max_size=96, train_keys=frozenset({"noisy", "clean"}), batch_size=8, patch_size=32,
                     train_samples=8)
    batch = next(iter(dm.train_dataloader()))
    # noisy = clean + N(0, 25^2) only if both come from the same window.
    assert (batch["noisy"] - batch["clean"]).std().item() == pytest.approx(25, rel=0.1)


def test_missing_key_is_a_clear_error():
    dm = small_hanzi(train_keys=frozenset({"noisy", "depth"}))
    with pytest.raises(ConfigError, match="no depth images"):
        dm.train_dataloader()


@pytest.mark.parametrize("dataset", [lambda: small_hanzi(), lambda: NaturalGray(max_size=64)])
def test_test_noise_is_identical_across_runs(dataset):
    first, second = dataset().splits["test"], dataset().splits["test"]
    assert first.ids == second.ids
    for a, b in zip(first.noisy, second.noisy):
        np.testing.assert_array_equal(a, b)


def test_natural_gray_splits_are_disjoint_and_noisy_at_sigma_25():
    splits = NaturalGray().splits
    names = [set(split.ids) for split in splits.values()]
    assert not (names[0] & names[1] or names[0] & names[2] or names[1] & names[2])
    residual = np.concatenate([(n - c).ravel() for n, c in zip(splits["test"].noisy, splits["test"].clean)])
    assert residual.std() == pytest.approx(25, rel=0.01)
    assert max(c.max() for c in splits["test"].clean) > 200  # the 0-255 scale


def test_hanzi_recipe():
    assert len(gb2312_characters()) == 6763
    splits = small_hanzi().splits
    assert [len(splits[s].ids) for s in ("train", "val", "test")] == [42, 12, 6]
    clean = np.stack(splits["train"].clean)
    noisy = np.stack(splits["train"].noisy)
    assert clean.shape[1:] == (1, 64, 64) and clean.min() == 0 and clean.max() == 1
    assert noisy.min() >= 0 and noisy.max() <= 1
    assert not np.array_equal(splits["train"].noisy[0], splits["train"].noisy2[0])


def test_noise_models_have_their_statistics():
    rng = np.random.default_rng(0)
    x = np.full((200, 200), 0.5)
    assert (Gaussian(0.1)(x, rng) - x).std() == pytest.approx(0.1, rel=0.02)
    y = Poisson(30)(x, rng)
    assert y.mean() == pytest.approx(0.5, rel=0.02) and y.var() == pytest.approx(0.5 / 30, rel=0.05)
    assert (BernoulliPixelLoss(0.2)(x, rng) == 0).mean() == pytest.approx(0.2, abs=0.01)
    dropped = (DrawnPixelLoss(2048, 63)(np.ones((64, 64)), rng) == 0)
    assert dropped.mean() == pytest.approx((1 - (1 - 1 / 63**2) ** 2048) * 63**2 / 64**2, abs=0.02)
    assert not dropped[63].any() and not dropped[:, 63].any()
    combined = Compose((Poisson(30), Gaussian(0.1), BernoulliPixelLoss(0.5)))(x, rng)
    assert (combined == 0).mean() == pytest.approx(0.5, abs=0.02)
    noisy = hanzi_noise(0.7)(np.zeros((1, 64, 64)), rng)
    assert noisy.min() == 0 and noisy.max() == 1


def test_noise2noise_batches_hold_two_noisy_draws_and_no_clean():
    dm = NaturalGray(max_size=96, train_keys=METHODS.get("noise2noise").train_keys, batch_size=8, patch_size=32,
                     train_samples=8)
    batch = next(iter(dm.train_dataloader()))
    assert set(batch) == {"noisy", "noisy2"}
    # Independent draws of one window: their difference has std sqrt(2) * 25.
    assert (batch["noisy"] - batch["noisy2"]).std().item() == pytest.approx(25 * 2 ** 0.5, rel=0.1)
