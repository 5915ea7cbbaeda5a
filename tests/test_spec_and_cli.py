import pytest

from benchmark.cli import main
from benchmark.registry import ConfigError, UnknownNameError
from benchmark.spec import TableSpec, resolve_config
from datamodules import DATASETS
from methods import METHODS


def test_every_preset_of_table3_resolves_every_cell():
    spec = TableSpec.load("table3")
    for preset in spec.presets:
        cells = spec.cells(preset)
        assert len(cells) == len(spec.datasets(preset)) * len(spec.methods) * len(spec.presets[preset].get("seeds", [0]))
        assert len({cell.id for cell in cells}) == len(cells)


def test_cell_ids_are_stable_and_follow_the_config():
    spec = TableSpec.load("table3")
    first = {cell.id for cell in spec.cells("smoke")}
    assert first == {cell.id for cell in TableSpec.load("table3").cells("smoke")}
    settings = {"train": {"steps": 5}, "methods": {"noise2same": {"lambda_inv": 1.0}}}
    a = resolve_config(settings, "hanzi", "noise2same", 0, "x")
    b = resolve_config({**settings, "methods": {"noise2same": {"lambda_inv": 2.0}}}, "hanzi", "noise2same", 0, "x")
    assert a["method"]["lambda_inv"] == 1.0 and a["method"]["mask_fraction"] == 0.005  # defaults filled in
    assert a != b


def test_classical_cells_carry_no_training_config():
    config = resolve_config({"train": {"steps": 5}}, "natural-gray", "bm3d", 0, "x")
    assert "train" not in config and "backbone" not in config


@pytest.mark.parametrize("settings, message", [
    ({"methods": {"noise2same": {"lamda_inv": 1}}}, "unknown key.*lamda_inv.*valid keys: lambda_inv"),
    ({"methods": {"noise2same": {"lambda_inv": "two"}}}, "lambda_inv.*must be float"),
    ({"train": {"stepz": 1}}, "unknown key.*stepz.*valid keys: batch_size"),
    ({"datasets": {"hanzi": {"dataset": {"n_chars": 3}}}}, "unknown key.*n_chars.*n_characters"),
])
def test_bad_spec_values_name_the_valid_keys(settings, message):
    with pytest.raises(ConfigError, match=message):
        resolve_config(settings, "hanzi", "noise2same", 0, "x")


def test_unknown_names_list_the_valid_ones():
    with pytest.raises(UnknownNameError, match="valid methods: input, nlm, bm3d"):
        METHODS.get("noise2sam")
    with pytest.raises(UnknownNameError, match="valid datasets: " + ", ".join(DATASETS.names())):
        DATASETS.get("bsd")


@pytest.mark.parametrize("argv, fragment", [
    (["run", "table3", "--methods", "noise2sam"], "unknown method 'noise2sam'; valid methods: input"),
    (["run", "table3", "--datasets", "bsd"], "unknown dataset 'bsd'; valid datasets: " + ", ".join(DATASETS.names())),
    (["run", "table9"], "unknown table 'table9'; valid tables: table3"),
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
