"""The consoles tunewise prints to: wide enough for its tables when output goes to a file or CI log."""

from __future__ import annotations

import os
import sys

from rich.console import Console

__all__ = ["format_interval", "make_console"]

_PIPED_WIDTH = 160  # rich assumes 80 columns off a terminal, which folds every table


def make_console(*, stderr: bool = False) -> Console:
    """A rich console that never breaks a long message (paths stay copyable) and, when its
    stream is not a terminal and `COLUMNS` is unset, lays tables out for 160 columns."""
    stream = sys.stderr if stderr else sys.stdout
    piped = not (hasattr(stream, "isatty") and stream.isatty())
    width = _PIPED_WIDTH if piped and "COLUMNS" not in os.environ else None
    return Console(stderr=stderr, soft_wrap=True, width=width)


def format_interval(iv: dict[str, float] | None, signed: bool = False) -> str:
    """`value [low, high]` to three decimals (with a sign for deltas); `-` when there is none."""
    if not iv:
        return "-"
    sign = "+" if signed else ""
    return f"{iv['value']:{sign}.3f} [{iv['low']:{sign}.3f}, {iv['high']:{sign}.3f}]"
