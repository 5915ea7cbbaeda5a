"""Launchers: where the cells of a table run. Every launcher runs the same job on each cell
(benchmark.runner.CellJob: train, test, store the result or the failure), so all write the same store.

- local: one cell after another in this process, or `workers` cells side by side, each in its own
  process with its share of the cores (the loops are in benchmark.runner).
- gpus: on this machine, one cell per GPU (per group of `devices` GPUs, for DDP cells) at a time, each
  in its own process: a submitit local job that sees only its GPUs (CUDA_VISIBLE_DEVICES).
- slurm: SLURM job arrays through submitit, one array task per cell. A task that reaches its time
  limit is requeued by submitit (`requeues` times) and resumes from its checkpoint; past that, SLURM ends
  it (state TIMEOUT) and the cell is stored as failed with SLURM's reason. A task that ends otherwise
  without a result (scancel, a node failure, out of host memory) stores nothing: the next run resumes it.
"""

from __future__ import annotations

import os
import queue
import re
import signal
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator, Protocol

import submitit
import torch
from submitit.core.utils import FailedJobError, UncompletedJobError

from benchmark.registry import ConfigError
from benchmark.spec import Cell, Resources
from benchmark.store import DoneRecord, FailedRecord

LAUNCHERS = ("local", "gpus", "slurm")
JOB_NAME = "noise2same-bench"

Record = DoneRecord | FailedRecord


class Job(Protocol):
    """The job every launcher runs on a cell (benchmark.runner.CellJob)."""

    def __call__(self, cell: Cell) -> Record | None:
        """Run the cell; store and return its record (None: nothing stored)."""

    def fail(self, cell: Cell, error: Exception) -> Record:
        """Store and return the failed record of a cell whose job was ended from outside, for `error`."""


# Called as each cell ends: the cell, its record (None when its job died without one) and why it died.
Progress = Callable[[Cell, "Record | None", str], None]


@dataclass(frozen=True)
class LaunchOptions:
    """How the cells are launched: `launcher`, one of LAUNCHERS; `gpus`, the GPU ids the gpus launcher
    uses (default: every visible one); `time_min`, a cell's time limit in minutes under gpus and slurm
    (a cell that reaches it is requeued, up to `requeues` times under slurm, and resumes from its
    checkpoint); `partition` and `array_parallelism` (array tasks running at once; default: the
    cluster's limit) for slurm; `workers`, cells run side by side by the local launcher."""

    launcher: str = "local"
    gpus: tuple[int, ...] | None = None
    time_min: int = 24 * 60
    partition: str | None = None
    array_parallelism: int | None = None
    requeues: int = 3
    workers: int = 1

    def __post_init__(self) -> None:
        if self.launcher not in LAUNCHERS:
            raise ConfigError(f"unknown launcher {self.launcher!r}; valid launchers: {', '.join(LAUNCHERS)}")
        if self.workers > 1 and self.launcher != "local":
            raise ConfigError(f"--workers runs cells side by side on this machine's cores (the local launcher); "
                              f"the {self.launcher} launcher sets how many run at once itself: drop --workers")
        if self.requeues < 0:
            raise ConfigError(f"--requeues is a number of times, 0 or more; got {self.requeues}")


def visible_gpus() -> list[int]:
    """The ids of the GPUs this process may use: those CUDA_VISIBLE_DEVICES lists, else every GPU torch sees."""
    names = os.environ.get("CUDA_VISIBLE_DEVICES")
    if names is None:
        return list(range(torch.cuda.device_count()))
    try:
        return [int(name) for name in names.split(",") if name.strip()]
    except ValueError:
        raise ConfigError(f"CUDA_VISIBLE_DEVICES={names!r} does not list GPUs by index; "
                          "name the GPUs to use with --gpus, e.g. --gpus 0,1") from None


def gpu_slots(gpus: list[int], devices: int) -> list[tuple[int, ...]]:
    """The GPUs cut into groups of `devices`, one group per cell running at a time (a remainder stays idle)."""
    slots = [tuple(gpus[start:start + devices]) for start in range(0, len(gpus) - devices + 1, devices)]
    if not slots:
        raise ConfigError(f"the gpus launcher needs {devices} GPU(s) per cell and sees {len(gpus)} "
                          f"({', '.join(map(str, gpus)) or 'none'}); use --launcher local, or name GPUs with --gpus")
    return slots


def outcome(job: submitit.Job) -> tuple[Record | None, str]:
    """The record a cell's job returned; or None, and why, when the job ended without one (killed,
    out of host memory, preempted, past its time limit too often)."""
    try:
        return job.results()[0], ""  # a DDP job's first task (rank 0) returns the record, the others None
    except (UncompletedJobError, FailedJobError):
        log = job.task(0).paths.stderr
        return None, f"job {job.job_id} ended without a result (state {job.state}); its log: {log}"


def run_on_gpus(cells: list[Cell], job: Job, resources: Resources, options: LaunchOptions, folder: Path,
                progress: Progress) -> None:
    """Run the cells on this machine's GPUs, one cell per group of `resources.devices` GPUs at a time,
    each in its own submitit local job (logs under `folder`); `progress` is called as each ends. A
    thread per group waits on its job, so a group takes the next cell as soon as it is free."""
    slots: queue.Queue[submitit.LocalExecutor] = queue.Queue()
    for gpus in gpu_slots(list(options.gpus) if options.gpus else visible_gpus(), resources.devices):
        executor = submitit.LocalExecutor(folder=folder)
        executor.update_parameters(name=JOB_NAME, timeout_min=options.time_min, gpus_per_node=len(gpus),
                                   visible_gpus=gpus)
        slots.put(executor)
    jobs: list[submitit.Job] = []

    def run(cell: Cell) -> tuple[Record | None, str]:
        executor = slots.get()
        try:
            submitted = executor.submit(job, cell)
            jobs.append(submitted)
            return outcome(submitted)
        finally:
            slots.put(executor)

    with ThreadPoolExecutor(max_workers=slots.qsize()) as pool:
        futures = {pool.submit(run, cell): cell for cell in cells}
        try:
            for future in as_completed(futures):
                progress(futures[future], *future.result())
        except KeyboardInterrupt:
            pool.shutdown(wait=False, cancel_futures=True)
            for submitted in jobs:
                submitted.cancel(check=False)
            raise


class TimeLimitError(RuntimeError):
    """SLURM ended a cell's job at its time limit (after its requeues); the message gives SLURM's reason."""


@dataclass(frozen=True)
class SlurmTask(submitit.helpers.Checkpointable):
    """A cell's job as a SLURM array task runs it. SLURM warns a task before its time limit (SIGUSR2,
    which submitit asks for); submitit then requeues the task, which resumes the cell from its last
    checkpoint. Once the task has been requeued `requeues` times (SLURM_RESTART_COUNT), it ignores the
    warning, so SLURM ends it at the limit (state TIMEOUT) and the cell is stored as failed."""

    job: Job
    requeues: int

    def __call__(self, cell: Cell) -> Record | None:
        if int(os.environ.get("SLURM_RESTART_COUNT") or 0) >= self.requeues:
            signal.signal(signal.SIGUSR2, signal.SIG_IGN)
        return self.job(cell)


def slurm_executor(folder: Path, options: LaunchOptions, resources: Resources, gpus: bool) -> submitit.AutoExecutor:
    """A submitit executor of SLURM arrays whose every task runs one cell on `resources`: `nodes` nodes
    with one SLURM task per device (Lightning's DDP under SLURM), and a GPU per task when `gpus`. The
    time-limit warning comes 90 s before the limit, or a quarter of a limit under 6 minutes."""
    executor = submitit.AutoExecutor(folder=folder / "%j", cluster="slurm", slurm_max_num_timeout=options.requeues)
    executor.update_parameters(name=JOB_NAME, timeout_min=options.time_min, nodes=resources.nodes,
                               tasks_per_node=resources.devices, gpus_per_node=resources.devices if gpus else None,
                               slurm_partition=options.partition, slurm_array_parallelism=options.array_parallelism,
                               slurm_signal_delay_s=min(90, 15 * options.time_min))
    return executor


def slurm_end(job: submitit.Job) -> tuple[str, str]:
    """How SLURM says a job ended: its state from sacct (e.g. TIMEOUT, CANCELLED by 0, NODE_FAIL) and the
    line slurmstepd wrote into its log when it ended the job ('JOB 12 ON node CANCELLED AT ... DUE TO
    TIME LIMIT'), or ''."""
    query = subprocess.run(["sacct", "-X", "-n", "-P", "-j", job.job_id, "-o", "State"], capture_output=True,
                           text=True, timeout=60)
    lines = query.stdout.strip().splitlines()
    state = lines[0].strip() if lines else job.state
    stderr = job.task(0).paths.stderr
    log = stderr.read_text(errors="replace") if stderr.exists() else ""
    ends = re.findall(r"^slurmstepd\S*: error: \*\*\* (JOB .*?) \*\*\*$", log, re.MULTILINE)
    return state, ends[-1] if ends else ""


def slurm_outcome(job: submitit.Job, cell: Cell, cell_job: Job, options: LaunchOptions) -> tuple[Record | None, str]:
    """The record of a cell's SLURM job: the one it returned; a failed record when SLURM ended it at its
    time limit; or None and SLURM's account of the job's end when it ended otherwise without one."""
    record, note = outcome(job)
    if record is not None:
        return record, note
    state, reason = slurm_end(job)
    if state.startswith("TIMEOUT"):
        requeued = f" and {options.requeues} requeue(s)" if options.requeues else ""
        error = TimeLimitError(f"SLURM ended job {job.job_id} at its time limit of {options.time_min} min{requeued} "
                               f"(state {state}{': ' + reason if reason else ''}); run it again with a longer --time "
                               "and --retry-failed: it resumes from its checkpoint")
        return cell_job.fail(cell, error), ""
    return None, (f"SLURM job {job.job_id} ended without a result (state {state}{': ' + reason if reason else ''}); "
                  f"its log: {job.task(0).paths.stderr}")


def run_on_slurm(cells: list[Cell], job: Job, resources: Resources, gpus: bool, options: LaunchOptions,
                 folder: Path, progress: Progress, echo: Callable[[str], None] = print) -> None:
    """Submit the cells as SLURM job arrays (logs under `folder`): classical cells on one task without
    a GPU, trained cells on `resources` (with GPUs when `gpus`); wait, calling `progress` as each ends."""
    jobs: list[tuple[submitit.Job, Cell]] = []
    for trained in (False, True):
        group = [cell for cell in cells if cell.trainable == trained]
        if not group:
            continue
        executor = slurm_executor(folder, options, resources if trained else Resources(), gpus and trained)
        submitted = executor.map_array(SlurmTask(job, options.requeues), group)
        echo(f"submitted {len(group)} {'trained' if trained else 'classical'} cell(s) as SLURM job "
             f"{submitted[0].job_id.split('_')[0]}; logs in {folder}")
        jobs += zip(submitted, group)
    cell_of = {submitted.job_id: cell for submitted, cell in jobs}
    for finished in as_ended([submitted for submitted, _ in jobs]):
        progress(cell_of[finished.job_id], *slurm_outcome(finished, cell_of[finished.job_id], job, options))


SACCT_EVERY_S = 10  # how often the slurm launcher asks sacct about its jobs' states


def as_ended(jobs: list[submitit.Job]) -> Iterator[submitit.Job]:
    """Yield each SLURM job as it ends: when its result appears (checked every 2 s), or when sacct, asked
    about all of them at once every SACCT_EVERY_S, says it ended without one (submitit alone asks less
    and less often as a run grows old, up to every 10 minutes)."""
    pending, asked = list(jobs), 0.0
    while pending:
        if time.monotonic() - asked > SACCT_EVERY_S:
            pending[0].watcher.update()
            asked = time.monotonic()
        for ended in [job for job in pending if job.done()]:
            pending.remove(ended)
            yield ended
        if pending:
            time.sleep(2)
