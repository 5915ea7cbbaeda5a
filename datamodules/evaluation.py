"""Evaluation: each dataset's scoring protocol (data range, clipping, rescaling), PSNR and SSIM by it,
and the scoring loop."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Iterable, Iterator, Sequence, Sized

import numpy as np
import torch
from joblib import Parallel, delayed, parallel_config
from torch import Tensor
import torch.nn.functional as F
from torchmetrics.functional.image import peak_signal_noise_ratio
from tqdm.auto import tqdm

from datamodules.crops import ImageCrop, crop_image

# SSIM (Wang et al. 2004) with torchmetrics' defaults: a Gaussian window of sigma 1.5, cut at 3.5 sigma
# (11 taps per axis), K1 = 0.01, K2 = 0.03.
SSIM_SIGMA = 1.5
SSIM_WINDOW = 11
SSIM_K = (0.01, 0.03)


def ssim_sigmas(shape: Sequence[int]) -> list[float]:
    """The Gaussian's sigma on each spatial axis: SSIM_SIGMA, except on an axis of n < 6 pixels, too short
    to reflect by half a window: max((n - 1) / 3.5, 0.1), a window of at most 2n - 1 taps."""
    return [SSIM_SIGMA if n > SSIM_WINDOW // 2 else max((n - 1) / 3.5, 0.1) for n in shape]


def gaussian_window(sigma: float) -> list[float]:
    """torchmetrics' 1-D window: w_t = exp(-t^2 / (2 sigma^2)) / sum, t = -r..r, r = int(3.5 sigma + 0.5)."""
    radius = int(3.5 * sigma + 0.5)
    weights = torch.exp(-(torch.arange(-radius, radius + 1, dtype=torch.float64) / sigma) ** 2 / 2)
    return (weights / weights.sum()).tolist()


def gaussian_filtered(x: Tensor, sigmas: Sequence[float]) -> Tensor:
    """x (B, C, *S) convolved with the separable window g_1 x ... x g_d over its spatial axes, each axis
    reflected by the window's radius first (torchmetrics' padding): the same shape."""
    for axis, sigma in enumerate(sigmas, start=2):
        window = gaussian_window(sigma)
        lines = x.movedim(axis, -1)
        length = lines.shape[-1]
        radius = len(window) // 2
        padded = F.pad(lines.reshape(-1, 1, length), (radius, radius), mode="reflect").view(*lines.shape[:-1], -1)
        x = sum(weight * padded[..., k:k + length] for k, weight in enumerate(window)).movedim(-1, axis)
    return x


def ssim_map(estimate: Tensor, reference: Tensor, data_range: float) -> Tensor:
    """SSIM at each position of a (B, C, *S) batch, the same shape: with mu, s^2, s_xy the local means,
    variances (clamped at 0) and covariance under the Gaussian window (no sample correction),
    SSIM = (2 mu_x mu_y + C1)(2 s_xy + C2) / ((mu_x^2 + mu_y^2 + C1)(s_x^2 + s_y^2 + C2)), C_i = (K_i R)^2.

    This is torchmetrics' structural_similarity_index_measure(..., return_full_image=True) map (the tests
    hold it to 1e-12), computed with the window's separability: 3 x 11 taps a voxel instead of 11^3, and no
    unfolded copy of every window (torchmetrics' float64 3-D SSIM takes 8 GB for one 16x96x96 volume).
    """
    sigmas = ssim_sigmas(estimate.shape[2:])
    mu_x, mu_y, xx, yy, xy = (gaussian_filtered(term, sigmas) for term in (
        estimate, reference, estimate * estimate, reference * reference, estimate * reference))
    c1, c2 = ((k * data_range) ** 2 for k in SSIM_K)
    var_x = (xx - mu_x ** 2).clamp(min=0)
    var_y = (yy - mu_y ** 2).clamp(min=0)
    covariance = xy - mu_x * mu_y
    return (2 * mu_x * mu_y + c1) * (2 * covariance + c2) / ((mu_x ** 2 + mu_y ** 2 + c1) * (var_x + var_y + c2))


def ssim_per_image(estimate: Tensor, reference: Tensor, data_range: float) -> Tensor:
    """Per-image SSIM of a (B, C, H, W) or (B, C, D, H, W) batch, shape (B,): the mean of `ssim_map` over
    channels and positions; a volume is scored in 3-D as one array.

    Positions within half a window of the border are left out, as scikit-image's structural_similarity
    does (torchmetrics averages them too, computed on reflected padding); along an axis shorter than the
    window every position counts (scikit-image refuses such images; see `ssim_sigmas` for the shortest).
    """
    full = ssim_map(estimate, reference, data_range)
    margin = SSIM_WINDOW // 2
    inside = tuple(slice(margin, n - margin) if n >= SSIM_WINDOW else slice(None) for n in full.shape[2:])
    return full[(slice(None), slice(None), *inside)].flatten(1).mean(1)


@dataclass(frozen=True)
class PSNRProtocol:
    """PSNR_i = 10 log10(R^2 / mean((T(pred_i) - clean_i)^2)) and SSIM_i = ssim(T(pred_i), clean_i, R) for
    each image i, in float64, both on the same pair of arrays (`pair`).

    T rescales the prediction to [0, R] by its own min and max when `minmax` (the official code's
    HanZi/ImageNet protocol), then clips it to [0, R] when `clip`; otherwise T is the identity.
    """

    data_range: float
    clip: bool = False
    minmax: bool = False

    def transform(self, pred: Tensor) -> Tensor:
        """T(pred) for a (B, C, *S) batch, each image rescaled on its own (jointly over channels)."""
        pred = pred.double()
        if self.minmax:
            flat = pred.flatten(1)
            low = flat.amin(1).view(-1, *[1] * (pred.dim() - 1))
            high = flat.amax(1).view_as(low)
            pred = (pred - low) / (high - low).clamp(min=1e-12) * self.data_range
        if self.clip:
            pred = pred.clamp(0, self.data_range)
        return pred

    def pair(self, pred: Tensor, clean: Tensor, transform: bool = True) -> tuple[Tensor, Tensor]:
        """(T(pred), clean) of a (B, C, *S) batch in float64 on pred's device, the arrays PSNR and SSIM
        score; `transform=False` leaves the prediction as it is (the paper's Input row)."""
        return self.transform(pred) if transform else pred.double(), clean.to(pred.device).double()

    def psnr(self, pred: Tensor, clean: Tensor, transform: bool = True) -> Tensor:
        """Per-image PSNR of a (B, C, *S) batch, shape (B,), through torchmetrics."""
        estimate, reference = self.pair(pred, clean, transform)
        return peak_signal_noise_ratio(estimate, reference, data_range=self.data_range,
                                       reduction="none", dim=tuple(range(1, estimate.dim())))

    def ssim(self, pred: Tensor, clean: Tensor, transform: bool = True) -> Tensor:
        """Per-image SSIM of a (B, C, *S) batch, shape (B,), on the arrays PSNR scores (see `ssim_per_image`)."""
        return ssim_per_image(*self.pair(pred, clean, transform), self.data_range)

    def to_uint8(self, image: Tensor) -> np.ndarray:
        """A (C, *S) image as uint8 for display: [0, R] mapped to [0, 255], clipped."""
        scaled = (image.detach().double().cpu() / self.data_range).clamp(0, 1) * 255
        return scaled.round().to(torch.uint8).numpy()

    def displayed(self, noisy: Tensor, estimate: Tensor, clean: Tensor, transform: bool = True) -> list[np.ndarray]:
        """[noisy, T(estimate), clean] as uint8 (C, *S) arrays (the estimate as it is when not `transform`)."""
        shown = self.transform(estimate[None])[0] if transform else estimate
        return [self.to_uint8(x) for x in (noisy, shown, clean)]

    def sample_panels(self, noisy: Tensor, estimate: Tensor, clean: Tensor, transform: bool = True) -> list[np.ndarray]:
        """[noisy, T(estimate), clean] as uint8 (H, W) or (H, W, 3) pictures (the estimate as it is when
        not `transform`); 3-D volumes show their middle slice."""
        panels = self.displayed(noisy, estimate, clean, transform)
        if panels[0].ndim == 4:
            panels = [p[:, p.shape[1] // 2] for p in panels]
        return [p[0] if p.shape[0] == 1 else p.transpose(1, 2, 0) for p in panels]

    def sample_strip(self, noisy: Tensor, estimate: Tensor, clean: Tensor) -> np.ndarray:
        """noisy | T(estimate) | clean side by side as one uint8 (H, 3W) or (H, 3W, 3) picture."""
        return np.concatenate(self.sample_panels(noisy, estimate, clean), axis=1)


@dataclass
class Evaluation:
    """Per-image PSNR and SSIM of one denoiser on one split, in the loader's order; `samples`: id -> the
    sample_panels of the first images, where asked; `crops`: the gallery's crops of the first distinct
    clean images, where asked."""

    ids: list[str]
    psnr: list[float]
    ssim: list[float]
    samples: dict[str, list[np.ndarray]] = field(default_factory=dict)
    crops: list[ImageCrop] = field(default_factory=list)

    @property
    def mean(self) -> float:
        """The table's figure: the mean over images of the per-image PSNR."""
        return float(np.mean(self.psnr))


IDLE_WORKER_SECONDS = 5


def evaluate(denoise: Callable[[Tensor], Tensor], loader: Iterable[dict], protocol: PSNRProtocol,
             description: str = "test", transform: bool = True, workers: int = 1, keep: int = 0,
             crops: int = 0) -> Evaluation:
    """Denoise every image of the loader once and score it (PSNR and SSIM) by the protocol; keep the
    sample panels of the first `keep` images and the crops (datamodules.crops) of the first `crops`
    distinct clean images (an image under several noise draws is cropped once).

    workers: 1 denoises in this process (a network on its one device); n > 1 (or -1: every core)
    farms the batches out to that many joblib worker processes, for CPU-bound classical methods.
    """
    def denoised() -> Iterator[tuple[dict, Tensor]]:
        if workers == 1:
            for batch in loader:
                yield batch, denoise(batch["noisy"])
        else:
            batches = list(loader)
            # Idle workers leave after a few seconds, not joblib's 300: a process that ends (a worker of
            # cells run side by side) waits for them.
            with parallel_config(backend="loky", idle_worker_timeout=IDLE_WORKER_SECONDS):
                yield from zip(batches, Parallel(n_jobs=workers, return_as="generator")(
                    delayed(denoise)(batch["noisy"]) for batch in batches))

    ids: list[str] = []
    psnr: list[float] = []
    ssim: list[float] = []
    samples: dict[str, list[np.ndarray]] = {}
    kept: list[ImageCrop] = []
    total = len(loader) if isinstance(loader, Sized) else None
    for batch, estimate in tqdm(denoised(), total=total, desc=description, leave=False, unit="batch"):
        ids.extend(batch["id"])
        psnr.extend(protocol.psnr(estimate, batch["clean"], transform).tolist())
        ssim.extend(protocol.ssim(estimate, batch["clean"], transform).tolist())
        for i, image_id in enumerate(batch["id"][:max(0, keep - len(samples))]):
            samples[image_id] = protocol.sample_panels(batch["noisy"][i], estimate[i], batch["clean"][i], transform)
        for i, image_id in enumerate(batch["id"]):
            if len(kept) < crops:
                crop = crop_image(protocol, image_id, batch["noisy"][i], estimate[i], batch["clean"][i], transform)
                if not any(np.array_equal(crop.clean, other.clean) for other in kept):
                    kept.append(crop)
    return Evaluation(ids, psnr, ssim, samples, crops=kept)
