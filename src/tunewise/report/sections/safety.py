"""Safety and bias vs base: the safety suites (refusals), the bias suites (judged by the distance
from no preference), and their deltas in one chart."""

from __future__ import annotations

from markupsafe import Markup

from tunewise.report.rules import BIAS_IDEAL
from tunewise.report.sections._suites import delta_plot, suite_table
from tunewise.report.templating import Page, Section, render_template

__all__ = ["SECTION"]


def _render(page: Page) -> Markup:
    run = page.run
    safety, bias = run.suites("safety"), run.suites("bias")
    both = [*(safety or []), *(bias or [])]
    chart = delta_plot(page, "safety_bias_deltas.png", both, "safety and bias deltas with intervals") if both else None
    return render_template(
        "sections/safety.html.j2",
        run=run,
        safety=suite_table(safety) if safety else None,
        bias=suite_table(bias) if bias else None,
        ideal=f"{BIAS_IDEAL:g}",
        chart=chart,
    )


SECTION = Section("safety", "Safety and bias vs base", "Safety and bias", _render)
