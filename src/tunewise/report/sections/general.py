"""General capability vs base (forgetting): the general suites, and when the run has them, the
forgetting monitor's curve and what its budgets did (forgetting.json) and the WiSE-FT sweep (wise_ft.json)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from markupsafe import Markup

from tunewise.report.formatting import format_value
from tunewise.report.plots import forgetting_curve
from tunewise.report.reader import mapping, number
from tunewise.report.rules import FORGETTING_BUDGET
from tunewise.report.sections._suites import delta_plot, suite_table
from tunewise.report.templating import Page, Section, render_template

__all__ = ["SECTION"]


def _monitor(page: Page, record: dict[str, Any]) -> dict[str, Any]:
    points = [p for p in record.get("points") or [] if isinstance(p, dict) and number(p.get("step")) is not None]
    base, budgets = mapping(record.get("base")), mapping(record.get("budgets"))
    names = [k for k in base if number(base.get(k)) is not None]
    fired = [f for f in record.get("fired") or [] if isinstance(f, dict)]
    rollback = mapping(record.get("rollback")) or None
    chart = None
    if points:
        scores: dict[str, Sequence[tuple[int, float]]] = {
            k: [
                (0, float(base[k])),
                *(
                    (int(p["step"]), float(p["scores"][k]))
                    for p in points
                    if number((p.get("scores") or {}).get(k)) is not None
                ),
            ]
            for k in names
        }
        kl = [(int(p["step"]), float(p["kl"])) for p in points if number(p.get("kl")) is not None]
        if kl and number(record.get("base_kl")) is not None:
            kl = [(0, float(record["base_kl"])), *kl]
        eval_loss = [(int(p["step"]), float(p["eval_loss"])) for p in points if number(p.get("eval_loss")) is not None]
        floors = {k: float(base[k]) - float(b) for k, b in budgets.items() if k in base and number(b) is not None}
        marker = None
        if rollback and rollback.get("restored"):
            marker = (int(rollback.get("step") or 0), f"rolled back to step {rollback.get('step')}")
        elif number(record.get("stopped_at")) is not None:
            marker = (int(record["stopped_at"]), f"stopped at step {record['stopped_at']}")
        breached = [int(f["step"]) for f in fired if number(f.get("step")) is not None]
        png = forgetting_curve(
            eval_loss,
            scores,
            kl,
            floors=floors,
            kl_budget=number(budgets.get("kl")),
            breach_steps=breached,
            marker=marker,
        )
        chart = page.plot(
            "forgetting_curve.png", png, "task eval loss, general scores and KL to base against the optimizer step"
        )
    first = fired[0] if fired else None
    stopped = record.get("action") == "stop" and number(record.get("stopped_at")) is not None
    return {
        "chart": chart,
        "base": [(k, format_value(base[k])) for k in names],
        "budgets": list(budgets.items()),
        "action": record.get("action", "warn"),
        "fired": len(fired),
        "first_step": first.get("step") if first else None,
        "breaches": [
            (b.get("key"), format_value(b.get("value")), b.get("budget"))
            for b in (first.get("breaches") or [] if first else [])
            if isinstance(b, dict)
        ],
        "stopped_at": record["stopped_at"] if stopped else None,
        "rollback": rollback,
    }


def _wise_ft(wise: dict[str, Any]) -> dict[str, Any]:
    points = [p for p in wise.get("points") or [] if isinstance(p, dict)]
    keys = list((points[0].get("scores") or {}) if points else [])
    has_kl = any(number(p.get("kl")) is not None for p in points)
    rows = []
    for p in points:
        chosen = p.get("alpha") == wise.get("chosen")
        cells = [
            format_value(p.get("alpha"), 2),
            format_value(p.get("eval_loss"), 4),
            *(
                f"{format_value((p.get('scores') or {}).get(k))} "
                f"({format_value((p.get('deltas') or {}).get(k), sign=True)})"
                for k in keys
            ),
            *([format_value(p.get("kl"), 4)] if has_kl else []),
            ("yes" if p.get("within_budget") else "no") + (" ← chosen" if chosen else ""),
        ]
        rows.append((chosen, cells))
    return {
        "head": ["α", "eval loss", *keys, *(["KL to base"] if has_kl else []), "within budget"],
        "rows": rows,
        "chosen": format_value(wise.get("chosen"), 2),
        "reason": wise.get("reason", ""),
    }


def _render(page: Page) -> Markup:
    run = page.run
    general = run.suites("general")
    # The monitor's curve is drawn before the suites' chart, as the page always did.
    monitor = _monitor(page, run.forgetting) if run.forgetting else None
    table = chart = None
    if general:
        table = suite_table(general)
        chart = delta_plot(page, "general_deltas.png", general, "general capability deltas with intervals")
    return render_template(
        "sections/general.html.j2",
        run=run,
        general=general,
        table=table,
        chart=chart,
        budget=f"{FORGETTING_BUDGET:g}",
        monitor=monitor,
        wise=_wise_ft(run.wise_ft) if run.wise_ft else None,
    )


SECTION = Section("general", "General capability vs base (forgetting)", "General capability", _render)
