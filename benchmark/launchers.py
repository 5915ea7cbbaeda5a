"""Launchers: where the cells of a table run. Every launcher runs the same job on each cell
(benchmark.runner.CellJob: train, test, store the result or the failure), so all write the same store.

- local: one cell after another in this process (the loop is in benchmark.runner).
- gpus: on this machine, one cell per GPU (per group of `devices` GPUs, for DDP cells) at a time, each
  in its own process: a submitit local job that sees only its GPUs (CUDA_VISIBLE_DEVICES).
- slurm: SLURM job arrays through submitit, one array task per cell.
"""

from __future__ import annotations

import os
import queue
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import submitit
import torch
from submitit.core.utils import FailedJobError, UncompletedJobError

from benchmark.registry import ConfigError
from benchmark.spec import Cell, Resources

LAUNCHERS = ("local", "gpus", "slurm")
JOB_NAME = "noise2same-bench"

Record = dict[str, Any]
# The job every launcher runs on a cell: it stores and returns the cell's record (None: nothing stored).
Job = Callable[[Cell], "Record | None"]
# Called as each cell ends: the cell, its record (None when its job died without one) and why it died.
Progress = Callable[[Cell, "Record | None", str], None]


@dataclass(frozen=True)
class LaunchOptions:
    """How the cells are launched: `launcher`, one of LAUNCHERS; `gpus`, the GPU ids the gpus launcher
    uses (default: every visible one); `time_min`, a cell's time limit in minutes under gpus and slurm
    (a cell that reaches it is requeued and resumes from its checkpoint); `partition` and
    `array_parallelism` (array tasks running at once; default: the cluster's limit) for slurm."""

    launcher: str = "local"
    gpus: tuple[int, ...] | None = None
    time_min: int = 24 * 60
    partition: str | None = None
    array_parallelism: int | None = None

    def __post_init__(self) -> None:
        if self.launcher not in LAUNCHERS:
            raise ConfigError(f"unknown launcher {self.launcher!r}; valid launchers: {', '.join(LAUNCHERS)}")


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
        return job.result(), ""
    except (UncompletedJobError, FailedJobError):
        return None, f"job {job.job_id} ended without a result (state {job.state}); its log: {job.paths.stderr}"


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


def slurm_executor(folder: Path, options: LaunchOptions, resources: Resources, gpus: bool) -> submitit.AutoExecutor:
    """A submitit executor of SLURM arrays whose every task runs one cell on `resources`: `nodes` nodes
    with one SLURM task per device (Lightning's DDP under SLURM), and a GPU per task when `gpus`."""
    executor = submitit.AutoExecutor(folder=folder / "%j", cluster="slurm")
    executor.update_parameters(name=JOB_NAME, timeout_min=options.time_min, nodes=resources.nodes,
                               tasks_per_node=resources.devices, gpus_per_node=resources.devices if gpus else None,
                               slurm_partition=options.partition, slurm_array_parallelism=options.array_parallelism)
    return executor


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
        submitted = executor.map_array(job, group)
        echo(f"submitted {len(group)} {'trained' if trained else 'classical'} cell(s) as SLURM job "
             f"{submitted[0].job_id.split('_')[0]}; logs in {folder}")
        jobs += zip(submitted, group)
    cell_of = {submitted.job_id: cell for submitted, cell in jobs}
    for finished in submitit.helpers.as_completed([submitted for submitted, _ in jobs], poll_frequency=2):
        progress(cell_of[finished.job_id], *outcome(finished))
