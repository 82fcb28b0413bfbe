"""The run report page: `build_report(run_dir)` writes `report.html` and the charts in `plots/`.

The page is the sections of `SECTIONS`, in order, each drawn by its module in `report/sections/`.
A new section is a new module there (a `SECTION` with its template) plus one line in `SECTIONS`.
"""

from __future__ import annotations

from pathlib import Path

from markupsafe import Markup

from tunewise.report.reader import RunRecord, load_run
from tunewise.report.sections import (
    baselines,
    cost,
    curves,
    general,
    generations,
    safety,
    summary,
    task,
    verdict,
)
from tunewise.report.templating import Page, Section, render_template
from tunewise.rundir import RunDir, is_writer, write_bytes

__all__ = ["PLOT_NAMES", "SECTIONS", "build_report", "render_page"]

SECTIONS: list[Section] = [
    verdict.SECTION,
    summary.SECTION,
    curves.SECTION,
    task.SECTION,
    baselines.SECTION,
    general.SECTION,
    safety.SECTION,
    generations.SECTION,
    cost.SECTION,
]
"""The report's sections in page order (and navigation-bar order)."""

PLOT_NAMES = (
    "learning_curves.png",
    "task_deltas.png",
    "baselines.png",
    "general_deltas.png",
    "safety_bias_deltas.png",
    "forgetting_curve.png",
)
"""Every chart a section may draw into `plots/`; a rebuild removes those that no longer apply."""


def _body(section: Section, page: Page) -> Markup:
    try:
        return section.render(page)
    except Exception as e:
        return render_template("section_error.html.j2", error=f"{type(e).__name__}: {e}")


def render_page(run: RunRecord) -> tuple[str, dict[str, bytes]]:
    """The report of one run as an HTML document, and the charts it embeds (file name → PNG bytes)."""
    from tunewise import __version__

    page = Page(run)
    bodies = [(section, _body(section, page)) for section in SECTIONS]
    doc = render_template(
        "page.html.j2",
        run=run,
        sections=SECTIONS,
        bodies=bodies,
        version=__version__,
        model=run.section("model").get("name", "?"),
        method=run.section("method").get("type", "?"),
    )
    return str(doc) + "\n", page.plots


def build_report(run_dir: str | Path) -> Path:
    """Write `report.html` and `plots/*.png` for a run directory; safe to run again (it rebuilds).

    Args:
        run_dir: a directory written by `tunewise train` or `tunewise run`. Only `config.yaml` is
            required; each missing measurement is said so in its section.

    Returns:
        The path of `report.html`.

    Raises:
        TunewiseError: `run_dir` does not exist or is not a run directory (no `config.yaml`).
    """
    run = load_run(run_dir)
    doc, pngs = render_page(run)
    files = RunDir(run.dir)
    if is_writer():
        files.plots.mkdir(exist_ok=True)
        for name in PLOT_NAMES:
            if name not in pngs:
                (files.plots / name).unlink(missing_ok=True)  # a plot from an earlier build that no longer applies
    for name, png in pngs.items():
        write_bytes(files.plots / name, png)
    # Bytes, not text: the page is written exactly as rendered, whatever the platform's newline.
    return write_bytes(files.report, doc.encode("utf-8"))
