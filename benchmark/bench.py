"""`make bench`: what each method costs to train and to apply, measured on this machine.

Every figure is the median over repeated rounds after warm-up, with the spread (lowest and highest
round). Training speed is also given as ratios to bare PyTorch loops timed in the same round on the
same batches, because absolute speeds differ between machines and a shared machine is noisy:
- `lightning / bare`: the method in Lightning's Trainer over the same method's loss in a plain loop
  (same batches, optimiser and schedule): what the framework costs;
- `x one-pass`: the method's plain loop over a plain loop of one forward pass and an MSE on the same
  network: what the method's loss costs (Noise2Same's two passes, Laine's four orientations).
The same ratio is measured at the widths a paper run trains (the official U-Net with batch norm, 32 and
96 channels), and one Noise2Same step is profiled with torch.profiler.
"""

from __future__ import annotations

import json
import logging
import math
import os
import platform
import statistics
import time
import warnings
from contextlib import contextmanager
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any, Callable, Iterator

import pytorch_lightning as pl
import torch
import torch.nn.functional as F
from joblib import cpu_count
from torch import Tensor
from torch.profiler import ProfilerActivity, profile
from torch.utils.data import DataLoader

from benchmark.allocator import freed_memory_kept, release_freed_memory
from benchmark.registry import ConfigError
from datamodules import DATASETS
from datamodules.evaluation import evaluate
from methods import METHODS
from methods.base import TrainableDenoiser
from methods.unet import UNet, UNetConfig


@dataclass(frozen=True)
class BenchConfig:
    """What is measured: the network, the 2-D and 3-D training batches, the image and the volume for
    inference, the classical methods and speed options, and how many rounds of how many timed steps
    (after `warmup` steps) each figure takes.

    The wide rows: every trainable method's plain loop against the one-pass loop on the official U-Net
    (depth 3, batch norm on) at each of `wide_channels`, batches of `wide_batch_2d` x `wide_patch_2d`^2
    and `wide_batch_3d` x `wide_patch_3d`, `wide_warmup` + `wide_steps_2d` (`wide_steps_3d`) steps: they
    are slow on a CPU, so they take fewer steps than the rows above. `profile_channels`: the width of the
    profiled Noise2Same step (2-D, the wide batch)."""

    backbone: UNetConfig = UNetConfig(depth=3, base_channels=16, batch_norm=False)
    batch_2d: int = 8
    patch_2d: int = 64
    batch_3d: int = 2
    patch_3d: tuple[int, int, int] = (8, 32, 32)
    warmup: int = 3
    rounds: int = 5
    steps_per_round: int = 10
    image_2d: int = 512
    volume: tuple[int, int, int] = (32, 256, 256)
    tile_3d: tuple[int | None, int, int] = (None, 128, 128)
    classical_size: int = 256
    classical_repeats: int = 3
    classical_methods: tuple[str, ...] = ("bm3d", "nlm")
    options_method: str = "noise2same"
    options: tuple[str, ...] = ("float32", "bf16-mixed", "channels_last", "compile")
    methods: tuple[str, ...] | None = None  # trainable methods to measure; None: every registered one
    wide_channels: tuple[int, ...] = (32, 96)
    wide_batch_2d: int = 16
    wide_patch_2d: int = 64
    wide_batch_3d: int = 4
    wide_patch_3d: tuple[int, int, int] = (16, 64, 64)
    wide_warmup: int = 1
    wide_steps_2d: int = 3
    wide_steps_3d: int = 1
    profile_channels: int = 96
    profile_lines: int = 12

    def wide(self, channels: int) -> "BenchConfig":
        """This config on the official U-Net at `channels` first-level channels, batch norm on."""
        return replace(self, backbone=UNetConfig(depth=3, base_channels=channels, batch_norm=True))

    @classmethod
    def quick(cls) -> "BenchConfig":
        """Seconds, for tests: a tiny network, tiny batches, two short rounds, no bm3d, compile without codegen."""
        return cls(backbone=UNetConfig(depth=2, base_channels=4, batch_norm=False), batch_2d=2, patch_2d=16,
                   batch_3d=1, patch_3d=(4, 16, 16), warmup=1, rounds=2, steps_per_round=2, image_2d=32,
                   volume=(8, 64, 64), tile_3d=(None, 40, 40), classical_size=48, classical_repeats=2,
                   classical_methods=("nlm",), options=("float32", "bf16-mixed", "channels_last", "compile:aot_eager"),
                   methods=("noise2void", "noise2same"), wide_channels=(4,), wide_batch_2d=2, wide_patch_2d=16,
                   wide_batch_3d=1, wide_patch_3d=(4, 16, 16), wide_steps_2d=2, profile_channels=4)


@dataclass
class Stat:
    """Median and spread (lowest, highest) of repeated measurements."""

    median: float
    low: float
    high: float
    n: int

    @classmethod
    def of(cls, values: list[float]) -> "Stat":
        return cls(statistics.median(values), min(values), max(values), len(values))

    def scaled(self, factor: float) -> "Stat":
        """The same measurements times a positive factor."""
        return Stat(self.median * factor, self.low * factor, self.high * factor, self.n)

    def inverse(self, factor: float = 1.0) -> "Stat":
        """factor / value: a rate from a duration (the spread swaps ends)."""
        return Stat(factor / self.median, factor / self.high, factor / self.low, self.n)

    def text(self, decimals: int = 2) -> str:
        return f"{self.median:.{decimals}f} ({self.low:.{decimals}f}-{self.high:.{decimals}f})"


# --- memory -------------------------------------------------------------------------------------
@dataclass
class Peak:
    """Peak memory of a block above what was in use when it started, in bytes (None if unknown)."""

    bytes: int | None = None


def _proc_bytes(key: str, path: str = "/proc/self/status") -> int:
    """A line `key: N kB` of a /proc file (Linux; this process's status by default) in bytes."""
    for line in Path(path).read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1]) * 1024
    raise KeyError(key)


@contextmanager
def peak_memory(device: torch.device) -> Iterator[Peak]:
    """On CUDA: torch's peak allocation over the block. On CPU (Linux, glibc): the peak resident set
    (VmHWM, reset through /proc/self/clear_refs) over the block, minus the resident set before it
    after freed memory is returned to the system (malloc_trim)."""
    peak = Peak()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
        start = torch.cuda.memory_allocated(device)
        yield peak
        torch.cuda.synchronize(device)
        peak.bytes = torch.cuda.max_memory_allocated(device) - start
        return
    try:
        release_freed_memory()  # hand freed heap pages back, so their reuse does not hide the peak
        Path("/proc/self/clear_refs").write_text("5")
        start = _proc_bytes("VmRSS")
    except OSError:
        yield peak
        return
    yield peak
    peak.bytes = _proc_bytes("VmHWM") - start


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


# --- training -----------------------------------------------------------------------------------
def training_batches(method: type, channels: int, shape: tuple[int, ...], batch: int, count: int) -> list[dict[str, Tensor]]:
    """`count` seeded CPU batches with exactly the keys the method trains on (noisy, and clean or
    noisy2); each loop moves them to its device inside the timed step, as a training run does."""
    generator = torch.Generator().manual_seed(0)
    clean = [torch.rand(batch, channels, *shape, generator=generator) for _ in range(count)]
    batches = []
    for image in clean:
        views = {"clean": image, "noisy": image + 0.2 * torch.randn(image.shape, generator=generator),
                 "noisy2": image + 0.2 * torch.randn(image.shape, generator=generator)}
        batches.append({key: views[key] for key in sorted(method.train_keys)})
    return batches


def build_trainable(name: str, config: BenchConfig, spatial_dims: int, channels: int = 1,
                    **speed: Any) -> TrainableDenoiser:
    """A registered trainable method on the bench network, seeded, with the given speed options."""
    cls = METHODS.get(name)
    kwargs = {"gaussian_sigma": 0.2} if cls.requires_gaussian_sigma else {}
    torch.manual_seed(0)
    method = cls(in_channels=channels, spatial_dims=spatial_dims, backbone=config.backbone, **kwargs)
    method.accelerate(**speed)
    return method


class StepClock(pl.Callback):
    """Wall time at the end of every training step (device synchronised) and the step's loss."""

    def __init__(self) -> None:
        self.times: list[float] = []
        self.losses: list[float] = []

    def on_train_batch_start(self, trainer: pl.Trainer, module: pl.LightningModule, *args: Any) -> None:
        if not self.times:
            synchronize(module.device)
            self.times.append(time.perf_counter())

    def on_train_batch_end(self, trainer: pl.Trainer, module: pl.LightningModule, outputs: Any, *args: Any) -> None:
        synchronize(module.device)
        self.times.append(time.perf_counter())
        self.losses.append(float(outputs["loss"]))


@contextmanager
def quiet_lightning() -> Iterator[None]:
    """Lightning without its per-fit info lines and warnings (the bench fits hundreds of times)."""
    logger = logging.getLogger("pytorch_lightning")
    level = logger.level
    logger.setLevel(logging.WARNING)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        logger.setLevel(level)


def lightning_steps(method: TrainableDenoiser, batches: list[dict[str, Tensor]], device: torch.device,
                    precision: str = "32-true") -> tuple[list[float], list[float]]:
    """Train the method in Lightning's Trainer, one step per batch, as the runner trains a cell
    (Trainer.fit, step-wise learning-rate schedule, loss terms logged); per-step seconds and losses."""
    clock = StepClock()
    with quiet_lightning():
        trainer = pl.Trainer(max_steps=len(batches), accelerator=device.type, devices=1, precision=precision,
                             logger=False, enable_checkpointing=False, enable_progress_bar=False,
                             enable_model_summary=False, num_sanity_val_steps=0, limit_val_batches=0,
                             callbacks=[clock])
        trainer.fit(method, train_dataloaders=DataLoader(batches, batch_size=None))
    return [b - a for a, b in zip(clock.times, clock.times[1:])], clock.losses


class PlainLoop:
    """A plain PyTorch training loop: batch to the device, loss, backward, Adam step, step-wise schedule."""

    def __init__(self, loss: Callable[[dict[str, Tensor]], Tensor], parameters: Any, device: torch.device,
                 lr: float = 4e-4) -> None:
        self.loss, self.device = loss, device
        self.optimizer = torch.optim.Adam(parameters, lr=lr)
        self.schedule = torch.optim.lr_scheduler.StepLR(self.optimizer, step_size=5000, gamma=0.5)

    def step(self, batch: dict[str, Tensor]) -> float:
        """One training step on `batch`; its seconds (device synchronised)."""
        synchronize(self.device)
        start = time.perf_counter()
        loss = self.loss({key: value.to(self.device, non_blocking=True) for key, value in batch.items()})
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        self.schedule.step()
        synchronize(self.device)
        return time.perf_counter() - start


def bare_steps(step: Callable[[dict[str, Tensor]], Tensor], parameters: Any, batches: list[dict[str, Tensor]],
               device: torch.device, lr: float = 4e-4) -> list[float]:
    """Per-step seconds of a `PlainLoop` over the batches."""
    loop = PlainLoop(step, parameters, device, lr)
    return [loop.step(batch) for batch in batches]


def per_step(step_seconds: list[float], config: BenchConfig) -> float:
    """Seconds per step of one round: the mean over its steps after the warm-up."""
    return statistics.fmean(step_seconds[config.warmup:])


def one_pass(config: BenchConfig, spatial_dims: int, device: torch.device) -> PlainLoop:
    """The plainest training: one forward pass of the bench's U-Net and an MSE."""
    torch.manual_seed(0)
    net = UNet(1, 1, spatial_dims, config.backbone).to(device)
    return PlainLoop(lambda batch: F.mse_loss(net(batch["noisy"]), batch["noisy"]), net.parameters(), device)


def one_pass_loop(config: BenchConfig, spatial_dims: int, batches: list[dict[str, Tensor]],
                  device: torch.device) -> list[float]:
    """Per-step seconds of the one-pass loop over the batches."""
    loop = one_pass(config, spatial_dims, device)
    return [loop.step(batch) for batch in batches]


def train_row(name: str, config: BenchConfig, spatial_dims: int, batches: list[dict[str, Tensor]],
              device: torch.device) -> dict[str, Any]:
    """One method's training figures. Each of `rounds` rounds times, back to back on the same batches,
    the one-pass reference loop, the method's loss in a plain loop and the method in Lightning; ratios
    are taken within a round, so a machine that slows down between rounds does not bias them."""
    reference, bare, lightning, memory = [], [], [], []
    for _ in range(config.rounds):
        reference.append(per_step(one_pass_loop(config, spatial_dims, batches, device), config))
        method = build_trainable(name, config, spatial_dims).to(device)
        bare.append(per_step(bare_steps(lambda batch: method.training_loss(batch)[0], method.parameters(),
                                        batches, device, method.lr), config))
        method = build_trainable(name, config, spatial_dims)
        with peak_memory(device) as peak:
            seconds, _ = lightning_steps(method, batches, device)
        lightning.append(per_step(seconds, config))
        memory.append(peak.bytes)
    step, batch_size = Stat.of(lightning), len(batches[0]["noisy"])
    return {"method": name, "dims": spatial_dims, "batch": batch_size, "step_s": asdict(step),
            "bare_step_s": asdict(Stat.of(bare)), "one_pass_step_s": asdict(Stat.of(reference)),
            "steps_per_s": asdict(step.inverse()), "images_per_s": asdict(step.inverse(batch_size)),
            "lightning_over_bare": asdict(Stat.of([a / b for a, b in zip(lightning, bare)])),
            "over_one_pass": asdict(Stat.of([a / b for a, b in zip(bare, reference)])),
            "peak_memory_mb": None if None in memory else max(memory) / 2**20}


def trainable_methods(config: BenchConfig) -> list[str]:
    """The trainable methods the bench measures: config.methods, or every registered one."""
    return list(config.methods or [name for name in METHODS.names() if METHODS.get(name).trainable])


def training(config: BenchConfig, device: torch.device, echo: Callable[[str], None]) -> list[dict[str, Any]]:
    """Training figures of every trainable method in 2-D, and in 3-D for those that take volumes."""
    rows = []
    settings = [(2, (config.patch_2d, config.patch_2d), config.batch_2d), (3, config.patch_3d, config.batch_3d)]
    for dims, shape, batch in settings:
        for name in trainable_methods(config):
            cls = METHODS.get(name)
            if dims == 2 or cls.supports_3d:
                batches = training_batches(cls, 1, shape, batch, config.warmup + config.steps_per_round)
                rows.append(train_row(name, config, dims, batches, device))
                echo(f"train {dims}-D {name}: {rows[-1]['steps_per_s']['median']:.1f} steps/s, "
                     f"Lightning/bare {rows[-1]['lightning_over_bare']['median']:.3f}, "
                     f"x one-pass {rows[-1]['over_one_pass']['median']:.2f}")
    return rows


def wide_row(name: str, config: BenchConfig, spatial_dims: int, batches: list[dict[str, Tensor]],
             device: torch.device) -> dict[str, Any]:
    """One method's plain loop against the one-pass loop on `config`'s network: one step of each in turn on
    the same batch (both see the same load of a shared machine); `x one-pass` over the timed step pairs."""
    with peak_memory(device) as peak:
        reference = one_pass(config, spatial_dims, device)
        method = build_trainable(name, config, spatial_dims).to(device)
        loop = PlainLoop(lambda batch: method.training_loss(batch)[0], method.parameters(), device, method.lr)
        pairs = [(reference.step(batch), loop.step(batch)) for batch in batches][config.wide_warmup:]
    step = Stat.of([seconds for _, seconds in pairs])
    return {"method": name, "dims": spatial_dims, "channels": config.backbone.base_channels,
            "batch": len(batches[0]["noisy"]), "shape": list(batches[0]["noisy"].shape[2:]), "step_s": asdict(step),
            "one_pass_step_s": asdict(Stat.of([seconds for seconds, _ in pairs])), "steps_per_s": asdict(step.inverse()),
            "over_one_pass": asdict(Stat.of([b / a for a, b in pairs])),
            "peak_memory_mb": None if peak.bytes is None else peak.bytes / 2**20}


def available_memory(device: torch.device) -> int | None:
    """Bytes free for a new allocation: the GPU's free memory, or the system's MemAvailable (Linux); None if unknown."""
    if device.type == "cuda":
        return torch.cuda.mem_get_info(device)[0]
    try:
        return _proc_bytes("MemAvailable", "/proc/meminfo")
    except (OSError, KeyError):
        return None


def too_big(row: dict[str, Any] | None, channels: int, device: torch.device, share: float = 0.8) -> str | None:
    """Why a wide row at `channels` should not run, from the same method's row at a smaller width: its peak
    memory scaled by the width ratio (activations grow with the channels) against `share` of the free
    memory; None when it fits or nothing is known. A row that does not fit would be killed by the
    system (the CPU has no out-of-memory error to catch) and take the whole bench with it."""
    free = available_memory(device)
    if row is None or not row.get("peak_memory_mb") or free is None:
        return None
    needed = row["peak_memory_mb"] * 2**20 * channels / row["channels"]
    if needed <= share * free:
        return None
    return (f"needs about {needed / 2**30:.0f} GiB ({row['peak_memory_mb'] / 2**10:.1f} GiB at {row['channels']} channels, "
            f"x {channels / row['channels']:g}); {free / 2**30:.0f} GiB free")


def training_wide(config: BenchConfig, device: torch.device, echo: Callable[[str], None]) -> list[dict[str, Any]]:
    """The wide rows: every trainable method at each of `wide_channels`, in 2-D and (where it takes volumes) 3-D."""
    rows = []
    settings = [(2, (config.wide_patch_2d,) * 2, config.wide_batch_2d, config.wide_steps_2d),
                (3, config.wide_patch_3d, config.wide_batch_3d, config.wide_steps_3d)]
    narrower: dict[tuple[str, int], dict[str, Any]] = {}  # the last measured row of each method and dims
    for dims, shape, batch, steps in settings:
        for channels in sorted(config.wide_channels):
            for name in trainable_methods(config):
                cls = METHODS.get(name)
                if dims == 2 or cls.supports_3d:
                    label = f"train {dims}-D {name}, {channels} channels with BN"
                    reason = too_big(narrower.get((name, dims)), channels, device)
                    if reason:
                        rows.append({"method": name, "dims": dims, "channels": channels, "batch": batch, "skipped": reason})
                        echo(f"{label}: skipped, {reason}")
                        continue
                    batches = training_batches(cls, 1, shape, batch, config.wide_warmup + steps)
                    rows.append(wide_row(name, config.wide(channels), dims, batches, device))
                    row = narrower[name, dims] = rows[-1]
                    peak = row["peak_memory_mb"] or float("nan")
                    echo(f"{label}: {row['step_s']['median'] * 1e3:.0f} ms/step, "
                         f"x one-pass {row['over_one_pass']['median']:.2f}, peak {peak:.0f} MB")
    return rows


def profile_step(config: BenchConfig, device: torch.device, echo: Callable[[str], None]) -> dict[str, Any]:
    """torch.profiler over one Noise2Same training step (loss, backward, Adam) in a plain loop, after two
    warm-up steps, 2-D on the wide batch at `profile_channels`: the operators by self time, top lines."""
    wide = config.wide(config.profile_channels)
    method = build_trainable("noise2same", wide, 2).to(device)
    loop = PlainLoop(lambda batch: method.training_loss(batch)[0], method.parameters(), device, method.lr)
    batches = training_batches(METHODS.get("noise2same"), 1, (config.wide_patch_2d,) * 2, config.wide_batch_2d, 3)
    for batch in batches[:2]:
        loop.step(batch)
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.type == "cuda" else [])
    with profile(activities=activities) as profiler:
        seconds = loop.step(batches[2])
    sort_by = "self_cuda_time_total" if device.type == "cuda" else "self_cpu_time_total"
    table = profiler.key_averages().table(sort_by=sort_by, row_limit=config.profile_lines, max_name_column_width=45)
    echo(f"profiled one noise2same step, {config.profile_channels} channels: {seconds:.2f} s under the profiler")
    return {"channels": config.profile_channels, "batch": config.wide_batch_2d, "patch": config.wide_patch_2d,
            "sort_by": sort_by, "step_s_profiled": seconds, "table": table}


# --- speed options ------------------------------------------------------------------------------
def parse_option(option: str) -> tuple[dict[str, Any], str]:
    """A speed option's method settings and Lightning precision: float32, bf16-mixed, channels_last,
    compile (the default backend) or compile:<backend>."""
    if option in ("float32", "bf16-mixed"):
        return {}, "32-true" if option == "float32" else option
    if option == "channels_last":
        return {"channels_last": True}, "32-true"
    if option == "compile" or option.startswith("compile:"):
        return {"compile": option.partition(":")[2] or True}, "32-true"
    raise ValueError(f"unknown speed option {option!r}; valid: float32, bf16-mixed, channels_last, compile[:backend]")


def speed_options(config: BenchConfig, device: torch.device, echo: Callable[[str], None]) -> list[dict[str, Any]]:
    """Step time of one method under each speed option, as a ratio to float32 within each round (each
    option's network is built once, so compilation happens in the first round only), and the largest
    difference of its first round's losses from float32's on the same batches and initial weights."""
    name = config.options_method
    batches = training_batches(METHODS.get(name), 1, (config.patch_2d, config.patch_2d), config.batch_2d,
                               config.warmup + config.steps_per_round)
    methods = {option: build_trainable(name, config, 2, **parse_option(option)[0]) for option in config.options}
    seconds: dict[str, list[float]] = {option: [] for option in config.options}
    first: dict[str, tuple[float, list[float]]] = {}
    for _ in range(config.rounds):
        for option, method in methods.items():
            steps, losses = lightning_steps(method, batches, device, parse_option(option)[1])
            first.setdefault(option, (steps[0], losses))
            seconds[option].append(per_step(steps, config))
    base = config.options[0]
    rows = []
    for option in config.options:
        ratio = Stat.of([a / b for a, b in zip(seconds[option], seconds[base])])
        rows.append({"option": option, "method": name, "step_s": asdict(Stat.of(seconds[option])),
                     "over_float32": asdict(ratio), "first_step_s": first[option][0],
                     "max_loss_difference": max(abs(a - b) for a, b in zip(first[option][1], first[base][1])),
                     "first_losses": first[option][1]})
        echo(f"option {option}: x{ratio.median:.2f} of {base}, first step {first[option][0]:.1f} s, "
             f"max loss difference {rows[-1]['max_loss_difference']:.2e}")
    return rows


# --- inference ----------------------------------------------------------------------------------
def repeat(fn: Callable[[], Any], device: torch.device, times: int, warmup: int = 1) -> Stat:
    """Seconds per call of fn, `times` timed calls after `warmup` untimed ones."""
    for _ in range(warmup):
        fn()
    seconds = []
    for _ in range(times):
        synchronize(device)
        start = time.perf_counter()
        fn()
        synchronize(device)
        seconds.append(time.perf_counter() - start)
    return Stat.of(seconds)


def inference(config: BenchConfig, device: torch.device, echo: Callable[[str], None]) -> list[dict[str, Any]]:
    """Whole-image 2-D inference of every trainable method (MPix/s), and 3-D volume inference of one
    method in tiles and whole (voxels/s, peak memory over the volume's own size)."""
    rows = []
    image = torch.rand(1, 1, config.image_2d, config.image_2d, generator=torch.Generator().manual_seed(0)).to(device)
    for name in trainable_methods(config):
        method = build_trainable(name, config, 2).to(device).eval()
        stat = repeat(lambda: method.denoise(image), device, config.rounds)
        rows.append({"what": f"{name} 2-D {config.image_2d}x{config.image_2d}", "method": name,
                     "mpix_per_s": asdict(stat.inverse(image.numel() / 1e6))})
        echo(f"infer 2-D {name}: {rows[-1]['mpix_per_s']['median']:.2f} MPix/s")
    volume = torch.rand(1, 1, *config.volume, generator=torch.Generator().manual_seed(0)).to(device)
    method = build_trainable(config.options_method, config, 3).to(device).eval()
    for label, tile in (("tiled", config.tile_3d), ("whole", None)):
        with peak_memory(device) as peak:
            method.denoise(volume, tile)
        stat = repeat(lambda: method.denoise(volume, tile), device, max(2, config.rounds // 2), warmup=0)
        tile_text = "x".join("all" if t is None else str(t) for t in tile) if tile else "none"
        rows.append({"what": f"{config.options_method} 3-D {'x'.join(map(str, config.volume))}, {label} (tile {tile_text})",
                     "method": config.options_method, "voxels_per_s": asdict(stat.inverse(volume.numel())),
                     "peak_memory_mb": None if peak.bytes is None else peak.bytes / 2**20,
                     "peak_over_volume": None if peak.bytes is None else peak.bytes / (volume.numel() * 4)})
        echo(f"infer 3-D {label}: {rows[-1]['voxels_per_s']['median'] / 1e6:.2f} Mvoxel/s, "
             f"peak {rows[-1]['peak_memory_mb'] or float('nan'):.0f} MB")
    return rows


# --- classical ----------------------------------------------------------------------------------
def classical(config: BenchConfig, echo: Callable[[str], None]) -> list[dict[str, Any]]:
    """Classical methods (bm3d, nlm): seconds per image, and for the natural-gray test set on one core
    and on all cores (the suite's evaluation loop, images spread over processes)."""
    data = DATASETS.get("natural-gray")(max_size=config.classical_size)
    loader = data.eval_dataloader("test")
    first = next(iter(loader))["noisy"]
    rows = []
    for name in config.classical_methods:
        method = METHODS.get(name)()
        per_image = repeat(lambda: method.denoise(first), torch.device("cpu"), config.classical_repeats, warmup=0)
        sets = {workers: repeat(lambda: evaluate(method.denoise, loader, data.protocol, workers=workers),
                                torch.device("cpu"), config.classical_repeats, warmup=0 if workers == 1 else 1)
                for workers in (1, -1)}
        rows.append({"method": name, "image": "x".join(map(str, first.shape[2:])), "test_images": len(loader.dataset),
                     "cores": cpu_count(), "image_s": asdict(per_image), "test_set_1_core_s": asdict(sets[1]),
                     "test_set_all_cores_s": asdict(sets[-1]), "all_over_one": sets[-1].median / sets[1].median})
        echo(f"{name}: {per_image.median:.2f} s/image; test set {sets[1].median:.1f} s on 1 core, "
             f"{sets[-1].median:.1f} s on {cpu_count()} cores")
    return rows


# --- report -------------------------------------------------------------------------------------
def environment(device: torch.device) -> dict[str, Any]:
    return {"device": torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor() or "cpu",
            "cpu_cores": os.cpu_count(), "torch": torch.__version__, "pytorch-lightning": pl.__version__,
            "python": platform.python_version(), "torch_threads": torch.get_num_threads()}


TRAINING_SECTIONS = ("training", "training_wide", "profile", "options")  # run with freed memory kept, as the runner trains
SECTIONS = (*TRAINING_SECTIONS, "inference", "classical")


class BenchError(ConfigError):
    """A bench that cannot run as asked (sections to re-run without a whole run to put them in)."""


def parse_sections(text: str) -> tuple[str, ...]:
    """`--sections inference,classical` -> the section names, each checked."""
    names = tuple(name.strip() for name in text.split(",") if name.strip())
    unknown = [name for name in names if name not in SECTIONS]
    if unknown or not names:
        raise BenchError(f"unknown bench section(s) {', '.join(unknown) or repr(text)}: choose from {', '.join(SECTIONS)}")
    return names


def previous_figures(results: Path, config: BenchConfig, device: torch.device) -> dict[str, Any]:
    """The figures of the last whole run in `results`, which a re-run of some sections updates; it must have
    been measured with the same configuration on the same kind of device."""
    path = results / "bench.json"
    if not path.is_file():
        raise BenchError(f"no {path} to re-run sections of: run the whole bench first (without --sections)")
    figures = json.loads(path.read_text())
    same_device = figures["environment"]["device"] == environment(device)["device"]
    if figures.get("config") != _jsonable(asdict(config)) or not same_device:
        raise BenchError(f"{path} was measured with another configuration or device: run the whole bench again "
                         "(without --sections)")
    return figures


def run_bench(config: BenchConfig, device: torch.device, results: Path, echo: Callable[[str], None] = print,
              sections: tuple[str, ...] = SECTIONS) -> dict:
    """Measure the `sections` (all by default; a subset re-measures those in the last whole run of `results`),
    write results/bench.json and results/bench.md, return the figures. On a CPU the training sections run
    with glibc keeping freed memory, as the runner trains, and the others with the values glibc settles at
    by itself, as scoring and `denoise` run."""
    start = time.perf_counter()
    whole = set(sections) == set(SECTIONS)
    figures = ({"config": _jsonable(asdict(config)), "environment": environment(device)} if whole
               else previous_figures(results, config, device))
    measure: dict[str, Callable[[], Any]] = {
        "training": lambda: training(config, device, echo), "training_wide": lambda: training_wide(config, device, echo),
        "profile": lambda: profile_step(config, device, echo), "options": lambda: speed_options(config, device, echo),
        "inference": lambda: inference(config, device, echo), "classical": lambda: classical(config, echo)}
    with freed_memory_kept(enabled=device.type == "cpu"):
        figures.update({name: measure[name]() for name in TRAINING_SECTIONS if name in sections})
    figures.update({name: measure[name]() for name in SECTIONS if name in sections and name not in TRAINING_SECTIONS})
    figures["summary"] = summary(figures)
    seconds = round(time.perf_counter() - start, 1)
    if whole:
        figures["seconds"] = seconds
        figures.pop("rerun", None)
    else:
        figures["rerun"] = {"sections": [name for name in SECTIONS if name in sections], "seconds": seconds,
                            "environment": environment(device)}
    results.mkdir(parents=True, exist_ok=True)
    (results / "bench.json").write_text(json.dumps(figures, indent=1))
    (results / "bench.md").write_text(markdown(figures))
    return figures


def summary(figures: dict[str, Any]) -> dict[str, Any]:
    """The headline ratios: Lightning over the bare loop per method; Noise2Same's step over Noise2Void's
    (each first taken over the one-pass loop of its own rounds); Noise2Same's step over the one-pass step at
    the wide widths; 3-D tiled inference peak memory over the volume's size; a classical test set on all
    cores over one core."""
    training = {(row["method"], row["dims"]): row for row in figures["training"]}
    ratios: dict[str, Any] = {f"lightning_over_bare {name} {dims}-D": row["lightning_over_bare"]["median"]
                              for (name, dims), row in training.items()}
    for dims in (2, 3):
        if ("noise2same", dims) in training and ("noise2void", dims) in training:
            ratios[f"noise2same_over_noise2void {dims}-D"] = (training["noise2same", dims]["over_one_pass"]["median"]
                                                            / training["noise2void", dims]["over_one_pass"]["median"])
    for row in figures["training_wide"]:
        if row["method"] == "noise2same" and "skipped" not in row:
            key = f"noise2same_over_one_pass {row['dims']}-D {row['channels']} channels BN"
            ratios[key] = row["over_one_pass"]["median"]
    tiled = next(row for row in figures["inference"] if "tiled" in row["what"])
    ratios["tiled_3d_peak_over_volume"] = tiled["peak_over_volume"]
    for row in figures["classical"]:
        ratios[f"{row['method']}_test_set_all_cores_over_one"] = row["all_over_one"]
    return ratios


def _jsonable(value: Any) -> Any:
    return json.loads(json.dumps(value, default=str))


def _stat(row: dict, key: str, scale: float = 1.0, decimals: int = 2) -> str:
    return Stat(**row[key]).scaled(scale).text(decimals) if row.get(key) else ""


def _ratio(value: float | None, decimals: int = 2) -> str:
    return "" if value is None or math.isnan(value) else f"{value:.{decimals}f}"


def wide_row_line(row: dict[str, Any]) -> str:
    """A row of the table of the paper's widths; a row not run gives its reason."""
    head = f"| {row['method']} | {row['dims']}-D | {row['channels']} | {row['batch']} | "
    if "skipped" in row:
        return head + f"not run: {row['skipped']} | | | | |"
    memory = row.get("peak_memory_mb")
    return head + (f"{_stat(row, 'step_s', 1e3, 0)} | {_stat(row, 'steps_per_s', 1, 2)} | "
                   f"{_stat(row, 'one_pass_step_s', 1e3, 0)} | {_stat(row, 'over_one_pass')} | "
                   f"{'' if memory is None else f'{memory:.0f}'} |")


def markdown(figures: dict[str, Any]) -> str:
    """The figures as tables: median (lowest-highest round)."""
    env, cfg = figures["environment"], figures["config"]
    backbone = cfg["backbone"]
    lines = ["# Speed and memory (`make bench`)", "",
             f"Device: {env['device']} ({env['cpu_cores']} CPU cores, {env['torch_threads']} torch threads); "
             f"torch {env['torch']}, Lightning {env['pytorch-lightning']}. Took {figures['seconds']:.0f} s."
             + (f" Re-run later in {figures['rerun']['seconds']:.0f} s: {', '.join(figures['rerun']['sections'])}."
                if "rerun" in figures else ""),
             f"Network: U-Net depth {backbone['depth']}, {backbone['base_channels']} channels, batch norm "
             f"{'on' if backbone['batch_norm'] else 'off'}. Each figure: median (lowest-highest) over "
             f"{cfg['rounds']} rounds of {cfg['steps_per_round']} timed steps after {cfg['warmup']} warm-up steps.", "",
             "## Training", "",
             "`lightning / bare`: step time in Lightning's Trainer over the same loss in a plain PyTorch loop. "
             "`x one-pass`: the method's plain-loop step over one forward pass + MSE on the same network.", "",
             "| method | dims | batch | ms/step | steps/s | images/s | lightning / bare | x one-pass | peak memory (MB) |",
             "|---|---|---|---|---|---|---|---|---|"]
    for row in figures["training"]:
        step = _stat(row, "step_s", 1e3, 1)
        memory = row.get("peak_memory_mb")
        lines.append(f"| {row['method']} | {row['dims']}-D | {row['batch']} | {step} | {_stat(row, 'steps_per_s', 1, 1)} | "
                     f"{_stat(row, 'images_per_s', 1, 1)} | {_stat(row, 'lightning_over_bare')} | "
                     f"{_stat(row, 'over_one_pass')} | {'' if memory is None else f'{memory:.0f}'} |")
    lines += ["", "## Training at the paper's widths (batch norm on)", "",
              f"The official U-Net (depth 3, batch norm on) at {', '.join(map(str, cfg['wide_channels']))} channels; "
              f"2-D: batch {cfg['wide_batch_2d']} of {cfg['wide_patch_2d']}x{cfg['wide_patch_2d']}, 3-D: batch "
              f"{cfg['wide_batch_3d']} of {'x'.join(map(str, cfg['wide_patch_3d']))}. Plain loops only (Lightning's "
              "share is the `lightning / bare` column above): a step of the one-pass loop and a step of the method in "
              f"turn on the same batch, after {cfg['wide_warmup']} warm-up step(s); fewer steps than above because these "
              f"rows are slow on a CPU: {cfg['wide_steps_2d']} timed step pair(s) per row in 2-D, {cfg['wide_steps_3d']} "
              "in 3-D, so the spread is over step pairs, not rounds.", "",
              "| method | dims | channels | batch | ms/step | steps/s | one-pass ms/step | x one-pass | peak memory (MB) |",
              "|---|---|---|---|---|---|---|---|---|"]
    lines += [wide_row_line(row) for row in figures["training_wide"]]
    prof = figures["profile"]
    lines += ["", f"## Profile of one noise2same step (2-D, {prof['channels']} channels with BN, batch {prof['batch']} of "
              f"{prof['patch']}x{prof['patch']})", "",
              f"torch.profiler over one plain-loop step (loss, backward, Adam) after two warm-up steps, by "
              f"{prof['sort_by']}; "
              f"{prof['step_s_profiled']:.2f} s under the profiler.", "", "```", prof["table"].rstrip(), "```"]
    lines += ["", "## Headline ratios", "", "| ratio | value |", "|---|---|"]
    lines += [f"| {name} | {_ratio(value)} |" for name, value in figures["summary"].items()]
    lines += ["", f"## Speed options ({cfg['options_method']}, 2-D)", "",
              "| option | ms/step | x float32 | first step (s) | max loss difference over the steps |",
              "|---|---|---|---|---|"]
    for row in figures["options"]:
        lines.append(f"| {row['option']} | {_stat(row, 'step_s', 1e3, 1)} | {_stat(row, 'over_float32')} | "
                     f"{row['first_step_s']:.2f} | {row['max_loss_difference']:.2e} |")
    lines += ["", "## Inference", "", "| what | MPix/s | Mvoxel/s | peak memory (MB) | peak / volume size |",
              "|---|---|---|---|---|"]
    for row in figures["inference"]:
        memory = row.get("peak_memory_mb")
        lines.append(f"| {row['what']} | {_stat(row, 'mpix_per_s', 1, 2)} | {_stat(row, 'voxels_per_s', 1e-6, 2)} | "
                     f"{'' if memory is None else f'{memory:.0f}'} | {_ratio(row.get('peak_over_volume'), 1)} |")
    lines += ["", "## Classical methods (natural-gray test set)", "",
              "| method | image | s/image | test set, 1 core (s) | test set, all cores (s) | all / one |",
              "|---|---|---|---|---|---|"]
    for row in figures["classical"]:
        lines.append(f"| {row['method']} | {row['image']} | {_stat(row, 'image_s')} | {_stat(row, 'test_set_1_core_s')} | "
                     f"{_stat(row, 'test_set_all_cores_s')} ({row['cores']} cores) | {row['all_over_one']:.2f} |")
    return "\n".join(lines) + "\n"
