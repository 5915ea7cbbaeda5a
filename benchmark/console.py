"""What the command line shows besides its own lines: every warning as one line, and whether progress
bars are drawn."""

import os
import sys
import warnings


def one_line_warning(message: Warning | str, category: type[Warning], filename: str, lineno: int,
                     file: object = None, line: str | None = None) -> None:
    """Print a warning (a plugin left out, a stored file moved aside) as 'warning: <message>'."""
    print(f"warning: {message}", file=sys.stderr)


def warn_in_one_line() -> None:
    """Show every warning of this process as one line on stderr."""
    warnings.showwarning = one_line_warning


def progress_bars() -> bool:
    """Whether to draw progress bars: not where tqdm's own switch TQDM_DISABLE is set, which also turns
    off Lightning's training bar (the workers of cells run side by side have it set)."""
    return os.environ.get("TQDM_DISABLE", "").lower() in ("", "0", "false")
