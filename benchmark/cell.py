"""Running one cell: build its datamodule and method, train if trainable, score the test set once."""

from __future__ import annotations

import logging
import platform
import subprocess
import time
import warnings
from functools import partial
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch

from benchmark.spec import Cell, TrainConfig
from benchmark.tracking import cell_logger
from datamodules import DATASETS
from datamodules.evaluation import evaluate
from methods import METHODS
from methods.jinvariance import j_invariance_on
from methods.unet import UNetConfig

PACKAGES = ("torch", "pytorch-lightning", "torchmetrics", "numpy", "scikit-image", "bm3d", "wandb", "noise2same-bench")

warnings.filterwarnings("ignore", ".*does not have many workers.*")
warnings.filterwarnings("ignore", ".*LeafSpec.*is deprecated.*")
warnings.filterwarnings("ignore", ".*Total length of .* across ranks is zero.*")  # no validation set
logging.getLogger("pytorch_lightning.utilities.rank_zero").addFilter(
    lambda record: "litlogger" not in record.getMessage())  # drop Lightning's advert on every fit


def environment() -> dict[str, Any]:
    """Package versions, Python, host, device and git commit the result was computed with."""
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
    return {"versions": versions, "python": platform.python_version(), "host": platform.node(),
            "device": device, "git_sha": sha}


def build_datamodule(cell: Cell, data_dir: Path, train_keys: frozenset[str] = frozenset({"noisy"})) -> Any:
    """The cell's dataset, reading real data from data_dir; for a trainable cell, set up to serve
    `train_keys` patches for its run."""
    kwargs = {k: v for k, v in cell.config["dataset"].items() if k != "name"}
    dataset_cls = DATASETS.get(cell.dataset)
    if not cell.trainable:
        return dataset_cls(**kwargs, data_dir=data_dir)
    train = TrainConfig(**cell.config["train"])
    patch = train.patch_size if isinstance(train.patch_size, int) else tuple(train.patch_size)
    return dataset_cls(**kwargs, data_dir=data_dir, train_keys=train_keys, batch_size=train.batch_size,
                       patch_size=patch, train_samples=train.steps * train.batch_size, seed=cell.seed)


def build_method(cell: Cell, datamodule: Any) -> Any:
    """The cell's method with its hyperparameters (and, if trainable, the backbone sized to the data)."""
    method_cls = METHODS.get(cell.method)
    kwargs = {k: v for k, v in cell.config["method"].items() if k != "name"}
    if not cell.trainable:
        return method_cls(**kwargs)
    if method_cls.requires_gaussian_sigma:
        kwargs["gaussian_sigma"] = datamodule.gaussian_sigma
    train = TrainConfig(**cell.config["train"])
    return method_cls(**kwargs, in_channels=datamodule.channels, spatial_dims=datamodule.spatial_dims,
                      backbone=UNetConfig(**cell.config["backbone"]), seed=cell.seed, lr=train.lr,
                      lr_halving_steps=train.lr_halving_steps)


def score(method: Any, datamodule: Any, description: str) -> dict[str, Any]:
    """Mean and per-image PSNR of the method on each test set of the datamodule (tiled as the dataset asks)."""
    denoise = partial(method.denoise, tile=datamodule.inference_tile)
    tests = {}
    for name in datamodule.test_sets:
        scores = evaluate(denoise, datamodule.eval_dataloader(name), datamodule.protocol,
                          description=f"{name} {description}", transform=not method.scored_as_is)
        tests[name] = {"psnr_mean": scores.mean, "psnr": dict(zip(scores.ids, scores.psnr))}
    return tests


class TestCurve(pl.Callback):
    """The test PSNR of each test set before training and every `every` steps (the paper's Figure 3)."""

    def __init__(self, every: int, datamodule: Any, description: str) -> None:
        self.every = every
        self.datamodule = datamodule
        self.description = description
        self.points: list[dict[str, float]] = []

    def record(self, trainer: pl.Trainer, method: Any) -> None:
        was_training = method.training
        method.eval()
        tests = score(method, self.datamodule, self.description)
        self.points.append({"step": trainer.global_step, **{name: t["psnr_mean"] for name, t in tests.items()}})
        method.train(was_training)

    def on_train_start(self, trainer: pl.Trainer, method: Any) -> None:
        self.record(trainer, method)

    def on_train_batch_end(self, trainer: pl.Trainer, method: Any, *args: Any) -> None:
        if trainer.global_step % self.every == 0:
            self.record(trainer, method)


def run_cell(cell: Cell, work_dir: Path, accelerator: str = "auto", data_dir: Path = Path("data")) -> dict[str, Any]:
    """Train (if trainable) and test one cell on each of its dataset's test sets; the returned dict is
    what the store keeps."""
    if cell.not_applicable:
        raise ValueError(f"{cell.method} does not apply to {cell.dataset}: {cell.not_applicable}")
    started = datetime.now(timezone.utc)
    t0 = time.perf_counter()
    pl.seed_everything(cell.seed, workers=True, verbose=False)
    method_cls = METHODS.get(cell.method)
    datamodule = build_datamodule(cell, data_dir, method_cls.train_keys)
    method = build_method(cell, datamodule)
    description = f"{cell.dataset}/{cell.method}"
    train_seconds = 0.0
    logger = curve = None
    if cell.trainable:
        train = TrainConfig(**cell.config["train"])
        logger = cell_logger(cell, work_dir / "wandb")
        every = cell.evaluation.test_every
        curve = TestCurve(every, datamodule, description) if every else None
        trainer = pl.Trainer(max_steps=train.steps, val_check_interval=min(train.val_every, train.steps),
                             check_val_every_n_epoch=None, accelerator=accelerator, devices=1,
                             precision=train.precision, logger=logger or False, enable_checkpointing=False,
                             default_root_dir=str(work_dir / "lightning" / cell.id), num_sanity_val_steps=0,
                             enable_model_summary=False, log_every_n_steps=min(10, train.steps),
                             callbacks=[curve] if curve else [])
        trainer.fit(method, datamodule=datamodule)
        train_seconds = time.perf_counter() - t0
        method.eval()
    t1 = time.perf_counter()
    tests = score(method, datamodule, description)
    if cell.trainable and cell.evaluation.d_f:
        for name in tests:
            tests[name]["d_f"] = j_invariance_on(method, datamodule, name, seed=cell.seed,
                                                 description=f"D(f) {name} {description}")
    test_seconds = time.perf_counter() - t1
    if logger is not None:
        logger.experiment.summary.update({f"{name}/psnr": test["psnr_mean"] for name, test in tests.items()})
        logger.experiment.finish()
    return {
        "id": cell.id, "table": cell.table, "preset": cell.preset, "status": "done",
        "dataset": cell.dataset, "method": cell.method, "seed": cell.seed, "config": cell.config,
        "tests": tests, **({"curve": curve.points} if curve else {}),
        "timings": {"train_s": round(train_seconds, 3), "test_s": round(test_seconds, 3),
                    "total_s": round(time.perf_counter() - t0, 3)},
        "started": started.isoformat(timespec="seconds"),
        "finished": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        **environment(),
    }
