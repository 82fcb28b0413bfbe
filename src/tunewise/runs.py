"""`tunewise runs`: every run in a runs folder with its headline numbers, newest first.

Everything is read from the run directories' own files (through `report.load_run`, with the
report card's verdict rules), so the listing works with tracking switched off and always agrees
with each run's `report.html`.
"""

from __future__ import annotations

import re
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from rich import box
from rich.console import Console
from rich.table import Table

from tunewise.errors import TunewiseError
from tunewise.report import PITFALLS, RunRecord, judge, load_run
from tunewise.rundir import RunDir
from tunewise.tracking import TRACKER_FOLDERS, mlflow_run_id

__all__ = ["RunRow", "SuiteChange", "find_runs", "print_runs", "runs_folder"]

_STAMP = re.compile(r"-(\d{8}-\d{6})(?:-\d+)?$")
_SHOWN_ROLES = ("task", "general")


@dataclass
class SuiteChange:
    """One suite's tuned-minus-base change.

    Attributes:
        judgement: `good`/`bad` when the interval excludes 0, else `neutral` (see `report.judge`).
    """

    name: str
    role: str
    metric: str
    delta: float | None
    low: float | None
    high: float | None
    judgement: str


@dataclass
class RunRow:
    """What `tunewise runs` shows of one run directory (`--json` prints these fields).

    Attributes:
        started: `YYYY-MM-DD HH:MM:SS`, from the directory name's timestamp, else when
            `config.yaml` was written.
        status: `training` (no train summary yet), `interrupted`, `finished` (trained, not
            evaluated) or `evaluated`.
        steps: optimizer steps done (from the metrics log while training).
        eval_loss_base / eval_loss_tuned: loss on the eval rows, from `eval_summary.json`.
        suites: the task and general suites' changes.
        pitfalls: the verdict rules that fired (the report card's names).
        report: the path of `report.html`, when written.
        mlflow_run_id: from `tracking.json`, when the run is tracked in MLflow.
    """

    name: str
    path: str
    started: str | None
    status: str
    model: str | None
    method: str | None
    steps: int | None
    eval_loss_base: float | None
    eval_loss_tuned: float | None
    tokens_per_s: float | None
    suites: list[SuiteChange] = field(default_factory=list)
    pitfalls: list[str] = field(default_factory=list)
    report: str | None = None
    mlflow_run_id: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def runs_folder(target: str | Path | None) -> Path:
    """The folder to list: `target` itself, or the `output.dir` of a config file.

    Raises:
        TunewiseError: `target` does not exist, or is a file that is not a YAML config.
    """
    from tunewise.config import load_config

    path = Path(target) if target is not None else Path("runs")
    if path.is_file():
        if path.suffix.lower() not in (".yaml", ".yml"):
            raise TunewiseError(
                f"{path} is a file, not a folder of runs; pass a runs folder (default runs/) "
                f"or a config file (its output.dir is listed)"
            )
        path = Path(load_config(path).output.dir)
        if not path.is_dir():
            raise TunewiseError(
                f"{path} (output.dir of {target}) does not exist yet: no run of this config "
                f"has started; start one with `tunewise train {target}`"
            )
        return path
    if not path.is_dir():
        raise TunewiseError(
            f"{path}: no such folder; pass the folder holding run directories (output.dir, "
            f"default runs/) or a config file"
        )
    return path


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value)


def _started(run_dir: Path) -> float:
    match = _STAMP.search(run_dir.name)
    if match:
        try:
            return time.mktime(time.strptime(match.group(1), "%Y%m%d-%H%M%S"))
        except ValueError:
            pass
    return RunDir(run_dir).config.stat().st_mtime


def _status(run: RunRecord) -> str:
    if run.train_summary is None:
        return "training"
    if run.train_summary.get("interrupted"):
        return "interrupted"
    return "evaluated" if run.eval_summary is not None else "finished"


def _steps(run: RunRecord) -> int | None:
    steps = (run.train_summary or {}).get("steps")
    if isinstance(steps, int):
        return steps
    logged = [r["step"] for r in run.metrics or [] if isinstance(r.get("step"), int)]
    return max(logged, default=None)


def _loss(run: RunRecord, side: str) -> float | None:
    part = (run.eval_summary or {}).get(side)
    return _number(part.get("loss")) if isinstance(part, dict) else None


def _suites(run: RunRecord) -> list[SuiteChange]:
    changes = []
    for role in _SHOWN_ROLES:
        for suite in run.suites(role) or []:
            delta: dict[str, Any] = suite["delta"] if isinstance(suite.get("delta"), dict) else {}
            changes.append(
                SuiteChange(
                    name=str(suite.get("name", "?")),
                    role=role,
                    metric=str(suite.get("metric", "?")),
                    delta=_number(delta.get("value")),
                    low=_number(delta.get("low")),
                    high=_number(delta.get("high")),
                    judgement=judge(suite),
                )
            )
    return changes


def _row(run: RunRecord, started: float) -> RunRow:
    model: dict[str, Any] = run.config["model"] if isinstance(run.config.get("model"), dict) else {}
    method: dict[str, Any] = run.config["method"] if isinstance(run.config.get("method"), dict) else {}
    report = RunDir(run.dir).report
    return RunRow(
        name=run.dir.name,
        path=str(run.dir),
        started=time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(started)),
        status=_status(run),
        model=model.get("name"),
        method=method.get("type"),
        steps=_steps(run),
        eval_loss_base=_loss(run, "base"),
        eval_loss_tuned=_loss(run, "tuned"),
        tokens_per_s=_number((run.train_summary or {}).get("tokens_per_s")),
        suites=_suites(run),
        pitfalls=[rule.name for rule in PITFALLS if rule.check(run)],
        report=str(report) if report.is_file() else None,
        mlflow_run_id=mlflow_run_id(run.dir),
    )


def find_runs(folder: str | Path) -> tuple[list[RunRow], list[tuple[str, str]]]:
    """Read every run directory in `folder`, newest first.

    `folder` may also be a single run directory. Sub-folders that are not runs (no
    `config.yaml`) are skipped, each with the reason; the trackers' own folders (`mlartifacts/`)
    and hidden ones silently.

    Returns:
        The runs, and (path, reason) for each folder skipped.
    """
    folder = Path(folder)
    candidates = (
        [folder]
        if RunDir(folder).is_run()
        else sorted(
            p for p in folder.iterdir() if p.is_dir() and p.name not in TRACKER_FOLDERS and not p.name.startswith(".")
        )
    )
    found: list[tuple[float, RunRow]] = []
    skipped: list[tuple[str, str]] = []
    for path in candidates:
        if not RunDir(path).is_run():
            try:
                inner = sum(1 for p in path.iterdir() if RunDir(p).is_run())
            except OSError:
                inner = 0
            if inner:  # a cross-validation folder: one run per fold
                reason = f"a folder of {inner} run{'s' if inner > 1 else ''}; list with `tunewise runs {path}`"
            else:
                reason = "not a run directory (no config.yaml)"
            skipped.append((str(path), reason))
            continue
        try:
            started = _started(path)
            found.append((started, _row(load_run(path), started)))
        except (OSError, TunewiseError) as err:
            skipped.append((str(path), f"unreadable ({err})"))
    found.sort(key=lambda item: (item[0], item[1].name), reverse=True)
    return [row for _, row in found], skipped


def _signed(value: float | None) -> str:
    return "—" if value is None else f"{value:+.3f}"


def _suite_line(change: SuiteChange) -> str:
    # Colour and a star only where the interval excludes 0: the rest is noise-sized.
    text = f"{_signed(change.delta)} {change.name}"
    if change.judgement == "neutral":
        return text
    return f"[{'green' if change.judgement == 'good' else 'red'}]{text}*[/]"


def print_runs(rows: list[RunRow], skipped: list[tuple[str, str]], folder: Path, console: Console) -> None:
    """The runs as a table sized for an 80-column terminal, then the folders skipped."""
    if rows:
        table = Table(
            box=box.SIMPLE_HEAD,
            pad_edge=False,
            show_edge=False,
            collapse_padding=True,
            caption="loss: eval rows, base → tuned. Δ: tuned − base, * interval excludes 0. --json: all fields",
            caption_justify="left",
        )
        # Names and numbers never break; in a narrow terminal the suite and pitfall lists wrap.
        table.add_column("run", no_wrap=True)
        table.add_column("status", no_wrap=True)
        table.add_column("loss", justify="right", no_wrap=True)
        table.add_column("suites Δ", overflow="fold", min_width=18)
        table.add_column("pitfalls", overflow="fold")
        for row in rows:
            run = [
                row.name,
                f"[dim]{row.started[:16]}[/]" if row.started else "",
                f"[dim]{row.method}[/]" if row.method else "",
            ]
            status = [
                row.status,
                f"{row.steps} steps" if row.steps is not None else "",
                f"{row.tokens_per_s:.0f} tok/s" if row.tokens_per_s is not None else "",
                RunDir.REPORT if row.report else "",
            ]
            loss = (
                "—"
                if row.eval_loss_base is None or row.eval_loss_tuned is None
                else f"{row.eval_loss_base:.3f}\n→ {row.eval_loss_tuned:.3f}"
            )
            suites = "\n".join(_suite_line(s) for s in row.suites) or "—"
            pitfalls = "\n".join(f"[red]{p}[/]" for p in row.pitfalls) or (
                "[green]none[/]" if row.status == "evaluated" else "—"
            )  # unmeasured is not clean
            table.add_row("\n".join(x for x in run if x), "\n".join(x for x in status if x), loss, suites, pitfalls)
        console.print(table)
    else:
        console.print(f"no runs in {folder}/ yet")
    for path, reason in skipped:
        console.print(f"[dim]skipped {path}: {reason}[/]", highlight=False, soft_wrap=True)  # paths stay whole
