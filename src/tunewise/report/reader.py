"""Reading a run directory into typed data: `load_run(run_dir)` gives a `RunRecord`.

Only `config.yaml` is required. Every other file is optional and read defensively: a missing file
becomes None (its report section says how to measure it), a file present but unreadable is named in
`RunRecord.problems`, never a traceback.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from tunewise.errors import TunewiseError
from tunewise.rundir import RunDir

__all__ = ["HOW_TO_MEASURE", "RunRecord", "interval", "load_run", "mapping", "number"]

# Where a missing measurement comes from; RUN_DIR is replaced by the run directory.
HOW_TO_MEASURE: dict[str, str] = {
    "metrics": "`tunewise train` writes metrics.jsonl while it trains",
    "eval_curve": "set train.eval_every above 0 and keep eval rows (data.eval, or data.split.eval above 0), "
    "then train again",
    "eval": "run `tunewise eval RUN_DIR` (`tunewise run` evaluates right after training)",
    "task": "add your task suite to eval.suites, e.g. `{name: my_task.jsonl, role: task}`, and run "
    "`tunewise eval RUN_DIR` (or `tunewise eval RUN_DIR --suite my_task.jsonl`)",
    "general": "list general_knowledge and chat in eval.suites (the default) and run `tunewise eval RUN_DIR`",
    "safety": "list safety in eval.suites (the default) and run `tunewise eval RUN_DIR`",
    "bias": "list bias_pairs in eval.suites (the default) and run `tunewise eval RUN_DIR`",
    "generations": "set eval.generations above 0 and run `tunewise eval RUN_DIR`",
    "baselines": "keep eval.baselines.few_shot or eval.baselines.retrieval above 0 (both 3 by default) and run "
    "`tunewise eval RUN_DIR`",
    "train_summary": "train_summary.json is written when `tunewise train` finishes or is interrupted",
    "data_stats": "data_stats.json is written when `tunewise train` prepares the data",
    "data_check": "keep data.check.enabled true (the default); `tunewise train` writes audit.json "
    "(`tunewise data audit CONFIG` runs the audit alone)",
}


@dataclass
class RunRecord:
    """Everything a run directory holds, each piece None when its file is missing.

    Attributes:
        dir: the run directory.
        config: the resolved config as plain data (`config.yaml`).
        config_text: the file's text, shown verbatim in the report.
        metrics: the metrics log, one dict per line.
        train_summary: `train_summary.json`.
        data_stats: `data_stats.json`: render statistics per split.
        rejects: the rows set aside (`rejects.jsonl`).
        data_check: what the data audit found before training (`audit.json`; `data_check.json` in older runs).
        eval_summary: `eval_summary.json`: base vs tuned.
        forgetting: `forgetting.json`: the forgetting monitor's points, budgets and actions (guard/monitor.py).
        wise_ft: `wise_ft.json`: the WiSE-FT sweep and the α kept (guard/wise_ft.py).
        problems: files (or lines) present but unreadable, said in the report.
    """

    dir: Path
    config: dict[str, Any]
    config_text: str
    metrics: list[dict[str, Any]] | None = None
    train_summary: dict[str, Any] | None = None
    data_stats: dict[str, Any] | None = None
    rejects: list[dict[str, Any]] | None = None
    data_check: dict[str, Any] | None = None
    eval_summary: dict[str, Any] | None = None
    forgetting: dict[str, Any] | None = None
    wise_ft: dict[str, Any] | None = None
    problems: list[str] = field(default_factory=list)

    def suites(self, role: str) -> list[dict[str, Any]] | None:
        """The eval suites of one role (`task`, `general`, `safety`, `bias`); None when none ran."""
        found = [
            s for s in (self.eval_summary or {}).get("suites") or [] if isinstance(s, dict) and s.get("role") == role
        ]
        return found or None

    def section(self, name: str) -> dict[str, Any]:
        """One section of the config (`model`, `train`, ...); empty when missing or malformed."""
        value = self.config.get(name)
        return value if isinstance(value, dict) else {}

    def hint(self, key: str) -> str:
        """How to measure what is missing (a `HOW_TO_MEASURE` key), with this run's directory filled in."""
        return HOW_TO_MEASURE[key].replace("RUN_DIR", str(self.dir))


def number(value: Any) -> float | None:
    """A finite number from a file, or None: a malformed field reads as "not measured"."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value) if math.isfinite(value) else None


def mapping(value: Any) -> dict[str, Any]:
    """A JSON object from a file, or {} when the field is missing or malformed."""
    return value if isinstance(value, dict) else {}


def interval(part: Any) -> tuple[float | None, float | None, float | None]:
    """(value, low, high) of a saved `{value, low, high}` interval, each None when missing."""
    part = part if isinstance(part, dict) else {}
    return number(part.get("value")), number(part.get("low")), number(part.get("high"))


def _read_json(path: Path, problems: list[str]) -> dict[str, Any] | None:
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        problems.append(f"{path.name}: unreadable ({e}); its sections are left out")
        return None
    if not isinstance(data, dict):
        problems.append(f"{path.name}: expected a JSON object, found {type(data).__name__}; left out")
        return None
    return data


def _read_jsonl(path: Path, problems: list[str]) -> list[dict[str, Any]] | None:
    if not path.is_file():
        return None
    rows: list[dict[str, Any]] = []
    bad: list[int] = []
    try:
        lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError as e:
        problems.append(f"{path.name}: unreadable ({e}); left out")
        return None
    for line_number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            bad.append(line_number)
            continue
        if isinstance(row, dict):
            rows.append(row)
        else:
            bad.append(line_number)
    if bad:
        # A run killed mid-write leaves a torn last line: skip it, but say so.
        shown = ", ".join(map(str, bad[:5])) + (" ..." if len(bad) > 5 else "")
        problems.append(f"{path.name}: {len(bad)} line(s) not a JSON object, skipped (line {shown})")
    return rows


def load_run(run_dir: str | Path) -> RunRecord:
    """Read a run directory.

    Args:
        run_dir: a directory written by `tunewise train` or `tunewise run`.

    Returns:
        The run's record, each optional file None when missing.

    Raises:
        TunewiseError: the directory does not exist or holds no `config.yaml`.
    """
    run_dir = Path(run_dir)
    files = RunDir(run_dir)
    if not run_dir.is_dir():
        raise TunewiseError(
            f"{run_dir} does not exist or is not a directory; pass a run directory "
            f"written by `tunewise train` or `tunewise run` (they live under output.dir, "
            f"default runs/)"
        )
    config_file = files.config
    if not config_file.is_file():
        raise TunewiseError(
            f"{run_dir} is not a tunewise run directory (no config.yaml); pass a run "
            f"directory written by `tunewise train` or `tunewise run`"
        )
    problems: list[str] = []
    text = config_file.read_text(encoding="utf-8", errors="replace")
    try:
        config = yaml.safe_load(text)
    except yaml.YAMLError as e:
        problems.append(f"config.yaml: not valid YAML ({e}); shown as text only")
        config = None
    if not isinstance(config, dict):
        if config is not None:
            problems.append("config.yaml: expected a mapping of sections; shown as text only")
        config = {}
    return RunRecord(
        dir=run_dir,
        config=config,
        config_text=text,
        metrics=_read_jsonl(files.metrics, problems),
        train_summary=_read_json(files.train_summary, problems),
        data_stats=_read_json(files.data_stats, problems),
        rejects=_read_jsonl(files.rejects, problems),
        data_check=_read_json(files.audit if files.audit.exists() else files / RunDir.LEGACY_AUDIT, problems),
        eval_summary=_read_json(files.eval_summary, problems),
        forgetting=_read_json(files.forgetting, problems),
        wise_ft=_read_json(files.wise_ft, problems),
        problems=problems,
    )
