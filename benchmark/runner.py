"""Running a table: resolve its cells, skip those already in the store, run the rest one by one with
progress and an ETA, store each as it finishes."""

from __future__ import annotations

import math
import time
import traceback
from pathlib import Path
from typing import Callable

from benchmark.cell import run_cell
from benchmark.spec import Cell
from benchmark.store import ResultStore
from datamodules import DATASETS
from datamodules.base import MissingDataError
from methods import METHODS

# Rough seconds on a 2-core CPU, for the first ETA before any cell has finished; the runner rescales
# them by what it measures. Trained cells: per (sample x pixel x channel^2) of one forward+backward.
SECONDS_PER_TRAINED_UNIT = 8e-9
SECONDS_PER_CLASSICAL_CELL = {"input": 1.0, "nlm": 10.0, "bm3d": 60.0}


def patch_pixels(cell: Cell) -> int:
    """Pixels (voxels) of one training patch of a trained cell."""
    patch = cell.config["train"]["patch_size"]
    return patch ** DATASETS.get(cell.dataset).spatial_dims if isinstance(patch, int) else math.prod(patch)


def estimated_seconds(cell: Cell) -> float:
    """A rough cost of a cell on a 2-core CPU (a trained cell: steps x batch x patch pixels x width^2 x passes)."""
    if not cell.trainable:
        return SECONDS_PER_CLASSICAL_CELL.get(cell.method, 30.0)
    train, backbone = cell.config["train"], cell.config["backbone"]
    passes = METHODS.get(cell.method).forward_passes
    units = train["steps"] * train["batch_size"] * patch_pixels(cell) * backbone["base_channels"] ** 2 * passes
    return SECONDS_PER_TRAINED_UNIT * units + 5.0


def missing_data(cells: list[Cell], data_dir: Path) -> dict[str, str]:
    """Dataset name -> the one-line MissingDataError message, for the cells' datasets whose files are absent."""
    problems = {}
    for name in dict.fromkeys(cell.dataset for cell in cells):
        try:
            DATASETS.get(name)(data_dir=data_dir).check_files()
        except MissingDataError as error:
            problems[name] = str(error)
    return problems


def describe(cell: Cell) -> str:
    """One line of a cell's resolved config: method and dataset arguments, training run and backbone."""
    def args(section: dict) -> str:
        return ", ".join(f"{k}={v}" for k, v in section.items() if k != "name")
    parts = [f"method({args(cell.config['method'])})", f"dataset({args(cell.config['dataset'])})"]
    if cell.trainable:
        parts += [f"train({args(cell.config['train'])})", f"backbone({args(cell.config['backbone'])})"]
    return "; ".join(parts)


def training_volume(cell: Cell) -> str:
    """The work a trained cell does: steps x batch x patch pixels x network passes."""
    train = cell.config["train"]
    passes = METHODS.get(cell.method).forward_passes
    return f"{train['steps']:,} steps x {train['batch_size']} x {patch_pixels(cell):,} px x {passes} pass(es)"


def dry_run(cells: list[Cell], data_dir: Path, echo: Callable[[str], None] = print) -> int:
    """Print every cell with its resolved config and cost, and what data is missing; 1 if any is, else 0."""
    for cell in cells:
        if cell.not_applicable:
            echo(f"{cell.id}: n/a ({cell.not_applicable})")
            continue
        cost = f"{training_volume(cell)}; " if cell.trainable else ""
        echo(f"{cell.id}: {cost}about {format_duration(estimated_seconds(cell))} on a 2-core CPU\n    {describe(cell)}")
    applicable = [cell for cell in cells if not cell.not_applicable]
    total = sum(estimated_seconds(cell) for cell in applicable)
    echo(f"{len(cells)} cells, {len(applicable)} to run: about {format_duration(total)} on a 2-core CPU")
    problems = missing_data(applicable, data_dir)
    for problem in problems.values():
        echo(f"missing data: {problem}")
    return 1 if problems else 0


def format_duration(seconds: float) -> str:
    """'42s', '3m05s', '2h07m' or '3d04h'."""
    minutes, secs = divmod(int(round(seconds)), 60)
    hours, minutes = divmod(minutes, 60)
    days, hours = divmod(hours, 24)
    if days:
        return f"{days}d{hours:02d}h"
    if hours:
        return f"{hours}h{minutes:02d}m"
    return f"{minutes}m{secs:02d}s" if minutes else f"{secs}s"


def summary(result: dict) -> str:
    """'PSNR 27.10 dB', or one figure per test set when there are several."""
    tests = result["tests"]
    if len(tests) == 1:
        return f"PSNR {next(iter(tests.values()))['psnr_mean']:.2f} dB"
    return "PSNR " + ", ".join(f"{name} {test['psnr_mean']:.2f}" for name, test in tests.items()) + " dB"


def run_cells(cells: list[Cell], store: ResultStore, work_dir: Path, accelerator: str = "auto",
              data_dir: Path = Path("data"), echo: Callable[[str], None] = print) -> list[str]:
    """Run every cell not yet in the store; returns the ids of cells that failed (the others are stored).

    A failing cell is reported with its error and the remaining cells still run; an interrupt stops
    at once, leaving every finished cell in the store.
    """
    applicable = [cell for cell in cells if not cell.not_applicable]
    todo = [cell for cell in applicable if not store.has(cell.id)]
    echo(f"{len(cells)} cells: {len(cells) - len(applicable)} not applicable, "
         f"{len(applicable) - len(todo)} already in {store.root}, {len(todo)} to run")
    failed: list[str] = []
    for dataset, problem in missing_data(todo, data_dir).items():
        skipped = [cell for cell in todo if cell.dataset == dataset]
        echo(f"skipping the {len(skipped)} cell(s) of {problem}")
        failed += [cell.id for cell in skipped]
        todo = [cell for cell in todo if cell.dataset != dataset]
    # Measured / estimated seconds so far, per kind (trained or classical), to rescale the estimates.
    spent = {True: 0.0, False: 0.0}
    estimated = {True: 0.0, False: 0.0}
    for index, cell in enumerate(todo, start=1):
        eta = sum(estimated_seconds(c) * (spent[c.trainable] / estimated[c.trainable] if estimated[c.trainable] else 1.0)
                  for c in todo[index - 1:])
        echo(f"[cell {index}/{len(todo)}] {cell.dataset} x {cell.method} (seed {cell.seed}, {cell.preset}) "
             f"- ETA for the rest {format_duration(eta)}")
        started = time.perf_counter()
        try:
            result = run_cell(cell, work_dir, accelerator, data_dir)
        except Exception as error:  # a broken cell must not cost the others
            failed.append(cell.id)
            echo(f"[cell {index}/{len(todo)}] FAILED {cell.id}: {type(error).__name__}: {error}")
            echo(traceback.format_exc(limit=-3))
        else:
            store.write(result)
            echo(f"[cell {index}/{len(todo)}] {cell.dataset} x {cell.method}: {summary(result)} "
                 f"in {format_duration(result['timings']['total_s'])}")
        spent[cell.trainable] += time.perf_counter() - started
        estimated[cell.trainable] += estimated_seconds(cell)
    return failed
