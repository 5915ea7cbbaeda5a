"""Evaluation: each dataset's PSNR protocol (data range, clipping, rescaling) and the scoring loop."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Iterable

import numpy as np
import torch
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

    def sample_strip(self, noisy: Tensor, estimate: Tensor, clean: Tensor) -> np.ndarray:
        """noisy | T(estimate) | clean side by side as one uint8 (H, 3W) or (H, 3W, 3) picture;
        3-D volumes show their middle slice."""
        shown = self.transform(estimate[None])[0]
        panels = [self.to_uint8(x) for x in (noisy, shown, clean)]
        if panels[0].ndim == 4:
            panels = [p[:, p.shape[1] // 2] for p in panels]
        strip = np.concatenate(panels, axis=-1)
        return strip[0] if strip.shape[0] == 1 else strip.transpose(1, 2, 0)


@dataclass
class Evaluation:
    """Per-image PSNR of one denoiser on one split, in the loader's order."""

    ids: list[str]
    psnr: list[float]

    @property
    def mean(self) -> float:
        """The table's figure: the mean over images of the per-image PSNR."""
        return float(np.mean(self.psnr))


def evaluate(denoise: Callable[[Tensor], Tensor], loader: Iterable[dict], protocol: PSNRProtocol,
             description: str = "test", transform: bool = True) -> Evaluation:
    """Denoise every image of the loader once and score it by the protocol (one process, one device)."""
    ids: list[str] = []
    scores: list[float] = []
    for batch in tqdm(loader, desc=description, leave=False, unit="batch"):
        estimate = denoise(batch["noisy"])
        ids.extend(batch["id"])
        scores.extend(protocol.psnr(estimate, batch["clean"], transform).tolist())
    return Evaluation(ids, scores)
