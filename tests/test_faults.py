"""The battery: bad input and faults against the CLI and the store, as a hostile but realistic user would
try them. Each case asserts the exit status, one line on stderr that names the problem, no traceback,
and that every finished cell's file is unchanged (md5)."""

from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import torch
import yaml
from records import done_record

from benchmark.cli import main
from benchmark.spec import TableSpec
from benchmark.store import ResultStore

REPO = Path(__file__).resolve().parents[1]
SMOKE = ["run", "table3", "--preset", "smoke"]
# A user's spec: one method, the smoke network, one small column.
USER_SPEC = {"methods": ["noise2same"],
             "presets": {"cpu": {"train": {"steps": 4, "batch_size": 4, "patch_size": 32, "val_every": 2},
                                 "backbone": {"depth": 2, "base_channels": 4},
                                 "datasets": {"natural-gray": {"dataset": {"max_size": 64}}}}}}


def md5s(results: Path) -> dict[str, str]:
    """file name -> md5 of every file in the store."""
    folder = results / "runs" / "cells"
    return {p.name: hashlib.md5(p.read_bytes()).hexdigest() for p in folder.glob("*") if p.is_file()} \
        if folder.is_dir() else {}


@pytest.fixture
def results(tmp_path: Path) -> Path:
    """A results folder whose store already holds three finished cells."""
    store = ResultStore(tmp_path / "results" / "runs" / "cells")
    for name in ("one", "two", "three"):
        store.write(done_record(f"natural-gray--noise2same--{name}"))
    return tmp_path / "results"


def cli(argv: list[str], capsys: pytest.CaptureFixture) -> tuple[int, str, str]:
    """Exit status, stdout and stderr of `python -m benchmark ARGV`, run in this process."""
    capsys.readouterr()
    code = main(argv)
    out, err = capsys.readouterr()
    return code, out, err


def assert_one_line(code: int, out: str, err: str, status: int, fragment: str) -> None:
    """The command ended with `status`, and stderr is one line (after any one-line warnings) naming the problem."""
    lines = [line.strip() for line in re.split(r"[\r\n]", err) if line.strip() and not line.startswith("warning:")
             and "%|" not in line]  # progress bars of the cells that ran before are not messages
    assert code == status, (code, out[-2000:], err[-2000:])
    assert len(lines) == 1 and fragment in lines[0], err
    assert "Traceback" not in out + err


def spec_with(path: Path, change: dict[str, Any] | None = None, text: str | None = None) -> str:
    """A spec file: the user spec with `change` laid over the cpu preset's sections (or the raw `text`)."""
    spec = json.loads(json.dumps(USER_SPEC))
    for key, value in (change or {}).items():
        target = spec if key in ("methods", "presets", "title", "extra") else spec["presets"]["cpu"]
        if isinstance(value, dict) and isinstance(target.get(key), dict):
            target[key] = {**target[key], **value}
        else:
            target[key] = value
    path.write_text(text if text is not None else yaml.safe_dump(spec))
    return str(path)


SPEC_CASES = [
    ("steps a string", {"train": {"steps": "4"}}, "train.steps: '4' is not valid: input should be a valid integer"),
    ("steps negative", {"train": {"steps": -4}}, "train.steps: -4 is not valid: input should be greater than 0"),
    ("steps zero", {"train": {"steps": 0}}, "train.steps: 0 is not valid: input should be greater than 0"),
    ("batch zero", {"train": {"batch_size": 0}}, "train.batch_size: 0 is not valid"),
    ("lr negative", {"train": {"lr": -1}}, "train.lr: -1 is not valid: input should be greater than 0"),
    ("patch with a zero", {"train": {"patch_size": [32, 0]}}, "train.patch_size: [32, 0] is not valid"),
    ("val_every zero", {"train": {"val_every": 0}}, "train.val_every: 0 is not valid"),
    ("lr halving negative", {"train": {"lr_halving_steps": -1}}, "train.lr_halving_steps: -1 is not valid"),
    ("bad precision", {"train": {"precision": "17-mixed"}}, "train.precision: '17-mixed' is not valid: input should be"),
    ("unknown train key", {"train": {"stepz": 3}}, "unknown key(s) stepz; valid keys: batch_size"),
    ("train not a mapping", {"train": 5}, "train: expected a mapping (key: value), got 5"),
    ("depth zero", {"backbone": {"depth": 0}}, "backbone.depth: 0 is not valid"),
    ("width a word", {"backbone": {"base_channels": "wide"}}, "backbone.base_channels: 'wide' is not valid"),
    ("bn momentum above 1", {"backbone": {"bn_momentum": 2}}, "backbone.bn_momentum: 2 is not valid"),
    ("mask fraction zero", {"methods": [{"n2s": {"method": "noise2same", "mask_fraction": 0}}]},
     "method noise2same: mask_fraction: 0 is not valid: input should be greater than 0"),
    ("mask fraction 2", {"methods": [{"n2s": {"method": "noise2same", "mask_fraction": 2.0}}]},
     "mask_fraction: 2.0 is not valid: input should be less than or equal to 1"),
    ("replacement misspelt", {"methods": [{"n2s": {"method": "noise2same", "replacement": "donutt"}}]},
     "replacement: 'donutt' is not valid: unknown replacement 'donutt'; valid: gaussian:SIGMA"),
    ("replacement negative", {"methods": [{"n2s": {"method": "noise2same", "replacement": "gaussian:-1"}}]},
     "the parameter must be a positive number"),
    ("lambda negative", {"methods": [{"n2s": {"method": "noise2same", "lambda_inv": -1}}]},
     "lambda_inv: -1 is not valid: input should be greater than or equal to 0"),
    ("dataset value mistyped", {"datasets": {"natural-gray": {"dataset": {"max_size": "big"}}}},
     "dataset natural-gray: max_size: 'big' is not valid"),
    ("preset seeds negative", {"seeds": [-1]}, "seeds: -1 is not valid: input should be greater than or equal to 0"),
    ("preset seeds empty", {"seeds": []}, "seeds: [] is not a non-empty list of seeds"),
    ("batch scale zero", {"batch_scale": 0}, "batch_scale: 0 is not valid"),
    ("curve interval zero", {"evaluation": {"test_every": 0}}, "evaluation.test_every: 0 is not valid"),
    ("unknown compile backend", {"speed": {"compile": "turbo"}}, "unknown torch.compile backend; valid backends:"),
    ("datasets a list", {"datasets": ["natural-gray"]}, "datasets: must map each column to its dataset settings"),
    ("no rows", {"methods": []}, "methods: must be a list of rows"),
    ("row of two keys", {"methods": [{"a": {}, "b": {}}]}, "is not a row; a labelled row is"),
    ("unknown spec key", {"extra": 1}, "unknown key(s) extra; valid keys: kind, methods, metrics, presets, title"),
    ("preset not a mapping", {"presets": {"cpu": 3}}, "preset 'cpu' must be a mapping of sections, got 3"),
    ("unknown preset section", {"trian": {"steps": 2}}, "unknown section(s) trian; valid sections:"),
]


@pytest.mark.parametrize("change, fragment", [case[1:] for case in SPEC_CASES], ids=[case[0] for case in SPEC_CASES])
def test_a_bad_spec_value_is_one_line_before_anything_runs(change, fragment, results, tmp_path, capsys):
    before = md5s(results)
    spec = spec_with(tmp_path / "my.yaml", change)
    code, out, err = cli(["run", spec, "--results", str(results)], capsys)
    assert_one_line(code, out, err, 2, fragment)
    assert md5s(results) == before and not (results / "runs" / "lightning").exists()  # nothing trained


YAML_CASES = [
    ("malformed", "methods: [noise2same\npresets: {}\n", "my.yaml, line 2: expected ',' or ']', but got ':'; fix the YAML"),
    ("empty file", "", "my.yaml: a spec is a YAML mapping with methods: and presets:, got an empty file"),
    ("a list", "- noise2same\n", "my.yaml: a spec is a YAML mapping with methods: and presets:, got list"),
    ("python tag", "methods: !!python/object/apply:os.system ['touch HACKED']\npresets: {}\n",
     "my.yaml, line 1: could not determine a constructor for the tag"),
    ("no methods", "presets: {cpu: {datasets: {hanzi: {}}}}\n", "methods: must be a list of rows"),
]


@pytest.mark.parametrize("text, fragment", [case[1:] for case in YAML_CASES], ids=[case[0] for case in YAML_CASES])
def test_a_broken_yaml_spec_is_one_line_with_file_and_line(text, fragment, results, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    spec = spec_with(tmp_path / "my.yaml", text=text)
    code, out, err = cli(["run", spec, "--results", str(results), "--dry-run"], capsys)
    assert_one_line(code, out, err, 2, fragment)
    assert not (tmp_path / "HACKED").exists()


CLI_CASES = [
    ("spec file missing", ["run", "./nope.yaml"], "spec file ./nope.yaml does not exist"),
    ("unknown table", ["run", "table9"], "unknown table 'table9'; valid tables: budget, figure3, figure4, table1"),
    ("unknown preset", [*SMOKE[:2], "--preset", "gpu"], "unknown preset 'gpu' for table3; valid presets: smoke, cpu"),
    ("unknown method", [*SMOKE, "--methods", "noise2sam"], "unknown method 'noise2sam'; valid methods: input"),
    ("unknown dataset", [*SMOKE, "--datasets", "bsd69"], "unknown dataset 'bsd69'; valid datasets:"),
    ("seeds not numbers", [*SMOKE, "--seeds", "a,b"], "--seeds: 'a' is not a whole number"),
    ("seed a fraction", [*SMOKE, "--seeds", "1.5"], "--seeds: '1.5' is not a whole number"),
    ("seed negative", [*SMOKE, "--seeds", "-1"], "seeds: -1 is not valid: input should be greater than or equal to 0"),
    ("seed too large", [*SMOKE, "--seeds", str(2 ** 33)], "seeds: 8589934592 is not valid: input should be less than"),
    ("seeds empty", [*SMOKE, "--seeds", ""], "--seeds '' selects nothing"),
    ("methods empty", [*SMOKE, "--methods", ""], "--methods '' selects nothing"),
    ("methods only a comma", [*SMOKE, "--methods", ","], "--methods ',' selects nothing"),
    ("datasets empty", [*SMOKE, "--datasets", ""], "--datasets '' selects nothing"),
    ("unknown accelerator", [*SMOKE, "--accelerator", "tpuu"], "unknown accelerator 'tpuu'; valid accelerators: auto"),
    ("time zero", [*SMOKE, "--time", "0"], "argument --time: '0' is not a whole number of at least 1"),
    ("devices do not split the batch", [*SMOKE, "--devices", "3"], "a batch of 4 does not split over 3 devices"),
    ("unknown launcher", [*SMOKE, "--launcher", "mpi"], "unknown launcher 'mpi'; valid launchers: local, gpus, slurm"),
    ("unknown option", [*SMOKE, "--stepz", "3"], "unrecognized arguments: --stepz 3"),
    ("a d_f figure", ["run", "figure3", "--preset", "smoke", "--d-f"], "--d-f applies to tables; figure3 is a figure"),
    ("dry run with a bad value", ["run", "USER_SPEC:steps=-4", "--dry-run"], "train.steps: -4 is not valid"),
]


@pytest.mark.parametrize("argv, fragment", [case[1:] for case in CLI_CASES], ids=[case[0] for case in CLI_CASES])
def test_a_bad_command_line_is_one_line(argv, fragment, results, tmp_path, capsys):
    before = md5s(results)
    if argv[1] == "USER_SPEC:steps=-4":
        argv = [argv[0], spec_with(tmp_path / "my.yaml", {"train": {"steps": -4}}), *argv[2:]]
    code, out, err = cli([*argv, "--results", str(results)], capsys)
    assert_one_line(code, out, err, 2, fragment)
    assert md5s(results) == before


@pytest.mark.skipif(torch.cuda.is_available(), reason="a GPU is visible")
def test_asking_for_a_gpu_without_one_is_one_line(results, capsys):
    assert_one_line(*cli([*SMOKE, "--accelerator", "gpu", "--results", str(results)], capsys), 2,
                    "--accelerator gpu: no CUDA GPU is visible here; use --accelerator cpu")


@pytest.mark.parametrize("where", ["file", "proc"])
def test_an_unwritable_results_folder_is_one_line_before_any_cell_runs(where, tmp_path, capsys):
    (tmp_path / "file").write_text("")
    folder = tmp_path / "file" if where == "file" else Path("/proc/noise2same-results")
    code, out, err = cli([*SMOKE, "--methods", "input", "--datasets", "natural-gray", "--results", str(folder)], capsys)
    assert_one_line(code, out, err, 2, f"cannot write results under {folder}/runs/cells")
    assert "[cell" not in out


def test_a_report_without_stored_cells_says_so(tmp_path, capsys):
    code, out, err = cli(["report", "table3", "--results", str(tmp_path)], capsys)
    assert_one_line(code, out, err, 2, f"no cell of table3 (preset cpu) is stored in {tmp_path}/runs/cells; run")
    assert not (tmp_path / "table3.md").exists()


def test_a_dry_run_counts_the_cells_already_stored(tmp_path, capsys):
    assert main([*SMOKE, "--methods", "input", "--datasets", "natural-gray", "--results", str(tmp_path)]) == 0
    argv = [*SMOKE, "--methods", "input,nlm", "--datasets", "natural-gray", "--results", str(tmp_path), "--dry-run"]
    code, out, _ = cli(argv, capsys)
    assert code == 0 and "2 cells: 0 not applicable, 1 already in" in out and "1 to run" in out
    assert out.count(": stored\n") == 1


@pytest.mark.parametrize("damage", ["truncated", "empty", "a list", "without tests", "binary"])
def test_a_damaged_cell_file_is_moved_aside_and_recomputed(damage, tmp_path, capsys):
    argv = [*SMOKE, "--methods", "input,nlm", "--datasets", "natural-gray", "--results", str(tmp_path)]
    assert main(argv) == 0
    cells = tmp_path / "runs" / "cells"
    (cell,) = [cell for cell in TableSpec.load("table3").cells("smoke", ["input"], ["natural-gray"])]
    other = {p.name: p.read_bytes() for p in cells.glob("*nlm*.json")}
    path = cells / f"{cell.id}.json"
    record = json.loads(path.read_text())
    path.write_bytes({"truncated": path.read_bytes()[:100], "empty": b"", "a list": b"[]", "binary": b"\x00\xff" * 9,
                      "without tests": json.dumps({k: v for k, v in record.items() if k != "tests"}).encode()}[damage])
    with pytest.warns(UserWarning, match=rf"{path} was moved aside to {cell.id}\.corrupt-\d+T\d+: it is not"):
        code, out, err = cli(argv, capsys)
    assert code == 0 and "1 already in" in out and "1 to run" in out and "Traceback" not in out + err
    assert json.loads(path.read_text())["tests"] == record["tests"]  # recomputed, the same numbers
    assert {p.name: p.read_bytes() for p in cells.glob("*nlm*.json")} == other
    assert len(list(cells.glob(f"{cell.id}.corrupt-*"))) == 1  # kept for inspection


def test_a_corrupt_checkpoint_is_moved_aside_and_the_cell_trains_from_the_start(tmp_path, capsys):
    argv = [*SMOKE, "--methods", "noise2true", "--datasets", "natural-gray", "--results", str(tmp_path)]
    (cell,) = TableSpec.load("table3").cells("smoke", ["noise2true"], ["natural-gray"])
    checkpoint = tmp_path / "runs" / "lightning" / cell.id / "checkpoints" / "last.ckpt"
    checkpoint.parent.mkdir(parents=True)
    checkpoint.write_bytes(b"PK\x03\x04 half a zip file")
    with pytest.warns(UserWarning, match=r"last\.ckpt could not be read .*moved aside to last\.ckpt\.corrupt-"):
        code, out, err = cli(argv, capsys)
    assert code == 0 and "resumed" not in out and "Traceback" not in out + err
    record = ResultStore(tmp_path / "runs" / "cells").load(cell.id)
    assert record.training.resumed_from_step == 0
    assert torch.load(checkpoint, weights_only=True)["global_step"] == 4
    assert len(list(checkpoint.parent.glob("last.ckpt.corrupt-*"))) == 1


def test_a_full_disk_stops_the_table_in_one_line_keeping_every_finished_cell(tmp_path, capsys, monkeypatch):
    argv = [*SMOKE, "--methods", "input,nlm,bm3d", "--datasets", "natural-gray", "--results", str(tmp_path)]
    cells = tmp_path / "runs" / "cells"
    real_fsync, written = os.fsync, []

    def fills_up(fd: int) -> None:  # full after the first record (a cell's crops, written first, do not count)
        name = os.readlink(f"/proc/self/fd/{fd}")
        if name.endswith(".tmp") and ".probe." not in name:
            if written:
                raise OSError(28, "No space left on device")
            if ".json." in name:
                written.append(fd)
        real_fsync(fd)
    monkeypatch.setattr(os, "fsync", fills_up)
    code, out, err = cli(argv, capsys)
    assert_one_line(code, out, err, 2, "(natural-gray x nlm) finished but could not be stored: No space left on device;")
    (kept,) = cells.glob("*.json")
    assert "input" in kept.name and not list(cells.glob(".*.tmp"))
    before = md5s(tmp_path)
    monkeypatch.setattr(os, "fsync", real_fsync)
    assert main(argv) == 0  # space again: the rest of the table runs, the finished cell untouched
    assert {name: digest for name, digest in md5s(tmp_path).items() if name in before} == before
    assert len(list(cells.glob("*.json"))) == 3


def test_missing_and_unreadable_data_are_one_line_each(tmp_path, capsys):
    from data_fixtures import bsd68

    from datamodules.bsd68 import TEST_NOISY
    argv = ["run", "table3", "--preset", "paper", "--methods", "input", "--datasets", "bsd68",
            "--results", str(tmp_path / "results"), "--data-dir", str(tmp_path / "data")]
    code, out, err = cli(argv, capsys)
    assert code == 1 and "skipping the 1 cell(s) of bsd68: missing" in out and "Traceback" not in out + err
    bsd68.write(tmp_path / "data")
    noisy = tmp_path / "data" / TEST_NOISY
    noisy.write_bytes(noisy.read_bytes()[:200])
    code, out, err = cli(argv, capsys)
    (failed,) = [line for line in out.splitlines() if "FAILED" in line]
    assert code == 1 and str(noisy) in failed and "--verbose (or the cell's record) shows the traceback" in failed
    assert "Traceback" not in out + err
    code, out, _ = cli([*argv, "--verbose", "--retry-failed"], capsys)
    assert code == 1 and 'File "' in out  # the traceback, asked for


def test_a_plugin_that_calls_sys_exit_is_named_and_left_out(tmp_path):
    from test_plugins import fake_distribution, python

    site = tmp_path / "site"
    fake_distribution(site, "quitter", {"quit": "quitting_plugin"},
                      modules={"quitting_plugin": "import sys\nsys.exit('configuration not found')\n"})
    run = python("import runpy, sys; sys.argv = ['benchmark', 'methods']; runpy.run_module('benchmark', "
                 "run_name='__main__')", site, tmp_path)
    assert run.returncode == 0 and "noise2same" in run.stdout
    assert run.stderr.strip().splitlines() == [
        "warning: method plugin 'quit' from quitter was not loaded: SystemExit: configuration not found"]


def run_table(results: Path, *extra: str) -> subprocess.Popen:
    """`python -m benchmark run table3 --preset smoke` on some trained cells of natural-gray, as a process."""
    command = [sys.executable, "-m", "benchmark", *SMOKE, "--methods", "noise2true,noise2void,noise2same",
               "--datasets", "natural-gray", "--results", str(results), *extra]
    return subprocess.Popen(command, cwd=REPO, env={**os.environ, "WANDB_MODE": "disabled"}, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def psnr_by_cell(results: Path) -> dict[str, float]:
    return {path.stem: json.loads(path.read_text())["tests"]["test"]["psnr_mean"]
            for path in (results / "runs" / "cells").glob("*.json")}


def test_two_runs_on_one_store_train_every_cell_once_with_the_solo_numbers(tmp_path):
    solo = run_table(tmp_path / "solo")
    assert solo.wait(timeout=300) == 0, solo.stderr.read()[-2000:]
    pair = [run_table(tmp_path / "shared") for _ in range(2)]
    outputs = [process.communicate(timeout=300) for process in pair]
    assert [process.returncode for process in pair] == [0, 0], [err[-2000:] for _, err in outputs]
    lines = [line for out, _ in outputs for line in out.splitlines() if line.startswith("[cell") and "PSNR" in line]
    trained = [line for line in lines if "computed by another run" not in line]
    assert len(trained) == 3, lines  # every cell trained by exactly one of the two
    assert psnr_by_cell(tmp_path / "shared") == psnr_by_cell(tmp_path / "solo")
    assert not [p for p in (tmp_path / "shared" / "runs" / "cells").iterdir() if p.name.endswith((".tmp", "corrupt"))]
    for out, err in outputs:
        assert "resumed" not in out and "Traceback" not in err


def test_kill_9_mid_cell_then_rerun_completes_the_table_and_keeps_finished_cells(tmp_path):
    first = run_table(tmp_path)
    cells = tmp_path / "runs" / "cells"
    deadline = time.time() + 120
    while not list(cells.glob("*.json")) and time.time() < deadline:
        time.sleep(0.05)
    first.kill()
    first.wait()
    stored = md5s(tmp_path)
    finished = {name.removesuffix(".json") for name in stored if name.endswith(".json")}
    before = {name: digest for name, digest in stored.items() if name.split(".")[0] in finished}  # records, crops
    assert 1 <= len(finished) < 3
    second = run_table(tmp_path)
    out, err = second.communicate(timeout=300)
    assert second.returncode == 0, err[-2000:]
    assert f"{len(finished)} already in" in out
    after = md5s(tmp_path)
    assert {name: after[name] for name in before} == before and len([n for n in after if n.endswith(".json")]) == 3
