"""imagenet: ILSVRC2012 validation JPEGs read from disk, cropped and made noisy on demand."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from benchmark.registry import ConfigError
from datamodules import DATASETS
from datamodules.base import DataFileError, LazyImages, MissingDataError
from datamodules.evaluation import PSNRProtocol
from datamodules.imagenet import FOLDER, ImageNet
from datamodules.noise import imagenet_noise
from tests.data_fixtures import imagenet as fixture


@pytest.fixture
def data_dir(tmp_path):
    fixture.write(tmp_path)
    return tmp_path


def tiny(data_dir, **kwargs) -> ImageNet:
    return ImageNet(data_dir=data_dir, **{**fixture.DATASET_KWARGS, **kwargs})


def test_class_facts():
    assert DATASETS.get("imagenet") is ImageNet
    assert ImageNet.protocol == PSNRProtocol(data_range=1.0, minmax=True)
    assert ImageNet.channels == 3 and ImageNet.eval_batch_size == 1
    assert ImageNet.paper_columns == {"test": "ImageNet"} and not ImageNet.stand_in
    assert ImageNet.provides == {"noisy", "clean", "noisy2"} and ImageNet().gaussian_sigma is None
    defaults = ImageNet()
    assert (defaults.n_train_images, defaults.n_train_crops, defaults.n_val, defaults.n_test, defaults.crop) == \
        (20000, 60000, 1000, 1000, 128)
    assert "image-net.org" in ImageNet.source


def test_splits_counts_shapes_and_order(data_dir):
    splits = tiny(data_dir).splits
    names = sorted(path.stem for path in (data_dir / FOLDER).iterdir())
    assert splits["val"].ids == names[4:6] and splits["test"].ids == names[6:8]
    assert len(splits["train"].ids) == 8
    for key in ("noisy", "clean", "noisy2"):  # made on demand, not held in memory
        assert all(isinstance(getattr(split, key), LazyImages) for split in splits.values())
    # Crop k comes from training image k mod 4, 128x128 (file 4 is 120 wide: mirrored out to 128).
    assert all(crop.shape == (3, 128, 128) and crop.dtype == np.float32 for crop in splits["train"].clean)
    for name in ("val", "test"):
        for image_id, clean in zip(splits[name].ids, splits[name].clean):
            width, height = Image.open(data_dir / FOLDER / f"{image_id}.JPEG").size
            assert clean.shape == (3, height, width) and 0 <= clean.min() and clean.max() <= 1
    grey = splits["train"].clean[1]  # file 2 is a greyscale JPEG: three equal channels
    np.testing.assert_array_equal(grey[0], grey[2])


def test_crops_lie_inside_their_image(data_dir):
    dm = tiny(data_dir, crop=32)
    crops = dm.splits["train"].clean
    files = sorted((data_dir / FOLDER).iterdir())
    for k, crop in enumerate(crops):
        image = np.asarray(Image.open(files[k % 4]).convert("RGB"), dtype=np.float32).transpose(2, 0, 1) / 255
        corners = zip(*np.nonzero(image[0, :-31, :-31] == crop[0, 0, 0]))
        assert any(np.array_equal(image[:, top:top + 32, left:left + 32], crop) for top, left in corners)
    assert not np.array_equal(crops[0], crops[4])  # two crops of image 0 at different corners


def test_noise_recipe_statistics():
    rng = np.random.default_rng(0)
    x = np.full((3, 300, 300), 0.5)
    noisy = imagenet_noise()(x, rng)
    lost = noisy == 0
    assert lost.mean() == pytest.approx(0.2, abs=0.005)
    kept = noisy[~lost]
    assert kept.mean() == pytest.approx(0.5, abs=0.005)
    assert kept.var() == pytest.approx(0.5 / 30 + (60 / 255) ** 2, rel=0.03)
    assert noisy.min() < 0 and noisy.max() > 1  # not clipped


def test_noisy_draws_follow_the_recipe_and_are_fixed(data_dir):
    first, second = tiny(data_dir).splits, tiny(data_dir).splits
    for name in ("train", "test"):
        for a, b in zip(first[name].noisy, second[name].noisy):
            np.testing.assert_array_equal(a, b)
    test = first["test"]
    noisy, noisy2 = np.concatenate([i.ravel() for i in test.noisy]), np.concatenate([i.ravel() for i in test.noisy2])
    assert (noisy == 0).mean() == pytest.approx(0.2, abs=0.01)
    assert not np.array_equal(noisy, noisy2)
    residual = (noisy - np.concatenate([i.ravel() for i in test.clean]))[noisy != 0]
    assert residual.std() == pytest.approx(np.sqrt(0.5 / 30 + (60 / 255) ** 2), rel=0.1)


def test_another_data_seed_gives_other_crops_and_noise(data_dir):
    a, b = tiny(data_dir).splits, tiny(data_dir, data_seed=1).splits
    assert not np.array_equal(a["train"].clean[0], b["train"].clean[0])
    assert not np.array_equal(a["test"].noisy[0], b["test"].noisy[0])
    np.testing.assert_array_equal(a["test"].clean[0], b["test"].clean[0])


def test_a_missing_folder_is_named(tmp_path):
    with pytest.raises(MissingDataError) as error:
        tiny(tmp_path).splits
    assert "\n" not in str(error.value) and str(tmp_path / FOLDER) in str(error.value)
    assert "image-net.org" in str(error.value)


def test_a_short_folder_says_how_many_are_found_and_needed(data_dir):
    for path in sorted((data_dir / FOLDER).iterdir())[7:]:
        path.unlink()
    with pytest.raises(MissingDataError, match=r"found 7 ILSVRC2012_val_\*\.JPEG files in .*, need 8 "
                                                r"\(4 train \+ 2 val \+ 2 test\)") as error:
        tiny(data_dir).splits
    assert "\n" not in str(error.value) and "image-net.org" in str(error.value)


def test_a_corrupt_jpeg_is_named(data_dir):
    path = data_dir / FOLDER / "ILSVRC2012_val_00000007.JPEG"
    path.write_bytes(path.read_bytes()[:300])
    splits = tiny(data_dir).splits
    with pytest.raises(DataFileError) as error:
        splits["test"].noisy[0]
    assert "\n" not in str(error.value) and str(path) in str(error.value)


def test_counts_must_be_positive():
    with pytest.raises(ConfigError, match="n_val must be at least 1"):
        ImageNet(n_val=0)
