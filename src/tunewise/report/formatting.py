"""Numbers as the reports show them: "—" for anything not measured, never an error."""

from __future__ import annotations

from typing import Any

from tunewise.report.reader import number

__all__ = ["clip", "format_count", "format_duration", "format_megabytes", "format_p_value", "format_value"]


def format_value(value: Any, digits: int = 3, sign: bool = False) -> str:
    """A number with `digits` decimals (and a sign when `sign`); "—" when not a finite number."""
    found = number(value)
    if found is None:
        return "—"
    return f"{found:+.{digits}f}" if sign else f"{found:.{digits}f}"


def format_count(value: Any) -> str:
    """A count with thousands separators, e.g. `1,843,200`; "—" when not a number."""
    found = number(value)
    return f"{int(found):,}" if found is not None else "—"


def format_duration(seconds: Any) -> str:
    """A duration read at a glance: `42.0 s`, `30 min 43 s`, `2 h 05 min`; "—" when not a number."""
    s = number(seconds)
    if s is None:
        return "—"
    if s < 60:
        return f"{s:.1f} s"
    if s < 3600:
        return f"{int(s // 60)} min {int(s % 60):02d} s"
    return f"{int(s // 3600)} h {int(s % 3600 // 60):02d} min"


def format_megabytes(mb: Any) -> str:
    """A size given in MB, as MB below 1 GB and GB above; "—" when not a number."""
    m = number(mb)
    if m is None:
        return "—"
    return f"{m / 1024:.2f} GB" if m >= 1024 else f"{m:.0f} MB"


def format_p_value(value: Any) -> str:
    """A p-value with three decimals, `<0.001` below that; "—" when not a number."""
    p = number(value)
    return "—" if p is None else "<0.001" if p < 0.001 else f"{p:.3f}"


def clip(text: str, limit: int) -> str:
    """`text` cut to at most `limit` characters, an ellipsis marking the cut."""
    return text if len(text) <= limit else text[: limit - 1] + "…"
