"""The results of a search: printed tables, best config(s), `tune_summary.json`, plots, report.html.

Everything here is read back from the study (the storage is the record), so running it again — or
another worker finishing — rebuilds the same files. The HTML page is self-contained in the style of
the run report card: its templates `report/templates/search/*.html.j2` are rendered through
`tunewise.report.templating` (its stylesheet and helpers, autoescape on, charts embedded as base64
PNG), and it links each trial's own `report.html`.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import yaml
from markupsafe import Markup
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator
from rich.table import Table

from tunewise.console import make_console
from tunewise.report.formatting import format_duration
from tunewise.report.plots import COLORS, style_axes, to_png
from tunewise.report.templating import kv_table, plot_image, render_template
from tunewise.rundir import RunDir, is_writer, write_bytes, write_json, write_text
from tunewise.tune.objectives import directions
from tunewise.tune.study import (
    BEST_FILE,
    PARETO_DIR,
    PLOTS_DIR,
    REPORT_FILE,
    SUMMARY_FILE,
    Search,
    import_optuna,
    open_study,
    pruner_name,
)

if TYPE_CHECKING:
    import optuna

__all__ = ["history_plot", "intermediate_plot", "pareto_plot", "render", "summarize", "write_results"]

console = make_console()


# --------------------------------------------------------------------------- reading the study


def _trial_params(t: optuna.trial.FrozenTrial) -> dict[str, Any]:
    # Decoded values as the config takes them (a list choice is stored as JSON text in Optuna).
    return dict(t.user_attrs.get("params") or t.params)


def _objective(t: optuna.trial.FrozenTrial, index: int) -> float:
    return float(t.values[index])


def _importances(study: optuna.Study, metrics: Sequence[str]) -> dict[str, Any]:
    """fANOVA importance of each parameter per objective, or why it could not be computed."""
    optuna = import_optuna()
    from optuna.importance import FanovaImportanceEvaluator, get_param_importances

    out: dict[str, Any] = {}
    complete = list(study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,)))
    for i, metric in enumerate(metrics):
        if len(complete) < 2:
            out[metric] = f"needs at least 2 completed trials ({len(complete)} so far)"
            continue
        try:
            found = get_param_importances(
                study,
                evaluator=FanovaImportanceEvaluator(seed=0),
                target=partial(_objective, index=i) if len(metrics) > 1 else None,
            )
            out[metric] = {name: float(value) for name, value in found.items()}
        except (RuntimeError, ValueError) as err:  # e.g. every trial drew the same values
            out[metric] = f"not computed: {err}"
    return out


def summarize(study: optuna.Study, config: Any, search: Search) -> dict[str, Any]:
    """The search as plain data (`tune_summary.json`)."""
    tune = config.tune
    metrics = [o.metric for o in tune.objectives]
    trials: list[dict[str, Any]] = []
    for t in study.get_trials(deepcopy=False):
        duration = t.duration.total_seconds() if t.duration is not None else None
        trials.append(
            {
                "number": t.number,
                "state": t.state.name,
                "values": list(t.values) if t.values is not None else None,
                "params": _trial_params(t),
                "duration_s": duration,
                "run_dir": t.user_attrs.get("run_dir"),
                "pruned_at": t.user_attrs.get("pruned_at"),
                "error": t.user_attrs.get("error"),
                "interrupted": bool(t.user_attrs.get("interrupted")),
                "retry_of": t.user_attrs.get("retry_of"),
                "worker": t.user_attrs.get("worker"),
                "metrics": t.user_attrs.get("metrics"),
                "intermediate": {str(step): value for step, value in sorted(t.intermediate_values.items())},
            }
        )
    complete = [row for row in trials if row["state"] == "COMPLETE"]
    best = [t.number for t in study.best_trials] if complete else []
    if len(metrics) > 1:  # the front, ordered along the first objective
        sign = 1 if directions(tune.objectives)[0] == "minimize" else -1
        values = {row["number"]: row["values"] for row in trials}
        best.sort(key=lambda n: sign * values[n][0])
    counts: dict[str, int] = {}
    for row in trials:
        counts[row["state"]] = counts.get(row["state"], 0) + 1
    return {
        "study": search.study_name,
        "storage": search.storage,
        "objectives": metrics,
        "directions": directions(tune.objectives),
        "sampler": tune.sampler,
        "pruner": pruner_name(tune),
        "prune_metric": tune.prune_metric,
        "prune_mode": tune.prune_mode,
        "space": {k: v.model_dump(mode="json") for k, v in tune.space.items()},
        "counts": counts,
        "best": best,
        "trials": trials,
        "importances": _importances(study, metrics) if complete else {},
    }


# --------------------------------------------------------------------------- plots


def _label(metric: str, direction: str) -> str:
    return f"{metric} ({'lower' if direction == 'minimize' else 'higher'} is better)"


def pareto_plot(
    points: Sequence[tuple[int, float, float]], front: Sequence[int], metrics: Sequence[str], dirs: Sequence[str]
) -> bytes:
    """Every completed trial as a point in the plane of the two objectives, the Pareto front joined.

    Args:
        points: (trial number, first objective, second objective).
        front: the numbers of the trials on the front.
    """
    fig = Figure(figsize=(10, 5.6))
    ax = fig.add_subplot()
    style_axes(ax)
    others = [p for p in points if p[0] not in front]
    best = sorted((p for p in points if p[0] in front), key=lambda p: p[1])
    if others:
        ax.scatter(
            [p[1] for p in others],
            [p[2] for p in others],
            s=46,
            color=COLORS["neutral"],
            label="dominated trial",
            zorder=2,
        )
    if best:
        # Steps between front points: the region the front dominates, as a staircase.
        where: Literal["pre", "post"] = "post" if (dirs[0] == "minimize") == (dirs[1] == "minimize") else "pre"
        ax.step(
            [p[1] for p in best],
            [p[2] for p in best],
            where=where,
            color=COLORS["good"],
            linewidth=1.6,
            alpha=0.8,
            zorder=2,
        )
        ax.scatter(
            [p[1] for p in best], [p[2] for p in best], s=70, color=COLORS["good"], label="Pareto front", zorder=3
        )
    # Trials close together get their numbers stacked, not printed over each other.
    xs, ys = [p[1] for p in points], [p[2] for p in points]
    width, height = (max(xs) - min(xs)) or 1.0, (max(ys) - min(ys)) or 1.0
    placed: list[tuple[float, float]] = []
    for number, x, y in sorted(points, key=lambda p: (p[1], p[2])):
        near = sum(1 for px, py in placed if abs(px - x) / width < 0.04 and abs(py - y) / height < 0.04)
        placed.append((x, y))
        ax.annotate(
            str(number), (x, y), xytext=(5, 4 + 10 * near), textcoords="offset points", fontsize=8, color="#24292f"
        )
    ax.margins(0.08)
    ax.set_xlabel(_label(metrics[0], dirs[0]), fontsize=10)
    ax.set_ylabel(_label(metrics[1], dirs[1]), fontsize=10)
    corner = f"{'lower' if dirs[1] == 'minimize' else 'upper'} {'left' if dirs[0] == 'minimize' else 'right'}"
    if ax.has_data():
        ax.legend(fontsize=9, frameon=True, framealpha=0.9, edgecolor="#d0d7de", loc="best")
    ax.set_title(f"completed trials by objective (numbers: trial numbers); better is towards the {corner}", fontsize=10)
    return to_png(fig)


def history_plot(points: Sequence[tuple[int, float]], metric: str, direction: str) -> bytes:
    """The objective of each completed trial by trial number, and the best so far."""
    fig = Figure(figsize=(10, 4.2))
    ax = fig.add_subplot()
    style_axes(ax)
    xs, ys = [p[0] for p in points], [p[1] for p in points]
    ax.scatter(xs, ys, s=40, color=COLORS["train"], label="completed trial", zorder=3)
    running, best = [], math.inf if direction == "minimize" else -math.inf
    for y in ys:
        best = min(best, y) if direction == "minimize" else max(best, y)
        running.append(best)
    if xs:
        ax.step(xs, running, where="post", color=COLORS["good"], linewidth=2, label="best so far")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("trial", fontsize=10)
    ax.set_ylabel(_label(metric, direction), fontsize=10)
    if ax.has_data():
        ax.legend(fontsize=9, frameon=False)
    return to_png(fig)


def intermediate_plot(curves: Sequence[tuple[int, str, Sequence[tuple[int, float]]]], metric: str) -> bytes:
    """The evals each trial reported during training; pruned trials in red, ending where they stopped.

    Args:
        curves: (trial number, state, [(step, value)]).
    """
    fig = Figure(figsize=(10, 4.2))
    ax = fig.add_subplot()
    style_axes(ax)
    labelled: set[str] = set()
    for number, state, points in curves:
        if not points:
            continue
        colour = COLORS["bad"] if state == "PRUNED" else COLORS["train"] if state == "COMPLETE" else COLORS["neutral"]
        label = {"PRUNED": "pruned", "COMPLETE": "completed"}.get(state, state.lower())
        ax.plot(
            [p[0] for p in points],
            [p[1] for p in points],
            color=colour,
            marker="o",
            markersize=3,
            linewidth=1.4,
            label=None if label in labelled else label,
        )
        labelled.add(label)
        ax.annotate(str(number), points[-1], xytext=(4, 0), textcoords="offset points", fontsize=8, color=colour)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("optimizer step", fontsize=10)
    ax.set_ylabel(f"{metric} during training", fontsize=10)
    if ax.has_data():
        ax.legend(fontsize=9, frameon=False)
    return to_png(fig)


# --------------------------------------------------------------------------- files and printing


def _write_best(config: Any, summary: dict[str, Any], directory: Path) -> list[str]:
    """best.yaml (and pareto/trial-<n>.yaml with two objectives): configs ready for `tunewise train`."""
    from tunewise.tune.space import apply_params

    written: list[str] = []
    trials = {t["number"]: t for t in summary["trials"]}
    metrics = summary["objectives"]
    pareto = directory / PARETO_DIR
    if pareto.is_dir() and is_writer():
        for old in pareto.glob("trial-*.yaml"):
            old.unlink()
    for rank, number in enumerate(summary["best"]):
        trial = trials[number]
        best = apply_params(config, trial["params"])
        best = best.model_copy(update={"output": best.output.model_copy(update={"name": None})})
        scores = ", ".join(f"{m} {v:.4g}" for m, v in zip(metrics, trial["values"]))
        text = (
            f"# {'best' if len(metrics) == 1 else 'Pareto-front'} trial {number} of the search "
            f"{summary['study']}: {scores}\n# train it: tunewise train THIS_FILE (or tunewise run)\n"
            + yaml.safe_dump(best.model_dump(mode="json"), sort_keys=False)
        )
        if len(metrics) > 1:
            path = write_text(pareto / f"trial-{number:04d}.yaml", text)
            written.append(str(path.relative_to(directory)))
        if rank == 0:
            write_text(directory / BEST_FILE, text)
            written.insert(0, BEST_FILE)
    return written


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return "—" if value is None else str(value)


def _print(summary: dict[str, Any], directory: Path) -> None:
    metrics = summary["objectives"]
    params = list(summary["space"])
    table = Table(title=f"trials of {summary['study']}")
    for column in ("trial", "state", *metrics, *params, "time"):
        table.add_column(column, justify="left" if column in ("state",) else "right")
    for t in summary["trials"]:
        # A pruned trial's value in Optuna is its last report to the pruner, not the objective: not shown.
        values = t["values"] if t["state"] == "COMPLETE" else [None] * len(metrics)
        state = t["state"].lower() + (f" @{t['pruned_at']}" if t["pruned_at"] is not None else "")
        table.add_row(
            str(t["number"]),
            state,
            *(_fmt(v) for v in values),
            *(_fmt(t["params"].get(p)) for p in params),
            format_duration(t["duration_s"]),
        )
    console.print(table)
    for t in summary["trials"]:
        if t["state"] == "FAIL" and t["error"]:
            console.print(f"[red]trial {t['number']} failed:[/] {t['error']}", highlight=False)
    trials = {t["number"]: t for t in summary["trials"]}
    if not summary["best"]:
        console.print("no trial completed yet: no best config")
        return
    if len(metrics) == 1:
        best = trials[summary["best"][0]]
        console.print(
            f"best trial {best['number']}: {metrics[0]} {best['values'][0]:.4f} with "
            + ", ".join(f"{k}={_fmt(v)}" for k, v in best["params"].items()),
            highlight=False,
        )
    else:
        front = Table(title="Pareto front (no trial is better on both objectives)")
        for column in ("trial", *(f"{m} ({d[:3]})" for m, d in zip(metrics, summary["directions"])), *params):
            front.add_column(column, justify="right")
        for number in summary["best"]:
            t = trials[number]
            front.add_row(str(number), *(f"{v:.4f}" for v in t["values"]), *(_fmt(t["params"].get(p)) for p in params))
        console.print(front)
    for metric, found in summary["importances"].items():
        if isinstance(found, dict):
            console.print(
                f"parameter importance for {metric} (fANOVA): " + ", ".join(f"{k} {v:.2f}" for k, v in found.items()),
                highlight=False,
            )
        else:
            console.print(f"parameter importance for {metric}: {found}", highlight=False)


def write_results(search: Search) -> Path:
    """Read the study, print the trials and the best, write every result file; return the directory."""
    directory = Path(search.dir)
    config = search.typed
    study = open_study(search)
    summary = summarize(study, config, search)
    summary["best_configs"] = _write_best(config, summary, directory)
    pngs = _plots(summary)
    plot_dir = directory / PLOTS_DIR
    if is_writer():
        plot_dir.mkdir(exist_ok=True)
        for name in ("pareto.png", "history.png", "intermediate.png"):
            if name not in pngs:
                (plot_dir / name).unlink(missing_ok=True)
    for name, png in pngs.items():
        write_bytes(plot_dir / name, png)
    write_json(directory / SUMMARY_FILE, summary)
    write_bytes(directory / REPORT_FILE, render(summary, pngs, directory).encode("utf-8"))
    _print(summary, directory)
    for path in summary["best_configs"][:1]:
        console.print(
            f"best config: {directory / path} — train it with: tunewise train {directory / path}", highlight=False
        )
    console.print(f"search report: {directory / REPORT_FILE}")
    return directory


def _plots(summary: dict[str, Any]) -> dict[str, bytes]:
    metrics, dirs = summary["objectives"], summary["directions"]
    complete = [t for t in summary["trials"] if t["state"] == "COMPLETE"]
    pngs: dict[str, bytes] = {}
    if complete and len(metrics) == 2:
        pngs["pareto.png"] = pareto_plot(
            [(t["number"], *t["values"]) for t in complete], summary["best"], metrics, dirs
        )
    elif complete:
        pngs["history.png"] = history_plot([(t["number"], t["values"][0]) for t in complete], metrics[0], dirs[0])
    # Intermediate values as the pruner saw them, turned back to the metric's own sign.
    sign = -1.0 if dirs and (summary.get("prune_mode", "min") == "min") != (dirs[0] == "minimize") else 1.0
    curves = [
        (t["number"], t["state"], [(int(s), sign * v) for s, v in t["intermediate"].items()])
        for t in summary["trials"]
        if t["intermediate"]
    ]
    if curves:
        pngs["intermediate.png"] = intermediate_plot(curves, summary["prune_metric"])
    return pngs


# --------------------------------------------------------------------------- HTML


@dataclass(frozen=True)
class _TrialRow:
    """One row of the trials table, its cells already formatted (the template escapes them)."""

    number: int
    best: bool
    css: str  # the state cell's colour: the best trial(s), a failure, a pruned trial
    state: str
    error: str | None
    cells: list[str]  # objectives, parameters, time
    run: str | None
    linked: bool  # the trial's run directory has a report card to link to


def _trial_rows(summary: dict[str, Any], directory: Path) -> list[_TrialRow]:
    metrics, params = summary["objectives"], list(summary["space"])
    best = set(summary["best"])
    rows = []
    for t in summary["trials"]:
        values = t["values"] if t["state"] == "COMPLETE" else [None] * len(metrics)
        state = t["state"].lower()
        if t["pruned_at"] is not None:
            state += f" at step {t['pruned_at']}"
        css = (
            "good"
            if t["number"] in best
            else "bad"
            if t["state"] == "FAIL"
            else "neutral"
            if t["state"] == "PRUNED"
            else ""
        )
        run = t["run_dir"]
        cells = [_fmt(v) for v in values] + [_fmt(t["params"].get(p)) for p in params]
        rows.append(
            _TrialRow(
                number=t["number"],
                best=t["number"] in best,
                css=css,
                state=state,
                error=t["error"],
                cells=[*cells, format_duration(t["duration_s"])],
                run=run,
                linked=bool(run) and RunDir(directory / run).report.is_file(),
            )
        )
    return rows


def _best_html(summary: dict[str, Any], pngs: dict[str, bytes]) -> Markup:
    metrics = summary["objectives"]
    trials = {t["number"]: t for t in summary["trials"]}
    best = []
    for number in summary["best"]:
        t = trials[number]
        best.append(
            (
                number,
                ", ".join(f"{m} {v:.4f}" for m, v in zip(metrics, t["values"])),
                ", ".join(f"{k}={_fmt(v)}" for k, v in t["params"].items()),
            )
        )
    return render_template(
        "search/best.html.j2",
        best=best,
        files=summary["best_configs"] if summary["best"] else [],
        pareto=plot_image(pngs["pareto.png"], "Pareto front") if "pareto.png" in pngs else None,
        history=plot_image(pngs["history.png"], "objective by trial") if "history.png" in pngs else None,
    )


def render(summary: dict[str, Any], pngs: dict[str, bytes], directory: Path) -> str:
    """The search report as one self-contained HTML page.

    Args:
        summary: the search as `summarize` gives it, with `best_configs` (the files `best.yaml` and
            `pareto/*.yaml` written for the best trials).
        pngs: the charts by file name (`pareto.png`, `history.png`, `intermediate.png`), embedded in the page.
        directory: the search directory; a trial whose run directory there has a `report.html` is linked.
    """
    from tunewise import __version__

    metrics = summary["objectives"]
    counts = ", ".join(f"{n} {state.lower()}" for state, n in sorted(summary["counts"].items())) or "none"
    space = "; ".join(f"{k}: {json.dumps(v)}" for k, v in summary["space"].items())
    facts = [
        ("study", f"{summary['study']} ({summary['storage']})"),
        ("objectives", ", ".join(f"{m} ({d})" for m, d in zip(metrics, summary["directions"]))),
        (
            "sampler / pruner",
            f"{summary['sampler']} / {summary['pruner']}"
            + (f" on {summary['prune_metric']}" if summary["pruner"] != "none" else ""),
        ),
        ("search space", space),
        ("trials", f"{len(summary['trials'])}: {counts}"),
    ]
    columns = ["trial", "state", *metrics, *summary["space"], "time", "run"]
    sections: list[tuple[str, str, Markup]] = [
        ("summary", "Search summary", kv_table(facts)),
        (
            "best",
            "Best trial" if len(metrics) == 1 or not summary["best"] else "Pareto front",
            _best_html(summary, pngs),
        ),
        (
            "trials",
            "Trials",
            render_template("search/trials.html.j2", columns=columns, trials=_trial_rows(summary, directory)),
        ),
        (
            "importance",
            "Parameter importance",
            render_template("search/importance.html.j2", importances=summary["importances"]),
        ),
    ]
    if "intermediate.png" in pngs:
        sections.append(
            (
                "pruning",
                "Evals during training (what the pruner judged)",
                plot_image(pngs["intermediate.png"], "intermediate eval values"),
            )
        )
    page = render_template(
        "search/page.html.j2",
        study=summary["study"],
        trials=len(summary["trials"]),
        sections=sections,
        version=__version__,
        directory=directory,
    )
    return str(page) + "\n"
