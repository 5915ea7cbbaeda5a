"""The runner at scale: DDP cells, the gpus and slurm launchers, failed cells, resuming a killed cell
from its checkpoint, and the store under concurrent writers."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import pytest
import submitit
import torch

from benchmark.cell import run_cell
from benchmark.cli import main
from benchmark.launchers import LaunchOptions, SlurmTask, slurm_executor
from benchmark.runner import CellJob, cores
from benchmark.spec import Cell, Resources, TableSpec
from benchmark.store import FORMAT, DoneRecord, ResultStore

REPO = Path(__file__).resolve().parents[1]
SMOKE = ["run", "table3", "--preset", "smoke"]


def smoke_cell(method: str, dataset: str = "natural-gray", **train: object) -> Cell:
    """The smoke cell of table3, its training run changed by `train` (a new cell id)."""
    cell = TableSpec.load("table3").cells("smoke", methods=[method], datasets=[dataset])[0]
    return replace(cell, config={**cell.config, "train": {**cell.config["train"], **train}})


def stored(results: Path) -> dict[str, dict]:
    """file name -> record of every cell in the store under `results`."""
    return {path.name: json.loads(path.read_text()) for path in (results / "runs" / "cells").glob("*.json")}


def test_two_processes_writing_the_same_100_cells_leave_100_whole_ones(tmp_path):
    writer = ("import sys, time; from pathlib import Path; from benchmark.store import ResultStore\n"
              "store, go = ResultStore(Path(sys.argv[1]) / 'cells'), Path(sys.argv[1]) / 'go'\n"
              "while not go.exists():\n"
              "    time.sleep(0.005)\n"
              "from records import done_record\n"
              "for i in range(100):\n"
              "    store.write(done_record(f'cell{i:03d}', {str(k): float(k) for k in range(3000)}, host=sys.argv[2]))\n")
    writers = [subprocess.Popen([sys.executable, "-c", writer, str(tmp_path), name], cwd=REPO / "tests") for name in "ab"]
    (tmp_path / "go").touch()  # both start writing at once
    assert [process.wait(timeout=60) for process in writers] == [0, 0]
    files = sorted((tmp_path / "cells").iterdir())
    assert [path.name for path in files] == [f"cell{i:03d}.json" for i in range(100)]  # no temporary left
    records = [json.loads(path.read_text()) for path in files]
    assert all(r["format"] == FORMAT and len(r["tests"]["test"]["psnr"]) == 3000 and r["host"] in "ab" for r in records)
    assert all(ResultStore(tmp_path / "cells").load(f"cell{i:03d}") for i in range(100))


def test_a_nan_loss_stores_the_cell_as_failed_with_its_reason(tmp_path):
    cell = smoke_cell("noise2true", lr=1e30)
    record = CellJob(ResultStore(tmp_path / "cells"), tmp_path)(cell)
    assert record.status == "failed" and record.error.startswith("FloatingPointError: the training loss is")
    assert "on_before_backward" in record.traceback
    assert ResultStore(tmp_path / "cells").failure(cell.id) == record.error


def test_a_failing_cell_shows_in_the_table_and_reruns_with_retry_failed(tmp_path, monkeypatch, capsys):
    import benchmark.runner

    run_cell = benchmark.runner.run_cell

    def out_of_memory_on_hanzi(cell, *args):
        if cell.dataset == "hanzi":
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return run_cell(cell, *args)

    monkeypatch.setattr(benchmark.runner, "run_cell", out_of_memory_on_hanzi)
    argv = [*SMOKE, "--methods", "input", "--datasets", "natural-gray,hanzi", "--results", str(tmp_path)]
    assert main(argv) == 1  # the other cell still finished
    assert {r["dataset"]: r["status"] for r in stored(tmp_path).values()} == {"natural-gray": "done", "hanzi": "failed"}
    report = (tmp_path / "smoke" / "partial" / "table3.md").read_text()
    psnr = r"\| input \| PSNR \| \*\*20\.21 \+- \d\.\d\d\*\* \| 20\.19 \(\+0\.02\) \| failed \[1\] \| 6\.45 \|"
    assert re.search(psnr, report)
    assert re.search(r"\| input \| SSIM \| \*\*0\.\d{3} \+- 0\.\d{3}\*\* \| - \| failed \[1\] \| - \|", report)
    assert "1. input on hanzi (seed 0): torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 2.00 GiB." in report

    monkeypatch.setattr(benchmark.runner, "run_cell", run_cell)
    capsys.readouterr()
    assert main(argv) == 1  # a failed cell stays failed until asked
    assert "(1 of them failed; --retry-failed runs them again), 0 to run" in capsys.readouterr().out
    assert main([*argv, "--retry-failed"]) == 0
    assert {r["status"] for r in stored(tmp_path).values()} == {"done"}
    assert "failed" not in (tmp_path / "smoke" / "partial" / "table3.md").read_text()


def test_a_cell_trained_by_two_ddp_processes_scores_as_the_same_cell_on_one(tmp_path):
    # 30 steps that teach the network something (the curve measures the test PSNR at steps 0 and 30),
    # without batch norm (PyTorch's SyncBatchNorm needs GPUs); one thread per process, as DDP's processes.
    cell = smoke_cell("noise2true", steps=30, val_every=30, lr=3e-3)
    cell = replace(cell, config={**cell.config, "backbone": {**cell.config["backbone"], "batch_norm": False},
                                 "evaluation": {"d_f": False, "test_every": 30}})
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        one = run_cell_in(tmp_path / "one", cell, Resources())
        two = run_cell_in(tmp_path / "two", cell, Resources(devices=2))
    finally:
        torch.set_num_threads(threads)
    assert two.training.model_dump() == {"resumed_from_step": 0, "devices": 2, "nodes": 1, "strategy": "ddp_spawn"}
    scores = [result.tests["test"].psnr for result in (one, two)]
    assert list(scores[0]) == list(scores[1]) == ["camera", "astronaut", "chelsea", "coffee"]  # each image once
    curves = [[(point["step"], point["test"]) for point in result.curve] for result in (one, two)]
    assert [step for step, _ in curves[1]] == [0, 30] and curves[1][1][1] > curves[1][0][1] + 2  # it learned
    psnr = [result.tests["test"].psnr_mean for result in (one, two)]
    assert abs(psnr[0] - psnr[1]) < 0.5 and psnr[1] == pytest.approx(curves[1][1][1], abs=1e-4), (psnr, curves)


def run_cell_in(work_dir: Path, cell: Cell, resources: Resources) -> DoneRecord:
    """The record CellJob stores for `cell` trained on `resources` (CPU processes) under `work_dir`."""
    return CellJob(ResultStore(work_dir / "cells"), work_dir, "cpu", resources=resources)(cell)


def test_the_gpus_launcher_runs_one_cell_per_gpu_at_a_time(tmp_path, monkeypatch):
    # Two GPUs, mocked: the jobs see CUDA_VISIBLE_DEVICES 0 or 1 and train on the CPU.
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0,1")
    submissions: list[tuple[float, submitit.Job]] = []  # (when, job) of each cell's job
    submit = submitit.LocalExecutor.submit

    def recording_submit(self, *args):
        submissions.append((time.time(), submit(self, *args)))
        return submissions[-1][1]

    monkeypatch.setattr(submitit.LocalExecutor, "submit", recording_submit)
    argv = [*SMOKE, "--methods", "input,noise2same", "--datasets", "natural-gray", "--results", str(tmp_path),
            "--launcher", "gpus", "--accelerator", "cpu"]
    assert main(argv) == 0
    finished = [job.paths.result_pickle.stat().st_mtime for _, job in submissions]
    assert len(submissions) == 2 and max(when for when, _ in submissions) < min(finished)  # both ran at once
    records = stored(tmp_path).values()
    assert {r["method"]: r["status"] for r in records} == {"input": "done", "noise2same": "done"}
    assert sorted(r["cuda_visible_devices"] for r in records) == ["0", "1"]


@pytest.fixture
def srun_on_path(tmp_path, monkeypatch) -> None:
    """An srun stand-in first on PATH, so that submitit builds SLURM executors on a machine without SLURM
    (jobs on a real cluster: tests/test_slurm.py)."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "srun").write_text("#!/bin/sh\nexit 1\n")
    (bin_dir / "srun").chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")


def test_a_ddp_cell_on_slurm_takes_a_task_per_gpu_on_each_node(tmp_path, srun_on_path):
    executor = slurm_executor(tmp_path, LaunchOptions("slurm", time_min=60, partition="gpu", array_parallelism=8),
                              Resources(devices=4, nodes=2), gpus=True)
    assert executor.parameters == {"job_name": "noise2same-bench", "time": 60, "nodes": 2, "ntasks_per_node": 4,
                                   "gpus_per_node": 4, "partition": "gpu", "array_parallelism": 8, "signal_delay_s": 90}
    short = slurm_executor(tmp_path, LaunchOptions("slurm", time_min=2), Resources(), gpus=False)
    assert short.parameters["signal_delay_s"] == 30  # the time-limit warning: a quarter of a short limit before it


@pytest.mark.parametrize("restarts, requeues, ignored", [(None, 0, True), ("1", 3, False), ("3", 3, True)])
def test_a_slurm_task_ignores_the_time_limit_warning_once_its_requeues_are_spent(restarts, requeues, ignored,
                                                                                 monkeypatch):
    if restarts is None:
        monkeypatch.delenv("SLURM_RESTART_COUNT", raising=False)
    else:
        monkeypatch.setenv("SLURM_RESTART_COUNT", restarts)
    handler = signal.signal(signal.SIGUSR2, signal.default_int_handler)
    try:
        assert SlurmTask(lambda cell: cell, requeues)("cell") == "cell"
        assert (signal.getsignal(signal.SIGUSR2) is signal.SIG_IGN) == ignored
    finally:
        signal.signal(signal.SIGUSR2, handler)


KILLED_AT_STEP_3 = """import os, signal, sys
from methods.base import TrainableDenoiser
from benchmark.cli import main

training_step = TrainableDenoiser.training_step


def killed_at_step_3(self, batch, batch_idx):
    if self.global_step == 3:  # after the checkpoint of step 2
        os.kill(os.getpid(), signal.SIGKILL)
    return training_step(self, batch, batch_idx)


TrainableDenoiser.training_step = killed_at_step_3
sys.exit(main(sys.argv[1:]))
"""


def test_a_cell_killed_mid_training_resumes_from_its_checkpoint(tmp_path, capsys):
    argv = [*SMOKE, "--methods", "input,noise2true", "--datasets", "natural-gray", "--results", str(tmp_path)]
    env = {**os.environ, "WANDB_MODE": "disabled"}
    killed = subprocess.run([sys.executable, "-c", KILLED_AT_STEP_3, *argv], cwd=REPO, env=env, capture_output=True,
                            timeout=300)
    assert killed.returncode == -9
    assert [r["method"] for r in stored(tmp_path).values()] == ["input"]
    capsys.readouterr()
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "1 already in" in out and "(resumed from its checkpoint at step 2)" in out
    records = stored(tmp_path)
    assert sorted(r["method"] for r in records.values()) == ["input", "noise2true"]  # each once
    (trained,) = [r for r in records.values() if r["method"] == "noise2true"]
    assert trained["training"]["resumed_from_step"] == 2
    uninterrupted = run_cell(smoke_cell("noise2true"), tmp_path / "uninterrupted")  # saw the same patches
    assert trained["tests"]["test"]["psnr_mean"] == pytest.approx(uninterrupted.tests["test"].psnr_mean, abs=1e-6)
    checkpoint = tmp_path / "runs" / "lightning" / trained["id"] / "checkpoints" / "last.ckpt"
    assert torch.load(checkpoint, weights_only=True)["global_step"] == 4
    assert not list((tmp_path / "runs" / "cells").glob(".*.tmp"))


@pytest.mark.parametrize("extra, fragment", [
    (["--launcher", "mpi"], "unknown launcher 'mpi'; valid launchers: local, gpus, slurm"),
    (["--devices", "3"], "a batch of 4 does not split over 3 devices"),
    (["--nodes", "2"], "2 nodes per cell need --launcher slurm"),
    (["--devices", "0"], "argument --devices: '0' is not a whole number of at least 1"),
    (["--workers", "2", "--launcher", "slurm"], "the slurm launcher sets how many run at once itself"),
    (["--workers", "2", "--devices", "2"], "cells on 2 devices run one at a time: drop --workers"),
])
def test_bad_launch_options_fail_in_one_line(extra, fragment, tmp_path, capsys):
    assert main([*SMOKE, "--methods", "noise2same", "--results", str(tmp_path), *extra]) == 2
    err = capsys.readouterr().err
    assert fragment in err and err.count("\n") == 1


def test_cells_run_side_by_side_each_with_its_share_of_the_cores(tmp_path, capsys):
    argv = [*SMOKE, "--methods", "input,nlm,noise2void", "--datasets", "hanzi", "--results", str(tmp_path)]
    assert main([*argv, "--workers", "2"]) == 0
    out = capsys.readouterr().out
    threads = max(1, cores() // 2)
    assert f"3 cells, 2 at a time, each in its own process with {threads} thread(s)" in out
    ended = re.findall(r"\[(\d)/3 ended\] hanzi x (\w+): PSNR", out)
    assert sorted(ended) == sorted(zip("123", [method for _, method in ended]))
    assert {method for _, method in ended} == {"input", "nlm", "noise2void"}  # nlm: joblib workers inside
    records = stored(tmp_path)
    trained = [record for record in records.values() if record["method"] == "noise2void"]
    assert len(records) == 3 and {record["torch_threads"] for record in trained} == {threads}
    assert "Epoch 0" not in out  # no progress bars from the workers
    assert main([*argv, "--workers", "2"]) == 0 and "3 already in" in capsys.readouterr().out


def test_a_preset_gives_its_cells_devices_and_the_command_line_overrides_it():
    spec = TableSpec.load("table3")
    spec = replace(spec, presets={**spec.presets, "smoke": {**spec.presets["smoke"], "resources": {"devices": 2}}})
    assert spec.resources("smoke") == Resources(devices=2)
    assert spec.resources("smoke", devices=4, nodes=2) == Resources(devices=4, nodes=2)
    assert {cell.id for cell in spec.cells("smoke")} == {cell.id for cell in TableSpec.load("table3").cells("smoke")}
