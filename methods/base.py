"""The two kinds of denoiser every method is: trainable (a LightningModule on the shared backbone) or
classical (denoise only). Both expose `denoise(noisy) -> estimate` in the data's own units, which is all
the shared evaluation calls."""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any, ClassVar, Sequence

import numpy as np
import pytorch_lightning as pl
import torch
import torch.nn.functional as F
from torch import Tensor

from methods.tiling import tiled
from methods.unet import UNet, UNetConfig

LossTerms = dict[str, Tensor]


def standardize(x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """z = (x - mean) / std per sample and channel over the spatial axes (ddof 0, std floored at 1e-6)."""
    axes = tuple(range(2, x.dim()))
    mean = x.mean(dim=axes, keepdim=True)
    std = x.std(dim=axes, keepdim=True, unbiased=False).clamp(min=1e-6)
    return (x - mean) / std, mean, std


class MethodTraits:
    """What the runner knows of a method before building it, and which datasets it applies to."""

    trainable: ClassVar[bool] = False
    # Batch keys the method may see in training; the datamodule serves only these.
    train_keys: ClassVar[frozenset[str]] = frozenset()
    supports_3d: ClassVar[bool] = True
    # True for methods that need purely Gaussian noise of known std (the runner passes gaussian_sigma).
    requires_gaussian_sigma: ClassVar[bool] = False
    # True to score the output as it is, without the protocol's prediction transform (min-max
    # rescaling): the paper scores its Input row on the raw noisy image.
    scored_as_is: ClassVar[bool] = False
    # True for methods that denoise image by image on one CPU core: evaluation spreads images over cores.
    parallel_images: ClassVar[bool] = False
    # False for methods whose output changes in its last bits from run to run (a library that sums in
    # parallel threads in no fixed order): `rescore` then allows a looser PSNR match.
    bit_reproducible: ClassVar[bool] = True

    def given_noise(self, noise: Any) -> None:
        """The noise model of the test set about to be denoised, where the dataset knows it (else None);
        a method that uses the noise level keeps it, the others ignore it."""

    def given_statistics(self, statistics: tuple[Tensor, Tensor] | None) -> None:
        """(mean, std) per channel of the whole test set about to be denoised, to standardise every image
        with instead of its own (the official HanZi test), or None for per-image statistics; a method
        that standardises its input keeps them, the others ignore them."""

    @classmethod
    def not_applicable_to(cls, dataset: Any) -> str | None:
        """Why the method cannot run on `dataset` (a datamodule), or None when it can."""
        missing = sorted(cls.train_keys - dataset.provides)
        if missing:
            return f"needs {' and '.join(missing)} images for training, which {dataset.name} does not have"
        if dataset.spatial_dims == 3 and not cls.supports_3d:
            return "works on 2-D images only"
        if cls.requires_gaussian_sigma and dataset.gaussian_sigma is None:
            return f"needs Gaussian noise of known std; the noise of {dataset.name} is not Gaussian"
        return None


class ClassicalDenoiser(MethodTraits, ABC):
    """A method without training: `denoise_image` maps one (C, *S) float64 array to its estimate."""

    parallel_images: ClassVar[bool] = True

    def denoise(self, noisy: Tensor, tile: Sequence[int | None] | None = None) -> Tensor:
        """Apply `denoise_image` to each image of a (B, C, *S) batch; same shape, dtype and device
        (images are processed whole: `tile` is for networks)."""
        images = noisy.detach().cpu().double().numpy()
        return torch.from_numpy(np.stack([self.denoise_image(image) for image in images])).to(noisy)

    @abstractmethod
    def denoise_image(self, image: np.ndarray) -> np.ndarray:
        """Estimate of the clean (C, *S) image from the noisy one."""


class TrainableDenoiser(MethodTraits, pl.LightningModule):
    """Shared base of the trainable methods.

    It owns the backbone, per-sample standardisation, the optimiser (Adam, learning rate halved every
    `lr_halving_steps`), the seeded generator for masks, validation PSNR by the dataset's protocol
    and sample images. A subclass writes `training_loss` and, where inference is not one forward
    pass, `denoise_standardized`.
    """

    trainable: ClassVar[bool] = True
    train_keys: ClassVar[frozenset[str]] = frozenset({"noisy"})
    # Network passes over the batch per training step (for cost estimates).
    forward_passes: ClassVar[int] = 1
    n_samples_logged: ClassVar[int] = 3
    # Per-sample standardisation of inputs (Theorem 1's setting); a method may offer raw values instead.
    standardizes: bool = True

    def __init__(self, *, in_channels: int = 1, spatial_dims: int = 2, backbone: UNetConfig = UNetConfig(),
                 seed: int = 0, lr: float = 4e-4, lr_halving_steps: int = 5000) -> None:
        super().__init__()
        self.net = self.build_network(in_channels, spatial_dims, backbone)
        self.spatial_dims = spatial_dims
        self.backbone = backbone
        self.size_multiple = backbone.size_multiple
        self.seed = seed
        self.lr = lr
        self.lr_halving_steps = lr_halving_steps
        self.memory_format = torch.contiguous_format
        self._generator: torch.Generator | None = None

    def accelerate(self, channels_last: bool = False, compile: bool | str = False) -> None:
        """Speed options that leave the maths alone: keep the network's weights and inputs in
        channels_last (channels_last_3d for volumes) memory format; compile the network in place with
        torch.compile's default backend (True) or the one named (nn.Module.compile, so parameter names
        and checkpoints stay the same)."""
        if channels_last:
            self.memory_format = torch.channels_last if self.spatial_dims == 2 else torch.channels_last_3d
            self.net.to(memory_format=self.memory_format)
        if compile:
            self.net.compile(**({} if compile is True else {"backend": compile}))

    def build_network(self, in_channels: int, spatial_dims: int, backbone: UNetConfig) -> torch.nn.Module:
        """The shared U-Net mapping C channels to C channels."""
        return UNet(in_channels, in_channels, spatial_dims, backbone)

    @abstractmethod
    def training_loss(self, batch: dict[str, Tensor]) -> tuple[Tensor, LossTerms]:
        """The loss to minimise on a training batch and its named terms (logged)."""

    # --- inference -------------------------------------------------------------------------------
    def forward(self, z: Tensor) -> Tensor:
        """Network output for a standardised input whose spatial size suits the backbone."""
        return self.net(z.contiguous(memory_format=self.memory_format))

    def padded_forward(self, z: Tensor) -> Tensor:
        """forward on an input of any size: reflect-pad the end of each spatial axis to the backbone's
        multiple, then crop (padding only at the end keeps the down-sampling grid on the origin, so
        tiles of an image line up with the whole)."""
        sizes = z.shape[2:]
        extras = [-size % self.size_multiple for size in sizes]
        padded = F.pad(z, [amount for extra in reversed(extras) for amount in (0, extra)], mode="reflect") \
            if any(extras) else z
        return self(padded)[(..., *[slice(0, size) for size in sizes])]

    @property
    def receptive_margin(self) -> int:
        """Overlap that tiled inference gives each tile: the backbone's receptive radius."""
        return self.backbone.receptive_radius()

    def network_output(self, z: Tensor, tile: Sequence[int | None] | None = None) -> Tensor:
        """The network's output for a standardised input of any size, in overlapping tiles if `tile` is
        given (same result as whole, up to rounding)."""
        if tile is None:
            return self.padded_forward(z)
        return tiled(self.padded_forward, z, tile, self.receptive_margin, self.size_multiple)

    def normalize(self, x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """(z, mean, std) with x = z * std + mean: `standardize(x)`, or z = x (mean 0, std 1) for a
        method that works on raw values."""
        if self.standardizes:
            return standardize(x)
        ones = torch.ones((*x.shape[:2], *[1] * (x.dim() - 2)), dtype=x.dtype, device=x.device)
        return x, ones - 1, ones

    def denoise_standardized(self, z: Tensor, tile: Sequence[int | None] | None = None, *, std: Tensor) -> Tensor:
        """Estimate of the standardised clean image for z = (x - mean) / std; f(z) by default. `std`, the
        (B, C, 1, ...) stds of x, gives the data's noise level in standardised units to methods that need it."""
        return self.network_output(z, tile)

    def given_statistics(self, statistics: tuple[Tensor, Tensor] | None) -> None:
        self.test_statistics = statistics

    def test_normalize(self, x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """`normalize(x)`, or, where the test set's statistics were given and the method standardises,
        z = (x - mean) / std with the set's per-channel mean and std, broadcast as (B, C, 1, ...)."""
        statistics = getattr(self, "test_statistics", None)
        if statistics is None or not self.standardizes:
            return self.normalize(x)
        shape = (*x.shape[:2], *[1] * (x.dim() - 2))
        mean, std = (value.to(x).view(1, -1, *shape[2:]).expand(shape) for value in statistics)
        return (x - mean) / std, mean, std

    @torch.no_grad()
    def denoise(self, noisy: Tensor, tile: Sequence[int | None] | None = None) -> Tensor:
        """Estimate of the clean image in the data's units: standardise (whole-image statistics, or
        the test set's where given), denoise (in tiles if `tile` is given), undo the standardisation."""
        z, mean, std = self.test_normalize(noisy.to(self.device, torch.float32))
        return (self.denoise_standardized(z, tile, std=std) * std + mean).to(noisy)

    # --- training --------------------------------------------------------------------------------
    def standardized(self, batch: dict[str, Tensor]) -> dict[str, Tensor]:
        """Every image of the batch standardised with the noisy input's statistics (shared units)."""
        _, mean, std = self.normalize(batch["noisy"])
        return {key: (value - mean) / std for key, value in batch.items()}

    def generator(self, device: torch.device) -> torch.Generator:
        """The method's seeded generator on `device` (masks and replacements draw from it)."""
        if self._generator is None or self._generator.device != device:
            self._generator = torch.Generator(device=device).manual_seed(self.seed + 1_000_003 * self.global_rank)
        return self._generator

    def training_step(self, batch: dict[str, Tensor], batch_idx: int) -> Tensor:
        unexpected = set(batch) - self.train_keys
        if unexpected:
            raise RuntimeError(f"{type(self).__name__} got {sorted(unexpected)} in a training batch; "
                               f"it may only see {sorted(self.train_keys)}")
        loss, terms = self.training_loss(batch)
        batch_size = len(batch["noisy"])
        self.log("train/loss", loss, prog_bar=True, batch_size=batch_size)
        self.log_dict({f"train/{name}": value for name, value in terms.items()}, batch_size=batch_size)
        return loss

    def configure_optimizers(self) -> Any:
        optimizer = torch.optim.Adam(self.parameters(), lr=self.lr)
        schedule = torch.optim.lr_scheduler.StepLR(optimizer, step_size=self.lr_halving_steps, gamma=0.5)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": schedule, "interval": "step"}}

    # --- validation ------------------------------------------------------------------------------
    def validation_step(self, batch: dict[str, Tensor], batch_idx: int) -> None:
        protocol = self.trainer.datamodule.protocol
        estimate = self.denoise(batch["noisy"])
        psnr = protocol.psnr(estimate, batch["clean"])
        self.log("val/psnr", psnr.mean(), prog_bar=True, batch_size=len(psnr))
        if batch_idx == 0 and hasattr(self.logger, "log_image"):
            count = min(self.n_samples_logged, len(psnr))
            strips = [protocol.sample_strip(batch["noisy"][i], estimate[i], batch["clean"][i]) for i in range(count)]
            captions = [f"noisy | denoised | clean, PSNR {psnr[i]:.2f} dB" for i in range(count)]
            self.logger.log_image(key="val/samples", images=strips, caption=captions, step=self.global_step)
