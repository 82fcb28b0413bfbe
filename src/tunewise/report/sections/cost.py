"""Cost: wall time, throughput, peak memory and trainable parameters (from train_summary.json, or
what metrics.jsonl holds when training did not finish)."""

from __future__ import annotations

from markupsafe import Markup

from tunewise.report.formatting import (
    format_count,
    format_duration,
    format_megabytes,
    format_value,
)
from tunewise.report.reader import number
from tunewise.report.templating import Page, Section, kv_table, missing

__all__ = ["SECTION"]


def _render(page: Page) -> Markup:
    run = page.run
    ts = run.train_summary
    if ts is None:
        last = next((m for m in reversed(run.metrics or []) if number(m.get("elapsed_s")) is not None), None)
        if last is None:
            return missing("Cost", run.hint("train_summary"))
        return kv_table(
            [
                ("Wall time (from metrics.jsonl)", format_duration(last.get("elapsed_s"))),
                ("Steps", str(last.get("step", "—"))),
                ("Tokens seen", format_count(last.get("tokens_seen"))),
            ]
        ) + missing("Throughput, peak memory and trainable parameters", run.hint("train_summary"))
    steps = number(ts.get("steps"))
    wall = number(ts.get("wall_s"))
    per_step = f" ({wall / steps:.2f} s per step)" if wall and steps else ""
    return kv_table(
        [
            ("Wall time", format_duration(wall) + per_step),
            ("Steps", format_count(steps) + (" (interrupted)" if ts.get("interrupted") else "")),
            ("Tokens seen (not padding)", format_count(ts.get("tokens_seen"))),
            ("Throughput", f"{format_count(ts.get('tokens_per_s'))} tokens/s"),
            ("Peak memory (process RSS)", format_megabytes(ts.get("peak_rss_mb"))),
            (
                "Trainable parameters",
                (
                    f"{format_count(ts.get('trainable_parameters'))} of "
                    f"{format_count(ts.get('total_parameters'))} "
                    f"({format_value(ts.get('trainable_percent'), 2)}%)"
                ),
            ),
            ("Method", str(ts.get("method", "—"))),
            ("Last checkpoint", str(ts.get("checkpoint") or "—")),
        ]
    )


SECTION = Section("cost", "Cost", "Cost", _render)
