"""Evaluation: each dataset's PSNR protocol (data range, clipping, rescaling) and the scoring loop."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Iterable, Iterator, Sized

import numpy as np
import torch
from joblib import Parallel, delayed, parallel_config
from torch import Tensor
from torchmetrics.functional.image import peak_signal_noise_ratio
from tqdm.auto import tqdm


@dataclass(frozen=True)
class PSNRProtocol:
    """PSNR_i = 10 log10(R^2 / mean((T(pred_i) - clean_i)^2)) for each image i, in float64.

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

    def psnr(self, pred: Tensor, clean: Tensor, transform: bool = True) -> Tensor:
        """Per-image PSNR of a (B, C, *S) batch, shape (B,), through torchmetrics; `transform=False`
        scores the prediction as it is (the paper's Input row)."""
        clean = clean.to(pred.device).double()
        pred = self.transform(pred) if transform else pred.double()
        return peak_signal_noise_ratio(pred, clean, data_range=self.data_range,
                                       reduction="none", dim=tuple(range(1, pred.dim())))

    def to_uint8(self, image: Tensor) -> np.ndarray:
        """A (C, *S) image as uint8 for display: [0, R] mapped to [0, 255], clipped."""
        scaled = (image.detach().double().cpu() / self.data_range).clamp(0, 1) * 255
        return scaled.round().to(torch.uint8).numpy()

    def sample_panels(self, noisy: Tensor, estimate: Tensor, clean: Tensor, transform: bool = True) -> list[np.ndarray]:
        """[noisy, T(estimate), clean] as uint8 (H, W) or (H, W, 3) pictures (the estimate as it is when
        not `transform`); 3-D volumes show their middle slice."""
        shown = self.transform(estimate[None])[0] if transform else estimate
        panels = [self.to_uint8(x) for x in (noisy, shown, clean)]
        if panels[0].ndim == 4:
            panels = [p[:, p.shape[1] // 2] for p in panels]
        return [p[0] if p.shape[0] == 1 else p.transpose(1, 2, 0) for p in panels]

    def sample_strip(self, noisy: Tensor, estimate: Tensor, clean: Tensor) -> np.ndarray:
        """noisy | T(estimate) | clean side by side as one uint8 (H, 3W) or (H, 3W, 3) picture."""
        return np.concatenate(self.sample_panels(noisy, estimate, clean), axis=1)


@dataclass
class Evaluation:
    """Per-image PSNR of one denoiser on one split, in the loader's order; `samples`: id -> the
    sample_panels of the first images, where asked."""

    ids: list[str]
    psnr: list[float]
    samples: dict[str, list[np.ndarray]] = field(default_factory=dict)

    @property
    def mean(self) -> float:
        """The table's figure: the mean over images of the per-image PSNR."""
        return float(np.mean(self.psnr))


IDLE_WORKER_SECONDS = 5


def evaluate(denoise: Callable[[Tensor], Tensor], loader: Iterable[dict], protocol: PSNRProtocol,
             description: str = "test", transform: bool = True, workers: int = 1, keep: int = 0) -> Evaluation:
    """Denoise every image of the loader once and score it by the protocol; keep the sample panels of
    the first `keep` images.

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
    scores: list[float] = []
    samples: dict[str, list[np.ndarray]] = {}
    total = len(loader) if isinstance(loader, Sized) else None
    for batch, estimate in tqdm(denoised(), total=total, desc=description, leave=False, unit="batch"):
        ids.extend(batch["id"])
        scores.extend(protocol.psnr(estimate, batch["clean"], transform).tolist())
        for i, image_id in enumerate(batch["id"][:max(0, keep - len(samples))]):
            samples[image_id] = protocol.sample_panels(batch["noisy"][i], estimate[i], batch["clean"][i], transform)
    return Evaluation(ids, scores, samples)
