"""Laine, Karras, Lehtinen, Aila (NeurIPS 2019): a blind-spot network trained on noisy images, with or
without a Gaussian prior and Bayesian post-processing.

laine:        L = mean (f(y) - y)^2 over all pixels, f blind at each pixel; inference f(y).
laine_bayes:  f(y) gives a per-pixel Gaussian prior N(mu, Sigma_x) of the clean value from the
              neighbourhood; training maximises the likelihood of y under N(mu, Sigma_x + Sigma_n) and
              inference is the posterior mean E[x | y, mu, Sigma_x] for known Gaussian noise Sigma_n.
"""

from __future__ import annotations

from typing import Any, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

from methods.base import LossTerms, TrainableDenoiser
from methods.blind_spot_network import BlindSpotNetwork
from methods.registry import register_method
from methods.unet import UNetConfig


class BlindSpotDenoiser(TrainableDenoiser):
    """Shared part of the two methods: the blind-spot network, padded with zeros for any input size."""

    forward_passes = 4  # the branch runs on 4 orientations of the batch (6 in 3-D)

    def output_channels(self, in_channels: int) -> int:
        """Channels of the network's output."""
        return in_channels

    def build_network(self, in_channels: int, spatial_dims: int, backbone: UNetConfig) -> torch.nn.Module:
        """The blind-spot network of the backbone's depth, width and batch norm (see `BlindSpotNetwork`)."""
        return BlindSpotNetwork(in_channels, self.output_channels(in_channels), spatial_dims, backbone)

    def padded_forward(self, z: Tensor) -> Tensor:
        """forward on an input of any size: the network zero-pads itself, since the base's reflect padding
        would copy rows next to the border into their own receptive fields."""
        return self(z)

    @property
    def receptive_margin(self) -> int:
        return self.backbone.receptive_radius(blind_spot=True)


@register_method("laine")
class Laine(BlindSpotDenoiser):
    """Blind-spot network without a prior: L = mean (f(y) - y)^2 over all pixels; inference f(y)."""

    def training_loss(self, batch: dict[str, Tensor]) -> tuple[Tensor, LossTerms]:
        y = self.standardized(batch)["noisy"]
        loss = F.mse_loss(self(y), y)
        return loss, {"mse": loss.detach()}


def gaussian_prior(out: Tensor, channels: int) -> tuple[Tensor, Tensor]:
    """Split a (B, C + C(C+1)/2, *S) network output into the prior mean mu (B, *S, C) and covariance
    Sigma_x = A^T A (B, *S, C, C), in float64, channels last. The last C(C+1)/2 channels are the upper
    triangle of A, row by row (grey: Sigma_x = a^2). A is placed by a 0/1 matrix product (exact), which
    keeps the function free of the input's shape, so that traced exports (TorchScript, ONNX) take any size."""
    out = out.double().movedim(1, -1)
    mu, entries = out[..., :channels], out[..., channels:]
    upper = [row * channels + col for row in range(channels) for col in range(row, channels)]
    place = torch.tensor([[float(j == i) for j in range(channels * channels)] for i in upper], dtype=out.dtype,
                         device=out.device)
    a = (entries @ place).unflatten(-1, (channels, channels))
    return mu, a.transpose(-1, -2) @ a


def gaussian_nll(y: Tensor, mu: Tensor, sigma_x: Tensor, noise_var: Tensor) -> Tensor:
    """Mean over pixels of the negative log-likelihood of y under N(mu, Sigma_y), Sigma_y = Sigma_x + diag(noise_var).

    Channels last: y, mu (B, *S, C); sigma_x (B, *S, C, C); noise_var broadcastable to y.
    Grey: (y - mu)^2 / sigma_y^2 + log sigma_y^2. C > 1: 0.5 log det Sigma_y + 0.5 d^T Sigma_y^-1 d, d = y - mu
    (both as in the official code).
    """
    d = y - mu
    if y.shape[-1] == 1:
        var_y = sigma_x[..., 0] + noise_var
        return (d.pow(2) / var_y + var_y.log()).mean()
    chol = torch.linalg.cholesky(sigma_x + torch.diag_embed(noise_var))
    half_log_det = chol.diagonal(dim1=-2, dim2=-1).log().sum(-1)
    white = torch.linalg.solve_triangular(chol, d.unsqueeze(-1), upper=False).squeeze(-1)  # d^T Sigma_y^-1 d = |white|^2
    return (half_log_det + 0.5 * white.pow(2).sum(-1)).mean()


def posterior_mean(y: Tensor, mu: Tensor, sigma_x: Tensor, noise_var: Tensor) -> Tensor:
    """E[x | y] for x ~ N(mu, Sigma_x) and y = x + n, n ~ N(0, diag(noise_var)); shapes as in `gaussian_nll`.

    Grey: (y sigma_x^2 + mu sigma_n^2) / (sigma_x^2 + sigma_n^2).
    C > 1: (Sigma_x^-1 + Sigma_n^-1)^-1 (Sigma_x^-1 mu + Sigma_n^-1 y), with 1e-6 I added before each inverse.
    """
    if y.shape[-1] == 1:
        var_x = sigma_x[..., 0]
        return (y * var_x + mu * noise_var) / (var_x + noise_var)
    eps = 1e-6 * torch.eye(y.shape[-1], dtype=y.dtype, device=y.device)
    prec_x = torch.linalg.inv(sigma_x + eps)
    prec_n = torch.linalg.inv(torch.diag_embed(noise_var) + eps)
    combined = prec_x @ mu.unsqueeze(-1) + prec_n @ y.unsqueeze(-1)
    return (torch.linalg.inv(prec_x + prec_n + eps) @ combined).squeeze(-1)


@register_method("laine_bayes")
class LaineBayes(BlindSpotDenoiser):
    """Blind-spot network with a Gaussian prior, for Gaussian noise of known std.

    gaussian_sigma: the noise std in the data's own units (e.g. 25.0 on the 0-255 scale); in the
    standardised units of a sample it is s_c = max(gaussian_sigma / std_c, 1e-3) per channel c.
    """

    requires_gaussian_sigma = True

    def __init__(self, gaussian_sigma: float | None = None, **common: Any) -> None:
        if gaussian_sigma is None:
            raise ValueError("laine_bayes needs gaussian_sigma, the std of the Gaussian noise in the data's "
                             "units (e.g. 25.0 for sigma 25 on the 0-255 scale)")
        super().__init__(**common)
        self.gaussian_sigma = gaussian_sigma

    def output_channels(self, in_channels: int) -> int:
        """Prior mean (C) and the upper triangle of A (C(C+1)/2): 2 for grey, 9 for RGB."""
        return in_channels + in_channels * (in_channels + 1) // 2

    def noise_var(self, std: Tensor) -> Tensor:
        """Noise variance s_c^2 in standardised units, float64, channels last, from the (B, C, 1, ...) stds."""
        return (self.gaussian_sigma / std.double()).clamp(min=1e-3).pow(2).movedim(1, -1)

    def training_loss(self, batch: dict[str, Tensor]) -> tuple[Tensor, LossTerms]:
        z, _, std = self.normalize(batch["noisy"])
        mu, sigma_x = gaussian_prior(self(z), z.shape[1])
        loss = gaussian_nll(z.double().movedim(1, -1), mu, sigma_x, self.noise_var(std)).to(z.dtype)
        return loss, {"nll": loss.detach()}

    def denoise_standardized(self, z: Tensor, tile: Sequence[int | None] | None = None, *, std: Tensor) -> Tensor:
        """Posterior mean E[x | z] in standardised units, from the network's prior N(mu, Sigma_x) and the
        noise variance s_c^2 = (gaussian_sigma / std_c)^2."""
        mu, sigma_x = gaussian_prior(self.network_output(z, tile), z.shape[1])
        estimate = posterior_mean(z.double().movedim(1, -1), mu, sigma_x, self.noise_var(std))
        return estimate.movedim(-1, 1).to(z.dtype)
