"""planaria: CARE's Planaria read from disk (a tiny copy), CARE's percentile normalisation and the
norm_minmse protocol."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from skimage.metrics import structural_similarity
from torchmetrics.functional.image import peak_signal_noise_ratio

from benchmark.registry import ConfigError
from datamodules import DATASETS
from datamodules.base import DataFileError, LazyImages, MissingDataError
from datamodules.evaluation import evaluate
from datamodules.planaria import TEST_DIR, TRAIN_FILE, NormMinMSEProtocol, Planaria, percentile_normalize
from methods import METHODS
from tests.data_fixtures import planaria as fixture
from tests.data_fixtures import one_line_naming


@pytest.fixture
def data_dir(tmp_path):
    fixture.write(tmp_path)
    return tmp_path


def test_class_facts():
    assert DATASETS.get("planaria") is Planaria
    assert Planaria.spatial_dims == 3 and Planaria.channels == 1 and Planaria.eval_batch_size == 1
    assert Planaria.test_sets == ("C1", "C2", "C3") and not Planaria.stand_in
    assert Planaria.paper_columns == {"C1": "Planaria C1", "C2": "Planaria C2", "C3": "Planaria C3"}
    assert Planaria.protocol == NormMinMSEProtocol(data_range=1.0)
    assert Planaria.provides == {"noisy", "clean"} and Planaria().gaussian_sigma is None
    assert Planaria.inference_tile == (None, 256, 256)
    assert "publications.mpi-cbg.de/publications-sites/7207" in Planaria.source
    dataset = Planaria()
    assert METHODS.get("noise2noise").not_applicable_to(dataset) and METHODS.get("laine_bayes").not_applicable_to(dataset)
    assert METHODS.get("noise2true").not_applicable_to(dataset) is None


def test_splits_shapes_and_scales(data_dir):
    splits = Planaria(data_dir=data_dir).splits
    assert [len(splits[s].ids) for s in ("train", "val", "C1", "C2", "C3")] == [9, 1, 2, 2, 2]  # first 90% train
    assert all(p.shape == (1, *fixture.PATCH) and p.dtype == np.float32 for p in splits["train"].noisy)
    assert splits["train"].clean is None  # Y of the training part is kept only for methods that train on it
    np.testing.assert_array_equal(splits["val"].clean[0], np.load(data_dir / TRAIN_FILE)["Y"][-1])
    for condition in ("C1", "C2", "C3"):
        test = splits[condition]
        assert list(test.ids) == sorted(fixture.TEST_NAMES)
        assert isinstance(test.noisy, LazyImages) and test.clean is splits["C1"].clean  # read on demand, one GT
        for noisy, clean in zip(test.noisy, test.clean):
            assert noisy.shape == clean.shape == (1, *fixture.TEST_SHAPE) and noisy.dtype == clean.dtype == np.float32
            np.testing.assert_allclose(np.percentile(noisy, (2, 99.8)), (0, 1), atol=1e-5)
            np.testing.assert_allclose(np.percentile(clean, (0.1, 99.9)), (0, 1), atol=1e-5)
            assert noisy.min() < 0 and noisy.max() > 1  # not clipped


def test_supervised_methods_get_the_clean_training_patches(data_dir):
    dataset = Planaria(data_dir=data_dir, train_keys=METHODS.get("noise2true").train_keys, batch_size=2,
                       patch_size=(16, 64, 64), train_samples=2)
    batch = next(iter(dataset.train_dataloader()))
    assert set(batch) == {"noisy", "clean"} and batch["clean"].shape == (2, 1, 16, 64, 64)


def test_percentile_normalisation():
    x = np.arange(1001, dtype=np.float64)  # percentile q of 0..1000 is 10 q
    np.testing.assert_allclose(percentile_normalize(x, 2, 99.8), (x - 20) / 978, rtol=1e-6, atol=1e-6)
    assert percentile_normalize(x, 2, 99.8).dtype == np.float32


def norm_minmse(gt: np.ndarray, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """CARE's norm_minmse (gt already normalised), written out: (gt - mean, s (x - mean))."""
    x = x - np.mean(x)
    gt = gt - np.mean(gt)
    scale = np.cov(x.flatten(), gt.flatten())[0, 1] / np.var(x.flatten())
    return gt, scale * x


def official_psnr(gt: np.ndarray, x: np.ndarray) -> float:
    """norm_minmse, then skimage's PSNR with data range 1, written out."""
    gt, x = norm_minmse(gt, x)
    return 10 * np.log10(1 / np.mean((gt - x) ** 2))


def test_ssim_is_the_official_3d_ssim_of_the_norm_minmse_pair():
    """The official get_scores: compare_ssim(*norm_minmse(gt, x), data_range=1.) on the whole volume (3-D
    SSIM, the pair left centred); here with the standard Gaussian window, as every column."""
    generator = torch.Generator().manual_seed(1)
    clean = torch.rand(2, 1, 12, 20, 17, generator=generator, dtype=torch.float64)
    pred = 0.4 * clean + 0.3 + 0.1 * torch.randn(clean.shape, generator=generator, dtype=torch.float64)
    expected = [structural_similarity(*norm_minmse(g[0].numpy(), p[0].numpy()), data_range=1.0, gaussian_weights=True,
                                      sigma=1.5, use_sample_covariance=False) for g, p in zip(clean, pred)]
    np.testing.assert_allclose(NormMinMSEProtocol(data_range=1.0).ssim(pred, clean).numpy(), expected, rtol=0, atol=1e-12)


def test_norm_minmse_matches_the_official_formula_and_ignores_affine_changes():
    generator = torch.Generator().manual_seed(0)
    clean = torch.rand(2, 1, 4, 9, 11, generator=generator, dtype=torch.float64)
    pred = 0.4 * clean + 0.3 + 0.1 * torch.randn(clean.shape, generator=generator, dtype=torch.float64)
    protocol = NormMinMSEProtocol(data_range=1.0)
    scores = protocol.psnr(pred, clean)
    expected = [official_psnr(g.numpy(), p.numpy()) for g, p in zip(clean, pred)]
    torch.testing.assert_close(scores, torch.tensor(expected, dtype=torch.float64))
    torch.testing.assert_close(protocol.psnr(5 * pred - 2, clean), scores)
    torch.testing.assert_close(protocol.psnr(-0.5 * pred + 9, clean), scores)
    # The fit applies to every method, the Input row (scored without rescaling elsewhere) included.
    torch.testing.assert_close(protocol.psnr(pred, clean, transform=False), scores)
    as_is = peak_signal_noise_ratio(pred, clean, data_range=1.0, reduction="none", dim=(1, 2, 3, 4))
    assert (as_is < scores).all()


def test_input_psnr_falls_from_c1_to_c3(data_dir):
    dataset = Planaria(data_dir=data_dir)
    noisy_input = METHODS.get("input")()
    means = [evaluate(noisy_input.denoise, dataset.eval_dataloader(name), dataset.protocol).mean
             for name in dataset.test_sets]
    assert means[0] > means[1] > means[2]


def test_a_corrupt_volume_is_one_line_naming_it(data_dir):
    path = data_dir / TEST_DIR / "condition_3" / f"{fixture.TEST_NAMES[1]}.tif"
    path.write_bytes(path.read_bytes()[:100])
    with pytest.raises(DataFileError) as error:
        Planaria(data_dir=data_dir).splits
    one_line_naming(error, path)


def test_a_corrupt_training_file_is_one_line_naming_it(data_dir):
    path = data_dir / TRAIN_FILE
    path.write_bytes(b"not an npz archive\n" * 10)
    with pytest.raises(DataFileError) as error:
        Planaria(data_dir=data_dir).splits
    one_line_naming(error, path)


def test_a_missing_volume_is_one_line_naming_it(data_dir):
    path = data_dir / TEST_DIR / "condition_2" / f"{fixture.TEST_NAMES[0]}.tif"
    path.unlink()
    with pytest.raises(MissingDataError) as error:
        Planaria(data_dir=data_dir).splits
    one_line_naming(error, path)


def test_a_missing_training_file_is_one_line_naming_it(data_dir):
    (data_dir / TRAIN_FILE).unlink()
    with pytest.raises(MissingDataError) as error:
        Planaria(data_dir=data_dir).check_files()
    one_line_naming(error, data_dir / TRAIN_FILE)


def test_without_y_self_supervision_runs_unvalidated_and_supervision_is_refused(data_dir):
    path = data_dir / TRAIN_FILE
    np.savez(path, X=np.load(path)["X"], axes="SCZYX")
    dataset = Planaria(data_dir=data_dir, train_keys=frozenset({"noisy"}), batch_size=2, patch_size=(16, 64, 64))
    assert dataset.val_dataloader() == [] and next(iter(dataset.train_dataloader()))["noisy"].shape[0] == 2
    with pytest.raises(ConfigError, match="has no 'Y'") as error:
        Planaria(data_dir=data_dir, train_keys=METHODS.get("noise2true").train_keys).splits
    one_line_naming(error, path)
