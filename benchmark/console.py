"""The command line's conventions beside its own lines: every warning as one line, whether progress
bars are drawn, the start of a worker process, and comma-separated whole numbers as an option type."""

import argparse
import os
import sys
import warnings
from typing import Callable


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


def start_worker(threads: int) -> None:
    """A worker process of cells run side by side, before it imports the suite: its share of the cores
    for torch's kernels, no progress bars (tqdm reads TQDM_DISABLE when it is imported; the parent
    prints a line per cell instead) and one-line warnings."""
    os.environ["TQDM_DISABLE"] = "1"
    import torch  # imports no tqdm

    torch.set_num_threads(threads)
    warn_in_one_line()


def whole_numbers(what: str, example: str) -> Callable[[str], tuple[int, ...]]:
    """An argparse type reading comma-separated whole numbers ('0,1' -> (0, 1)); anything else is one
    line naming `what` and an `example`."""
    def parse(text: str) -> tuple[int, ...]:
        try:
            return tuple(int(part) for part in text.split(","))
        except ValueError:
            raise argparse.ArgumentTypeError(f"{what} are comma-separated whole numbers, e.g. {example}; "
                                             f"got {text!r}") from None
    return parse
