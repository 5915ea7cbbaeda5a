"""synthetic-3d: the embedded stand-in for Planaria C1-C3."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from datamodules import DATASETS
from datamodules.evaluation import evaluate
from datamodules.planaria import Planaria
from datamodules.synthetic3d import Synthetic3D
from methods import METHODS
from methods.unet import UNetConfig

PAPER_INPUT = {"C1": 21.52, "C2": 21.09, "C3": 20.82}


def small(**kwargs) -> Synthetic3D:
    return Synthetic3D(depth=8, train_size=32, test_size=48, train_volumes=6, val_volumes=3, test_volumes=2, **kwargs)


def test_class_facts():
    assert DATASETS.get("synthetic-3d") is Synthetic3D
    assert Synthetic3D.spatial_dims == 3 and Synthetic3D.stand_in and "Planaria" in Synthetic3D.description
    assert Synthetic3D.test_sets == Planaria.test_sets and Synthetic3D.paper_columns == Planaria.paper_columns
    assert Synthetic3D.protocol is Planaria.protocol
    assert Synthetic3D.provides == {"noisy", "clean", "noisy2"} and Synthetic3D().gaussian_sigma is None
    assert not Synthetic3D.expected_files
    assert Synthetic3D.inference_tile[0] is None and Synthetic3D.inference_tile[1] < Synthetic3D().test_size


def test_splits_shapes_conditions_and_scales():
    splits = small().splits
    assert [len(splits[s].ids) for s in ("train", "val", "C1", "C2", "C3")] == [6, 3, 2, 2, 2]
    assert [i.split("-")[1] for i in splits["train"].ids] == ["C1", "C2", "C3"] * 2  # training mixes conditions
    assert all(v.shape == (1, 8, 32, 32) and v.dtype == np.float32 for v in splits["train"].noisy)
    assert not np.array_equal(splits["train"].noisy[0], splits["train"].noisy2[0])
    for condition in ("C1", "C2", "C3"):
        assert splits[condition].clean is splits["C1"].clean  # the conditions share their ground truth
        for noisy, clean in zip(splits[condition].noisy, splits[condition].clean):
            assert noisy.shape == clean.shape == (1, 8, 48, 48)
            np.testing.assert_allclose(np.percentile(noisy, (2, 99.8)), (0, 1), atol=1e-5)
            np.testing.assert_allclose(np.percentile(clean, (0.1, 99.9)), (0, 1), atol=1e-5)


def test_test_noise_is_identical_across_loads_and_set_by_the_seed():
    first, second, other = small().splits, small().splits, small(data_seed=1).splits
    for condition in ("C1", "C2", "C3"):
        for a, b, c in zip(first[condition].noisy, second[condition].noisy, other[condition].noisy):
            np.testing.assert_array_equal(a, b)
            assert not np.array_equal(a, c)


def test_noise_grows_from_c1_to_c3_and_input_psnr_is_near_the_papers():
    dataset = Synthetic3D()
    noisy_input = METHODS.get("input")()
    means = {name: evaluate(noisy_input.denoise, dataset.eval_dataloader(name), dataset.protocol).mean
             for name in dataset.test_sets}
    assert means["C1"] > means["C2"] > means["C3"]
    for name, paper in PAPER_INPUT.items():
        assert means[name] == pytest.approx(paper, abs=0.5)


def test_training_batches_carry_only_the_declared_keys():
    dataset = small(train_keys=METHODS.get("noise2noise").train_keys, batch_size=2, patch_size=(8, 24, 24),
                    train_samples=2)
    batch = next(iter(dataset.train_dataloader()))
    assert set(batch) == {"noisy", "noisy2"} and batch["noisy"].shape == (2, 1, 8, 24, 24)


def test_tiled_prediction_of_a_trained_network_equals_whole_volume_prediction():
    dataset = Synthetic3D(depth=8, train_size=32, test_size=176, train_volumes=3, val_volumes=3, test_volumes=1,
                          batch_size=2, patch_size=(8, 32, 32), train_samples=4)
    torch.manual_seed(0)
    method = METHODS.get("noise2same")(spatial_dims=3, backbone=UNetConfig(depth=2, base_channels=4))
    optimizer = torch.optim.Adam(method.parameters(), lr=1e-2)
    for batch in dataset.train_dataloader():
        optimizer.zero_grad()
        method.training_loss(batch)[0].backward()
        optimizer.step()
    method.eval()
    volume = torch.from_numpy(dataset.splits["C3"].noisy[0])[None]
    assert volume.shape[-1] > dataset.inference_tile[-1]  # the tiled path really cuts the volume
    torch.testing.assert_close(method.denoise(volume, tile=dataset.inference_tile), method.denoise(volume),
                               rtol=1e-4, atol=1e-4)
