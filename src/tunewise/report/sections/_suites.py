"""The suite table and delta chart the task, general and safety sections share."""

from __future__ import annotations

from typing import Any

from markupsafe import Markup

from tunewise.report.formatting import format_count, format_p_value
from tunewise.report.plots import DeltaBar, delta_chart
from tunewise.report.reader import interval
from tunewise.report.rules import BIAS_IDEAL, judge
from tunewise.report.templating import Page, render_template

_WIDTHS = (22, 24, 7, 13, 13, 13, 8)  # per cent: the suite tables of every section line up under each other


def _direction(suite: dict[str, Any], up: str, down: str, ideal: str) -> str:
    higher = suite.get("higher_is_better")
    return up if higher is True else down if higher is False else ideal


def suite_table(suites: list[dict[str, Any]]) -> Markup:
    """Base, tuned and their difference per suite, each with its interval, coloured by `judge`."""
    rows = [
        {
            "suite": s,
            "direction": _direction(s, "↑ better", "↓ better", f"{BIAS_IDEAL:g} ideal"),
            "n": format_count(s.get("n")),
            "judgement": judge(s),
            "p": format_p_value(s["delta"].get("p_value") if isinstance(s.get("delta"), dict) else None),
        }
        for s in suites
    ]
    return render_template("sections/_suite_table.html.j2", rows=rows, widths=_WIDTHS)


def delta_plot(page: Page, name: str, suites: list[dict[str, Any]], alt: str) -> Markup:
    """The suites' deltas with intervals as a chart kept as `plots/name`; empty when none has a delta."""
    bars = []
    for s in suites:
        value, low, high = interval(s.get("delta"))
        if value is None:
            continue
        arrow = _direction(s, " ↑", " ↓", f" ({BIAS_IDEAL:g} ideal)")
        bars.append(
            DeltaBar(
                label=f"{s.get('name', '?')} · {s.get('metric', '?')}{arrow}",
                value=value,
                low=low,
                high=high,
                judgement=judge(s),
            )
        )
    if not bars:
        return Markup("")
    return page.plot(name, delta_chart(bars), alt)
