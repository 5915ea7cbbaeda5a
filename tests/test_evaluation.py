import numpy as np
import pytest
import torch
from skimage.metrics import peak_signal_noise_ratio

from datamodules.evaluation import PSNRProtocol, evaluate


def test_psnr_matches_scikit_image_per_image():
    rng = np.random.default_rng(0)
    clean = rng.uniform(0, 255, (3, 1, 17, 23))
    pred = clean + rng.normal(0, 20, clean.shape)
    ours = PSNRProtocol(255.0).psnr(torch.from_numpy(pred), torch.from_numpy(clean))
    reference = [peak_signal_noise_ratio(clean[i], pred[i], data_range=255) for i in range(3)]
    np.testing.assert_allclose(ours.numpy(), reference, atol=1e-5)  # torchmetrics keeps R in float32


def test_minmax_and_clip_transform_the_prediction_only():
    pred = torch.tensor([[[[-1.0, 0.5], [2.0, 3.0]]]])
    np.testing.assert_allclose(PSNRProtocol(1.0, minmax=True).transform(pred).flatten(), [0, 0.375, 0.75, 1])
    np.testing.assert_allclose(PSNRProtocol(1.0, clip=True).transform(pred).flatten(), [0, 0.5, 1, 1])
    clean = torch.tensor([[[[0.0, 0.375], [0.75, 1.0]]]])
    assert torch.isinf(PSNRProtocol(1.0, minmax=True).psnr(pred, clean)).all()


def test_evaluate_averages_per_image_and_keeps_every_value():
    clean = torch.zeros(4, 1, 4, 4)
    noisy = clean + torch.tensor([0.1, 0.1, 0.01, 0.01]).view(4, 1, 1, 1)
    loader = [{"noisy": noisy[:2], "clean": clean[:2], "id": ["a", "b"]},
              {"noisy": noisy[2:], "clean": clean[2:], "id": ["c", "d"]}]
    result = evaluate(lambda x: x, loader, PSNRProtocol(1.0))
    assert result.ids == ["a", "b", "c", "d"]
    np.testing.assert_allclose(result.psnr, [20, 20, 40, 40])
    assert result.mean == pytest.approx(30)  # mean of per-image PSNR, not PSNR of the mean MSE


def test_sample_strip_is_uint8_and_not_blank():
    protocol = PSNRProtocol(255.0)
    clean = torch.linspace(0, 255, 64).view(1, 8, 8)
    strip = protocol.sample_strip(clean + 10, clean, clean)
    assert strip.dtype == np.uint8 and strip.shape == (8, 24) and strip.std() > 10


def test_scoring_as_is_skips_the_prediction_transform():
    clean = torch.tensor([[[[0.0, 0.5], [0.5, 1.0]]]])
    noisy = torch.tensor([[[[0.2, 0.5], [0.5, 0.8]]]])  # min-max rescaling would map it onto clean
    protocol = PSNRProtocol(1.0, minmax=True)
    assert protocol.psnr(noisy, clean).item() > 100  # exact up to rounding
    raw = protocol.psnr(noisy, clean, transform=False)
    assert raw.item() == pytest.approx(10 * np.log10(1 / (0.08 / 4)))


class RecordingNLM:
    """nlm that notes the process each batch ran in (picklable: joblib sends it to its workers)."""

    def __init__(self, folder):
        from methods.classical import NonLocalMeans
        self.folder, self.nlm = folder, NonLocalMeans()

    def __call__(self, noisy):
        import os
        (self.folder / f"{os.getpid()}-{noisy.sum().item():.6f}").touch()
        return self.nlm.denoise(noisy)


def test_parallel_evaluation_scores_the_same_in_other_processes(tmp_path):
    import os
    rng = np.random.default_rng(0)
    clean = torch.from_numpy(rng.uniform(0, 1, (6, 1, 24, 24)))
    noisy = clean + 0.1 * torch.from_numpy(rng.normal(size=clean.shape))
    loader = [{"noisy": noisy[i:i + 1], "clean": clean[i:i + 1], "id": [str(i)]} for i in range(6)]
    serial = evaluate(RecordingNLM(tmp_path), loader, PSNRProtocol(1.0))
    parallel = evaluate(RecordingNLM(tmp_path), loader, PSNRProtocol(1.0), workers=2)
    assert parallel.ids == serial.ids and parallel.psnr == serial.psnr
    pids = {int(path.name.split("-")[0]) for path in tmp_path.iterdir()}
    assert os.getpid() in pids and len(pids - {os.getpid()}) >= 1  # batches went to worker processes
