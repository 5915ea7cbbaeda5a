"""The slurm launcher against a real one-node SLURM cluster (tests/slurm/cluster.sh; `make test-slurm`
brings it up, runs these tests and brings it down): job arrays, a cancelled task, a node failure, a
DDP cell as two tasks under srun, a job past its time limit. Each run is the command line a user types,
on the cells of tests/slurm/table.yaml."""

from __future__ import annotations

import hashlib
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from benchmark.spec import TableSpec

REPO = Path(__file__).resolve().parents[1]
SLURM_CONF = Path(os.environ.get("SLURM_CONF", "/nonexistent"))


def cluster_up() -> bool:
    """Whether SLURM_CONF names a cluster whose controller answers."""
    if not SLURM_CONF.is_file():
        return False
    try:
        return subprocess.run(["sinfo", "-h"], capture_output=True, timeout=20).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


pytestmark = [pytest.mark.slurm,
              pytest.mark.skipif(not cluster_up(), reason="no SLURM cluster; `make test-slurm` brings one up")]

TABLE = str(REPO / "tests" / "slurm" / "table.yaml")  # natural-gray cells whose length is set by their steps
# Every run goes through SLURM, on CPUs; each task runs one torch thread (the node has two CPUs).
SLURM = ["--launcher", "slurm", "--accelerator", "cpu", "--time", "30"]
SMOKE = [TABLE, "--preset", "smoke"]
PSNR_TOLERANCE = 0.5  # dB between a cell trained by two DDP processes and by one (tests/test_scale_out.py)


def start(results: Path, *args: str) -> subprocess.Popen:
    """`python -m benchmark run ARGS --results RESULTS`, started; its output goes to RESULTS/run-<n>.log."""
    results.mkdir(parents=True, exist_ok=True)
    log = results / f"run-{len(list(results.glob('run-*.log')))}.log"
    with log.open("w") as stream:
        process = subprocess.Popen([sys.executable, "-m", "benchmark", "run", *args, "--results", str(results)],
                                   cwd=REPO, env={**os.environ, "WANDB_MODE": "disabled", "OMP_NUM_THREADS": "1"},
                                   stdout=stream, stderr=subprocess.STDOUT)
    process.log = log
    return process


def finish(process: subprocess.Popen, timeout: float = 900) -> tuple[int, str]:
    """The exit status and output of a run started by `start`."""
    return process.wait(timeout=timeout), process.log.read_text()


def run(results: Path, *args: str) -> tuple[int, str]:
    """The exit status and output of `python -m benchmark run ARGS --results RESULTS`."""
    return finish(start(results, *args))


def output_of(results: Path) -> str:
    """The output so far of the latest run into `results`."""
    logs = sorted(results.glob("run-*.log"), key=lambda path: path.stat().st_mtime)
    return logs[-1].read_text() if logs else ""


def records(results: Path) -> dict[str, dict]:
    """cell id -> stored record."""
    return {path.stem: json.loads(path.read_text()) for path in (results / "runs" / "cells").glob("*.json")}


def md5s(results: Path) -> dict[str, str]:
    """cell id -> md5 of its record file."""
    return {path.stem: hashlib.md5(path.read_bytes()).hexdigest() for path in (results / "runs" / "cells").glob("*.json")}


def submitted(output: str) -> dict[str, str]:
    """'trained' / 'classical' -> the SLURM job id the run printed for that group."""
    return dict(re.findall(r"submitted \d+ (trained|classical) cell\(s\) as SLURM job (\d+)", output))


def wait_for(condition, timeout: float, what: str, poll: float = 0.5):
    """Poll `condition` until it returns something truthy; fail naming `what` after `timeout` s."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(poll)
    pytest.fail(f"timed out after {timeout:.0f} s waiting for {what}")


def sacct(job: str, fields: str = "JobID,State,Start,End,NTasks") -> list[dict[str, str]]:
    """sacct's rows (job allocations and steps) for a job id."""
    out = subprocess.run(["sacct", "-n", "-P", "-j", job, "-o", fields], capture_output=True, text=True, check=True).stdout
    return [dict(zip(fields.split(","), line.split("|"))) for line in out.splitlines()]


def states(job: str) -> dict[str, str]:
    """Array task (or job) id -> its SLURM state."""
    return {row["JobID"]: row["State"] for row in sacct(job) if "." not in row["JobID"]}


def test_a_smoke_table_runs_as_job_arrays_and_stores_every_cell_once(tmp_path):
    code, out = run(tmp_path, *SMOKE, *SLURM, "--array-parallelism", "1")
    assert code == 0, out
    stored = records(tmp_path)
    assert sorted(r["method"] for r in stored.values()) == ["input", "noise2same", "noise2true"]
    assert {r["status"] for r in stored.values()} == {"done"} and len(re.findall(r"\[\d/3 ended\]", out)) == 3
    scripts = [path.read_text() for path in (tmp_path / "runs" / "submitit").rglob("*_submission.sh")]
    assert sum("#SBATCH --array=0-1%1" in script for script in scripts) == 1
    jobs = submitted(out)
    trained = {f"{jobs['trained']}_0": "COMPLETED", f"{jobs['trained']}_1": "COMPLETED"}
    wait_for(lambda: states(jobs["trained"]) == trained, 30, "the array's tasks to complete")  # the results come first
    wait_for(lambda: states(jobs["classical"]) == {jobs["classical"]: "COMPLETED"}, 30, "the classical job to complete")
    first, second = (row for row in sacct(jobs["trained"]) if row["JobID"] in trained)
    assert second["Start"] >= first["End"]  # --array-parallelism 1: one task at a time


def cell_id(preset: str, method: str) -> str:
    (cell,) = TableSpec.load(TABLE).cells(preset, methods=[method])
    return cell.id


def test_a_cancelled_array_task_reruns_alone_from_its_checkpoint(tmp_path):
    args = [TABLE, "--preset", "long", *SLURM, "--array-parallelism", "2"]
    process = start(tmp_path, *args)
    jobs = wait_for(lambda: submitted(output_of(tmp_path)).get("trained") and submitted(output_of(tmp_path)),
                    120, "the run to submit its trained cells")
    victim = cell_id("long", "noise2same")  # the second cell of the trained array: task 1
    checkpoint = tmp_path / "runs" / "lightning" / victim / "checkpoints" / "last.ckpt"
    wait_for(checkpoint.exists, 600, "the first checkpoint of the noise2same cell", poll=0.2)
    subprocess.run(["scancel", f"{jobs['trained']}_1"], check=True)
    code, out = finish(process)
    assert code == 1 and f"INTERRUPTED {victim}" in out and "state CANCELLED" in out, out
    assert states(jobs["trained"]) == {f"{jobs['trained']}_0": "COMPLETED", f"{jobs['trained']}_1": "CANCELLED by 0"}
    before = md5s(tmp_path)
    assert len(before) == 2 and victim not in before  # the input and noise2true cells
    resumed_from = torch.load(checkpoint, map_location="cpu", weights_only=True)["global_step"]
    assert 0 < resumed_from < 240

    code, out = run(tmp_path, *args)
    assert code == 0, out
    assert "2 already in" in out and ", 1 to run" in out and list(submitted(out)) == ["trained"]
    assert {cell: digest for cell, digest in md5s(tmp_path).items() if cell != victim} == before  # the others untouched
    record = records(tmp_path)[victim]
    assert record["status"] == "done" and record["training"]["resumed_from_step"] == resumed_from


def stepd_of(pid: int) -> int | None:
    """The slurmstepd a job process runs under (its parent), None if either has gone."""
    try:
        parent = int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
        return parent if Path(f"/proc/{parent}/comm").read_text().strip() == "slurmstepd" else None
    except (OSError, ValueError, IndexError):
        return None


def node_failure() -> None:
    """The node dies: slurmd and every process of the jobs on it (their slurmstepd and tasks) are killed."""
    listed = subprocess.run(["scontrol", "listpids"], capture_output=True, text=True).stdout.split("\n")[1:]
    tasks = {int(line.split()[0]) for line in listed if line.strip()}
    stepds = {stepd_of(pid) for pid in tasks} - {None}
    slurmd = int((SLURM_CONF.parent.parent / "run" / "slurmd.pid").read_text())
    for pid in [slurmd, *stepds, *tasks]:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def node_state() -> str:
    return subprocess.run(["sinfo", "-h", "-n", "localhost", "-o", "%t"], capture_output=True, text=True).stdout.strip()


def test_after_a_node_failure_the_rerun_completes_the_table_with_nothing_lost_or_duplicated(tmp_path):
    args = [TABLE, "--preset", "long", *SLURM, "--array-parallelism", "2"]
    process = start(tmp_path, *args)
    jobs = wait_for(lambda: submitted(output_of(tmp_path)).get("trained") and submitted(output_of(tmp_path)),
                    120, "the run to submit its trained cells")
    training = cell_id("long", "noise2true")  # the first task of the trained array
    checkpoint = tmp_path / "runs" / "lightning" / training / "checkpoints" / "last.ckpt"
    wait_for(lambda: checkpoint.exists() and set(states(jobs["trained"]).values()) == {"RUNNING"}, 600,
             "both trained cells to run, noise2true past its first checkpoint", poll=0.2)
    node_failure()
    wait_for(lambda: node_state().startswith("down"), 90, "the controller to mark the node down", poll=1)
    subprocess.run(["slurmd", "-N", "localhost"], check=True)  # the node comes back
    wait_for(lambda: node_state() == "idle", 90, "the node to come back idle", poll=1)
    code, out = finish(process)
    assert code == 1 and f"INTERRUPTED {training}" in out and "state NODE_FAIL" in out, out
    assert set(states(jobs["trained"]).values()) == {"NODE_FAIL"}
    before = md5s(tmp_path)  # the cells that finished before the failure (the input cell, at least)
    resumed_from = torch.load(checkpoint, map_location="cpu", weights_only=True)["global_step"]

    code, out = run(tmp_path, *args)
    assert code == 0, out
    assert f"{len(before)} already in" in out and f", {3 - len(before)} to run" in out
    stored = records(tmp_path)
    assert sorted(r["method"] for r in stored.values()) == ["input", "noise2same", "noise2true"]  # each once
    assert {r["status"] for r in stored.values()} == {"done"}
    assert {cell: digest for cell, digest in md5s(tmp_path).items() if cell in before} == before
    assert stored[training]["training"]["resumed_from_step"] == resumed_from > 0


def test_a_ddp_cell_runs_as_two_srun_tasks_and_scores_as_the_same_cell_on_one(tmp_path):
    args = [TABLE, "--preset", "learn", "--methods", "noise2true", *SLURM]
    code, out = run(tmp_path / "one", *args)
    assert code == 0, out
    code, out = run(tmp_path / "two", *args, "--devices", "2")
    assert code == 0, out
    job = submitted(out)["trained"]
    assert {row["JobID"]: row["NTasks"] for row in sacct(job)}[f"{job}.0"] == "2"  # the srun step: two tasks
    cell = cell_id("learn", "noise2true")
    one, two = records(tmp_path / "one")[cell], records(tmp_path / "two")[cell]
    assert one["training"]["devices"] == 1
    assert two["training"] == {"resumed_from_step": 0, "devices": 2, "nodes": 1, "strategy": "ddp"}
    assert list(one["tests"]["test"]["psnr"]) == list(two["tests"]["test"]["psnr"])  # each image once
    curve = [(point["step"], point["test"]) for point in two["curve"]]
    assert [step for step, _ in curve] == [0, 30] and curve[1][1] > curve[0][1] + 2  # it learned
    psnr = [record["tests"]["test"]["psnr_mean"] for record in (one, two)]
    assert abs(psnr[0] - psnr[1]) < PSNR_TOLERANCE, psnr


def test_a_job_past_its_time_limit_is_stored_failed_with_slurms_reason_and_retried_on_request(tmp_path):
    # 4,000 steps of the cpu preset's network take minutes on two cores: SLURM ends the 1-minute job.
    args = [TABLE, "--preset", "hours", "--methods", "noise2true", "--launcher", "slurm", "--accelerator", "cpu"]
    code, out = run(tmp_path, *args, "--time", "1", "--requeues", "0")
    assert code == 1, out
    (record,) = records(tmp_path).values()
    assert record["status"] == "failed"
    assert re.search(r"SLURM ended job \d+ at its time limit of 1 min \(state TIMEOUT: JOB \d+ ON localhost "
                     r"CANCELLED AT \S+ DUE TO TIME LIMIT\)", record["error"]), record["error"]
    job = submitted(out)["trained"]
    assert states(job) == {job: "TIMEOUT"}
    checkpoint = tmp_path / "runs" / "lightning" / record["id"] / "checkpoints" / "last.ckpt"
    resumed_from = torch.load(checkpoint, map_location="cpu", weights_only=True)["global_step"] if checkpoint.exists() else 0

    code, out = run(tmp_path, *args, "--time", "30")
    assert code == 1 and "(1 of them failed; --retry-failed runs them again), 0 to run" in out, out
    code, out = run(tmp_path, *args, "--time", "30", "--retry-failed")
    assert code == 0, out
    (record,) = records(tmp_path).values()
    assert record["status"] == "done" and record["training"]["resumed_from_step"] == resumed_from
