"""`python -m benchmark`: every warning as one line on stderr, then the command line."""

import sys
import warnings


def one_line_warning(message: Warning | str, category: type[Warning], filename: str, lineno: int,
                     file: object = None, line: str | None = None) -> None:
    """Print a warning (a plugin left out, a stored file moved aside) as 'warning: <message>'."""
    print(f"warning: {message}", file=sys.stderr)


warnings.showwarning = one_line_warning

from benchmark.cli import main  # noqa: E402  (importing the methods loads the plugins, which may warn)

sys.exit(main())
