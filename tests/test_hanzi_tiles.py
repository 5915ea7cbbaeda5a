"""hanzi-tiles: the official HanZi layout, its index mapping, and one-line errors for bad files."""

import pickle
from pathlib import Path

import numpy as np
import pytest

from benchmark.registry import ConfigError
from datamodules import DATASETS
from datamodules.base import DataFileError, MissingDataError
from datamodules.hanzi import HanZi
from datamodules.hanzi_tiles import HanZiTiles
from tests.data_fixtures import hanzi_tiles as fixture

FILES = ("training.npy", "validation.npy", "testing.npy")


def tiles_dir(root: Path) -> Path:
    return root / "Hanzi" / "tiles"


def write_numbered(root: Path) -> None:
    """Tiles whose channel c of tile i is filled with 10 * i + c, so every index can be read back."""
    tiles_dir(root).mkdir(parents=True)
    for name, n in zip(FILES, (5, 3, 4)):
        values = 10 * np.arange(n)[:, None] + np.arange(9)[None]
        np.save(tiles_dir(root) / name, np.broadcast_to(values[..., None, None], (n, 9, 64, 64)).astype(np.float64))


@pytest.mark.parametrize("sigma, noisy", [(0.3, 1), (0.5, 2), (0.7, 3), (0.9, 4)])
def test_sigma_picks_its_noisy_copy_and_the_second_copy_four_further(tmp_path, sigma, noisy):
    write_numbered(tmp_path)
    splits = HanZiTiles(data_dir=tmp_path, sigma=sigma).splits
    assert [len(splits[s].ids) for s in ("train", "val", "test")] == [5, 3, 4]
    assert splits["test"].ids == ["testing/0", "testing/1", "testing/2", "testing/3"]
    for i in range(4):
        image = splits["test"].noisy[i]
        assert image.dtype == np.float32 and image.shape == (1, 64, 64) and image.flags.writeable
        assert (image == 10 * i + noisy).all()
        assert (splits["test"].noisy2[i] == 10 * i + noisy + 4).all()
        assert (splits["test"].clean[i] == 10 * i).all()


def test_the_fixture_has_the_official_layout_and_noise_levels(tmp_path):
    fixture.write(tmp_path)
    for name in FILES:
        tiles = np.load(tiles_dir(tmp_path) / name)
        assert tiles.ndim == 4 and tiles.shape[1:] == (9, 64, 64) and tiles.dtype.kind == "f"
        assert tiles[:, 0].min() == 0 and tiles[:, 0].max() == 1
        errors = ((tiles[:, 1:] - tiles[:, :1]) ** 2).mean(axis=(0, 2, 3))
        assert list(errors[:4]) == sorted(errors[:4]) and list(errors[4:]) == sorted(errors[4:])
        assert not np.array_equal(tiles[:, 3], tiles[:, 7])


def test_training_batches_carry_the_declared_keys(tmp_path):
    fixture.write(tmp_path)
    dm = HanZiTiles(data_dir=tmp_path, train_keys=frozenset({"noisy", "noisy2"}), batch_size=4, patch_size=48,
                    train_samples=8)
    batch = next(iter(dm.train_dataloader()))
    assert set(batch) == {"noisy", "noisy2"} and batch["noisy"].shape == (4, 1, 48, 48)
    assert next(iter(dm.val_dataloader()))["clean"].shape == (4, 1, 64, 64)


def test_a_split_pickles_as_its_path_not_its_data(tmp_path):
    fixture.write(tmp_path)
    noisy = HanZiTiles(data_dir=tmp_path).splits["train"].noisy
    payload = pickle.dumps(noisy)
    assert len(payload) < 1_000
    np.testing.assert_array_equal(pickle.loads(payload)[2], noisy[2])


def test_class_facts():
    assert DATASETS.get("hanzi-tiles") is HanZiTiles
    assert HanZiTiles.stand_in is False and HanZiTiles.paper_columns == {"test": "HanZi"}
    assert HanZiTiles.protocol == HanZi.protocol and HanZiTiles.eval_batch_size == 64 and HanZiTiles.channels == 1
    assert HanZiTiles.provides == frozenset({"noisy", "clean", "noisy2"})
    assert HanZiTiles.expected_files == tuple(f"Hanzi/tiles/{name}" for name in FILES)
    with pytest.raises(ConfigError, match="sigma must be one of 0.3, 0.5, 0.7, 0.9, got 0.6"):
        HanZiTiles(sigma=0.6)


def test_a_missing_file_is_a_one_line_error_naming_it(tmp_path):
    fixture.write(tmp_path)
    (tiles_dir(tmp_path) / "testing.npy").unlink()
    with pytest.raises(MissingDataError) as error:
        HanZiTiles(data_dir=tmp_path).splits
    assert "\n" not in str(error.value)
    assert str(error.value).startswith(f"hanzi-tiles: missing {tiles_dir(tmp_path) / 'testing.npy'} (expected under")


def _truncated(path: Path) -> None:
    path.write_bytes(path.read_bytes()[:1000])


def _object_array(path: Path) -> None:
    np.save(path, np.array([np.zeros((64, 64)), np.zeros((32, 32))], dtype=object), allow_pickle=True)


def _wrong_shape(path: Path) -> None:
    np.save(path, np.zeros((2, 3, 64, 64), np.float32))


def _integers(path: Path) -> None:
    np.save(path, np.zeros((2, 9, 64, 64), np.uint8))


def _npz(path: Path) -> None:
    with open(path, "wb") as file:
        np.savez(file, tiles=np.zeros((2, 9, 64, 64), np.float32))


def _not_npy(path: Path) -> None:
    path.write_bytes(b"not a numpy file\n" * 10)


@pytest.mark.parametrize("corrupt, reason", [
    (_truncated, "truncated or unreadable"), (_object_array, r"it holds object of shape \(2,\)"),
    (_wrong_shape, r"it holds float32 of shape \(2, 3, 64, 64\)"), (_integers, "it holds uint8"),
    (_npz, "not a .npy file"), (_not_npy, "not a .npy file")])
def test_a_corrupt_file_is_a_one_line_error_naming_it(tmp_path, corrupt, reason):
    fixture.write(tmp_path)
    path = tiles_dir(tmp_path) / "training.npy"
    corrupt(path)
    with pytest.raises(DataFileError, match=reason) as error:
        HanZiTiles(data_dir=tmp_path).splits
    assert isinstance(error.value, ConfigError) and "\n" not in str(error.value)
    assert str(error.value).startswith(f"cannot read {path}:")
