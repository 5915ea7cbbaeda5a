"""The runner end to end on the smoke preset: a full table, resume, determinism, interruption."""

from __future__ import annotations

import json
import re
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image

from benchmark.cli import main
from benchmark.cell import run_cell
from benchmark.spec import TableSpec

REPO = Path(__file__).resolve().parents[1]


def applicable_smoke_cells() -> int:
    return sum(not cell.not_applicable for cell in TableSpec.load("table3").cells("smoke"))


def stored(results: Path) -> dict[str, tuple[float, bytes]]:
    """cell file name -> (mtime, bytes) of every stored cell."""
    return {p.name: (p.stat().st_mtime_ns, p.read_bytes()) for p in (results / "runs" / "cells").glob("*.json")}


def test_smoke_table_runs_reports_and_resumes(tmp_path, capsys):
    assert main(["run", "table3", "--preset", "smoke", "--results", str(tmp_path)]) == 0
    spec = TableSpec.load("table3")
    cells = stored(tmp_path)
    assert len(cells) == applicable_smoke_cells()
    result = json.loads(next(content for name, (_, content) in cells.items() if name.startswith("natural-gray")))
    assert {"tests", "config", "seed", "timings", "versions"} <= set(result)
    test = result["tests"]["test"]
    assert np.mean(list(test["psnr"].values())) == test["psnr_mean"]
    assert test["ssim"].keys() == test["psnr"].keys() and np.mean(list(test["ssim"].values())) == test["ssim_mean"]
    table = pd.read_csv(tmp_path / "smoke" / "table3.csv")
    assert list(table.columns[:9]) == ["method", "metric", "column", "mean", "ci_low", "ci_high", "n_images", "n_seeds",
                                       "seed_std"]
    assert list(dict.fromkeys(table["column"])) == ["hanzi", "natural-gray", "natural-rgb", "synthetic-3d C1",
                                                    "synthetic-3d C2", "synthetic-3d C3"]
    assert set(table["method"]) == {row.label for row in spec.rows} and table["mean"].notna().all()
    assert set(table["metric"]) == {"PSNR", "SSIM"}
    assert len(table) == 2 * (applicable_smoke_cells() + 2 * sum(c.dataset == "synthetic-3d" for c in spec.cells("smoke")
                                                                 if not c.not_applicable))  # 3 test sets, 2 metrics
    report = (tmp_path / "smoke" / "table3.md").read_text()
    assert "| noise2same |" in report
    # laine_bayes needs Gaussian noise of known std; HanZi's is not: n/a with its reason as a footnote,
    # one footnote for a dataset's several test-set columns.
    note = re.search(r"\| laine_bayes \| PSNR \| n/a \[(\d+)\] \|", report)
    assert note and f"{note[1]}. laine_bayes on hanzi: needs Gaussian noise of known std" in report
    number = r"\**[\d.]+(?: \+- [\d.]+)?\**(?: \([-+][\d.]+\))?"  # ours with its interval, or the paper's with the delta
    # BM3D on volumes is BM4D: numbers in the three synthetic-3d columns, none from the paper there.
    assert re.search(rf"\| bm3d \| PSNR \|( {number} \|){{6}}( {number} \| - \|){{3}}$", report, re.MULTILINE)
    assert re.search(rf"\| bm3d \| SSIM \|( {number} \| - \|){{6}}$", report, re.MULTILINE)  # no paper SSIM

    capsys.readouterr()
    assert main(["run", "table3", "--preset", "smoke", "--results", str(tmp_path)]) == 0
    assert "0 to run" in capsys.readouterr().out
    assert stored(tmp_path) == cells  # nothing recomputed or rewritten


def test_same_seed_gives_the_same_psnr(tmp_path):
    cell = TableSpec.load("table3").cells("smoke", methods=["noise2same"], datasets=["natural-gray"])[0]
    first = run_cell(cell, tmp_path / "a")
    second = run_cell(cell, tmp_path / "b")
    assert first.tests == second.tests


def test_wandb_offline_run_holds_metrics_and_non_blank_samples(tmp_path, monkeypatch):
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    monkeypatch.setenv("WANDB_DATA_DIR", str(tmp_path / "staging"))  # where an offline run stages its tables' media
    cell = TableSpec.load("table3").cells("smoke", methods=["noise2same"], datasets=["hanzi"])[0]
    result = run_cell(cell, tmp_path)
    runs = list((tmp_path / "wandb" / "wandb").glob("offline-run-*"))
    assert len(runs) == 1
    record = next(runs[0].glob("run-*.wandb")).read_bytes()
    for key in (b"train/rec", b"train/inv", b"val/psnr", b'{"max":', b"test/psnr", cell.id.encode()):
        assert key in record  # loss terms and val PSNR as curves, the best val PSNR and test PSNR in the summary
    images = list(runs[0].glob("files/media/images/*/*.png"))
    assert {p.parent.name for p in images} == {"val", "test"}  # samples at validation and at test
    assert all(np.asarray(Image.open(p)).std() > 1 for p in images)
    # The per-image test table: one row per test image, the three images for the first few.
    (table,) = runs[0].glob("files/media/table/test/images_*.table.json")
    content = json.loads(table.read_text())
    assert content["columns"] == ["test set", "id", "psnr", "ssim", "noisy", "denoised", "clean"]
    assert [(row[1], row[2]) for row in content["data"]] == list(result.tests["test"].psnr.items())
    assert [(row[1], row[3]) for row in content["data"]] == list(result.tests["test"].ssim.items())
    assert all(row[4:] == ["Image"] * 3 for row in content["data"][:3]) and content["data"][3][4:] == [None] * 3
    staged = [p for p in (tmp_path / "staging").rglob("*") if p.is_file() and p.read_bytes()[:4] == b"\x89PNG"]
    assert len(staged) == 9 and all(np.asarray(Image.open(p)).std() > 1 for p in staged)


def test_killed_table_resumes_without_touching_finished_cells(tmp_path):
    command = [sys.executable, "-m", "benchmark", "run", "table3", "--preset", "smoke", "--results", str(tmp_path)]
    env = {**os.environ, "WANDB_MODE": "disabled"}
    process = subprocess.Popen(command, cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while len(stored(tmp_path)) < 4 and time.time() < deadline and process.poll() is None:
        time.sleep(0.05)
    process.send_signal(signal.SIGKILL)
    process.wait()
    before = stored(tmp_path)
    total = applicable_smoke_cells()
    assert 4 <= len(before) < total, "the table should have been killed part-way"
    finished = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert finished.returncode == 0, finished.stderr[-2000:]
    assert f"{len(before)} already in" in finished.stdout
    after = stored(tmp_path)
    assert len(after) == total
    assert {name: after[name] for name in before} == before
    assert not list((tmp_path / "runs" / "cells").glob(".*.tmp"))  # no half-written file counts as a cell
