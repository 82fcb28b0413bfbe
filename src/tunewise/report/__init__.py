"""The run report: what a fine-tune gained and what it cost, against the base model.

`build_report(run_dir)` writes `run_dir/report.html` (self-contained, opens offline) and the
charts as PNG files in `run_dir/plots/`; `verdict(run_dir)` gives the verdict as plain lines.
"""

from __future__ import annotations

from tunewise.report.card import build_report, load_run, verdict

__all__ = ["build_report", "load_run", "verdict"]
