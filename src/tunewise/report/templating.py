"""What every report page shares: one Jinja2 environment, the stylesheet, and the `Page` a section renders into.

Templates live in `report/templates/` (package data) and are rendered with autoescape on: every
value from the run directory, the user or the data is escaped by Jinja2, never by hand. Our own
sentences may set `commands` in backticks; the `prose` filter escapes them first, then marks the
backticked parts as code.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from importlib.resources import files
from typing import Any

from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape
from markupsafe import Markup, escape

from tunewise.report.formatting import (
    format_count,
    format_duration,
    format_megabytes,
    format_p_value,
    format_value,
)
from tunewise.report.reader import RunRecord, interval

__all__ = ["CSS", "Page", "Section", "escape", "kv_table", "missing", "plot_image", "prose", "render_template"]

CSS: str = (files("tunewise.report") / "templates" / "report.css").read_text(encoding="utf-8")
"""The stylesheet of the run report (inlined: the page opens offline); the search report reuses it."""

_CODE = re.compile(r"`([^`]+)`")


def prose(text: Any) -> Markup:
    """Escape one of our sentences and set its `commands` as code (after escaping, so still safe)."""
    return Markup(_CODE.sub(r"<code>\1</code>", str(escape(text))))


_ENV = Environment(
    loader=PackageLoader("tunewise.report", "templates"),
    autoescape=select_autoescape(enabled_extensions=("html", "html.j2"), default_for_string=True),
    undefined=StrictUndefined,  # a misspelt name in a template fails the test that renders it
    trim_blocks=True,
    lstrip_blocks=True,
)
_ENV.filters.update(
    prose=prose,
    value=format_value,
    count=format_count,
    p_value=format_p_value,
    duration=format_duration,
    megabytes=format_megabytes,
)
_ENV.globals.update(interval=interval)


def render_template(template: str, **context: Any) -> Markup:
    """Render one template of `report/templates/` (autoescaped) into markup for a page.

    Args:
        template: its path under `report/templates/`, e.g. `sections/cost.html.j2`.
        **context: the names the template reads.
    """
    return Markup(_ENV.get_template(template).render(**context))


def _macros() -> Any:
    return _ENV.get_template("_macros.html.j2").module


def missing(what: str, how: str) -> Markup:
    """A paragraph saying `what` was not measured in this run, and how to measure it."""
    return Markup(_macros().missing(what, how))


def kv_table(rows: Sequence[tuple[Any, Any]]) -> Markup:
    """A two-column table of (name, value) rows."""
    return Markup(_macros().kv(rows))


def plot_image(png: bytes, alt: str) -> Markup:
    """A chart embedded in the page as a base64 PNG (no external file: the page can be mailed)."""
    return render_template("plot.html.j2", alt=alt, data=base64.b64encode(png).decode("ascii"))


@dataclass
class Page:
    """The report being built: the run it shows, and the charts its sections drew so far.

    Attributes:
        run: the run directory's record.
        plots: file name (`learning_curves.png`, ...) → PNG bytes, written to `plots/` with the page.
    """

    run: RunRecord
    plots: dict[str, bytes] = field(default_factory=dict)

    def plot(self, name: str, png: bytes, alt: str) -> Markup:
        """Keep a chart for `plots/name` and return it as an image for the page."""
        self.plots[name] = png
        return plot_image(png, alt)


@dataclass(frozen=True)
class Section:
    """One section of the report.

    Attributes:
        id: its HTML id (the link target of the navigation bar).
        heading: its `<h2>`.
        nav: its link text in the navigation bar.
        render: draws the section's body for a page.
    """

    id: str
    heading: str
    nav: str
    render: Callable[[Page], Markup]
