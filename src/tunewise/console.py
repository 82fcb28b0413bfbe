"""The consoles tunewise prints to: wide enough for its tables when output goes to a file or CI log."""

from __future__ import annotations

import os
import sys

from rich.console import Console

__all__ = ["make_console"]

_PIPED_WIDTH = 160  # rich assumes 80 columns off a terminal, which folds every table


def make_console(*, stderr: bool = False) -> Console:
    """A rich console that never breaks a long message (paths stay copyable) and, when its
    stream is not a terminal and `COLUMNS` is unset, lays tables out for 160 columns."""
    stream = sys.stderr if stderr else sys.stdout
    piped = not (hasattr(stream, "isatty") and stream.isatty())
    width = _PIPED_WIDTH if piped and "COLUMNS" not in os.environ else None
    return Console(stderr=stderr, soft_wrap=True, width=width)
