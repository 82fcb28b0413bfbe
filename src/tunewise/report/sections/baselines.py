"""Was fine-tuning worth it? The fine-tune against the base model with training examples in its
prompt (few-shot, retrieval), on the eval rows and on each task suite."""

from __future__ import annotations

from typing import Any

from markupsafe import Markup

from tunewise.report.formatting import format_count, format_p_value, format_value
from tunewise.report.plots import DeltaBar, value_chart
from tunewise.report.reader import interval, number
from tunewise.report.rules import ALTERNATIVES, alternative_label, judge, worth_it
from tunewise.report.templating import Page, Section, missing, render_template

__all__ = ["SECTION"]

_VARIANTS = ("base", *ALTERNATIVES, "tuned")


def _variant_table(
    measure: str,
    variants: dict[str, Any],
    tuned_vs: dict[str, Any],
    *,
    higher_is_better: bool,
    value_key: str | None,
    perplexity: bool,
) -> dict[str, Any]:
    """One row per variant: its value with interval, and tuned − it with interval and p-value."""
    rows = []
    for name in _VARIANTS:
        part = variants.get(name)
        if not isinstance(part, dict):
            continue
        delta = tuned_vs.get(name) if name != "tuned" else None
        judgement = "neutral"
        if isinstance(delta, dict):
            # Coloured from the fine-tune's side: green when it is better than this row.
            judgement = {"good": "good", "bad": "bad"}.get(
                judge({"delta": delta, "higher_is_better": higher_is_better}), "neutral"
            )
        examples = number(part.get("examples"))
        rows.append(
            {
                "label": part.get("label", name),
                "value": part.get(value_key) if value_key else part,
                "perplexity": format_value(part.get("perplexity"), 2),
                "examples": "—" if not examples else f"{examples:.1f}",
                "judgement": judgement,
                "delta": delta if isinstance(delta, dict) else None,
                "p": format_p_value(delta.get("p_value")) if isinstance(delta, dict) else "—",
            }
        )
    head = [
        "model and prompt",
        measure,
        *(["perplexity"] if perplexity else []),
        "examples in prompt",
        "Δ tuned − this",
        "p",
    ]
    return {"head": head, "rows": rows, "perplexity": perplexity}


def _samples(summary: dict[str, Any], samples: Any) -> list[dict[str, Any]]:
    """Sample answers of the alternatives next to the reference and (when generated) the fine-tune's."""
    tuned = {g.get("prompt"): g.get("tuned") for g in summary.get("generations") or [] if isinstance(g, dict)}
    block = summary.get("baselines") or {}
    out = []
    for s in (s for s in samples or [] if isinstance(s, dict)):
        columns = [("reference", s.get("reference"))]
        columns += [
            (alternative_label(summary, v), s.get(v)) for v in ALTERNATIVES if v in s and isinstance(block.get(v), dict)
        ]
        if s.get("prompt") in tuned:
            columns.append(("fine-tuned", tuned[s.get("prompt")]))
        out.append({"prompt": s.get("prompt", ""), "columns": columns})
    return out


def _eval_rows(page: Page, summary: dict[str, Any], rows: dict[str, Any]) -> dict[str, Any]:
    variants, tuned_vs = rows["variants"], rows.get("tuned_vs") or {}
    bars = []
    for name in _VARIANTS:
        part = variants.get(name)
        value, low, high = interval(part.get("loss") if isinstance(part, dict) else None)
        if value is None:
            continue
        bars.append(
            DeltaBar(
                label=str(part.get("label", name)),
                value=value,
                low=low,
                high=high,
                judgement="good" if name == "tuned" else "neutral",
            )
        )
    chart = None
    if bars:
        chart = page.plot(
            "baselines.png",
            value_chart(bars, xlabel="eval loss (lower is better)"),
            "eval loss of the base model, the cheaper alternatives and the fine-tune",
        )
    return {
        "table": _variant_table(
            "eval loss", variants, tuned_vs, higher_is_better=False, value_key="loss", perplexity=True
        ),
        "tokens": format_count(rows.get("tokens")),
        "rows": format_count(rows.get("rows")),
        "chart": chart,
        "samples": _samples(summary, rows.get("samples")),
    }


def _render(page: Page) -> Markup:
    run = page.run
    summary = run.eval_summary
    block = (summary or {}).get("baselines")
    if summary is None or not isinstance(block, dict):
        return missing("Comparison with cheaper alternatives to fine-tuning", run.hint("baselines"))
    rows = block.get("eval_rows")
    eval_rows = None
    if isinstance(rows, dict) and isinstance(rows.get("variants"), dict):
        eval_rows = _eval_rows(page, summary, rows)
    suites = [
        {
            "name": suite.get("name", "?"),
            "metric": suite.get("metric", "?"),
            "n": format_count(suite.get("n")),
            "table": _variant_table(
                str(suite.get("metric", "value")),
                suite["variants"],
                suite.get("tuned_vs") or {},
                higher_is_better=suite.get("higher_is_better") is not False,
                value_key=None,
                perplexity=False,
            ),
        }
        for suite in block.get("suites") or []
        if isinstance(suite, dict) and isinstance(suite.get("variants"), dict)
    ]
    return render_template(
        "sections/baselines.html.j2",
        judged=worth_it(summary) or [],
        eval_rows=eval_rows,
        suites=suites,
        notes=[str(n) for n in block.get("notes") or []],
    )


SECTION = Section("baselines", "Was fine-tuning worth it?", "Worth it?", _render)
