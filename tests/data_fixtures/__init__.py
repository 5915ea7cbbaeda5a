"""Writers of tiny datasets in the original on-disk formats, one module per real dataset; each has
`write(root: Path) -> None` that lays the files out under root exactly as the distribution does."""

from __future__ import annotations

from pathlib import Path

import pytest


def one_line_naming(error: pytest.ExceptionInfo, path: Path) -> None:
    """A loader's error is one line that names the offending file."""
    assert "\n" not in str(error.value) and str(path) in str(error.value)
