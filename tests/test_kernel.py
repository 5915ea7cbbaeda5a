"""The kernel rule: methods/ and datamodules/ use only benchmark.registry of the runner's package, and
that module imports nothing of the project, so the runner depends on them and never the reverse."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def imported_modules(path: Path) -> set[str]:
    """The absolute module names a file imports."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module)
    return names


def test_methods_and_datamodules_import_only_the_kernel_of_benchmark():
    offending = {f"{path.relative_to(REPO)}: {name}"
                 for folder in ("methods", "datamodules") for path in (REPO / folder).glob("*.py")
                 for name in imported_modules(path) if name.split(".")[0] == "benchmark" and name != "benchmark.registry"}
    assert not offending


def test_the_kernel_imports_nothing_of_the_project():
    code = ("import sys, benchmark.registry; print(sorted(m for m in sys.modules if m.split('.')[0] in "
            "('benchmark', 'methods', 'datamodules')))")
    loaded = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True).stdout
    assert loaded.strip() == "['benchmark', 'benchmark.registry']"
