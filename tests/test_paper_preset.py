"""The paper preset: every cell resolves to the paper's settings and trains on data in the original
formats (tiny fixtures built here), two steps each."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest

from benchmark.cell import run_cell
from benchmark.cli import main
from benchmark.spec import Cell, TableSpec
from tests.data_fixtures import bsd68, hanzi_tiles, imagenet, planaria

PAPER_CELLS = [cell for cell in TableSpec.load("table3").cells("paper") if not cell.not_applicable]
# Dataset sizes that fit the fixtures (everything else stays as the paper preset resolves it).
FIXTURE_SIZES = {"imagenet": imagenet.DATASET_KWARGS, "hanzi": {"n_characters": 20, "n_copies": 2}}


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("data")
    for fixture in (bsd68, hanzi_tiles, imagenet, planaria):
        fixture.write(root)
    return root


def test_the_paper_preset_holds_the_papers_settings():
    by_id = {(cell.dataset, cell.method): cell.config for cell in PAPER_CELLS}
    same = by_id["imagenet", "noise2same"]
    assert same["method"] == {"name": "noise2same", "lambda_inv": 2.0, "mask_fraction": 0.005,
                              "replacement": "gaussian:0.2", "standardize": True, "two_passes": True}
    assert same["train"] | {"precision": None} == {"steps": 50000, "batch_size": 64, "patch_size": 64, "lr": 0.0004,
                                                  "lr_halving_steps": 5000, "val_every": 5000, "precision": None}
    assert same["backbone"] == {"depth": 3, "base_channels": 96, "batch_norm": True, "residual": False,
                                "bn_momentum": 0.003}
    bsd = by_id["bsd68", "noise2same"]
    assert (bsd["method"]["replacement"], bsd["method"]["lambda_inv"], bsd["train"]["steps"]) == ("donut", 0.95, 80000)
    assert by_id["planaria", "noise2same"]["train"]["patch_size"] == [16, 64, 64]
    assert by_id["hanzi", "noise2same"]["dataset"]["n_characters"] == 13029
    assert {cell.dataset for cell in PAPER_CELLS} == {"imagenet", "hanzi", "planaria", "bsd68"}


@pytest.mark.parametrize("cell", PAPER_CELLS, ids=[cell.id.split("--")[0] + "/" + cell.method for cell in PAPER_CELLS])
def test_every_paper_cell_trains_two_steps_on_fixture_data(cell, data_dir, tmp_path):
    config = copy.deepcopy(cell.config)
    config["dataset"].update(FIXTURE_SIZES.get(cell.dataset, {}))
    if cell.trainable:
        # Two steps of a narrow network: the paper's 96 channels at batch 64 would take minutes on a CPU.
        config["train"].update(steps=2, batch_size=2, val_every=2)
        config["backbone"]["base_channels"] = 4
    result = run_cell(Cell(cell.table, cell.preset, config), tmp_path, "cpu", data_dir)
    for test in result.tests.values():
        assert test.psnr and all(value == value for value in test.psnr.values())  # scored, no NaN


def test_dry_run_without_data_says_what_is_missing_and_fails(tmp_path, capsys):
    assert main(["run", "table3", "--preset", "paper", "--dry-run", "--data-dir", str(tmp_path),
                 "--results", str(tmp_path / "results")]) == 1
    out = capsys.readouterr().out
    assert "44 cells: 7 not applicable, 0 already in" in out and ", 37 to run" in out
    for name in ("imagenet", "planaria", "bsd68"):
        assert f"missing data: {name}: missing {tmp_path}" in out
    assert "missing data: hanzi" not in out  # generated, nothing to download


def test_dry_run_with_the_data_present_passes(data_dir, capsys):
    # The ImageNet fixture holds 10 images, not the 22,000 the paper's split needs.
    argv = ["run", "table3", "--preset", "paper", "--dry-run", "--data-dir", str(data_dir), "--results",
            str(data_dir / "results")]
    assert main([*argv, "--datasets", "hanzi,planaria,bsd68"]) == 0
    assert "missing data" not in capsys.readouterr().out
