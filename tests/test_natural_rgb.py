"""natural-rgb: scikit-image's RGB photographs with ImageNet's noise and protocol (a stand-in for ImageNet)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from datamodules import DATASETS
from datamodules.imagenet import ImageNet
from datamodules.natural import NATURAL_RGB_SPLITS, NaturalRGB

# Measured: mean Input PSNR (raw noisy vs clean, data range 1) of the test images astronaut, chelsea
# and coffee (9.33, 9.89, 9.95 dB) with data_seed 0; the paper's ImageNet Input row is 9.69 dB.
MEASURED_INPUT_PSNR = 9.72
PAPER_INPUT_PSNR = 9.69


def test_class_facts():
    assert DATASETS.get("natural-rgb") is NaturalRGB
    assert NaturalRGB.protocol == ImageNet.protocol and NaturalRGB.channels == 3
    assert NaturalRGB.paper_columns == {"test": "ImageNet"} and NaturalRGB.stand_in
    assert "ImageNet" in NaturalRGB.description and not NaturalRGB.expected_files
    assert NaturalRGB().gaussian_sigma is None


def test_splits_are_disjoint_rgb_in_unit_range():
    splits = NaturalRGB(max_size=64).splits
    assert {name: split.ids for name, split in splits.items()} == NATURAL_RGB_SPLITS
    names = [set(split.ids) for split in splits.values()]
    assert sum(map(len, names)) == len(set.union(*names))
    for split in splits.values():
        for clean, noisy, noisy2 in zip(split.clean, split.noisy, split.noisy2):
            assert clean.shape == noisy.shape == noisy2.shape == (3, 64, 64)
            assert clean.dtype == noisy.dtype == np.float32 and 0 <= clean.min() and clean.max() <= 1
            assert not np.array_equal(noisy, noisy2)
            assert not np.array_equal(clean[0], clean[1])  # colour, not grey


def test_test_noise_is_identical_across_loads():
    first, second = NaturalRGB(max_size=48).splits["test"], NaturalRGB(max_size=48).splits["test"]
    for a, b in zip(first.noisy, second.noisy):
        np.testing.assert_array_equal(a, b)


def test_input_psnr_matches_the_papers_imagenet_row():
    dm = NaturalRGB()
    test = dm.splits["test"]
    assert [image.shape for image in test.clean] == [(3, 512, 512), (3, 300, 451), (3, 400, 600)]
    scores = [dm.protocol.psnr(torch.from_numpy(noisy)[None], torch.from_numpy(clean)[None], transform=False).item()
              for noisy, clean in zip(test.noisy, test.clean)]
    assert np.mean(scores) == pytest.approx(MEASURED_INPUT_PSNR, abs=0.05)
    assert np.mean(scores) == pytest.approx(PAPER_INPUT_PSNR, abs=0.3)
    lost = np.mean([(noisy == 0).mean() for noisy in test.noisy])
    assert lost == pytest.approx(0.2, abs=0.005)
