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
from methods import METHODS

# Rough seconds on a 2-core CPU, for the first ETA before any cell has finished; the runner rescales
# them by what it measures. Trained cells: per (sample x pixel x channel^2) of one forward+backward.
SECONDS_PER_TRAINED_UNIT = 8e-9
SECONDS_PER_CLASSICAL_CELL = {"input": 1.0, "nlm": 10.0, "bm3d": 60.0}


def estimated_seconds(cell: Cell) -> float:
    """A rough cost of a cell on a 2-core CPU (a trained cell: steps x batch x patch pixels x width^2 x passes)."""
    if not cell.trainable:
        return SECONDS_PER_CLASSICAL_CELL.get(cell.method, 30.0)
    train, backbone = cell.config["train"], cell.config["backbone"]
    patch = train["patch_size"]
    pixels = patch ** 2 if isinstance(patch, int) else math.prod(patch)
    passes = getattr(METHODS.get(cell.method), "forward_passes", 1)
    units = train["steps"] * train["batch_size"] * pixels * backbone["base_channels"] ** 2 * passes
    return SECONDS_PER_TRAINED_UNIT * units + 5.0


def format_duration(seconds: float) -> str:
    minutes, secs = divmod(int(round(seconds)), 60)
    return f"{minutes}m{secs:02d}s" if minutes else f"{secs}s"


def run_cells(cells: list[Cell], store: ResultStore, work_dir: Path, accelerator: str = "auto",
              echo: Callable[[str], None] = print) -> list[str]:
    """Run every cell not yet in the store; returns the ids of cells that failed (the others are stored).

    A failing cell is reported with its error and the remaining cells still run; an interrupt stops
    at once, leaving every finished cell in the store.
    """
    applicable = [cell for cell in cells if not cell.not_applicable]
    todo = [cell for cell in applicable if not store.has(cell.id)]
    echo(f"{len(cells)} cells: {len(cells) - len(applicable)} not applicable, "
         f"{len(applicable) - len(todo)} already in {store.root}, {len(todo)} to run")
    failed: list[str] = []
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
            result = run_cell(cell, work_dir, accelerator)
        except Exception as error:  # a broken cell must not cost the others
            failed.append(cell.id)
            echo(f"[cell {index}/{len(todo)}] FAILED {cell.id}: {type(error).__name__}: {error}")
            echo(traceback.format_exc(limit=-3))
        else:
            store.write(result)
            echo(f"[cell {index}/{len(todo)}] {cell.dataset} x {cell.method}: PSNR {result['psnr_mean']:.2f} dB "
                 f"in {format_duration(result['timings']['total_s'])}")
        spent[cell.trainable] += time.perf_counter() - started
        estimated[cell.trainable] += estimated_seconds(cell)
    return failed
