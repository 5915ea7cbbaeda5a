"""folder: the user's own images on every layout (grey, multi-channel, 3-D; with clean, with pairs,
noisy only, clean plus a noise recipe), lazily read, and one line naming the file for each bad layout."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
import torch

from benchmark.registry import ConfigError
from datamodules import DATASETS
from datamodules.folder import NO_PSNR, Float32View, Folder, parse_noise
from datamodules.image_io import write_image
from datamodules.noise import BernoulliPixelLoss, Gaussian, Poisson
from methods import METHODS
from tests.data_fixtures import folder as fixture
from tests.data_fixtures import one_line_naming


def make(tmp_path, layout, **options) -> Folder:
    return Folder(path=str(fixture.write(tmp_path, layout)), **options)


def test_registered_and_idle_without_a_path():
    assert DATASETS.get("folder") is Folder
    assert Folder().missing_files() == []  # the runner's data check builds it without its spec options
    with pytest.raises(ConfigError, match="no `path` given"):
        Folder().splits


def test_grey_png_with_clean(tmp_path):
    data = make(tmp_path, "grey-clean")
    assert (data.axes, data.channels, data.spatial_dims) == ("YX", 1, 2)
    assert data.provides == {"noisy", "clean"} and data.protocol.data_range == 255.0  # 8-bit files
    splits = data.splits
    assert [len(splits[s].ids) for s in ("train", "val", "test")] == [3, 1, 2]
    assert splits["test"].clean[0].shape == (1, 40, 48) and splits["test"].clean[0].dtype == np.float32
    assert METHODS.get("noise2noise").not_applicable_to(data) and METHODS.get("laine_bayes").not_applicable_to(data)
    assert METHODS.get("noise2true").not_applicable_to(data) is None
    batch = next(iter(data.eval_dataloader("test")))
    assert batch["noisy"].shape == batch["clean"].shape == (1, 1, 40, 48)


def test_multichannel_tiff_with_pairs(tmp_path):
    data = make(tmp_path, "rgb-pairs", data_range=1.0, minmax=True)
    assert (data.axes, data.channels, data.spatial_dims) == ("YXC", 3, 2)
    assert data.provides == {"noisy", "clean", "noisy2"} and data.protocol.minmax
    assert METHODS.get("noise2noise").not_applicable_to(data) is None
    data = make(tmp_path, "rgb-pairs", train_keys=frozenset({"noisy", "noisy2"}), batch_size=2, patch_size=16,
                train_samples=2)
    batch = next(iter(data.train_dataloader()))
    assert set(batch) == {"noisy", "noisy2"} and batch["noisy"].shape == (2, 3, 16, 16)
    assert batch["noisy"].dtype == torch.float32


def test_volumes_noisy_only_are_memory_mapped_and_not_scored(tmp_path):
    data = make(tmp_path, "volume-noisy", patch_size=(4, 16, 16), train_samples=2, batch_size=2)
    assert (data.axes, data.channels, data.spatial_dims) == ("ZYX", 1, 3)
    assert data.provides == {"noisy"} and data.inference_tile == (None, 256, 256)
    train = data.splits["train"].noisy[0]
    assert isinstance(train, Float32View) and isinstance(train.array.base, np.memmap)  # read lazily
    assert next(iter(data.train_dataloader()))["noisy"].shape == (2, 1, 4, 16, 16)
    assert data.val_dataloader() == []  # no clean validation images: no validation
    assert NO_PSNR in data.description
    with pytest.raises(ConfigError, match=NO_PSNR) as error:
        data.eval_dataloader("test")
    one_line_naming(error, tmp_path / "test")
    assert "needs clean" in METHODS.get("noise2true").not_applicable_to(data)


def test_clean_plus_recipe_draws_fixed_noise(tmp_path):
    data = make(tmp_path, "grey-recipe", noise="gaussian:200")
    assert data.provides == {"noisy", "clean", "noisy2"} and data.gaussian_sigma == 200.0
    assert METHODS.get("laine_bayes").not_applicable_to(data) is None
    test = data.splits["test"]
    again = make(tmp_path, "grey-recipe", noise="gaussian:200").splits["test"]
    np.testing.assert_array_equal(test.noisy[1], again.noisy[1])  # fixed seed
    assert np.std(test.noisy[1] - test.clean[1]) == pytest.approx(200, rel=0.1)
    assert not np.array_equal(test.noisy[1], test.noisy2[1])
    assert data.protocol.data_range == pytest.approx(max(np.ptp(c) for c in test.clean))  # from the data
    other = make(tmp_path, "grey-recipe", noise="gaussian:200", noise_seed=1).splits["test"]
    assert not np.array_equal(test.noisy[1], other.noisy[1])
    repeated = make(tmp_path, "grey-recipe", noise="gaussian:200", test_draws=3).splits["test"]  # fresh draws
    assert len(repeated.ids) == 6 and np.array_equal(repeated.noisy[0], test.noisy[0])
    assert not np.array_equal(repeated.noisy[1], test.noisy[0])


def test_noise_recipes():
    assert parse_noise("poisson:30+gaussian:0.235+bernoulli:0.2").steps == (
        Poisson(30.0), Gaussian(0.235), BernoulliPixelLoss(0.2))
    with pytest.raises(ConfigError, match="cannot read step 'speckle:2'"):
        parse_noise("gaussian:1+speckle:2")


def break_layout(root, how):
    """Damage a written grey-clean folder; returns the path the error must name."""
    if how == "no split":
        shutil.rmtree(root / "test")
        return root / "test"
    if how == "stray folder":
        (root / "train" / "labels").mkdir()
        return root / "train" / "labels"
    if how == "stray file":
        (root / "train" / "noisy" / "notes.txt").write_text("x")
        return root / "train" / "noisy" / "notes.txt"
    if how == "no noisy":
        shutil.rmtree(root / "val" / "noisy")
        return root / "val" / "noisy"
    if how == "names differ":
        (root / "test" / "clean" / "img1.png").rename(root / "test" / "clean" / "other.png")
        return root / "test" / "clean"
    if how == "empty":
        for path in (root / "train" / "clean").iterdir():
            path.unlink()
        return root / "train" / "clean"
    if how == "shape differs":
        write_image(root / "val" / "clean" / "img0.png", np.zeros((40, 40), np.uint8))
        return root / "val"
    if how == "channels differ":
        write_image(root / "test" / "noisy" / "img0.png", np.zeros((40, 48, 3), np.uint8))
        return root / "test" / "noisy" / "img0.png"
    if how == "corrupt":
        (root / "train" / "noisy" / "img2.png").write_bytes(b"not a png")
        return root / "train" / "noisy" / "img2.png"
    raise ValueError(how)


@pytest.mark.parametrize("how", ["no split", "stray folder", "stray file", "no noisy", "names differ", "empty",
                                 "shape differs", "channels differ", "corrupt"])
def test_each_bad_layout_is_one_line_naming_it(tmp_path, how):
    root = fixture.write(tmp_path, "grey-clean")
    named = break_layout(root, how)
    with pytest.raises(ConfigError) as error:
        Folder(path=str(root))
    one_line_naming(error, named)


def test_bad_options_are_one_line(tmp_path):
    with pytest.raises(ConfigError, match="not a folder") as error:
        Folder(path=str(tmp_path / "nowhere"))
    one_line_naming(error, tmp_path / "nowhere")
    root = fixture.write(tmp_path, "grey-recipe")
    with pytest.raises(ConfigError, match="or clean/ only plus a `noise` recipe") as error:  # clean alone
        Folder(path=str(root))
    one_line_naming(error, root / "train" / "noisy")
    root = fixture.write(tmp_path / "b", "grey-clean")
    with pytest.raises(ConfigError, match="with a noise recipe") as error:
        Folder(path=str(root), noise="poisson:10")
    one_line_naming(error, root / "train")
    with pytest.raises(ConfigError, match="axes 'XY'"):
        Folder(path=str(root), axes="XY")
