"""`python -m benchmark`: every warning as one line on stderr, then the command line."""

import sys

from benchmark.console import warn_in_one_line

warn_in_one_line()

from benchmark.cli import main  # noqa: E402  (importing the methods loads the plugins, which may warn)

sys.exit(main())
