"""The paper preset: every cell resolves to the paper's settings and trains on data in the original
formats (tiny fixtures built here), two steps each."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest

from benchmark.cell import run_cell
from benchmark.cli import main
from benchmark.report import build_report, table_markdown
from benchmark.spec import Cell, TableSpec
from benchmark.store import ResultStore
from tests.data_fixtures import bsd68, hanzi_tiles, imagenet, planaria

PAPER_CELLS = [cell for cell in TableSpec.load("table3").cells("paper") if not cell.not_applicable]
# Dataset sizes that fit the fixtures (everything else stays as the paper preset resolves it).
FIXTURE_SIZES = {"imagenet": imagenet.DATASET_KWARGS}


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
    assert by_id["hanzi-tiles", "noise2same"]["dataset"] == {"name": "hanzi-tiles", "sigma": 0.7, "test_draws": 1}
    assert by_id["hanzi-tiles", "noise2same"]["evaluation"]["test_statistics"] == "set"  # the official notebook
    assert by_id["imagenet", "noise2same"]["evaluation"] == {"d_f": True, "test_every": None}  # per image
    assert {cell.dataset for cell in PAPER_CELLS} == {"imagenet", "hanzi-tiles", "planaria", "bsd68"}


def test_hanzi_falls_back_to_the_rendered_set_at_the_papers_size_and_the_official_split(tmp_path):
    """Without the official tiles under the data folder, the HanZi column renders the paper's recipe
    (13,029 characters x 6 copies, 70 / 20 / 10) and keeps the column's other sections."""
    cells = {(cell.column, cell.method): cell for cell in TableSpec.load("table3").cells("paper", data_dir=tmp_path)}
    rendered = cells["hanzi", "noise2self_noise"]
    assert rendered.config["dataset"] | {"data_seed": None} == {
        "name": "hanzi", "n_characters": 13029, "n_copies": 6, "sigma": 0.7, "data_seed": None, "val_fraction": 0.2,
        "test_fraction": 0.1, "gaussian_only": False, "test_draws": 1}
    assert rendered.method_kwargs["replacement"] == "gaussian:0.5" and rendered.evaluation.test_statistics == "set"
    (tmp_path / "Hanzi" / "tiles").mkdir(parents=True)
    for name in ("training", "validation", "testing"):
        (tmp_path / "Hanzi" / "tiles" / f"{name}.npy").touch()
    present = TableSpec.load("table3").cells("paper", ["noise2self_noise"], ["hanzi"], data_dir=tmp_path)
    assert [cell.dataset for cell in present] == ["hanzi-tiles"]


def paper_cell(table: str, row: str, dataset: str, data_dir: Path | None = None) -> Cell:
    return next(cell for cell in TableSpec.load(table).cells("paper", data_dir=data_dir)
                if cell.row == row and cell.column == dataset)


@pytest.mark.parametrize("table, row, other_table, other_row, dataset", [
    ("table1", "UPS 5x5", "table3", "noise2void", "bsd68"),  # 27.71 in both
    ("table1", "shifting RF", "table3", "laine", "bsd68"),  # 27.15
    ("table1", "Gaussian 1.0", "table3", "noise2self_noise", "bsd68"),  # 26.98
    ("table1", "Gaussian 0.5", "table2", "Gaussian 0.5", "bsd68"),  # 26.83 / 10.91e-3
    ("table2", "Gaussian 0.5", "table3", "noise2self_noise", "imagenet"),  # 20.38
    ("table2", "Gaussian 0.5", "table3", "noise2self_noise", "hanzi"),  # 13.94
])
def test_a_run_the_paper_prints_twice_is_one_cell(table, row, other_table, other_row, dataset, tmp_path):
    for data_dir in (None, tmp_path):  # with the official data, and with the fallbacks of an empty folder
        cell, other = paper_cell(table, row, dataset, data_dir), paper_cell(other_table, other_row, dataset, data_dir)
        assert cell.config == other.config and cell.id == other.id


def test_noise2same_alone_trains_longer_on_bsd68_and_noise2self_noise_keeps_the_texts_replacement_on_planaria():
    steps = {cell.method: cell.train.steps for cell in PAPER_CELLS if cell.dataset == "bsd68" and cell.trainable}
    assert steps.pop("noise2same") == 80000 and set(steps.values()) == {50000}
    assert paper_cell("table3", "noise2self_noise", "planaria").method_kwargs["replacement"] == "uniform"


def test_the_dry_run_names_the_cells_shared_with_other_tables(tmp_path, capsys):
    main(["run", "table3", "--preset", "paper", "--dry-run", "--data-dir", str(tmp_path), "--results", str(tmp_path)])
    shared = [line for line in capsys.readouterr().out.splitlines() if "the same cell as" in line]
    assert len(shared) == 5 and any(line.startswith("bsd68--noise2void--") and "table1 'UPS 5x5'" in line
                                    for line in shared)


def test_the_paper_tables_footnotes_mark_their_rows_and_paper_numbers(tmp_path):
    spec = TableSpec.load("table3")
    text = write_outputs_text(spec, "paper", tmp_path)
    assert "| noise2self_noise [a] |" in text and "a. Noise2Self-Noise: the paper's Section 5.1" in text
    row = next(line for line in text.splitlines() if line.startswith("| nlm |"))
    assert row.count("[c]") == 1 and row.split(" | ")[-1].endswith("22.73 [c] |")


def write_outputs_text(spec: TableSpec, preset: str, folder: Path) -> str:
    """The Markdown report of `spec` under `preset` from an empty store (every field of ours empty)."""
    cells = spec.cells(preset)
    report = build_report(spec, cells, ResultStore(folder / "cells"))
    return table_markdown(spec, preset, report)


@pytest.mark.parametrize("cell", PAPER_CELLS, ids=[cell.id.split("--")[0] + "/" + cell.method for cell in PAPER_CELLS])
def test_every_paper_cell_trains_two_steps_on_fixture_data(cell, data_dir, tmp_path):
    config = copy.deepcopy(cell.config)
    config["dataset"].update(FIXTURE_SIZES.get(cell.dataset, {}))
    if cell.trainable:
        # Two steps of a narrow network: the paper's 96 channels at batch 64 would take minutes on a CPU.
        config["train"].update(steps=2, batch_size=2, val_every=2)
        config["backbone"]["base_channels"] = 4
        config.pop("evaluation")  # D(f) has its own tests
    result = run_cell(Cell(cell.table, cell.preset, config), tmp_path, "cpu", data_dir)
    for test in result.tests.values():
        assert test.psnr and all(value == value for value in test.psnr.values())  # scored, no NaN


def test_dry_run_without_data_says_what_is_missing_and_fails(tmp_path, capsys):
    assert main(["run", "table3", "--preset", "paper", "--dry-run", "--data-dir", str(tmp_path),
                 "--results", str(tmp_path / "results")]) == 1
    out = capsys.readouterr().out
    assert "44 cells: 6 not applicable, 0 already in" in out and ", 38 to run" in out  # bm3d on planaria: BM4D
    for name in ("imagenet", "planaria", "bsd68"):
        assert f"missing data: {name}: missing {tmp_path}" in out
    assert "missing data: hanzi" not in out  # generated, nothing to download


def test_dry_run_with_the_data_present_passes(data_dir, capsys):
    # The ImageNet fixture holds 10 images, not the 22,000 the paper's split needs.
    argv = ["run", "table3", "--preset", "paper", "--dry-run", "--data-dir", str(data_dir), "--results",
            str(data_dir / "results")]
    assert main([*argv, "--datasets", "hanzi,planaria,bsd68"]) == 0
    assert "missing data" not in capsys.readouterr().out
