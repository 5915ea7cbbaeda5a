"""bsd68: the Noise2Void archive read from disk, and the restricted unpickler that reads its test images."""

from __future__ import annotations

import os
import pickle

import numpy as np
import pytest
import pytorch_lightning as pl
from numpy.lib import format as npy_format

from benchmark.registry import ConfigError
from datamodules import DATASETS
from datamodules.base import DataFileError, MissingDataError
from datamodules.bsd68 import BSD68, TEST_CLEAN, TEST_NOISY, TRAIN
from datamodules.evaluation import PSNRProtocol
from datamodules.safe_npy import NpyError, load_npy
from methods import METHODS
from methods.unet import UNetConfig
from tests.data_fixtures import bsd68 as fixture
from tests.data_fixtures import one_line_naming


@pytest.fixture
def data_dir(tmp_path):
    fixture.write(tmp_path)
    return tmp_path


def test_class_facts():
    assert DATASETS.get("bsd68") is BSD68
    assert BSD68.protocol == PSNRProtocol(data_range=255.0)
    assert BSD68.paper_columns == {"test": "BSD68"} and not BSD68.stand_in
    assert BSD68.provides == {"noisy"} and BSD68.channels == 1
    assert "download.fht.org/jug/n2v/BSD68_reproducibility_data.zip" in BSD68.source
    assert "32c66d41196c9cafff465f3c7c42730f851c24766f70383672e18b8832ea8e55" in BSD68.source


def test_splits_shapes_scale_and_counts(data_dir):
    splits = BSD68(data_dir=data_dir).splits
    assert [len(splits[s].ids) for s in ("train", "val", "test")] == [fixture.N_TRAIN, fixture.N_VAL, 3]
    for split in ("train", "val"):
        assert splits[split].clean is None and splits[split].noisy2 is None
        assert all(image.shape == (1, 180, 180) and image.dtype == np.float32 for image in splits[split].noisy)
    test = splits["test"]
    assert [image.shape[1:] for image in test.clean] == list(fixture.TEST_SHAPES)
    assert all(n.shape == c.shape and n.dtype == c.dtype == np.float32 for n, c in zip(test.noisy, test.clean))
    clean = np.concatenate([image.ravel() for image in test.clean])
    noisy = np.concatenate([image.ravel() for image in test.noisy])
    assert clean.min() >= 0 and clean.max() > 100  # the 0-255 scale, not [0, 1]
    assert noisy.min() < 0 or noisy.max() > 255  # not clipped
    assert (noisy - clean).std() == pytest.approx(25, rel=0.05)
    assert np.concatenate([image.ravel() for image in splits["train"].noisy]).max() > 100


def test_test_images_are_identical_across_loads(data_dir):
    first, second = BSD68(data_dir=data_dir).splits["test"], BSD68(data_dir=data_dir).splits["test"]
    assert first.ids == second.ids
    for a, b in zip([*first.noisy, *first.clean], [*second.noisy, *second.clean]):
        np.testing.assert_array_equal(a, b)


def test_only_noisy_image_methods_apply_and_laine_bayes_gets_sigma_25():
    dataset = BSD68()
    assert dataset.gaussian_sigma == 25.0
    assert "clean" in METHODS.get("noise2true").not_applicable_to(dataset)
    assert "noisy2" in METHODS.get("noise2noise").not_applicable_to(dataset)
    for name in ("laine_bayes", "noise2void", "noise2same"):
        assert METHODS.get(name).not_applicable_to(dataset) is None


def test_training_runs_without_validation(data_dir):
    method_cls = METHODS.get("noise2same")
    dm = BSD68(data_dir=data_dir, train_keys=method_cls.train_keys, batch_size=2, patch_size=32, train_samples=4)
    assert dm.val_dataloader() == []
    trainer = pl.Trainer(max_steps=2, val_check_interval=1, check_val_every_n_epoch=None, accelerator="cpu",
                         logger=False, enable_checkpointing=False, enable_progress_bar=False,
                         enable_model_summary=False, num_sanity_val_steps=0)
    trainer.fit(method_cls(backbone=UNetConfig(depth=2, base_channels=4)), datamodule=dm)
    assert trainer.global_step == 2
    with pytest.raises(ConfigError, match="no clean images"):
        dm.eval_dataloader("val")


def test_a_missing_file_is_named(data_dir):
    (data_dir / TEST_CLEAN).unlink()
    with pytest.raises(MissingDataError) as error:
        BSD68(data_dir=data_dir).splits
    one_line_naming(error, data_dir / TEST_CLEAN)
    assert "download.fht.org" in str(error.value)


@pytest.mark.parametrize("name, keep", [(TEST_CLEAN, 200), (TRAIN, 100)])
def test_a_truncated_file_is_named(data_dir, name, keep):
    path = data_dir / name
    path.write_bytes(path.read_bytes()[:keep])
    with pytest.raises(DataFileError) as error:
        BSD68(data_dir=data_dir).splits
    one_line_naming(error, path)


def test_a_file_of_the_wrong_shape_is_named(data_dir):
    np.save(data_dir / TRAIN, np.zeros((180, 180), dtype=np.float32))
    with pytest.raises(DataFileError, match="expected a stack of 2-D images") as error:
        BSD68(data_dir=data_dir).splits
    one_line_naming(error, data_dir / TRAIN)


class RunsShellCommand:
    """Unpickling this calls os.system(command): what a malicious .npy would do."""

    def __init__(self, command: str) -> None:
        self.command = command

    def __reduce__(self):
        return os.system, (self.command,)


def write_pickled_npy(path, payload, protocol: int = 2) -> None:
    """An object-dtype .npy header followed by the pickle of `payload`."""
    header = npy_format.header_data_from_array_1_0(np.empty(3, dtype=object))
    with open(path, "wb") as file:
        npy_format.write_array_header_1_0(file, header)
        pickle.dump(payload, file, protocol=protocol)


def test_a_malicious_pickle_is_refused_without_running(data_dir):
    marker = data_dir / "pwned"
    write_pickled_npy(data_dir / TEST_NOISY, RunsShellCommand(f"touch {marker}"))
    with pytest.raises(DataFileError, match=r"refused to unpickle (posix|nt|os)\.system") as error:
        BSD68(data_dir=data_dir).splits
    one_line_naming(error, data_dir / TEST_NOISY)
    assert not marker.exists()


@pytest.mark.parametrize("payload, message", [
    ({"not": "an array"}, "not the object array"),
    (np.array([np.zeros(2), "text", None], dtype=object), "element 1 is str"),
    (np.array([np.zeros(2), np.array(["a"]), np.zeros(1)], dtype=object), "element 1 is ndarray, not a numeric"),
])
def test_safe_npy_refuses_objects_other_than_numeric_arrays(tmp_path, payload, message):
    write_pickled_npy(tmp_path / "x.npy", payload)
    with pytest.raises(NpyError, match=message):
        load_npy(tmp_path / "x.npy")


@pytest.mark.parametrize("protocol", [2, 3])
@pytest.mark.parametrize("module", ["numpy._core.multiarray", "numpy.core.multiarray"])
def test_safe_npy_reads_object_arrays_of_old_and_new_numpy(tmp_path, protocol, module):
    images = np.empty(3, dtype=object)
    images[:] = [np.arange(6, dtype=np.float64).reshape(2, 3), np.ones((3, 2), np.uint8), np.zeros((1, 1), np.float32)]
    write_pickled_npy(tmp_path / "x.npy", images, protocol)
    raw = (tmp_path / "x.npy").read_bytes()
    written = next(name for name in (b"numpy._core.multiarray", b"numpy.core.multiarray") if name in raw)
    (tmp_path / "x.npy").write_bytes(raw.replace(written, module.encode()))  # as numpy < 2 named it
    loaded = load_npy(tmp_path / "x.npy")
    assert loaded.dtype == object and len(loaded) == 3
    for a, b in zip(loaded, images):
        np.testing.assert_array_equal(a, b)
        assert a.dtype == b.dtype


def test_safe_npy_reads_plain_arrays_memory_mapped(tmp_path):
    np.save(tmp_path / "x.npy", np.arange(12, dtype=np.float32).reshape(3, 4))
    array = load_npy(tmp_path / "x.npy", mmap=True)
    assert isinstance(array, np.memmap) and array[2, 3] == 11
