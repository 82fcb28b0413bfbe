"""Sample generations: the same prompts answered by the base and the tuned model, with the reference."""

from __future__ import annotations

from markupsafe import Markup

from tunewise.report.templating import Page, Section, missing, render_template

__all__ = ["SECTION"]


def _render(page: Page) -> Markup:
    run = page.run
    if run.eval_summary is None:
        return missing("Sample generations", run.hint("eval"))
    samples = [g for g in run.eval_summary.get("generations") or [] if isinstance(g, dict)]
    if not samples:
        return missing("Sample generations", run.hint("generations"))
    return render_template("sections/generations.html.j2", samples=samples)


SECTION = Section("generations", "Sample generations: base vs tuned", "Generations", _render)
