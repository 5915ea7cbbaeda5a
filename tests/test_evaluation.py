import numpy as np
import pytest
import torch
from skimage.metrics import peak_signal_noise_ratio, structural_similarity
from torchmetrics.functional.image import structural_similarity_index_measure

from datamodules.evaluation import PSNRProtocol, evaluate, ssim_map, ssim_per_image


def test_psnr_matches_scikit_image_per_image():
    rng = np.random.default_rng(0)
    clean = rng.uniform(0, 255, (3, 1, 17, 23))
    pred = clean + rng.normal(0, 20, clean.shape)
    ours = PSNRProtocol(255.0).psnr(torch.from_numpy(pred), torch.from_numpy(clean))
    reference = [peak_signal_noise_ratio(clean[i], pred[i], data_range=255) for i in range(3)]
    np.testing.assert_allclose(ours.numpy(), reference, atol=1e-5)  # torchmetrics keeps R in float32


@pytest.mark.parametrize("shape, channel_axis", [((3, 1, 37, 29), None), ((2, 3, 40, 33), 0), ((2, 1, 13, 30, 27), None)],
                         ids=["2-D grey", "2-D RGB", "3-D"])
def test_ssim_matches_scikit_image_per_image(shape, channel_axis):
    """scikit-image's structural_similarity with the standard Gaussian settings, on the same arrays, to
    1e-12 (float64 rounding); torchmetrics' own mean, which keeps the border computed on reflected
    padding, is about 1e-3 off on images this small."""
    rng = np.random.default_rng(1)
    clean = rng.uniform(0, 255, shape)
    pred = clean + rng.normal(0, 40, shape)
    ours = ssim_per_image(torch.from_numpy(pred), torch.from_numpy(clean), 255.0).numpy()
    reference = [structural_similarity(clean[i] if channel_axis is not None else clean[i, 0],
                                       pred[i] if channel_axis is not None else pred[i, 0], data_range=255.0,
                                       gaussian_weights=True, sigma=1.5, use_sample_covariance=False,
                                       channel_axis=channel_axis) for i in range(shape[0])]
    np.testing.assert_allclose(ours, reference, rtol=0, atol=1e-12)
    whole = structural_similarity_index_measure(torch.from_numpy(pred), torch.from_numpy(clean), data_range=255.0,
                                                reduction="none").numpy()
    assert np.abs(whole - reference).max() > 5e-4


@pytest.mark.parametrize("shape", [(2, 1, 37, 29), (2, 3, 40, 33), (2, 1, 13, 30, 27), (1, 1, 8, 16, 16)])
def test_the_ssim_map_is_torchmetrics(shape):
    """Our separable computation gives torchmetrics' SSIM map (return_full_image) at every position, to 1e-12."""
    generator = torch.Generator().manual_seed(3)
    clean = torch.rand(shape, generator=generator, dtype=torch.float64)
    pred = clean + 0.2 * torch.randn(shape, generator=generator, dtype=torch.float64)
    _, reference = structural_similarity_index_measure(pred, clean, data_range=1.0, reduction="none",
                                                       return_full_image=True)
    torch.testing.assert_close(ssim_map(pred, clean, 1.0), reference, rtol=0, atol=1e-12)


def test_ssim_of_images_shorter_than_the_window():
    """Along an axis under 11 pixels every position counts; under 6, the window narrows to fit."""
    rng = np.random.default_rng(2)
    for shape in [(1, 1, 1, 1), (2, 1, 2, 3), (1, 3, 4, 4), (1, 1, 8, 16, 16)]:
        clean = torch.from_numpy(rng.uniform(0, 1, shape))
        np.testing.assert_allclose(ssim_per_image(clean, clean, 1.0).numpy(), 1.0, atol=1e-12)
        noisy = ssim_per_image(clean + 0.2 * torch.from_numpy(rng.normal(size=shape)), clean, 1.0)
        assert ((noisy > 0) & (noisy < 1)).all()


def test_protocol_scores_ssim_on_the_arrays_psnr_scores():
    pred = torch.tensor([[[[-1.0, 0.5, 0.2], [2.0, 3.0, 0.1]]]])
    clean = torch.tensor([[[[0.0, 0.375, 0.1], [0.75, 1.0, 0.0]]]])
    protocol = PSNRProtocol(1.0, minmax=True)
    reference = clean.double()
    torch.testing.assert_close(protocol.ssim(pred, clean), ssim_per_image(protocol.transform(pred), reference, 1.0))
    torch.testing.assert_close(protocol.ssim(pred, clean, transform=False), ssim_per_image(pred.double(), reference, 1.0))


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
    np.testing.assert_allclose(result.ssim, ssim_per_image(noisy.double(), clean.double(), 1.0))
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


def test_set_statistics_standardise_every_test_image_by_the_whole_test_set():
    """statistics "set" (the official HanZi test): one mean and std over every noisy test image and pixel."""
    from benchmark.cell import set_statistics
    from benchmark.spec import UNetConfig
    from methods import METHODS

    images = torch.rand(5, 1, 16, 16, dtype=torch.float64) * torch.arange(1, 6).view(5, 1, 1, 1)
    mean, std = set_statistics([{"noisy": images[:3]}, {"noisy": images[3:]}])
    assert mean.item() == pytest.approx(images.mean().item(), rel=1e-6)
    assert std.item() == pytest.approx(images.std(unbiased=False).item(), rel=1e-6)
    method = METHODS.get("noise2void")(in_channels=1, spatial_dims=2, backbone=UNetConfig(depth=2, base_channels=4))
    method.eval()
    x = images[3:].float()
    per_image = method.denoise(x)
    method.given_statistics((mean, std))
    z = (x - mean.item()) / std.item()
    assert torch.allclose(method.denoise(x), method.network_output(z) * std.item() + mean.item(), atol=1e-5)
    assert not torch.allclose(method.denoise(x), per_image, atol=1e-3)
    method.given_statistics(None)
    assert torch.equal(method.denoise(x), per_image)
