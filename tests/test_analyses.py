"""The paper's analyses through the runner on the smoke preset: Tables 1-2 (D(f) and PSNR), Figure 3
(test PSNR against training cost), Figure 4 (PSNR against sigma_loss), and D(f) on Table 3."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from PIL import Image
from scipy import stats

from benchmark.cli import main
from benchmark.figures import FIGURES, figure4_data
from benchmark.spec import KINDS, Cell, TableSpec
from benchmark.store import ResultStore
from records import done_record


def stored_results(results: Path) -> list[dict]:
    return [json.loads(p.read_text()) for p in sorted((results / "runs" / "cells").glob("*.json"))]


def test_every_spec_kind_has_a_report():
    assert set(KINDS) == {"table", *FIGURES}
    for name in ("table1", "table2", "table3", "figure3", "figure4", "budget"):
        assert TableSpec.load(name).kind in KINDS


def test_table1_reports_d_f_and_psnr_per_replacement(tmp_path, capsys):
    rows = "Gaussian 0.5,UPS 5x5,shifting RF"  # three of the six rows keep the test short
    assert main(["run", "table1", "--preset", "smoke", "--methods", rows, "--results", str(tmp_path)]) == 0
    results = stored_results(tmp_path)
    by_row = {r["config"]["method"]["name"] + " " + str(r["config"]["method"].get("replacement")): r for r in results}
    assert set(by_row) == {"noise2self_noise gaussian:0.5", "noise2void ups:5", "laine None"}  # UPS 5x5 is Noise2Void
    for result in results:
        assert result["config"]["evaluation"]["d_f"] is True and result["tests"]["test"]["d_f"] >= 0
    # The blind-spot network is J-invariant: J of one pixel per image here (saturated sampling).
    assert by_row["laine None"]["tests"]["test"]["d_f"] == 0.0
    assert by_row["noise2self_noise gaussian:0.5"]["tests"]["test"]["d_f"] > 1e-5
    table = pd.read_csv(tmp_path / "smoke" / "partial" / "table1.csv", index_col=[0, 1, 2])  # method, metric, column
    assert set(table.index.get_level_values("column")) == {"natural-gray"}
    assert table.loc[("UPS 5x5", "D(f) x1e-3", "natural-gray"), "paper"] == 18.31  # shown x1e3, as printed
    d_f = by_row["noise2void ups:5"]["tests"]["test"]["d_f"]
    assert table.loc[("UPS 5x5", "D(f) x1e-3", "natural-gray"), "mean"] == pytest.approx(d_f * 1e3, abs=5e-4)
    assert "| shifting RF | PSNR |" in (tmp_path / "smoke" / "partial" / "table1.md").read_text()


def test_d_f_on_table3_is_an_option_that_adds_a_metric(tmp_path):
    argv = ["run", "table3", "--preset", "smoke", "--methods", "noise2same,bm3d", "--datasets", "natural-gray",
            "--results", str(tmp_path)]
    assert main(argv) == 0
    assert all("d_f" not in r["tests"]["test"] for r in stored_results(tmp_path))
    assert main([*argv, "--d-f"]) == 0
    with_d_f = [r for r in stored_results(tmp_path) if "evaluation" in r["config"]]
    assert [r["method"] for r in with_d_f] == ["noise2same"] and with_d_f[0]["tests"]["test"]["d_f"] > 0
    table = pd.read_csv(tmp_path / "smoke" / "partial" / "table3.csv", index_col=[0, 1, 2])
    assert table.loc[("noise2same", "D(f) x1e-3", "natural-gray"), "mean"] > 0
    assert ("bm3d", "D(f) x1e-3", "natural-gray") not in table.index  # D(f) is for trained networks
    assert "| bm3d | D(f) x1e-3 |  |" in (tmp_path / "smoke" / "partial" / "table3.md").read_text()
    assert main(["run", "figure3", "--preset", "smoke", "--d-f", "--results", str(tmp_path)]) == 2


def test_figure3_plots_test_psnr_every_few_steps(tmp_path):
    assert main(["run", "figure3", "--preset", "smoke", "--results", str(tmp_path)]) == 0
    results = stored_results(tmp_path)
    # The paper's batch sizes (128 / 64 / 32) times the preset's one factor (1/16).
    assert sorted(r["config"]["train"]["batch_size"] for r in results) == [2, 4, 8]
    for result in results:
        assert [point["step"] for point in result["curve"]] == [0, 2, 4]  # before training, then every 2 steps
    data = pd.read_csv(tmp_path / "smoke" / "figure3.csv")
    assert set(data["method"]) == {"noise2same", "noise2self", "laine"}
    assert dict(zip(data["method"], data["batch"])) == {"noise2same": 4, "noise2self": 8, "laine": 2}
    assert list(data["units"][:3]) == [0, 0.04, 0.08]  # one unit = 50 steps
    final = data[data["step"] == 4].set_index("method")["psnr"]
    assert final["laine"] == pytest.approx(next(r for r in results if r["method"] == "laine")["tests"]["test"]["psnr_mean"])
    image = Image.open(tmp_path / "smoke" / "figure3.png")
    assert image.size[0] > 500 and len(image.getcolors(1 << 20)) > 10  # a drawn plot, not a blank canvas


def test_budget_plots_test_psnr_against_steps_and_training_cost(tmp_path):
    rows = "noise2void,laine"  # two of the nine keep the test short
    assert main(["run", "budget", "--preset", "smoke", "--methods", rows, "--results", str(tmp_path)]) == 0
    results = stored_results(tmp_path)
    for result in results:
        steps = [point["step"] for point in result["curve"]]
        seconds = [point["seconds"] for point in result["curve"]]
        assert steps == [0, 2, 4] and seconds[0] < 0.5 and seconds[0] <= seconds[1] <= seconds[2]
        # The curve's own evaluations are not training time: the clock is below the cell's training time.
        assert seconds[-1] < result["timings"]["train_s"]
    data = pd.read_csv(tmp_path / "smoke" / "partial" / "budget.csv")
    assert list(data.columns) == ["method", "column", "test_set", "step", "cost", "seconds", "psnr", "ci_low",
                                  "ci_high", "n_seeds"]
    by_method = {r["method"]: r for r in results}
    for method, curve in data.groupby("method"):
        assert list(curve["seconds"]) == pytest.approx([point["seconds"] for point in by_method[method]["curve"]])
        assert list(curve["psnr"]) == pytest.approx([p["test"] for p in by_method[method]["curve"]])
    # Laine's network runs on four orientations a step: four one-pass steps of cost per step.
    assert list(data.loc[data["method"] == "laine", "cost"]) == [0, 8, 16]
    assert list(data.loc[data["method"] == "noise2void", "cost"]) == [0, 2, 4]
    image = Image.open(tmp_path / "smoke" / "partial" / "budget.png")
    assert image.size[0] > 400 and len(image.getcolors(1 << 20)) > 10


def test_figure4_sweeps_sigma_loss_and_marks_each_curves_best(tmp_path):
    rows = "sigma_loss=0.1,sigma_loss=0.5,sigma_loss=1"  # three of the ten keep the test short
    assert main(["run", "figure4", "--preset", "smoke", "--methods", rows, "--results", str(tmp_path)]) == 0
    results = stored_results(tmp_path)
    assert len(results) == 6
    assert {r["config"]["dataset"]["gaussian_only"] for r in results} == {True}
    data = pd.read_csv(tmp_path / "smoke" / "partial" / "figure4.csv")
    assert list(data.columns) == ["sigma_noise", "sigma_loss", "psnr", "ci_low", "ci_high", "n_seeds", "best"]
    assert list(data["sigma_noise"].unique()) == [0.9, 0.5]
    assert data["sigma_loss"].tolist() == [0.1, 0.5, 1.0] * 2
    for _, curve in data.groupby("sigma_noise"):
        assert curve["best"].sum() == 1 and curve.loc[curve["best"], "psnr"].item() == curve["psnr"].max()
    assert (tmp_path / "smoke" / "partial" / "figure4.png").stat().st_size > 10_000


def test_figure4_data_averages_seeds_and_reads_theorem2_back(tmp_path):
    store = ResultStore(tmp_path)
    cells = []
    for seed, psnr in [(0, 10.0), (1, 12.0)]:
        config = {"dataset": {"name": "hanzi", "sigma": 0.5}, "method": {"name": "noise2same", "lambda_inv": 0.6},
                  "seed": seed}
        cell = Cell("figure4", "cpu", config, None, row="sigma_loss=0.3", column="sigma_noise=0.5")
        store.write(done_record(cell.id, {"0": psnr}))
        cells.append(cell)
    data = figure4_data(cells, store)
    low, high = stats.t.interval(0.95, 1, loc=11.0, scale=1.0)  # two seeds: 10 and 12, standard error 1
    assert data.to_dict("records") == [{"sigma_noise": 0.5, "sigma_loss": 0.3, "psnr": 11.0, "ci_low": pytest.approx(low),
                                        "ci_high": pytest.approx(high), "n_seeds": 2, "best": True}]
