"""Method plugins: the example package installed and run in a table, broken plugins reported and left
out, and rows added to a table with --methods +name."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from benchmark.registry import ConfigError, PluginWarning, Registry, UnknownNameError
from benchmark.spec import TableSpec
from methods.registry import PLUGIN_GROUP

REPO = Path(__file__).resolve().parents[1]
GROUP = "test_plugins.methods"  # a group of its own, so the in-process test meets no installed plugin


def python(code: str, site: Path, cwd: Path) -> subprocess.CompletedProcess:
    """Run `code` in a fresh interpreter with `site` first on its path (plugins load at its start)."""
    env = {**os.environ, "WANDB_MODE": "disabled", "PYTHONPATH": os.pathsep.join([str(site), str(REPO)])}
    return subprocess.run([sys.executable, "-c", code], cwd=cwd, env=env, capture_output=True, text=True, timeout=300)


def fake_distribution(site: Path, name: str, entry_points: dict[str, str], group: str = PLUGIN_GROUP,
                      modules: dict[str, str] | None = None) -> None:
    """An installed distribution as pip leaves it: <name>-0.1.dist-info with METADATA and
    entry_points.txt, and its modules, under `site`."""
    info = site / f"{name.replace('-', '_')}-0.1.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: 0.1\n")
    lines = [f"{entry} = {target}" for entry, target in entry_points.items()]
    (info / "entry_points.txt").write_text("\n".join([f"[{group}]", *lines]) + "\n")
    for module, source in (modules or {}).items():
        (site / f"{module}.py").write_text(source)


def test_example_plugin_installs_lists_its_origin_and_gets_a_row_in_a_smoke_table(tmp_path):
    source = shutil.copytree(REPO / "examples" / "plugin", tmp_path / "plugin")  # the build writes beside it
    site = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation",
                    "--no-index", "--target", str(site), str(source)], check=True, timeout=120)
    code = ("import sys; from benchmark.cli import main; main(['methods']); "
            "print('loaded from', sys.modules['neighbor2neighbor'].__file__); "
            f"sys.exit(main(['run', 'table3', '--preset', 'smoke', '--methods', 'input,+neighbor2neighbor', "
            f"'--datasets', 'natural-gray', '--results', {str(tmp_path / 'results')!r}]))")
    run = python(code, site, tmp_path)
    assert run.returncode == 0, run.stderr[-3000:]
    assert "PluginWarning" not in run.stderr
    listed = {line.split()[0]: line.split()[-1] for line in run.stdout.splitlines() if "trained on" in line}
    assert listed["neighbor2neighbor"] == "noise2same-bench-neighbor2neighbor" and listed["noise2same"] == "built-in"
    assert f"loaded from {site / 'neighbor2neighbor.py'}" in run.stdout
    table = pd.read_csv(tmp_path / "results" / "smoke" / "partial" / "table3.csv").set_index("method")
    table = table[table["metric"] == "PSNR"]
    assert list(table.index) == ["input", "neighbor2neighbor"]
    assert 5 < table.loc["neighbor2neighbor", "mean"] < 40  # a PSNR in dB, trained and scored like a built-in


def test_broken_plugins_warn_once_each_and_the_table_still_runs(tmp_path):
    site = tmp_path / "site"
    fake_distribution(site, "broken-import", {"missing": "no_such_module_anywhere"})
    fake_distribution(site, "name-clash", {"clash": "clashing_plugin"}, modules={"clashing_plugin": (
        "from methods import register_method\n"
        "from methods.noise2same import Noise2Same\n"
        "register_method('noise2same_variant')(type('Variant', (Noise2Same,), {}))\n"
        "register_method('noise2same')(type('Clash', (Noise2Same,), {}))\n")})
    code = ("import sys; from benchmark.cli import main; main(['methods']); "
            f"sys.exit(main(['run', 'table3', '--preset', 'smoke', '--methods', 'input', '--datasets', 'natural-gray', "
            f"'--results', {str(tmp_path / 'results')!r}]))")
    run = python(code, site, tmp_path)
    assert run.returncode == 0, run.stderr[-3000:]
    warnings = [line for line in run.stderr.splitlines() if "PluginWarning" in line]
    assert len(warnings) == 2, run.stderr
    assert any("'missing' from broken-import was not loaded: ModuleNotFoundError" in line and "no_such_module_anywhere"
               in line for line in warnings), warnings
    assert any("'clash' from name-clash was not loaded: ConfigError: method name 'noise2same' is already registered "
               "(by built-in)" in line for line in warnings), warnings
    listed = [line.split()[0] for line in run.stdout.splitlines() if "trained on" in line or "classical" in line]
    assert "noise2same" in listed and "noise2same_variant" not in listed  # the clashing plugin is left out whole
    assert re.search(r"\| input \| PSNR \| \**20\.", (tmp_path / "results" / "smoke" / "partial" / "table3.md").read_text())


def test_a_plugin_registers_under_its_distribution_or_not_at_all(tmp_path, monkeypatch):
    registry: Registry[type] = Registry("method")
    registry.register("taken")(type("Taken", (), {}))
    header = f"from {__name__} import REGISTRY\n"
    fake_distribution(tmp_path, "good-one", {"good": "good_plugin"}, GROUP,
                      {"good_plugin": header + "REGISTRY.register('good')(type('Good', (), {}))\n"})
    fake_distribution(tmp_path, "half-bad", {"half": "half_plugin"}, GROUP,
                      {"half_plugin": header + "REGISTRY.register('fine')(type('Fine', (), {}))\n"
                                              "REGISTRY.register('taken')(type('Again', (), {}))\n"})
    fake_distribution(tmp_path, "empty-one", {"empty": "empty_plugin"}, GROUP, {"empty_plugin": "VALUE = 1\n"})
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr(sys.modules[__name__], "REGISTRY", registry, raising=False)
    with pytest.warns(PluginWarning) as caught:
        registry.load_plugins(GROUP)
    messages = sorted(str(w.message) for w in caught)
    assert len(messages) == 2
    assert messages[0].startswith("method plugin 'empty' from empty-one was not loaded: ConfigError: importing "
                                  "'empty_plugin' registered no method")
    assert messages[1] == ("method plugin 'half' from half-bad was not loaded: ConfigError: method name 'taken' "
                           "is already registered (by built-in)")
    assert registry.names() == ["taken", "good"]
    assert registry.origin("good") == "good-one" and registry.origin("taken") == "built-in"
    registry.register("later")(type("Later", (), {}))
    assert registry.origin("later") == "built-in"


def test_methods_plus_name_adds_a_row_to_a_table():
    spec = TableSpec.load("figure3")
    added, methods = spec.with_added_rows(["+noise2void"])
    assert methods is None and [row.label for row in added.rows] == ["noise2same", "noise2self", "laine", "noise2void"]
    assert {cell.row for cell in added.cells("smoke", methods)} == {"noise2same", "noise2self", "laine", "noise2void"}
    added, methods = spec.with_added_rows(["laine", "+noise2void", "+noise2same"])
    assert [row.label for row in added.rows] == ["noise2same", "noise2self", "laine", "noise2void"]
    assert {cell.row for cell in added.cells("smoke", methods)} == {"laine", "noise2void", "noise2same"}
    with pytest.raises(ConfigError, match=r"not in figure3; its rows: noise2same, noise2self, laine; "
                                          r"add it as a row with --methods \+noise2void"):
        spec.cells("smoke", ["noise2void"])
    with pytest.raises(UnknownNameError, match="unknown method 'noise2viod'; valid methods: input"):
        spec.with_added_rows(["+noise2viod"])
