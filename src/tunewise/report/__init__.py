"""The run report: what a fine-tune gained and what it cost, against the base model.

`build_report(run_dir)` writes `run_dir/report.html` (self-contained, opens offline) and the
charts as PNG files in `run_dir/plots/`; `verdict(run_dir)` gives the verdict as plain lines.

Inside: `reader` reads a run directory into a `RunRecord`, `rules` holds the verdict rules
(`PITFALLS`, `worth_it`), `sections/` one module per section of the page with its template in
`templates/`, and `build` puts the page together from its `SECTIONS` list.
"""

from __future__ import annotations

from tunewise.report.build import SECTIONS, build_report
from tunewise.report.reader import RunRecord, load_run
from tunewise.report.rules import (
    PITFALLS,
    Pitfall,
    VerdictItem,
    fired_pitfalls,
    harm,
    judge,
    verdict,
    worth_it,
)

__all__ = [
    "PITFALLS",
    "SECTIONS",
    "Pitfall",
    "RunRecord",
    "VerdictItem",
    "build_report",
    "fired_pitfalls",
    "harm",
    "judge",
    "load_run",
    "verdict",
    "worth_it",
]
