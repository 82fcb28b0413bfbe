"""Task metrics vs base: the eval loss and perplexity, the task suites, and the tables only some runs
have (tunewise.tasks): a classifier against its baselines, each dataset of a mixture, and the stages
table of a sequential run."""

from __future__ import annotations

import json
from typing import Any

from markupsafe import Markup

from tunewise.report.formatting import format_count, format_value
from tunewise.report.reader import RunRecord, number
from tunewise.report.rules import TASK_LOSS_MIN_GAIN, judge
from tunewise.report.sections._suites import delta_plot, suite_table
from tunewise.report.templating import Page, Section, render_template
from tunewise.rundir import RunDir

__all__ = ["SECTION"]

_CLASSIFICATION_METRICS = ("accuracy", "f1_macro")


def _loss_table(summary: dict[str, Any]) -> dict[str, Any] | None:
    base, tuned = summary.get("base") or {}, summary.get("tuned") or {}
    if not (isinstance(base, dict) and isinstance(tuned, dict) and (base or tuned)):
        return None
    b_loss, t_loss = number(base.get("loss")), number(tuned.get("loss"))
    rel = t_loss / b_loss - 1 if b_loss and t_loss is not None else None
    judgement = "neutral" if rel is None or abs(rel) < TASK_LOSS_MIN_GAIN else "good" if rel < 0 else "bad"
    b_ppl, t_ppl = number(base.get("perplexity")), number(tuned.get("perplexity"))
    ppl_rel = t_ppl / b_ppl - 1 if b_ppl and t_ppl is not None else None
    rel_text = f" ({rel:+.1%})" if rel is not None else ""
    ppl_text = f" ({ppl_rel:+.1%})" if ppl_rel is not None else ""
    return {
        "base_loss": format_value(b_loss),
        "tuned_loss": format_value(t_loss),
        "loss_change": format_value(summary.get("delta_loss"), sign=True) + rel_text,
        "base_ppl": format_value(b_ppl, 2),
        "tuned_ppl": format_value(t_ppl, 2),
        "ppl_change": ppl_text.strip(" ()") or "—",
        "judgement": judgement,
        "rows": format_count(tuned.get("rows")),
        "tokens": format_count(tuned.get("tokens")),
        "min_gain": f"{TASK_LOSS_MIN_GAIN:.0%}",
    }


def _classification(summary: dict[str, Any]) -> dict[str, Any] | None:
    block = summary.get("classification")
    if not (isinstance(block, dict) and isinstance(block.get("variants"), dict)):
        return None
    deltas = block.get("tuned_vs") or {}
    rows = []
    for name, v in block["variants"].items():
        if not isinstance(v, dict):
            continue
        # Coloured from the fine-tune's side; a variant the fine-tune was not compared with shows "—".
        changes = (
            [
                (judge({"delta": deltas[name][m], "higher_is_better": True}), deltas[name][m])
                for m in _CLASSIFICATION_METRICS
            ]
            if isinstance(deltas.get(name), dict)
            else None
        )
        rows.append(
            {"label": v.get("label", name), "values": [v.get(m) for m in _CLASSIFICATION_METRICS], "changes": changes}
        )
    return {"rows": rows, "count": format_count(block.get("rows"))}


def _datasets(run: RunRecord, summary: dict[str, Any]) -> list[dict[str, Any]] | None:
    datasets = summary.get("datasets")
    if not (isinstance(datasets, list) and datasets):
        return None
    try:
        mixture = {m["name"]: m for m in json.loads(RunDir(run.dir).mixture.read_text(encoding="utf-8"))}
    except (OSError, ValueError, TypeError, KeyError):
        mixture = {}
    return [
        {
            "name": d.get("name", "?"),
            "probability": format_value((mixture.get(d.get("name")) or {}).get("probability")),
            "rows": format_count(d.get("rows")),
            "base": format_value((d.get("base") or {}).get("loss")),
            "tuned": format_value((d.get("tuned") or {}).get("loss")),
            "judgement": judge({"delta": d.get("delta"), "higher_is_better": False}),
            "delta": d.get("delta"),
        }
        for d in datasets
        if isinstance(d, dict)
    ]


def _stages(run: RunRecord) -> dict[str, Any] | None:
    try:  # a stage of a sequential run: its parent holds the stages table
        stages = json.loads(RunDir(run.dir.parent).stages_summary.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not (isinstance(stages, dict) and isinstance(stages.get("rows"), list)):
        return None
    this_row = f"after {run.dir.name.split('-', 1)[-1]}"  # stage directories are named <k>-<name>
    return {
        "names": [str(s.get("name", "?")) for s in stages.get("stages") or []],
        "rows": [
            {
                "model": r.get("model", "?"),
                "this": r.get("model") == this_row,
                "losses": [format_value(v, 4) for v in r.get("losses") or []],
            }
            for r in stages["rows"]
            if isinstance(r, dict)
        ],
    }


def _render(page: Page) -> Markup:
    run = page.run
    summary = run.eval_summary
    if summary is None:
        return render_template("sections/task.html.j2", run=run, evaluated=False)
    task = run.suites("task")
    table = chart = None
    if task:
        table = suite_table(task)
        chart = delta_plot(page, "task_deltas.png", task, "task suite deltas with intervals")
    return render_template(
        "sections/task.html.j2",
        run=run,
        evaluated=True,
        loss=_loss_table(summary),
        suites=table,
        chart=chart,
        classification=_classification(summary),
        datasets=_datasets(run, summary),
        stages=_stages(run),
    )


SECTION = Section("task", "Task metrics vs base", "Task", _render)
