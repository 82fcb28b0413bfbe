"""Verdict: the headline, then each gain, each fired pitfall with what to try next, the checks that
did not fire, and what the run did not measure."""

from __future__ import annotations

from markupsafe import Markup

from tunewise.report.rules import headline, verdict_items
from tunewise.report.templating import Page, Section, render_template

__all__ = ["SECTION"]

_TAGS = {"gain": "gained", "pitfall": "pitfall", "clean": "clean", "unmeasured": "not measured"}


def _render(page: Page) -> Markup:
    return render_template(
        "sections/verdict.html.j2", headline=headline(page.run), items=verdict_items(page.run), tags=_TAGS
    )


SECTION = Section("verdict", "Verdict", "Verdict", _render)
