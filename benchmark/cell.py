"""Running one cell: build its datamodule and method, train if trainable, score the test set once."""

from __future__ import annotations

import logging
import math
import os
import platform
import subprocess
import time
import warnings
from dataclasses import asdict
from datetime import datetime, timezone
from functools import partial
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np
import pytorch_lightning as pl
import torch
from pytorch_lightning.callbacks import ModelCheckpoint
from pytorch_lightning.utilities import rank_zero_only

from benchmark.allocator import keep_freed_memory, stop_keeping_freed_memory
from benchmark.spec import Cell, Resources, TrainConfig
from benchmark.store import DoneRecord, Environment, ResultStore, StoreWarning, TestScores, Timings, Training, now
from benchmark.console import progress_bars
from benchmark.tracking import TEST_SAMPLES, cell_logger, log_test
from datamodules import DATASETS
from datamodules.crops import CROP_IMAGES
from datamodules.evaluation import Evaluation, evaluate
from methods import METHODS
from methods.jinvariance import j_invariance_on

PACKAGES = ("torch", "pytorch-lightning", "torchmetrics", "numpy", "scikit-image", "bm3d", "wandb", "noise2same-bench")

warnings.filterwarnings("ignore", ".*does not have many workers.*")
warnings.filterwarnings("ignore", ".*LeafSpec.*is deprecated.*")
warnings.filterwarnings("ignore", ".*Total length of .* across ranks is zero.*")  # no validation set
# Under DDP every process validates on the whole validation set (the datamodule shards training only),
# so the logged values agree without syncing.
warnings.filterwarnings("ignore", ".*sync_dist=True.*")
# A resumed run's datamodule starts at the first patch not yet trained on (DenoisingDataModule.train_dataloader).
warnings.filterwarnings("ignore", ".*resuming from a checkpoint that ended before the epoch ended.*")
logging.getLogger("pytorch_lightning.utilities.rank_zero").addFilter(
    lambda record: "litlogger" not in record.getMessage())  # drop Lightning's advert on every fit


def environment() -> Environment:
    """Package versions, Python, host, device, git commit, torch threads, ATen's CPU capability and the
    CPU model the result was computed with."""
    versions = {}
    for package in PACKAGES:
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            versions[package] = None
    try:
        sha = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5,
                             cwd=Path(__file__).parent).stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        sha = None
    device = torch.cuda.get_device_name() if torch.cuda.is_available() else f"cpu ({torch.get_num_threads()} threads)"
    return Environment(versions=versions, python=platform.python_version(), host=platform.node(), device=device,
                       cuda_visible_devices=os.environ.get("CUDA_VISIBLE_DEVICES"), git_sha=sha,
                       torch_threads=torch.get_num_threads(), cpu_capability=torch.backends.cpu.get_cpu_capability(),
                       cpu_model=cpu_info("model name") or platform.processor() or None,
                       cpu_flags=sorted(set((cpu_info("flags") or "").split()) & KERNEL_FLAGS) or None,
                       kernel_env={name: os.environ[name] for name in KERNEL_ENV if name in os.environ})


# CPU flags by which oneDNN, MKL and ATen pick kernels, and the variables that override their choice.
KERNEL_FLAGS = frozenset({"avx", "avx2", "fma", "avx512f", "avx512bw", "avx512_vnni", "avx512_bf16", "avx512_fp16",
                          "avx_vnni", "amx_tile", "amx_bf16", "amx_int8"})
KERNEL_ENV = ("ATEN_CPU_CAPABILITY", "ONEDNN_MAX_CPU_ISA", "DNNL_MAX_CPU_ISA", "MKL_CBWR", "OMP_NUM_THREADS")


def cpu_info(key: str) -> str | None:
    """A field of the first processor in Linux's /proc/cpuinfo (e.g. 'model name', 'flags'); None elsewhere."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.split(":", 1)[0].strip() == key:
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return None


def provenance(cell: Cell) -> dict[str, Any]:
    """The fields of a record that say which cell it is and what computed it (benchmark.store.Provenance)."""
    return {"id": cell.id, "table": cell.table, "preset": cell.preset, "dataset": cell.dataset,
            "method": cell.method, "seed": cell.seed, "config": cell.config, "finished": now(),
            **environment().model_dump()}


def build_datamodule(cell: Cell, data_dir: Path, train_keys: frozenset[str] = frozenset({"noisy"}),
                     resources: Resources = Resources()) -> Any:
    """The cell's dataset, reading real data from data_dir; for a trainable cell, set up to serve
    `train_keys` patches for its run, each device's share of the batch at a time."""
    kwargs = cell.dataset_kwargs
    dataset_cls = DATASETS.get(cell.dataset)
    if not cell.trainable:
        return dataset_cls(**kwargs, data_dir=data_dir)
    train = cell.train
    patch = train.patch_size if isinstance(train.patch_size, int) else tuple(train.patch_size)
    return dataset_cls(**kwargs, data_dir=data_dir, train_keys=train_keys,
                       batch_size=resources.per_device_batch(train.batch_size), patch_size=patch,
                       train_samples=train.steps * train.batch_size, seed=cell.seed)


def build_method(cell: Cell, datamodule: Any) -> Any:
    """The cell's method with its hyperparameters (and, if trainable, the backbone sized to the data)."""
    method_cls = METHODS.get(cell.method)
    kwargs = cell.method_kwargs
    if not cell.trainable:
        return method_cls(**kwargs)
    if method_cls.requires_gaussian_sigma:
        kwargs["gaussian_sigma"] = datamodule.gaussian_sigma
    train = cell.train
    method = method_cls(**kwargs, in_channels=datamodule.channels, spatial_dims=datamodule.spatial_dims,
                        backbone=cell.backbone, seed=cell.seed, lr=train.lr,
                        lr_halving_steps=train.lr_halving_steps)
    method.accelerate(**asdict(cell.speed))
    return method


def set_statistics(loader: Any) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-channel mean and std (ddof 0, floored at 1e-6) of the noisy images of a whole test set, over
    every image and pixel: mean = sum x / n, std = sqrt(sum x^2 / n - mean^2), accumulated in float64."""
    total = squares = count = 0
    for batch in loader:
        noisy = batch["noisy"].double().transpose(0, 1).flatten(1)  # (C, B * pixels)
        total, squares, count = total + noisy.sum(1), squares + (noisy ** 2).sum(1), count + noisy.shape[1]
    mean = total / count
    return mean.float(), (squares / count - mean ** 2).clamp_min(0).sqrt().clamp_min(1e-6).float()


def score(method: Any, datamodule: Any, description: str, keep: int = 0,
          statistics: str = "image", crops: int = 0) -> dict[str, Evaluation]:
    """Per-image PSNR of the method on each test set of the datamodule that has clean images, the
    sample panels of its first `keep` images and the gallery's crops of its first `crops` (tiled as the
    dataset asks; a method that is CPU-bound per image is spread over every core). A method that uses the
    noise level is given each test set's known noise first; with statistics "set", a network standardises
    every test image by the whole test set's mean and std (EvaluationConfig.test_statistics)."""
    denoise = partial(method.denoise, tile=datamodule.inference_tile)
    evaluations = {}
    for name in datamodule.test_sets:
        if datamodule.unscored(name):
            continue
        method.given_noise(datamodule.known_noise(name))
        method.given_statistics(set_statistics(datamodule.eval_dataloader(name)) if statistics == "set" else None)
        evaluations[name] = evaluate(denoise, datamodule.eval_dataloader(name), datamodule.protocol,
                                     description=f"{name} {description}", transform=not method.scored_as_is,
                                     workers=-1 if method.parallel_images else 1, keep=keep, crops=crops)
    return evaluations


def score_cell(cell: Cell, method: Any, datamodule: Any, description: str, keep: int = 0,
               crops: int = 0) -> dict[str, Evaluation]:
    """`score` of a cell's method on its test sets, standardised as the cell's evaluation asks (a trained
    cell; a classical method works on the images as they are)."""
    statistics = cell.evaluation.test_statistics if cell.trainable else "image"
    return score(method, datamodule, description, keep=keep, statistics=statistics, crops=crops)


def stored_scores(evaluation: Evaluation, d_f: float | None = None) -> TestScores:
    """What the store keeps of a test set: the mean PSNR and SSIM, each image's PSNR and SSIM by id, and
    D(f) if measured."""
    return TestScores(psnr_mean=evaluation.mean, psnr=dict(zip(evaluation.ids, evaluation.psnr)),
                      ssim_mean=float(np.mean(evaluation.ssim)), ssim=dict(zip(evaluation.ids, evaluation.ssim)),
                      d_f=d_f)


class TestCurve(pl.Callback):
    """The test PSNR of each test set before training and every `every` steps (the paper's Figure 3),
    with the training seconds spent so far (the curve's own evaluations excluded), measured by the first
    process alone and kept in checkpoints, so that a resumed or distributed run has the whole curve."""

    def __init__(self, every: int, datamodule: Any, description: str, statistics: str = "image") -> None:
        self.every = every
        self.datamodule = datamodule
        self.description = description
        self.statistics = statistics
        self.points: list[dict[str, float]] = []
        self.clock = time.perf_counter()  # training time counts from here to the next point

    def record(self, trainer: pl.Trainer, method: Any) -> None:
        seconds = (self.points[-1]["seconds"] if self.points else 0.0) + time.perf_counter() - self.clock
        was_training = method.training
        method.eval()
        tests = score(method, self.datamodule, self.description, statistics=self.statistics)
        self.points.append({"step": trainer.global_step, "seconds": round(seconds, 3),
                            **{name: t.mean for name, t in tests.items()}})
        method.train(was_training)
        self.clock = time.perf_counter()

    def on_train_start(self, trainer: pl.Trainer, method: Any) -> None:
        self.clock = time.perf_counter()
        if trainer.global_step == 0 and trainer.is_global_zero:  # a resumed run has this point already
            self.record(trainer, method)

    def on_train_batch_end(self, trainer: pl.Trainer, method: Any, *args: Any) -> None:
        if trainer.global_step % self.every == 0 and trainer.is_global_zero:
            self.record(trainer, method)

    def state_dict(self) -> dict[str, Any]:
        return {"points": self.points}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.points = list(state_dict["points"])


class StopOnNonFiniteLoss(pl.Callback):
    """Stops training at the first NaN or infinite loss, before it reaches the weights, with a
    FloatingPointError naming the step (the runner then stores the cell as failed)."""

    def on_before_backward(self, trainer: pl.Trainer, method: Any, loss: torch.Tensor) -> None:
        if not torch.isfinite(loss).all():
            raise FloatingPointError(f"the training loss is {loss.item()} at step {trainer.global_step}")


class KeepFreedMemoryOnCpu(pl.Callback):
    """In every training process that trains on the CPU, glibc keeps freed memory for the next step
    instead of taking it from the kernel again page by page; when training ends it hands the memory back
    and the largest blocks are mapped again, for the scoring that follows and the next cell
    (`benchmark.allocator`)."""

    def setup(self, trainer: pl.Trainer, method: Any, stage: str) -> None:
        if trainer.strategy.root_device.type == "cpu":
            keep_freed_memory()

    def teardown(self, trainer: pl.Trainer, method: Any, stage: str) -> None:
        if trainer.strategy.root_device.type == "cpu":
            stop_keeping_freed_memory()


def checkpoint_interval(train: TrainConfig) -> int:
    """Steps between checkpoints: the largest that divides the run and the validation interval, so a
    checkpoint comes with every validation and one with the last step."""
    return math.gcd(train.steps, min(train.val_every, train.steps))


def resume_step(checkpoint: Path) -> int:
    """The global step of an earlier run's last checkpoint, 0 if there is none. A checkpoint that cannot
    be read (truncated, corrupt) is moved aside as `last.ckpt.corrupt-<time>` with a warning naming
    it, and the cell trains from the start."""
    if not checkpoint.exists():
        return 0
    try:
        return int(torch.load(checkpoint, map_location="cpu", weights_only=True, mmap=True)["global_step"])
    except Exception as error:  # any unreadable file: torch raises RuntimeError, OSError, EOFError, pickle errors
        aside = checkpoint.with_name(f"{checkpoint.name}.corrupt-{datetime.now(timezone.utc):%Y%m%dT%H%M%S%f}")
        try:
            os.replace(checkpoint, aside)
        except FileNotFoundError:  # another DDP process of this cell moved it first
            return 0
        warnings.warn(f"{checkpoint} could not be read ({type(error).__name__}: {str(error).splitlines()[0][:200]}); "
                      f"moved aside to {aside.name}, the cell trains from the start", StoreWarning, stacklevel=2)
        return 0


def run_cell(cell: Cell, work_dir: Path, accelerator: str = "auto", data_dir: Path = Path("data"),
             resources: Resources = Resources(), strategy: str = "ddp_spawn",
             store: ResultStore | None = None) -> DoneRecord | None:
    """Train (if trainable) and test one cell on each of its dataset's test sets; the returned record
    is what the store keeps. Given the `store`, the crops of the first test images that the gallery
    shows are written there first (ResultStore.write_crops).

    Training checkpoints to <work_dir>/lightning/<cell id>/checkpoints/last.ckpt (see
    `checkpoint_interval`) and resumes from there when an earlier run was cut short. On more than one
    device it runs DDP with `strategy`: "ddp_spawn" starts the processes here; under "ddp" they were
    started by SLURM, each calls run_cell, and all but rank 0 return None. The test runs once, in one
    process on one device, on the weights of the last checkpoint.
    """
    if cell.not_applicable:
        raise ValueError(f"{cell.method} does not apply to {cell.dataset}: {cell.not_applicable}")
    started = now()
    t0 = time.perf_counter()
    pl.seed_everything(cell.seed, workers=True, verbose=False)
    method_cls = METHODS.get(cell.method)
    datamodule = build_datamodule(cell, data_dir, method_cls.train_keys, resources)
    method = build_method(cell, datamodule)
    description = f"{cell.dataset}/{cell.method}"
    train_seconds = 0.0
    logger = curve = None
    training: Training | None = None
    if cell.trainable:
        train = cell.train
        logger = cell_logger(cell, work_dir / "wandb") if rank_zero_only.rank == 0 else None
        every = cell.evaluation.test_every
        curve = TestCurve(every, datamodule, description, cell.evaluation.test_statistics) if every else None
        folder = work_dir / "lightning" / cell.id
        last = folder / "checkpoints" / "last.ckpt"
        resumed_from = resume_step(last)
        checkpoints = ModelCheckpoint(folder / "checkpoints", save_last=True, save_top_k=0,
                                      every_n_train_steps=checkpoint_interval(train))
        strategy = strategy if resources.world_size > 1 else "auto"
        # Batch norm over the whole batch, as on one device; PyTorch's SyncBatchNorm needs GPUs.
        sync_batchnorm = resources.world_size > 1 and accelerator != "cpu" and torch.cuda.is_available()
        trainer = pl.Trainer(max_steps=train.steps, val_check_interval=min(train.val_every, train.steps),
                             check_val_every_n_epoch=None, accelerator=accelerator, devices=resources.devices,
                             num_nodes=resources.nodes, strategy=strategy, precision=train.precision,
                             logger=logger or False, default_root_dir=str(folder), num_sanity_val_steps=0,
                             enable_model_summary=False, enable_progress_bar=progress_bars(),
                             log_every_n_steps=min(10, train.steps),
                             use_distributed_sampler=False, sync_batchnorm=sync_batchnorm,
                             callbacks=[*([curve] if curve else []), StopOnNonFiniteLoss(), KeepFreedMemoryOnCpu(),
                                        checkpoints])
        trainer.fit(method, datamodule=datamodule, ckpt_path=last if resumed_from else None, weights_only=True)
        if trainer.global_rank != 0:
            return None
        final = torch.load(last, map_location="cpu", weights_only=True)
        method.load_state_dict(final["state_dict"])
        if curve:
            curve.load_state_dict(final["callbacks"][curve.state_key])
        method.to(trainer.strategy.root_device).eval()
        train_seconds = time.perf_counter() - t0
        training = Training(resumed_from_step=resumed_from, devices=resources.devices, nodes=resources.nodes,
                            strategy=strategy)
    t1 = time.perf_counter()
    evaluations = score_cell(cell, method, datamodule, description, keep=TEST_SAMPLES if logger else 0,
                             crops=CROP_IMAGES if store else 0)
    tests = {name: stored_scores(evaluation, j_invariance_on(method, datamodule, name, seed=cell.seed,
                                                             description=f"D(f) {name} {description}")
                                 if cell.trainable and cell.evaluation.d_f else None)
             for name, evaluation in evaluations.items()}
    test_seconds = time.perf_counter() - t1
    if store is not None:
        store.write_crops(cell.id, evaluations)
    if logger is not None:
        log_test(logger.experiment, evaluations, tests)
    timings = Timings(train_s=round(train_seconds, 3), test_s=round(test_seconds, 3),
                      total_s=round(time.perf_counter() - t0, 3))
    return DoneRecord(**provenance(cell), tests=tests, curve=curve.points if curve else None, training=training,
                      timings=timings, started=started)
