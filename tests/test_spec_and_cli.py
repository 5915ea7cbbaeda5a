import pytest

from benchmark.cli import main
from benchmark.registry import ConfigError, UnknownNameError
from benchmark.spec import Row, TableSpec, resolve_config
from datamodules import DATASETS
from methods import METHODS


def test_every_preset_of_table3_resolves_every_cell():
    spec = TableSpec.load("table3")
    for preset in spec.presets:
        cells = spec.cells(preset)
        assert len(cells) == len(spec.datasets(preset)) * len(spec.rows) * len(spec.presets[preset].get("seeds", [0]))
        assert len({cell.id for cell in cells}) == len(cells)


def test_cell_ids_are_stable_and_follow_the_config():
    spec = TableSpec.load("table3")
    first = {cell.id for cell in spec.cells("smoke")}
    assert first == {cell.id for cell in TableSpec.load("table3").cells("smoke")}
    settings = {"train": {"steps": 5}, "methods": {"noise2same": {"lambda_inv": 1.0}}}
    a = resolve_config(settings, {"name": "hanzi"}, Row("noise2same", "noise2same"), 0, "x")
    b = resolve_config({**settings, "methods": {"noise2same": {"lambda_inv": 2.0}}}, {"name": "hanzi"},
                       Row("noise2same", "noise2same"), 0, "x")
    assert a["method"]["lambda_inv"] == 1.0 and a["method"]["mask_fraction"] == 0.005  # defaults filled in
    assert a != b


def test_classical_cells_carry_no_training_config():
    config = resolve_config({"train": {"steps": 5}}, {"name": "natural-gray"}, Row("bm3d", "bm3d"), 0, "x")
    assert "train" not in config and "backbone" not in config


@pytest.mark.parametrize("settings, message", [
    ({"methods": {"noise2same": {"lamda_inv": 1}}}, "unknown key.*lamda_inv.*valid keys: lambda_inv"),
    ({"methods": {"noise2same": {"lambda_inv": "two"}}}, "lambda_inv: .two. is not valid: input should be a valid number"),
    ({"train": {"stepz": 1}}, "unknown key.*stepz.*valid keys: batch_size"),
    ({"datasets": {"hanzi": {"dataset": {"n_chars": 3}}}}, "unknown key.*n_chars.*n_characters"),
])
def test_bad_spec_values_name_the_valid_keys(settings, message):
    with pytest.raises(ConfigError, match=message):
        resolve_config(settings, {"name": "hanzi", **settings.get("datasets", {}).get("hanzi", {})},
                       Row("noise2same", "noise2same"), 0, "x")


def test_unknown_names_list_the_valid_ones():
    with pytest.raises(UnknownNameError, match="valid methods: input, nlm, bm3d"):
        METHODS.get("noise2sam")
    with pytest.raises(UnknownNameError, match="valid datasets: " + ", ".join(DATASETS.names())):
        DATASETS.get("bsd")


@pytest.mark.parametrize("argv, fragment", [
    (["run", "table3", "--methods", "noise2sam"], "unknown method 'noise2sam'; valid methods: input"),
    (["run", "table3", "--datasets", "bsd"], "unknown dataset 'bsd'; valid datasets: " + ", ".join(DATASETS.names())),
    (["run", "table9"], "unknown table 'table9'; valid tables: budget, figure3, figure4, table1, table2, table3"),
    (["run", "table3", "--preset", "huge"], "unknown preset 'huge' for table3; valid presets: smoke, cpu"),
])
def test_cli_rejects_bad_names_in_one_line(argv, fragment, capsys, tmp_path):
    assert main([*argv, "--results", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert fragment in err and err.count("\n") == 1
    assert not (tmp_path / "runs").exists()


def test_cli_lists_methods_and_datasets(capsys):
    assert main(["methods"]) == 0
    out = capsys.readouterr().out
    assert all(name in out for name in ["input", "nlm", "bm3d", "noise2true", "noise2same"])
    assert main(["datasets"]) == 0
    assert "natural-gray" in capsys.readouterr().out


def test_figure4_grid_follows_theorem2():
    # lambda_inv = 2 * sigma_loss on unstandardised images, for sigma_loss = 0.1 ... 1.0.
    spec = TableSpec.load("figure4")
    cells = spec.cells("cpu")
    sweep = sorted({(c.row, c.config["method"]["lambda_inv"], c.config["method"]["standardize"]) for c in cells})
    assert [row for row, _, _ in sweep] == [f"sigma_loss={v / 10:g}" for v in range(1, 11)]
    for row, lambda_inv, standardize in sweep:
        assert lambda_inv == pytest.approx(2 * float(row.split("=")[1])) and standardize is False
    noise = {c.column: c.config["dataset"] for c in cells}
    assert {column: (d["sigma"], d["gaussian_only"]) for column, d in noise.items()} == {
        "sigma_noise=0.9": (0.9, True), "sigma_noise=0.7": (0.7, True),
        "sigma_noise=0.5": (0.5, True), "sigma_noise=0.3": (0.3, True)}
    assert len(cells) == 40 and {c.method for c in cells} == {"noise2same"}
