"""Running a table: resolve its cells, skip those already in the store, run the rest through a
launcher (here one by one with progress and an ETA, on this machine's GPUs, or on SLURM), store each
as it finishes or fails."""

from __future__ import annotations

import math
import multiprocessing
import os
import time
import traceback
from concurrent.futures import ProcessPoolExecutor, as_completed
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import submitit
from filelock import Timeout
from pytorch_lightning.utilities import rank_zero_only

from benchmark.cell import provenance, run_cell
from benchmark.console import start_worker
from benchmark.launchers import LaunchOptions, Record, run_on_gpus, run_on_slurm
from benchmark.registry import ConfigError
from benchmark.spec import Cell, Resources, shared_cells
from benchmark.store import DoneRecord, FailedRecord, ResultStore, StoreError
from datamodules import DATASETS
from datamodules.base import MissingDataError
from methods import METHODS

# Rough seconds on a 2-core CPU, for the first ETA before any cell has finished; the runner rescales
# them by what it measures. Trained cells: per (sample x pixel x channel^2) of one forward+backward.
SECONDS_PER_TRAINED_UNIT = 8e-9
SECONDS_PER_CLASSICAL_CELL = {"input": 1.0, "nlm": 10.0, "bm3d": 60.0}


def patch_pixels(cell: Cell) -> int:
    """Pixels (voxels) of one training patch of a trained cell."""
    patch = cell.train.patch_size
    return patch ** DATASETS.get(cell.dataset).spatial_dims if isinstance(patch, int) else math.prod(patch)


def estimated_seconds(cell: Cell) -> float:
    """A rough cost of a cell on a 2-core CPU (a trained cell: steps x batch x patch pixels x width^2 x passes)."""
    if not cell.trainable:
        return SECONDS_PER_CLASSICAL_CELL.get(cell.method, 30.0)
    train, backbone = cell.train, cell.backbone
    passes = METHODS.get(cell.method).forward_passes
    units = train.steps * train.batch_size * patch_pixels(cell) * backbone.base_channels ** 2 * passes
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
    """One line of a cell's resolved config: method and dataset (its registered name where it is not the
    column's, as for a column's fallback) arguments, training run, backbone and the optional sections."""
    def args(section: dict) -> str:
        return ", ".join(f"{k}={v}" for k, v in section.items() if k != "name")
    dataset = "dataset" if cell.dataset == cell.column else cell.dataset
    parts = [f"method({args(cell.config['method'])})", f"{dataset}({args(cell.config['dataset'])})"]
    if cell.trainable:
        parts += [f"{section}({args(cell.config[section])})" for section in ("train", "backbone", "evaluation", "speed")
                  if section in cell.config]
    return "; ".join(parts)


def training_volume(cell: Cell) -> str:
    """The work a trained cell does: steps x batch x patch pixels x network passes."""
    train = cell.train
    passes = METHODS.get(cell.method).forward_passes
    return f"{train.steps:,} steps x {train.batch_size} x {patch_pixels(cell):,} px x {passes} pass(es)"


def dry_run(cells: list[Cell], data_dir: Path, store: ResultStore, echo: Callable[[str], None] = print) -> int:
    """Print every cell with its resolved config and cost (or that it is stored) and the other packaged
    tables it is a cell of, and what data is missing for the cells still to run; 1 if any is, else 0."""
    applicable = [cell for cell in cells if not cell.not_applicable]
    stored = {cell.id for cell in applicable if store.has(cell.id)}
    todo = [cell for cell in applicable if cell.id not in stored]
    shared = shared_cells(applicable, data_dir)
    for cell in cells:
        if cell.not_applicable:
            echo(f"{cell.id}: n/a ({cell.not_applicable})")
            continue
        cost = f"{training_volume(cell)}; " if cell.trainable else ""
        state = "stored" if cell.id in stored else f"{cost}about {format_duration(estimated_seconds(cell))} on a 2-core CPU"
        also = f" (the same cell as {', '.join(shared[cell.id])}: trained once)" if cell.id in shared else ""
        echo(f"{cell.id}: {state}{also}\n    {describe(cell)}")
    total = sum(estimated_seconds(cell) for cell in todo)
    echo(f"{len(cells)} cells: {len(cells) - len(applicable)} not applicable, {len(stored)} already in {store.root}, "
         f"{len(todo)} to run: about {format_duration(total)} on a 2-core CPU")
    problems = missing_data(todo, data_dir)
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


def summary(result: DoneRecord) -> str:
    """'PSNR 27.10 dB', or one figure per test set when there are several ('no PSNR' without clean test images)."""
    tests = result.tests
    if not tests:
        return "no PSNR (no clean test images)"
    if len(tests) == 1:
        return f"PSNR {next(iter(tests.values())).psnr_mean:.2f} dB"
    return "PSNR " + ", ".join(f"{name} {test.psnr_mean:.2f}" for name, test in tests.items()) + " dB"


FAILURE_LINES = 25  # lines of the traceback a failed record keeps (the last ones)


def failure_record(cell: Cell, error: BaseException) -> FailedRecord:
    """What the store keeps of a cell that raised: its identity and config, the reason in one line (the
    error's last line, which for an error in a DDP process is the original error) and the traceback's tail."""
    lines = [line for line in "".join(traceback.format_exception_only(type(error), error)).splitlines() if line.strip()]
    return FailedRecord(**provenance(cell), error=lines[-1].strip()[:500],
                        traceback="\n".join("".join(traceback.format_exception(error)).splitlines()[-FAILURE_LINES:]))


@dataclass(frozen=True)
class CellJob(submitit.helpers.Checkpointable):
    """One cell, run and stored: its result, or, if it raises (NaN loss, out of memory, bad data), a
    failed record with the reason. Every launcher runs this, here or pickled into a submitit job; a
    submitit job that reaches its time limit is requeued (up to `--requeues` times under SLURM) and the
    cell resumes from its checkpoint; past that the launcher stores SLURM's reason through `fail`."""

    store: ResultStore
    work_dir: Path
    accelerator: str = "auto"
    data_dir: Path = Path("data")
    resources: Resources = Resources()
    strategy: str = "ddp_spawn"
    retry_failed: bool = False

    def __call__(self, cell: Cell) -> Record | None:
        """The record stored for the cell (see `claim`); None in a DDP process other than rank 0."""
        return self.claim(cell)[0]

    def claim(self, cell: Cell, wait: bool = True) -> tuple[Record | None, bool]:
        """Run and store the cell unless another run has: (its record, whether another run stored it).

        The first process holds the cell's lock while it runs the cell, so no two live runs train it
        (or read its checkpoints) at once. A run that finds the cell locked waits (`wait`; else raises
        filelock.Timeout at once) and then returns the record the other run stored, if any, instead
        of training again. A record that cannot be written raises StoreError naming the cell.
        """
        if rank_zero_only.rank != 0:  # a DDP process started by SLURM: its rank 0 holds the lock
            return (None, True) if self.store.has(cell.id, self.retry_failed) else (self.run(cell), False)
        with self.store.lock(cell.id, wait=wait):
            if self.store.has(cell.id, self.retry_failed):
                return self.store.record(cell.id), True
            record = self.run(cell)
            if record is not None:
                try:
                    self.store.write(record)
                except OSError as error:
                    raise StoreError(f"cell {cell.id} ({cell.dataset} x {cell.method}) finished but could not be "
                                     f"stored: {error.strerror or error}; the cells stored before it are kept, "
                                     f"free space in {self.store.root} (or choose --results) and run again") from error
            return record, False

    def run(self, cell: Cell) -> Record | None:
        """Run the cell here; a cell that raises gives its failed record."""
        try:
            return run_cell(cell, self.work_dir, self.accelerator, self.data_dir, self.resources, self.strategy,
                            self.store)
        except Exception as error:  # a broken cell must not cost the others
            return failure_record(cell, error)

    def fail(self, cell: Cell, error: Exception) -> Record:
        """Store and return the failed record of a cell whose job was ended from outside (SLURM's time limit)."""
        record = failure_record(cell, error)
        with self.store.lock(cell.id):
            self.store.write(record)
        return record


def outcome_line(cell: Cell, record: Record | None, note: str, reused: bool = False, verbose: bool = False) -> str:
    """How a cell ended, in a line: its score (`reused`: computed by another run), or why it failed (and,
    `verbose`, the traceback's tail)."""
    if record is None:
        return f"INTERRUPTED {cell.id}: {note}; run again to resume it from its checkpoint"
    if isinstance(record, FailedRecord):
        where = f"\n{record.traceback}" if verbose else "; --verbose (or the cell's record) shows the traceback"
        return f"FAILED {cell.dataset} x {cell.method} ({cell.id}): {record.error}{where}"
    if reused:
        return f"{cell.dataset} x {cell.method}: {summary(record)}, computed by another run"
    resumed = record.training.resumed_from_step if record.training else 0
    return (f"{cell.dataset} x {cell.method}: {summary(record)} in {format_duration(record.timings.total_s)}"
            + (f" (resumed from its checkpoint at step {resumed})" if resumed else ""))


def run_here(todo: list[Cell], job: CellJob, echo: Callable[[str], None], verbose: bool = False) -> None:
    """The local launcher: run the cells one by one in this process, with an ETA before each. A cell
    that another live run holds is put off until the others are done, then waited for."""
    # Measured / estimated seconds so far, per kind (trained or classical), to rescale the estimates.
    spent = {True: 0.0, False: 0.0}
    estimated = {True: 0.0, False: 0.0}
    pending = list(todo)  # not ended yet
    deferred: list[Cell] = []
    for wait, cells in ((False, todo), (True, deferred)):
        for cell in cells:
            eta = sum(estimated_seconds(c) * (spent[c.trainable] / estimated[c.trainable] if estimated[c.trainable]
                                              else 1.0) for c in pending)
            ended = len(todo) - len(pending)
            label = f"[cell {ended + 1}/{len(todo)}] {cell.dataset} x {cell.method} (seed {cell.seed}, {cell.preset})"
            echo(f"{label} - " + ("waiting for the run that holds it" if wait
                                  else f"ETA for the rest {format_duration(eta)}"))
            started = time.perf_counter()
            try:
                record, reused = job.claim(cell, wait=wait)
            except Timeout:
                echo(f"{label} is being run by another process; coming back to it after the others")
                deferred.append(cell)
                continue
            pending.remove(cell)
            echo(f"[cell {ended + 1}/{len(todo)}] {outcome_line(cell, record, '', reused, verbose)}")
            spent[cell.trainable] += time.perf_counter() - started
            estimated[cell.trainable] += estimated_seconds(cell)


def cores() -> int:
    """The CPU cores this process may run on."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def run_side_by_side(todo: list[Cell], job: CellJob, workers: int, echo: Callable[[str], None],
                     verbose: bool = False) -> None:
    """The local launcher with `workers` > 1: that many cells at a time, each in a worker process with
    cores // workers torch threads (small convolutions use a second thread poorly, so on a small CPU
    two one-thread processes finish more cells than one two-thread process). The costliest cells go
    first, so that no long cell starts last. The ETA scales the estimates of the cells left by the
    wall time the ended ones took."""
    threads = max(1, cores() // workers)
    order = sorted(todo, key=estimated_seconds, reverse=True)
    echo(f"{len(order)} cells, {workers} at a time, each in its own process with {threads} thread(s)")
    started, estimated_done = time.perf_counter(), 0.0
    pool = ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn"), initializer=start_worker,
                               initargs=(threads,))
    try:
        futures = {pool.submit(job.claim, cell): cell for cell in order}
        for ended, future in enumerate(as_completed(futures), 1):
            cell = futures[future]
            try:
                record, reused = future.result()
                note = ""
            except BrokenProcessPool:
                record, reused = None, False
                note = "its worker process died (killed, or out of memory)"
            estimated_done += estimated_seconds(cell)
            left = sum(estimated_seconds(futures[other]) for other in futures if not other.done())
            eta = (time.perf_counter() - started) / estimated_done * left
            echo(f"[{ended}/{len(order)} ended] {outcome_line(cell, record, note, reused, verbose)}"
                 + (f" - ETA for the rest {format_duration(eta)}" if left else ""))
    except BaseException:  # an interrupt or a store that cannot be written: stop every worker now
        pool.shutdown(wait=False, cancel_futures=True)
        for process in list(getattr(pool, "_processes", {}).values()):
            process.terminate()
        raise
    pool.shutdown()


def run_cells(cells: list[Cell], store: ResultStore, work_dir: Path, accelerator: str = "auto",
              data_dir: Path = Path("data"), echo: Callable[[str], None] = print, resources: Resources = Resources(),
              launch: LaunchOptions = LaunchOptions(), retry_failed: bool = False, verbose: bool = False) -> list[str]:
    """Run every cell not yet in the store (and those stored as failed, with `retry_failed`) through
    the launcher; returns the ids of the applicable cells without a result at the end.

    A cell that raises is stored as failed with its reason and the others still run; a cell whose
    process dies (killed, preempted) stores nothing and resumes from its checkpoint on the next run; an
    interrupt stops at once, leaving every finished cell in the store. The store is checked writable
    before any cell runs; a record that cannot be written later stops the table (StoreError).
    """
    if launch.workers > 1 and resources.devices > 1:
        raise ConfigError(f"--workers {launch.workers} runs one-device cells side by side; cells on "
                          f"{resources.devices} devices run one at a time: drop --workers")
    if resources.nodes > 1 and launch.launcher != "slurm":
        raise ConfigError(f"{resources.nodes} nodes per cell need --launcher slurm; "
                          f"the {launch.launcher} launcher runs on this machine only")
    applicable = [cell for cell in cells if not cell.not_applicable]
    for cell in applicable:
        if cell.trainable:
            resources.per_device_batch(cell.train.batch_size)
    store.check_writable()
    todo = [cell for cell in applicable if not store.has(cell.id, retry_failed)]
    failed_before = 0 if retry_failed else sum(store.failure(cell.id) is not None for cell in applicable)
    echo(f"{len(cells)} cells: {len(cells) - len(applicable)} not applicable, "
         f"{len(applicable) - len(todo)} already in {store.root}"
         + (f" ({failed_before} of them failed; --retry-failed runs them again)" if failed_before else "")
         + f", {len(todo)} to run")
    for dataset, problem in missing_data(todo, data_dir).items():
        skipped = [cell for cell in todo if cell.dataset == dataset]
        echo(f"skipping the {len(skipped)} cell(s) of {problem}")
        todo = [cell for cell in todo if cell.dataset != dataset]
    job = CellJob(store, work_dir, accelerator, data_dir, resources,
                  "ddp" if launch.launcher == "slurm" else "ddp_spawn", retry_failed)
    finished = 0

    def progress(cell: Cell, record: Record | None, note: str) -> None:
        nonlocal finished
        finished += 1
        echo(f"[{finished}/{len(todo)} ended] {outcome_line(cell, record, note, verbose=verbose)}")

    if launch.launcher == "local" and launch.workers > 1:
        run_side_by_side(todo, job, launch.workers, echo, verbose)
    elif launch.launcher == "local":
        run_here(todo, job, echo, verbose)
    elif todo and launch.launcher == "gpus":
        run_on_gpus(todo, job, resources, launch, work_dir / "submitit", progress)
    elif todo:
        run_on_slurm(todo, job, resources, accelerator != "cpu", launch, work_dir / "submitit", progress, echo)
    return [cell.id for cell in applicable if store.load(cell.id) is None]
