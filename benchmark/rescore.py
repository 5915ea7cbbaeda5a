"""Adding SSIM and gallery crops to the cells stored before they were kept, without training:
`python -m benchmark rescore`.

A trained cell is scored again from its kept checkpoint, <runs>/lightning/<cell id>/checkpoints/last.ckpt,
loaded as `benchmark.denoise` loads it, with the cell's speed options and the torch thread count its
record names; a classical cell (input, nlm, bm3d) has no training and denoises again. Both are
deterministic, so each image's PSNR must come out as stored, to within PSNR_TOLERANCE dB: then the
record gets the SSIM of every image and is written again, atomically, through the store (its PSNR kept
as stored), with the crops of its first test images beside it (the gallery's panels); otherwise it is
left as it was (the checkpoint is not the one that was scored). A method
that is not bit-reproducible (`bit_reproducible`: BM3D, whose library sums in parallel threads in no
fixed order) is held to LOOSE_PSNR_TOLERANCE instead, still well below the 0.01 dB a table prints. A
trained cell without its checkpoint is left alone and listed.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict
from pathlib import Path
from typing import Any, Callable

import pytorch_lightning as pl
import torch

from benchmark.cell import build_datamodule, build_method, score_cell, stored_scores
from benchmark.denoise import CHECKPOINT, TrainedCell, load_method
from benchmark.registry import ConfigError
from benchmark.spec import Cell
from benchmark.store import DoneRecord, ResultStore, TestScores
from datamodules.crops import CROP_IMAGES
from datamodules.evaluation import Evaluation
from methods import METHODS

PSNR_TOLERANCE = 1e-6  # dB: the largest difference between an image's stored and recomputed PSNR
LOOSE_PSNR_TOLERANCE = 1e-3  # dB, for a method that is not bit-reproducible (BM3D: about 1e-5 dB apart)


class ScoreMismatch(ValueError):
    """A recomputed PSNR that is not the stored one: the record is left as it was."""


def lacks_ssim(record: DoneRecord | None) -> bool:
    """Whether a finished record has a scored test set without SSIM (False for no record)."""
    return record is not None and any(scores.ssim is None for scores in record.tests.values())


def psnr_gap(new: float, stored: float) -> float:
    """|new - stored| in dB, 0 where they are equal (both infinite included)."""
    return 0.0 if new == stored else abs(new - stored)


def check_device(name: str) -> torch.device:
    """A torch device this machine has (ConfigError otherwise)."""
    try:
        device = torch.device(name)
    except RuntimeError:
        raise ConfigError(f"--device {name!r} is not a torch device; use cpu or cuda") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"--device {name}: no CUDA GPU is visible here; use --device cpu")
    return device


@contextmanager
def torch_threads(threads: int | None) -> Iterator[None]:
    """torch's intra-op thread count set to `threads` while the block runs (None: left as it is): the
    order of CPU float reductions, hence the last bits of a network's output, depends on it."""
    before = torch.get_num_threads()
    torch.set_num_threads(threads or before)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def rescoring_method(cell: Cell, runs: Path, device: torch.device) -> Any | None:
    """The cell's method as it was scored: a trained one with its checkpoint's weights and its speed
    options, on `device`; a classical one as built; None for a trained cell whose checkpoint is gone."""
    if not cell.trainable:
        return build_method(cell, None)
    checkpoint = runs / "lightning" / cell.id / CHECKPOINT
    if not checkpoint.is_file():
        return None
    method = load_method(TrainedCell(cell, checkpoint), device)
    method.accelerate(**asdict(cell.speed))
    return method


def with_ssim(stored: TestScores, evaluation: Evaluation, tolerance: float = PSNR_TOLERANCE) -> TestScores:
    """The stored scores with the evaluation's SSIM added, once its PSNR is the stored one image by image
    (|PSNR_new - PSNR_stored| <= tolerance dB for each image; ScoreMismatch otherwise)."""
    fresh = stored_scores(evaluation)
    if fresh.psnr.keys() != stored.psnr.keys():
        raise ScoreMismatch("its test images are not the ones stored")
    worst = max(stored.psnr, key=lambda image: psnr_gap(fresh.psnr[image], stored.psnr[image]))
    if not psnr_gap(fresh.psnr[worst], stored.psnr[worst]) <= tolerance:  # NaN fails too
        raise ScoreMismatch(f"image {worst} scores PSNR {fresh.psnr[worst]:.6f} dB, stored {stored.psnr[worst]:.6f} "
                            f"(more than {tolerance:g} dB apart)")
    return stored.model_copy(update={"ssim_mean": fresh.ssim_mean, "ssim": fresh.ssim})


def rescored(cell: Cell, record: DoneRecord, method: Any, data_dir: Path) -> tuple[DoneRecord, dict[str, Evaluation]]:
    """The record with the SSIM of each test set, scored again as `run_cell` scored it (same seed,
    datamodule and standardisation), and the evaluations, with the crops of the first test images."""
    method_cls = METHODS.get(cell.method)
    tolerance = PSNR_TOLERANCE if method_cls.bit_reproducible else LOOSE_PSNR_TOLERANCE
    pl.seed_everything(cell.seed, workers=True, verbose=False)
    datamodule = build_datamodule(cell, data_dir, method_cls.train_keys)
    evaluations = score_cell(cell, method, datamodule, f"{cell.dataset}/{cell.method} rescore", crops=CROP_IMAGES)
    if evaluations.keys() != record.tests.keys():
        raise ScoreMismatch(f"it scores test sets {sorted(evaluations)}, the record {sorted(record.tests)}")
    tests = {name: with_ssim(scores, evaluations[name], tolerance) for name, scores in record.tests.items()}
    return record.model_copy(update={"tests": tests}), evaluations


def ssim_summary(record: DoneRecord) -> str:
    """'SSIM 0.812', or one figure per test set when there are several."""
    means = {name: f"{scores.ssim_mean:.3f}" for name, scores in record.tests.items()}
    if len(means) == 1:
        return f"SSIM {next(iter(means.values()))}"
    return "SSIM " + ", ".join(f"{name} {mean}" for name, mean in means.items())


def rescore_cells(cells: list[Cell], store: ResultStore, runs: Path, data_dir: Path, device: torch.device,
                  echo: Callable[[str], None] = print) -> int:
    """Add SSIM to every finished cell of `cells` that lacks it, a line per cell; list the cells left
    alone. Exit status: 1 if a cell's PSNR did not come out as stored (its record is kept), else 0."""
    def lacking(cell: Cell) -> bool:
        record = store.load(cell.id)
        return lacks_ssim(record) or (record is not None and not store.crops_path(cell.id).exists())

    todo = [cell for cell in cells if not cell.not_applicable and lacking(cell)]
    echo(f"{len(todo)} stored cell(s) lack SSIM or gallery crops" + (f"; scoring them again on {device}" if todo else ""))
    left_alone, refused = [], 0
    for index, cell in enumerate(todo, start=1):
        label = f"[{index}/{len(todo)}] {cell.dataset} x {cell.method} (seed {cell.seed}, {cell.id})"
        method = rescoring_method(cell, runs, device)
        if method is None:
            left_alone.append(cell.id)
            echo(f"{label}: no checkpoint at {runs / 'lightning' / cell.id / CHECKPOINT}; left alone")
            continue
        with store.lock(cell.id):
            record = store.load(cell.id)
            if not lacking(cell):  # another rescore added them meanwhile
                continue
            try:
                with torch_threads(record.torch_threads if device.type == "cpu" else None):
                    record, evaluations = rescored(cell, record, method, data_dir)
            except ScoreMismatch as error:
                refused += 1
                cause = ("the checkpoint is not the one that was scored (or it ran on another device)" if cell.trainable
                         else "the method no longer computes what was stored (another version of its library?)")
                print(f"error: {label}: {error}: {cause}; record left as it was", file=sys.stderr)
                continue
            store.write_crops(cell.id, evaluations)
            store.write(record)
        echo(f"{label}: {ssim_summary(record)}, PSNR as stored, crops written")
    if left_alone:
        echo(f"{len(left_alone)} trained cell(s) left without SSIM (their checkpoints are gone; only training them "
             f"again would score them): {', '.join(left_alone)}")
    return 1 if refused else 0
