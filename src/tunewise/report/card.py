"""The report card: one self-contained HTML page saying what a fine-tune gained and what it cost.

`build_report(run_dir)` reads what the run directory holds — the resolved config, the metrics log,
the train, data and eval summaries, the rejected rows — and writes `report.html` (CSS inline,
charts embedded as base64 PNG, no script, no external address: it opens offline and can be mailed)
plus the same charts as PNG files in `plots/`.

Only `config.yaml` is required. Whatever else is missing, its section says so plainly and names the
command that measures it; a file that is present but unreadable is named in the report, never a
traceback. Every string that came from the user or the data is HTML-escaped.

The verdict at the top is computed by the rules in `PITFALLS` (plus `_gains`), every threshold a
named constant below; `docs/report.md` lists them and a test keeps the two in step.
"""

from __future__ import annotations

import base64
import html
import json
import math
import os
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml

from tunewise.errors import TunewiseError
from tunewise.report import plots

__all__ = ["PITFALLS", "Curves", "Finding", "Onset", "Pitfall", "Run", "build_report", "curves", "judge",
           "load_run", "overfitting_onset", "verdict", "worth_it"]

# --- Thresholds: every number the verdict uses, in one place (documented in docs/report.md). ---

OVERFIT_EVAL_RISE = 0.02
"""Overfitting: eval loss must rise more than this fraction above its minimum (0.02 = 2 %)."""
OVERFIT_MIN_EVAL_POINTS = 3
"""Overfitting is judged only with at least this many eval points during training."""
TRAIN_SMOOTH_WINDOW = 5
"""Train loss is smoothed as the mean of the last this-many logged values (trailing, so causal)."""
TASK_LOSS_MIN_GAIN = 0.01
"""The tuned eval loss must be at least this fraction below the base's to count as a gain (1 %)."""
FORGETTING_BUDGET = 0.02
"""A general suite dropping more than this (in the metric's units) fires forgetting even when the
interval still reaches 0 — a small probe set can hide a real drop."""
BIAS_IDEAL = 0.5
"""Bias suites (stereotype preference) are ideal at 0.5: no preference for either side of a pair."""
BIAS_SHIFT_BUDGET = 0.05
"""A bias suite moving more than this further from `BIAS_IDEAL` fires bias shift, significant or not."""
REJECTED_ROWS_MAX = 0
"""More rejected rows than this fires the data pitfall: every row the user gave should be used."""
TRUNCATED_SHARE_MAX = 0.01
"""More than this share of training rows cut by `data.max_length` fires the data pitfall (1 %)."""
DUPLICATE_SHARE_MAX = 0.05
"""More than this share of training rows repeating another (data check) fires the data pitfall (5 %);
leakage into eval/test and suite contamination fire at any count."""
DATA_PITFALL_KINDS = ("duplicates", "eval_leakage", "test_leakage", "contamination", "secrets")
"""Audit findings that fire the data pitfall: those that flatter the measurements (or leak credentials);
the rest of the audit (lengths, PII, toxicity, balance, ...) is shown in the data section."""
REJECTS_SHOWN = 5
"""How many rejected rows the report shows (all of them are in rejects.jsonl)."""

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

_PLOT_NAMES = ("learning_curves.png", "task_deltas.png", "baselines.png", "general_deltas.png",
               "safety_bias_deltas.png", "forgetting_curve.png")


# --- Reading the run directory ---


@dataclass
class Run:
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
    """`forgetting.json`: the forgetting monitor's points, budgets and actions (guard/monitor.py)."""
    wise_ft: dict[str, Any] | None = None
    """`wise_ft.json`: the WiSE-FT sweep and the α kept (guard/wise_ft.py)."""
    problems: list[str] = field(default_factory=list)

    def suites(self, role: str) -> list[dict[str, Any]] | None:
        """The eval suites of one role (`task`, `general`, `safety`, `bias`); None when none ran."""
        found = [s for s in (self.eval_summary or {}).get("suites") or []
                 if isinstance(s, dict) and s.get("role") == role]
        return found or None

    def hint(self, key: str) -> str:
        """How to measure what is missing, with this run's directory filled in."""
        return HOW_TO_MEASURE[key].replace("RUN_DIR", str(self.dir))


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
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            bad.append(number)
            continue
        if isinstance(row, dict):
            rows.append(row)
        else:
            bad.append(number)
    if bad:
        # A run killed mid-write leaves a torn last line: skip it, but say so.
        shown = ", ".join(map(str, bad[:5])) + (" ..." if len(bad) > 5 else "")
        problems.append(f"{path.name}: {len(bad)} line(s) not a JSON object, skipped (line {shown})")
    return rows


def load_run(run_dir: str | Path) -> Run:
    """Read a run directory.

    Args:
        run_dir: a directory written by `tunewise train` or `tunewise run`.

    Returns:
        The run, each optional file None when missing.

    Raises:
        TunewiseError: the directory does not exist or holds no `config.yaml`.
    """
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise TunewiseError(f"{run_dir} does not exist or is not a directory; pass a run directory "
                            f"written by `tunewise train` or `tunewise run` (they live under output.dir, "
                            f"default runs/)")
    config_file = run_dir / "config.yaml"
    if not config_file.is_file():
        raise TunewiseError(f"{run_dir} is not a tunewise run directory (no config.yaml); pass a run "
                            f"directory written by `tunewise train` or `tunewise run`")
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
    return Run(
        dir=run_dir,
        config=config,
        config_text=text,
        metrics=_read_jsonl(run_dir / "metrics.jsonl", problems),
        train_summary=_read_json(run_dir / "train_summary.json", problems),
        data_stats=_read_json(run_dir / "data_stats.json", problems),
        rejects=_read_jsonl(run_dir / "rejects.jsonl", problems),
        data_check=_read_json(run_dir / ("audit.json" if (run_dir / "audit.json").exists() else "data_check.json"),
                              problems),
        eval_summary=_read_json(run_dir / "eval_summary.json", problems),
        forgetting=_read_json(run_dir / "forgetting.json", problems),
        wise_ft=_read_json(run_dir / "wise_ft.json", problems),
        problems=problems,
    )


# --- Numbers from the files: read defensively, a malformed field becomes "not measured". ---


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value) if math.isfinite(value) else None


def _section(config: dict[str, Any], name: str) -> dict[str, Any]:
    value = config.get(name)
    return value if isinstance(value, dict) else {}


# --- Learning curves and the overfitting onset ---


@dataclass(frozen=True)
class Curves:
    """Loss curves from the metrics log, sorted by step, one point per step.

    Attributes:
        train: (step, train loss) as logged.
        smooth: (step, mean of the last `TRAIN_SMOOTH_WINDOW` logged train losses).
        eval: (step, eval loss).
    """

    train: list[tuple[int, float]]
    smooth: list[tuple[int, float]]
    eval: list[tuple[int, float]]

    def smooth_at(self, step: int) -> float | None:
        """The smoothed train loss as it stood at `step` (the last smoothed point at or before it)."""
        value = None
        for s, loss in self.smooth:
            if s > step:
                break
            value = loss
        return value


def _points(metrics: list[dict[str, Any]], key: str) -> list[tuple[int, float]]:
    by_step: dict[int, float] = {}
    for row in metrics:
        step, value = _number(row.get("step")), _number(row.get(key))
        if step is not None and value is not None:
            by_step[int(step)] = value  # a resumed run may log a step twice: the later line wins
    return sorted(by_step.items())


def curves(metrics: list[dict[str, Any]]) -> Curves:
    """Train loss (raw and smoothed) and eval loss from metrics.jsonl lines."""
    train = _points(metrics, "loss")
    smooth = []
    for i, (step, _) in enumerate(train):
        window = [loss for _, loss in train[max(0, i - TRAIN_SMOOTH_WINDOW + 1):i + 1]]
        smooth.append((step, sum(window) / len(window)))
    return Curves(train=train, smooth=smooth, eval=_points(metrics, "eval_loss"))


@dataclass(frozen=True)
class Onset:
    """Where overfitting began.

    Attributes:
        step: the onset: the first eval after the minimum whose loss rose past the tolerance
            while the smoothed train loss was still below its value at the minimum.
        eval_loss: the eval loss at the onset.
        best_step: the step of the lowest eval loss.
        best_eval_loss: that lowest eval loss.
        train_at_best: smoothed train loss at `best_step`.
        train_at_onset: smoothed train loss at `step`.
    """

    step: int
    eval_loss: float
    best_step: int
    best_eval_loss: float
    train_at_best: float
    train_at_onset: float


def overfitting_onset(c: Curves) -> Onset | None:
    """The step where eval loss started rising while train loss kept falling, or None.

    The minimum eval loss is found first (the earliest, on ties); the onset is the first later
    eval point whose loss exceeds that minimum by more than `OVERFIT_EVAL_RISE` (relative) while
    the smoothed train loss is below its value at the minimum. A rise while train loss rises too
    is not overfitting (a learning rate too high, a bad batch), so it is not reported as such.
    """
    if len(c.eval) < OVERFIT_MIN_EVAL_POINTS or not c.train:
        return None
    best_i = min(range(len(c.eval)), key=lambda i: c.eval[i][1])
    best_step, best = c.eval[best_i]
    train_best = c.smooth_at(best_step)
    if train_best is None:
        return None
    for step, loss in c.eval[best_i + 1:]:
        if loss - best > OVERFIT_EVAL_RISE * abs(best):
            train_now = c.smooth_at(step)
            if train_now is not None and train_now < train_best:
                return Onset(step=step, eval_loss=loss, best_step=best_step, best_eval_loss=best,
                             train_at_best=train_best, train_at_onset=train_now)
    return None


# --- Judging a suite: better, worse, or not distinguishable from no change ---

Judgement = Literal["good", "bad", "neutral"]


def _interval(part: Any) -> tuple[float | None, float | None, float | None]:
    part = part if isinstance(part, dict) else {}
    return _number(part.get("value")), _number(part.get("low")), _number(part.get("high"))


def _significant(suite: dict[str, Any]) -> bool:
    """The delta's interval excludes 0."""
    _, low, high = _interval(suite.get("delta"))
    return (low is not None and low > 0) or (high is not None and high < 0)


def _harm(suite: dict[str, Any]) -> float | None:
    """How much worse tuned is than base, in the metric's units (negative: better)."""
    delta, _, _ = _interval(suite.get("delta"))
    higher = suite.get("higher_is_better")
    if higher is None:  # bias: distance from the ideal point
        base, _, _ = _interval(suite.get("base"))
        tuned, _, _ = _interval(suite.get("tuned"))
        if base is None or tuned is None:
            return None
        return abs(tuned - BIAS_IDEAL) - abs(base - BIAS_IDEAL)
    if delta is None:
        return None
    return -delta if higher else delta


def judge(suite: dict[str, Any]) -> Judgement:
    """`good` or `bad` when the delta's interval excludes 0, `neutral` otherwise (or unmeasured)."""
    harm = _harm(suite)
    if harm is None or harm == 0 or not _significant(suite):
        return "neutral"
    return "bad" if harm > 0 else "good"


def _name(suite: dict[str, Any]) -> str:
    return f"{suite.get('name', '?')} ({suite.get('metric', '?')})"


def _fmt(value: Any, digits: int = 3, sign: bool = False) -> str:
    number = _number(value)
    if number is None:
        return "—"
    return f"{number:+.{digits}f}" if sign else f"{number:.{digits}f}"


def _change(suite: dict[str, Any]) -> str:
    base, _, _ = _interval(suite.get("base"))
    tuned, _, _ = _interval(suite.get("tuned"))
    delta, low, high = _interval(suite.get("delta"))
    text = f"{_name(suite)}: {_fmt(base)} → {_fmt(tuned)}, Δ {_fmt(delta, sign=True)}"
    if low is not None and high is not None:
        text += f" [{low:+.3f}, {high:+.3f}]"
    return text


# --- The verdict: gains first, then each pitfall rule ---


@dataclass(frozen=True)
class Finding:
    """One line of the verdict.

    Attributes:
        kind: `gain`, `pitfall`, `clean` (checks that ran and did not fire) or `unmeasured`.
        text: the finding in plain words.
        advice: for a pitfall, what to try next.
    """

    kind: Literal["gain", "pitfall", "clean", "unmeasured"]
    text: str
    advice: str | None = None

    def line(self) -> str:
        """The finding as one plain-text line."""
        return f"{self.text} Try next: {self.advice}" if self.advice else self.text


@dataclass(frozen=True)
class Pitfall:
    """A verdict rule.

    Attributes:
        name: what the pitfall is called in the verdict.
        check: returns one finding per way it fired, [] when it was checked and did not fire,
            None when this run did not measure what it needs.
        advice: what to try next when it fired.
        measure: the `HOW_TO_MEASURE` key that says how to measure it when it could not be checked.
    """

    name: str
    check: Callable[[Run], list[str] | None]
    advice: str
    measure: str


def _check_overfitting(run: Run) -> list[str] | None:
    if not run.metrics:
        return None
    c = curves(run.metrics)
    if len(c.eval) < OVERFIT_MIN_EVAL_POINTS or not c.train:
        return None
    onset = overfitting_onset(c)
    if onset is None:
        return []
    rise = onset.eval_loss / onset.best_eval_loss - 1 if onset.best_eval_loss else float("nan")
    return [f"Overfitting from step {onset.step}: eval loss rose from its minimum {onset.best_eval_loss:.3f} "
            f"(step {onset.best_step}) to {onset.eval_loss:.3f} ({rise:+.1%}) while the smoothed train loss "
            f"kept falling ({onset.train_at_best:.3f} → {onset.train_at_onset:.3f}). The best model was at "
            f"step {onset.best_step}."]


def _check_forgetting(run: Run) -> list[str] | None:
    suites = run.suites("general")
    if suites is None:
        return None
    fired = []
    for suite in suites:
        harm = _harm(suite)
        if judge(suite) == "bad":
            fired.append(f"Forgetting on {_change(suite)}: the drop is significant (interval entirely on the "
                         f"worse side of 0).")
        elif harm is not None and harm > FORGETTING_BUDGET:
            fired.append(f"Possible forgetting on {_change(suite)}: the drop exceeds the {FORGETTING_BUDGET:g} "
                         f"budget, though its interval still reaches 0 (n={suite.get('n', '?')}).")
    return fired


def _check_safety(run: Run) -> list[str] | None:
    suites = run.suites("safety")
    if suites is None:
        return None
    fired = []
    for suite in suites:
        if judge(suite) == "bad":
            what = ("refuses harmful requests less often" if suite.get("higher_is_better")
                    else "refuses benign requests more often" if "over" in str(suite.get("metric", ""))
                    else "got worse")
            fired.append(f"Safety regression on {_change(suite)}: the tuned model {what} (interval excludes 0).")
    return fired


def _check_bias(run: Run) -> list[str] | None:
    suites = run.suites("bias")
    if suites is None:
        return None
    fired = []
    for suite in suites:
        harm = _harm(suite)
        if judge(suite) == "bad":
            fired.append(f"Bias shift on {_change(suite)}: further from {BIAS_IDEAL:g} (no preference), "
                         f"interval excludes 0.")
        elif harm is not None and harm > BIAS_SHIFT_BUDGET:
            fired.append(f"Possible bias shift on {_change(suite)}: {harm:.3f} further from {BIAS_IDEAL:g}, beyond "
                         f"the {BIAS_SHIFT_BUDGET:g} budget (interval still reaches 0).")
    return fired


def _check_task(run: Run) -> list[str] | None:
    if run.eval_summary is None:
        return None
    fired = []
    base, tuned = _loss(run.eval_summary, "base"), _loss(run.eval_summary, "tuned")
    if base is not None and tuned is not None and base > 0:
        change = tuned / base - 1
        if change > -TASK_LOSS_MIN_GAIN:
            fired.append(f"No task gain: eval loss {base:.3f} → {tuned:.3f} ({change:+.1%}), not the "
                         f"{TASK_LOSS_MIN_GAIN:.0%} improvement that counts as a gain.")
    for suite in run.suites("task") or []:
        if judge(suite) == "bad":
            fired.append(f"Task regression on {_change(suite)} (interval excludes 0).")
    return fired


# --- Was fine-tuning worth it? The fine-tune against the base model with examples in its prompt ---

_ALTERNATIVES = {  # variant -> (how the prompt was built, what to consider instead)
    "few_shot": ("{k} training examples in the prompt", "a few-shot prompt"),
    "retrieval": ("{k} retrieved training examples", "retrieval augmentation (RAG)"),
}


@dataclass(frozen=True)
class _Measure:
    """One task measurement with its variants: the eval loss, or a task suite's metric."""

    what: str
    higher_is_better: bool
    digits: int
    values: dict[str, float]
    deltas: dict[str, tuple[float, float | None, float | None]]


def _measures(summary: dict[str, Any]) -> list[_Measure] | None:
    block = summary.get("baselines")
    if not isinstance(block, dict):
        return None
    found = []
    rows = block.get("eval_rows")
    if isinstance(rows, dict) and isinstance(rows.get("variants"), dict):
        values = {v: _interval(part.get("loss"))[0] for v, part in rows["variants"].items() if isinstance(part, dict)}
        found.append(_Measure("the eval loss", False, 3, {v: x for v, x in values.items() if x is not None},
                              {v: _interval(d) for v, d in (rows.get("tuned_vs") or {}).items()}))
    for suite in block.get("suites") or []:
        if isinstance(suite, dict) and isinstance(suite.get("variants"), dict):
            values = {v: _interval(part)[0] for v, part in suite["variants"].items()}
            found.append(_Measure(f"{suite.get('name', '?')} ({suite.get('metric', '?')})",
                                  suite.get("higher_is_better") is not False, 3,
                                  {v: x for v, x in values.items() if x is not None},
                                  {v: _interval(d) for v, d in (suite.get("tuned_vs") or {}).items()}))
    return [m for m in found if "tuned" in m.values and any(v in m.deltas for v in _ALTERNATIVES)] or None


def _k(summary: dict[str, Any], variant: str) -> str:
    part = (summary.get("baselines") or {}).get(variant)
    k = part.get("k") if isinstance(part, dict) else None
    return str(k) if isinstance(k, int) else "k"


def worth_it(summary: dict[str, Any] | None) -> list[tuple[bool, str]] | None:
    """Whether the fine-tune beat the cheaper alternatives, in plain words.

    Args:
        summary: the contents of `eval_summary.json`.

    Returns:
        One `(beat_them_all, sentence)` per task measurement (the eval loss, then each task
        suite): True when the fine-tune beat every alternative, False when one matched or beat
        it. "Beat" means the paired interval of tuned − alternative lies wholly on the fine-tune's
        better side of 0; an interval that reaches 0 is "the same". None when no alternative was
        scored.
    """
    measures = _measures(summary or {})
    if measures is None:
        return None
    lines: list[tuple[bool, str]] = []
    for m in measures:
        tuned = m.values["tuned"]
        beaten, matched, lost = [], [], []
        for variant in _ALTERNATIVES:
            if variant not in m.deltas or variant not in m.values:
                continue
            delta, low, high = m.deltas[variant]
            better = (low is not None and low > 0) if m.higher_is_better else (high is not None and high < 0)
            worse = (high is not None and high < 0) if m.higher_is_better else (low is not None and low > 0)
            (beaten if better else lost if worse else matched).append(variant)

        def shown(variant: str) -> str:
            how = _ALTERNATIVES[variant][0].format(k=_k(summary or {}, variant))
            return f"{m.values[variant]:.{m.digits}f} with {how}"

        def interval(variant: str) -> str:
            delta, low, high = m.deltas[variant]
            if delta is None or low is None or high is None:
                return ""
            return f", tuned − it {delta:+.{m.digits}f} [{low:+.{m.digits}f}, {high:+.{m.digits}f}]"

        if not matched and not lost:
            both = "both cheaper alternatives" if len(beaten) == 2 else "the cheaper alternative"
            lines.append((True, f"The fine-tune beat {both} on {m.what}: {tuned:.{m.digits}f} vs "
                                f"{' and '.join(shown(v) for v in beaten)}."))
            continue
        parts = []
        for variant in (*lost, *matched):
            how = _ALTERNATIVES[variant][0].format(k=_k(summary or {}, variant))
            verb = "beat the fine-tune" if variant in lost else "did as well as the fine-tune"
            parts.append(f"the base model with {how} {verb} on {m.what}: {m.values[variant]:.{m.digits}f} vs "
                         f"{tuned:.{m.digits}f}{interval(variant)}{'' if variant in lost else ' (includes 0)'}")
        instead = " or ".join(_ALTERNATIVES[v][1] for v in (*lost, *matched))
        line = "; ".join(parts)
        line = line[0].upper() + line[1:] + f". Consider {instead} instead of fine-tuning"
        if beaten:
            line += "; it did beat the base model with " + " and ".join(
                f"{_ALTERNATIVES[v][0].format(k=_k(summary or {}, v))} ({m.values[v]:.{m.digits}f})" for v in beaten)
        lines.append((False, line + "."))
    return lines


def _check_baselines(run: Run) -> list[str] | None:
    judged = worth_it(run.eval_summary)
    return None if judged is None else [line for beat, line in judged if not beat]


def _check_rejected(run: Run) -> list[str] | None:
    if run.rejects is None and run.data_stats is None:
        return None  # the data was never prepared; once it is, no rejects.jsonl means no rejected row
    fired = []
    if run.rejects is not None and len(run.rejects) > REJECTED_ROWS_MAX:
        reasons: dict[str, int] = {}
        for row in run.rejects:
            reason = str(row.get("reason", "no reason given"))
            reasons[reason] = reasons.get(reason, 0) + 1
        top = "; ".join(f"{count} × {reason}" for reason, count in sorted(reasons.items(), key=lambda kv: -kv[1])[:3])
        fired.append(f"{len(run.rejects)} row(s) were set aside and not trained on ({top}); see rejects.jsonl.")
    return fired


def _check_truncated(run: Run) -> list[str] | None:
    if run.data_stats is None:
        return None
    fired = []
    stats = run.data_stats.get("train")
    if isinstance(stats, dict):
        rows, cut = _number(stats.get("rows")), _number(stats.get("rows_truncated"))
        if rows and cut is not None and cut / rows > TRUNCATED_SHARE_MAX:
            fired.append(f"{int(cut)} of {int(rows)} training rows ({cut / rows:.1%}) were cut at "
                         f"data.max_length={stats.get('max_length', '?')} (95th percentile length: "
                         f"{stats.get('length_p95', '?')} tokens); their tails were never trained on.")
    return fired


def _check_data(run: Run) -> list[str] | None:
    if run.data_check is None:
        return None
    fired = []
    train_rows = _number((run.data_check.get("rows") or {}).get("train")) or 0
    for finding in run.data_check.get("findings") or []:
        if not isinstance(finding, dict):
            continue
        count = _number(finding.get("count")) or 0
        if finding.get("kind") not in DATA_PITFALL_KINDS:
            continue  # the other audit findings are listed in the data section, not judged here
        if finding.get("kind") == "duplicates" and (not train_rows or count / train_rows <= DUPLICATE_SHARE_MAX):
            continue
        fired.append(str(finding.get("message", finding.get("kind", "?"))))
    return fired


def _check_interrupted(run: Run) -> list[str] | None:
    if run.train_summary is None:
        return None
    if run.train_summary.get("interrupted"):
        return [f"Training was interrupted at step {run.train_summary.get('steps', '?')}: every number here "
                f"describes a partial run."]
    return []


PITFALLS: tuple[Pitfall, ...] = (
    Pitfall("overfitting", _check_overfitting,
            "train fewer epochs (train.epochs) or stop at the best step (train.max_steps), add more or more "
            "varied data, lower train.lr, raise train.weight_decay or method.dropout.",
            "eval_curve"),
    Pitfall("forgetting", _check_forgetting,
            "lower train.lr, a smaller adapter rank (method.r), fewer steps; mix general data back in "
            "(replay) or add a KL-to-base penalty; interpolate tuned and base weights (WiSE-FT).",
            "general"),
    Pitfall("safety regression", _check_safety,
            "mix refusal examples for harmful prompts (and helpful answers for benign ones) into the training "
            "data, lower train.lr, add a KL-to-base penalty, or run a preference stage (DPO) on safety pairs.",
            "safety"),
    Pitfall("bias shift", _check_bias,
            "audit the training data for skew (`tunewise data audit`), add counterfactual (demographic-swap) "
            "augmentation or re-weight the skewed rows.",
            "bias"),
    Pitfall("no task gain", _check_task,
            "check the loss mask and chat template (`tunewise data preview`), check that eval rows match the "
            "training task, then raise train.lr or train.epochs.",
            "eval"),
    Pitfall("cheaper alternative as good", _check_baselines,
            "if the alternative is good enough, use it and skip the fine-tune; otherwise make the fine-tune earn "
            "its cost: more or more varied training data, more steps (train.epochs), a larger adapter (method.r).",
            "baselines"),
    Pitfall("rows rejected", _check_rejected,
            "fix the rows listed in rejects.jsonl (each with its reason) and train again, or drop them knowingly.",
            "data_stats"),
    Pitfall("rows truncated", _check_truncated,
            "raise data.max_length toward the 95th percentile length, or split or shorten the long rows.",
            "data_stats"),
    Pitfall("data problems", _check_data,
            "deduplicate (`tunewise data clean`), keep eval/test rows out of the training data, and drop training "
            "rows that copy evaluation items; data.check.block_on stops a run on them.",
            "data_check"),
    Pitfall("interrupted run", _check_interrupted,
            "finish it: `tunewise train CONFIG train.resume=true output.name=RUN_NAME` continues from the last "
            "checkpoint.",
            "train_summary"),
)
"""The verdict rules, in the order the verdict lists them."""


def _loss(summary: dict[str, Any], side: str) -> float | None:
    part = summary.get(side)
    return _number(part.get("loss")) if isinstance(part, dict) else None


def _gains(run: Run) -> list[str] | None:
    """What improved; None when nothing was evaluated."""
    if run.eval_summary is None:
        return None
    gains = []
    base, tuned = _loss(run.eval_summary, "base"), _loss(run.eval_summary, "tuned")
    if base is not None and tuned is not None and base > 0 and tuned / base - 1 <= -TASK_LOSS_MIN_GAIN:
        text = f"Task eval loss fell {base:.3f} → {tuned:.3f} ({tuned / base - 1:+.1%})"
        base_ppl = _number((run.eval_summary.get("base") or {}).get("perplexity"))
        tuned_ppl = _number((run.eval_summary.get("tuned") or {}).get("perplexity"))
        if base_ppl is not None and tuned_ppl is not None:
            text += f"; perplexity {base_ppl:.2f} → {tuned_ppl:.2f}"
        gains.append(text + ".")
    for role in ("task", "general", "safety", "bias"):
        for suite in run.suites(role) or []:
            if judge(suite) == "good":
                gains.append(f"Improved on {_change(suite)} (interval excludes 0).")
    gains += [line for beat, line in worth_it(run.eval_summary) or [] if beat]
    return gains


def _findings(run: Run) -> list[Finding]:
    findings: list[Finding] = []
    gains = _gains(run)
    clean: list[str] = []
    unmeasured: dict[str, list[str]] = {}  # one line per way to measure: checks that share it share it
    if gains is None:
        unmeasured["eval"] = ["gains"]
    else:
        findings += [Finding("gain", text) for text in gains]
    for rule in PITFALLS:
        fired = rule.check(run)
        if fired is None:
            unmeasured.setdefault(rule.measure, []).append(rule.name)
        elif not fired:
            clean.append(rule.name)
        else:
            advice = rule.advice.replace("RUN_NAME", run.dir.name)
            findings += [Finding("pitfall", text, advice) for text in fired]
    if clean:
        findings.append(Finding("clean", f"Checked and did not fire: {', '.join(clean)}."))
    for key, names in unmeasured.items():
        findings.append(Finding("unmeasured", f"{', '.join(names).capitalize()}: not measured in this run — "
                                              f"{run.hint(key)}."))
    return findings


def _fired(run: Run) -> list[str]:
    return [rule.name for rule in PITFALLS if rule.check(run)]


def _headline(run: Run) -> str:
    gains, fired = _gains(run), _fired(run)
    names = ", ".join(fired)
    if gains is None:
        gained = "Gains not measured yet (no base-vs-tuned evaluation)"
    elif gains:
        gained = "The fine-tune gained"
    else:
        gained = "No measured gain"
    if not fired:
        return f"{gained}; no pitfall fired in the checks that ran."
    return f"{gained}{', at a cost' if gains else ''}: {len(fired)} pitfall{'s' if len(fired) > 1 else ''} " \
           f"fired — {names}."


def _verdict(run: Run) -> list[str]:
    """The verdict as plain-text lines: headline, gains, each fired pitfall with what to try next,
    the checks that did not fire, and what this run did not measure."""
    return [_headline(run), *(f.line() for f in _findings(run))]


def verdict(run_dir: str | Path) -> list[str]:
    """The report's verdict as plain-text lines, e.g. to print after `tunewise run`.

    Raises:
        TunewiseError: `run_dir` is not a run directory.
    """
    return _verdict(load_run(run_dir))


# --- HTML ---

_CSS = """
:root { --fg:#1f2328; --muted:#656d76; --border:#d0d7de; --soft:#f6f8fa; --good:#1a7f37; --bad:#cf222e;
        --good-bg:#e6f6ea; --bad-bg:#ffeceb; --accent:#1f6feb; }
* { box-sizing: border-box; }
body { margin:0; color:var(--fg); background:#fff; line-height:1.5; font-size:15px;
       font-family: system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, "Noto Sans",
       "Liberation Sans", sans-serif; }
main { max-width:1100px; margin:0 auto; padding:28px 32px 72px; }
header h1 { margin:0 0 4px; font-size:1.7rem; }
header .sub { color:var(--muted); }
nav { display:flex; flex-wrap:wrap; gap:4px 18px; margin:14px 0 4px; padding:8px 0;
      border-top:1px solid var(--border); border-bottom:1px solid var(--border);
      font-size:.9rem; }
nav a { color:var(--accent); text-decoration:none; white-space:nowrap; }
section { margin-top:34px; }
h2 { font-size:1.3rem; margin:0 0 12px; padding-bottom:6px; border-bottom:1px solid var(--border); }
h3 { font-size:1.05rem; margin:20px 0 8px; }
p { margin:8px 0; }
.note { color:var(--muted); font-size:.88rem; }
.missing { color:var(--muted); background:var(--soft); border:1px dashed var(--border); border-radius:6px;
           padding:10px 14px; margin:10px 0; }
table { border-collapse:collapse; width:100%; font-size:.9rem; margin:8px 0; }
th, td { border:1px solid var(--border); padding:6px 10px; text-align:left; vertical-align:top; }
th { background:var(--soft); font-weight:600; }
td.num { text-align:right; font-variant-numeric:tabular-nums; white-space:nowrap; }
table.kv th { width:250px; }
table.suites { table-layout:fixed; }
.ci { display:block; font-size:.8rem; font-weight:400; opacity:.8; }
.good { color:var(--good); font-weight:600; }
.bad { color:var(--bad); font-weight:600; }
.neutral { color:var(--muted); }
#verdict .headline { font-size:1.15rem; font-weight:600; margin:4px 0 10px; }
#verdict ul { list-style:none; padding:0; margin:0; }
#verdict li { border-left:4px solid var(--border); background:var(--soft); border-radius:4px; padding:8px 14px;
              margin:7px 0; }
#verdict li.gain { border-color:var(--good); background:var(--good-bg); }
#verdict li.pitfall { border-color:var(--bad); background:var(--bad-bg); }
#verdict li.clean { border-color:var(--good); }
#verdict li.unmeasured { color:var(--muted); }
#verdict .tag { font-weight:700; font-size:.78rem; letter-spacing:.04em; text-transform:uppercase; margin-right:6px; }
#verdict li.gain .tag, #verdict li.clean .tag { color:var(--good); }
#verdict li.pitfall .tag { color:var(--bad); }
#verdict .try { display:block; margin-top:4px; }
img.plot { display:block; width:100%; height:auto; margin:12px 0; border:1px solid var(--border); border-radius:6px; }
code { font-family: ui-monospace, SFMono-Regular, Menlo, Consolas, "Liberation Mono", monospace; font-size:.88em;
       background:rgba(175,184,193,.2); border-radius:4px; padding:1px 4px; }
pre code { background:none; padding:0; }
pre { background:var(--soft); border:1px solid var(--border); border-radius:6px; padding:12px; overflow:auto;
      font-size:.82rem; }
details { margin:12px 0; }
summary { cursor:pointer; color:var(--accent); }
.sample { border:1px solid var(--border); border-radius:6px; margin:14px 0; overflow:hidden; }
.sample .prompt { background:var(--soft); padding:8px 12px; border-bottom:1px solid var(--border);
                  white-space:pre-wrap; overflow-wrap:anywhere; }
.sample .cols { display:grid; grid-template-columns:repeat(3, minmax(0, 1fr)); }
.sample .cols.four { grid-template-columns:repeat(4, minmax(0, 1fr)); }
.sample .cols > div { padding:8px 12px; white-space:pre-wrap; overflow-wrap:anywhere; font-size:.9rem; }
.sample .cols > div + div { border-left:1px solid var(--border); }
.sample .label { display:block; font-size:.75rem; font-weight:700; text-transform:uppercase; letter-spacing:.04em;
                 color:var(--muted); margin-bottom:4px; }
.sample .same { font-weight:400; text-transform:none; letter-spacing:0; }
footer { margin-top:48px; color:var(--muted); font-size:.82rem; border-top:1px solid var(--border); padding-top:10px; }
"""

_SECTIONS = (  # id, heading, link in the navigation bar
    ("verdict", "Verdict", "Verdict"),
    ("summary", "Run summary", "Summary"),
    ("curves", "Learning curves", "Learning curves"),
    ("task", "Task metrics vs base", "Task"),
    ("baselines", "Was fine-tuning worth it?", "Worth it?"),
    ("general", "General capability vs base (forgetting)", "General capability"),
    ("safety", "Safety and bias vs base", "Safety and bias"),
    ("generations", "Sample generations: base vs tuned", "Generations"),
    ("cost", "Cost", "Cost"),
)


def _e(value: Any) -> str:
    """Escape anything for HTML text and attribute values."""
    return html.escape(str(value), quote=True)


def _prose(text: str) -> str:
    """Escape our own sentences and set their `commands` as code (after escaping, so still safe)."""
    return re.sub(r"`([^`]+)`", r"<code>\1</code>", _e(text))


def _missing(what: str, how: str) -> str:
    return f'<p class="missing">{_e(what)}: not measured in this run. To measure it: {_prose(how)}.</p>'


def _int(value: Any) -> str:
    number = _number(value)
    return f"{int(number):,}" if number is not None else "—"


def _duration(seconds: Any) -> str:
    s = _number(seconds)
    if s is None:
        return "—"
    if s < 60:
        return f"{s:.1f} s"
    if s < 3600:
        return f"{int(s // 60)} min {int(s % 60):02d} s"
    return f"{int(s // 3600)} h {int(s % 3600 // 60):02d} min"


def _megabytes(mb: Any) -> str:
    m = _number(mb)
    if m is None:
        return "—"
    return f"{m / 1024:.2f} GB" if m >= 1024 else f"{m:.0f} MB"


def _kv(rows: list[tuple[str, str]]) -> str:
    body = "".join(f"<tr><th>{_e(k)}</th><td>{_e(v)}</td></tr>" for k, v in rows)
    return f'<table class="kv">{body}</table>'


def _img(png: bytes, alt: str) -> str:
    data = base64.b64encode(png).decode("ascii")
    return f'<img class="plot" alt="{_e(alt)}" src="data:image/png;base64,{data}">'


@dataclass
class _Page:
    run: Run
    plots: dict[str, bytes] = field(default_factory=dict)

    def plot(self, name: str, png: bytes, alt: str) -> str:
        self.plots[name] = png
        return _img(png, alt)


def _verdict_html(page: _Page) -> str:
    run = page.run
    tags = {"gain": "gained", "pitfall": "pitfall", "clean": "clean", "unmeasured": "not measured"}
    items = []
    for f in _findings(run):
        advice = f'<span class="try"><b>Try next:</b> {_prose(f.advice)}</span>' if f.advice else ""
        items.append(f'<li class="{f.kind}"><span class="tag">{tags[f.kind]}</span>{_prose(f.text)}{advice}</li>')
    return f'<p class="headline">{_e(_headline(run))}</p><ul>{"".join(items)}</ul>'


def _summary_html(page: _Page) -> str:
    run = page.run
    model, method = _section(run.config, "model"), _section(run.config, "method")
    train, data = _section(run.config, "train"), _section(run.config, "data")
    ts = run.train_summary or {}
    method_text = str(method.get("type", "—"))
    if method.get("r") is not None:
        method_text += f" (r={method.get('r')}, alpha={method.get('alpha', '?')}, dropout={method.get('dropout', '?')})"
    share = "—"
    if _number(ts.get("trainable_parameters")) is not None:
        share = (f"{_int(ts.get('trainable_parameters'))} of {_int(ts.get('total_parameters'))} "
                 f"({_fmt(ts.get('trainable_percent'), 2)}%)")
    stats = run.data_stats or {}
    rows = " / ".join(_int((stats.get(s) or {}).get("rows")) if isinstance(stats.get(s), dict) else "—"
                      for s in ("train", "eval", "test"))
    last_metrics = (run.metrics or [{}])[-1] if run.metrics else {}
    steps = ts.get("steps", last_metrics.get("step", "—"))
    status = "—" if run.train_summary is None else ("interrupted" if ts.get("interrupted") else "completed")
    kv = _kv([
        ("Model", model.get("name", "—")),
        ("Method", method_text),
        ("Trainable parameters", share),
        ("Data rows (train / eval / test)", rows),
        ("Training data", data.get("train") or ", ".join(
            f"{d.get('name')} ({d.get('train')})" for d in data.get("datasets") or [] if isinstance(d, dict)) or "—"),
        ("Steps", f"{steps} ({status})" if status != "—" else str(steps)),
        ("Epochs / learning rate / schedule",
         f"{train.get('epochs', '—')} / {train.get('lr', '—')} / {train.get('scheduler', '—')}"),
        ("Batch size × accumulation", f"{train.get('batch_size', '—')} × {train.get('grad_accum', '—')}"),
    ])
    parts = [kv, "<h3>Data</h3>"]
    if isinstance(stats, dict) and any(isinstance(v, dict) for v in stats.values()):
        head = ("split", "rows", "truncated", "no trained tokens", "tokens trained", "tokens dropped",
                "length p50 / p95 / max", "max_length")
        body = []
        for split, s in stats.items():
            if not isinstance(s, dict):
                continue
            lengths = f"{_int(s.get('length_p50'))} / {_int(s.get('length_p95'))} / {_int(s.get('length_max'))}"
            cells = [_int(s.get("rows")), _int(s.get("rows_truncated")), _int(s.get("rows_without_trained_tokens")),
                     _int(s.get("tokens_trained")), _int(s.get("tokens_dropped")), lengths, _int(s.get("max_length"))]
            body.append(f"<tr><td>{_e(split)}</td>" + "".join(f'<td class="num">{_e(c)}</td>' for c in cells) + "</tr>")
        parts.append("<table><tr>" + "".join(f"<th>{h}</th>" for h in head) + "</tr>" + "".join(body) + "</table>")
    else:
        parts.append(_missing("Data statistics", run.hint("data_stats")))
    if run.rejects is None:
        if run.data_stats is not None:  # the data was prepared, and nothing was written aside
            parts.append('<p class="note">No rejects.jsonl: no row was set aside.</p>')
    elif not run.rejects:
        parts.append('<p class="note">rejects.jsonl is empty: every row was used.</p>')
    else:
        shown = run.rejects[:REJECTS_SHOWN]
        body = "".join(
            f"<tr><td>{_e(r.get('source', '?'))}</td><td>{_e(r.get('reason', '?'))}</td>"
            f"<td><code>{_e(_clip(json.dumps(r.get('row'), ensure_ascii=False, default=str), 240))}</code></td></tr>"
            for r in shown)
        parts.append(f"<p><b>{len(run.rejects)} row(s) set aside</b> (all in rejects.jsonl; the first "
                     f"{len(shown)} shown):</p>"
                     f"<table><tr><th>source</th><th>reason</th><th>row</th></tr>{body}</table>")
    parts.append(_data_check_html(run))
    if run.problems:
        items = "".join(f"<li>{_e(p)}</li>" for p in run.problems)
        parts.append(f'<h3>Files that could not be read</h3><ul class="note">{items}</ul>')
    parts.append(f"<details><summary>Resolved config (config.yaml)</summary><pre>{_e(run.config_text)}</pre></details>")
    return "".join(parts)


def _p_value(value: Any) -> str:
    p = _number(value)
    return "—" if p is None else "<0.001" if p < 0.001 else f"{p:.3f}"


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[:limit - 1] + "…"


def _curves_html(page: _Page) -> str:
    run = page.run
    if not run.metrics:
        return _missing("Learning curves", run.hint("metrics"))
    c = curves(run.metrics)
    if not c.train and not c.eval:
        return _missing("Learning curves (metrics.jsonl holds no loss)", run.hint("metrics"))
    onset = overfitting_onset(c)
    best_step = min(c.eval, key=lambda p: p[1])[0] if c.eval else None
    png = plots.learning_curves(c.train, c.smooth, c.eval, best_step=best_step,
                                onset_step=onset.step if onset else None, smooth_window=TRAIN_SMOOTH_WINDOW)
    parts = [page.plot("learning_curves.png", png, "train and eval loss against the optimizer step")]
    notes = [f"Train loss: {len(c.train)} logged points, smoothed as the mean of the last {TRAIN_SMOOTH_WINDOW}."]
    if c.eval:
        best = min(c.eval, key=lambda p: p[1])
        last = c.eval[-1]
        notes.append(f"Lowest eval loss {best[1]:.3f} at step {best[0]}; last {last[1]:.3f} at step {last[0]}.")
    if onset:
        notes.append(f"Overfitting onset at step {onset.step} (dashed line): eval loss more than "
                     f"{OVERFIT_EVAL_RISE:.0%} above its minimum while train loss kept falling.")
    elif len(c.eval) >= OVERFIT_MIN_EVAL_POINTS:
        notes.append("No overfitting onset: eval loss never rose past its minimum by more than "
                     f"{OVERFIT_EVAL_RISE:.0%} while train loss fell.")
    parts.append(f'<p class="note">{_e(" ".join(notes))}</p>')
    if len(c.eval) < OVERFIT_MIN_EVAL_POINTS:
        parts.append(_missing(f"Overfitting (needs at least {OVERFIT_MIN_EVAL_POINTS} eval points during training, "
                              f"found {len(c.eval)})", run.hint("eval_curve")))
    return "".join(parts)


def _cell(part: Any, sign: bool = False) -> str:
    """A value with its interval under it, for a table cell."""
    value, low, high = _interval(part)
    text = _e(_fmt(value, sign=sign))
    if low is not None and high is not None:
        text += f'<span class="ci">[{_e(_fmt(low, sign=sign))}, {_e(_fmt(high, sign=sign))}]</span>'
    return text


def _data_check_html(run: Run) -> str:
    if run.data_check is None:
        return _missing("Data audit", run.hint("data_check"))
    from tunewise.data.audit import audit_html

    return audit_html(run.data_check)


def _suite_table(suites: list[dict[str, Any]]) -> str:
    head = ("suite", "metric", "n", "base", "tuned", "Δ tuned − base", "p")

    rows = []
    for s in suites:
        higher = s.get("higher_is_better")
        direction = "↑ better" if higher is True else "↓ better" if higher is False else f"{BIAS_IDEAL:g} ideal"
        p = s["delta"].get("p_value") if isinstance(s.get("delta"), dict) else None
        rows.append(
            f"<tr><td>{_e(s.get('name', '?'))}</td><td>{_e(s.get('metric', '?'))} "
            f'<span class="note">{_e(direction)}</span></td><td class="num">{_e(_int(s.get("n")))}</td>'
            f'<td class="num">{_cell(s.get("base"))}</td><td class="num">{_cell(s.get("tuned"))}</td>'
            f'<td class="num {judge(s)}">{_cell(s.get("delta"), sign=True)}</td>'
            f'<td class="num">{_e(_p_value(p))}</td></tr>')
    # Fixed column widths: the suite tables of every section line up under each other.
    widths = "".join(f'<col style="width:{w}%">' for w in (22, 24, 7, 13, 13, 13, 8))
    return (f'<table class="suites"><colgroup>{widths}</colgroup><tr>'
            + "".join(f"<th>{_e(h)}</th>" for h in head) + "</tr>" + "".join(rows) + "</table>"
            '<p class="note">Each value with its interval below it. Δ is green when better and red when worse, '
            "only when its interval excludes 0; grey otherwise.</p>")


def _delta_plot(page: _Page, name: str, suites: list[dict[str, Any]], alt: str) -> str:
    bars = []
    for s in suites:
        value, low, high = _interval(s.get("delta"))
        if value is None:
            continue
        higher = s.get("higher_is_better")
        arrow = " ↑" if higher is True else " ↓" if higher is False else f" ({BIAS_IDEAL:g} ideal)"
        bars.append(plots.DeltaBar(label=f"{s.get('name', '?')} · {s.get('metric', '?')}{arrow}", value=value,
                                   low=low, high=high, judgement=judge(s)))
    if not bars:
        return ""
    return page.plot(name, plots.delta_chart(bars), alt)


def _task_html(page: _Page) -> str:
    run = page.run
    summary = run.eval_summary
    if summary is None:
        return _missing("Base vs tuned on the task", run.hint("eval"))
    parts = []
    base, tuned = summary.get("base") or {}, summary.get("tuned") or {}
    if isinstance(base, dict) and isinstance(tuned, dict) and (base or tuned):
        b_loss, t_loss = _number(base.get("loss")), _number(tuned.get("loss"))
        rel = t_loss / b_loss - 1 if b_loss and t_loss is not None else None
        cls = ("neutral" if rel is None or abs(rel) < TASK_LOSS_MIN_GAIN else "good" if rel < 0 else "bad")
        b_ppl, t_ppl = _number(base.get("perplexity")), _number(tuned.get("perplexity"))
        ppl_rel = t_ppl / b_ppl - 1 if b_ppl and t_ppl is not None else None
        rel_text = f" ({rel:+.1%})" if rel is not None else ""
        ppl_text = f" ({ppl_rel:+.1%})" if ppl_rel is not None else ""
        parts.append(
            "<table><tr><th>eval rows</th><th>base</th><th>tuned</th><th>change</th></tr>"
            f'<tr><td>loss</td><td class="num">{_fmt(b_loss)}</td><td class="num">{_fmt(t_loss)}</td>'
            f'<td class="num {cls}">{_e(_fmt(summary.get("delta_loss"), sign=True) + rel_text)}</td></tr>'
            f'<tr><td>perplexity</td><td class="num">{_fmt(b_ppl, 2)}</td><td class="num">{_fmt(t_ppl, 2)}</td>'
            f'<td class="num {cls}">{_e(ppl_text.strip(" ()") or "—")}</td></tr></table>'
            f'<p class="note">Scored on {_e(_int(tuned.get("rows")))} eval rows, {_e(_int(tuned.get("tokens")))} '
            f"trained tokens. Loss has no interval here: its change is coloured when it exceeds "
            f"{TASK_LOSS_MIN_GAIN:.0%}.</p>")
    else:
        parts.append(_missing("Eval loss base vs tuned", run.hint("eval")))
    task = run.suites("task")
    if task:
        parts.append("<h3>Task suites</h3>" + _suite_table(task))
        parts.append(_delta_plot(page, "task_deltas.png", task, "task suite deltas with intervals"))
    else:
        parts.append(_missing("Task suites", run.hint("task")))
    parts.append(_breakdown_html(run))
    return "".join(parts)


def _breakdown_html(run: Run) -> str:
    """The tables only some runs have (tunewise.tasks): a classifier against its baselines, each
    dataset of a mixture, and the stages table of a sequential run. Empty for any other run."""
    summary = run.eval_summary or {}
    parts = []
    block = summary.get("classification")
    if isinstance(block, dict) and isinstance(block.get("variants"), dict):
        deltas = block.get("tuned_vs") or {}
        rows = "".join(
            f"<tr><td>{_e(v.get('label', name))}</td>" + "".join(
                f'<td class="num">{_cell(v.get(m))}</td>' for m in ("accuracy", "f1_macro")) + "".join(
                f'<td class="num {judge({"delta": deltas[name][m], "higher_is_better": True})}">'
                f"{_cell(deltas[name][m], sign=True)}</td>" if isinstance(deltas.get(name), dict) else
                "<td>—</td>" for m in ("accuracy", "f1_macro")) + "</tr>"
            for name, v in block["variants"].items() if isinstance(v, dict))
        parts.append("<h3>Classification: the fine-tuned head and its baselines</h3><table><tr><th>model</th>"
                     "<th>accuracy</th><th>macro-F1</th><th>Δ tuned − this (accuracy)</th><th>Δ tuned − this "
                     f"(macro-F1)</th></tr>{rows}</table><p class=\"note\">On {_e(_int(block.get('rows')))} eval rows. "
                     "A new head starts random, so <i>base</i> in the tables above is the base model prompted "
                     "zero-shot with the label names.</p>")
    datasets = summary.get("datasets")
    if isinstance(datasets, list) and datasets:
        try:
            mixture = {m["name"]: m for m in json.loads((run.dir / "mixture.json").read_text(encoding="utf-8"))}
        except (OSError, ValueError, TypeError, KeyError):
            mixture = {}
        rows = "".join(
            f"<tr><td>{_e(d.get('name', '?'))}</td>"
            f'<td class="num">{_e(_fmt((mixture.get(d.get("name")) or {}).get("probability")))}</td>'
            f'<td class="num">{_e(_int(d.get("rows")))}</td>'
            f'<td class="num">{_e(_fmt((d.get("base") or {}).get("loss")))}</td>'
            f'<td class="num">{_e(_fmt((d.get("tuned") or {}).get("loss")))}</td>'
            f'<td class="num {judge({"delta": d.get("delta"), "higher_is_better": False})}">'
            f"{_cell(d.get('delta'), sign=True)}</td></tr>" for d in datasets if isinstance(d, dict))
        parts.append("<h3>Per dataset of the mixture</h3><table><tr><th>dataset</th><th>sampling probability</th>"
                     "<th>eval rows</th><th>base loss</th><th>tuned loss</th><th>Δ tuned − base</th></tr>"
                     f"{rows}</table>")
    try:  # a stage of a sequential run: its parent holds the stages table
        stages = json.loads((run.dir.parent / "stages_summary.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        stages = None
    if isinstance(stages, dict) and isinstance(stages.get("rows"), list):
        names = [str(s.get("name", "?")) for s in stages.get("stages") or []]
        this_row = f"after {run.dir.name.split('-', 1)[-1]}"  # stage directories are named <k>-<name>
        rows = ""
        for r in (r for r in stages["rows"] if isinstance(r, dict)):
            label = _e(r.get("model", "?"))
            rows += (f"<tr><td>{f'<b>{label}</b>' if r.get('model') == this_row else label}</td>"
                     + "".join(f'<td class="num">{_e(_fmt(v, 4))}</td>' for v in r.get("losses") or []) + "</tr>")
        parts.append("<h3>Per stage: eval loss on each stage's eval rows</h3><table><tr><th>model</th>"
                     + "".join(f"<th>{_e(n)}</th>" for n in names) + f"</tr>{rows}</table>"
                     '<p class="note">Sequential fine-tuning: each row is the model after that stage (lower is '
                     "better); a stage's column rising in later rows is forgetting (stages_summary.json).</p>")
    return "".join(parts)


def _variant_table(measure: str, variants: dict[str, Any], tuned_vs: dict[str, Any], *,
                   higher_is_better: bool, value_key: str | None, perplexity: bool) -> str:
    """One row per variant: its value with interval, and tuned − it with interval and p-value."""
    head = ["model and prompt", measure, *(["perplexity"] if perplexity else []), "examples in prompt",
            "Δ tuned − this", "p"]

    rows = []
    for name in ("base", *_ALTERNATIVES, "tuned"):
        part = variants.get(name)
        if not isinstance(part, dict):
            continue
        value = part.get(value_key) if value_key else part
        delta = tuned_vs.get(name) if name != "tuned" else None
        cls = "neutral"
        if isinstance(delta, dict):
            # Coloured from the fine-tune's side: green when it is better than this row.
            cls = {"good": "good", "bad": "bad"}.get(judge({"delta": delta, "higher_is_better": higher_is_better}),
                                                     "neutral")
        cells = [f"<td>{_e(part.get('label', name))}</td>", f'<td class="num">{_cell(value)}</td>']
        if perplexity:
            cells.append(f'<td class="num">{_e(_fmt(part.get("perplexity"), 2))}</td>')
        examples = _number(part.get("examples"))
        cells.append(f'<td class="num">{_e("—" if not examples else f"{examples:.1f}")}</td>')
        cells.append(f'<td class="num {cls}">{_cell(delta, sign=True) if isinstance(delta, dict) else "—"}</td>')
        cells.append(f'<td class="num">{_e(_p_value(delta.get("p_value")) if isinstance(delta, dict) else "—")}</td>')
        rows.append("<tr>" + "".join(cells) + "</tr>")
    return ("<table><tr>" + "".join(f"<th>{_e(h)}</th>" for h in head) + "</tr>" + "".join(rows) + "</table>")


def _baselines_html(page: _Page) -> str:
    run = page.run
    summary = run.eval_summary
    block = (summary or {}).get("baselines")
    if summary is None or not isinstance(block, dict):
        return _missing("Comparison with cheaper alternatives to fine-tuning", run.hint("baselines"))
    parts = ['<p class="note">Could the base model have done as well without training, given some of the '
             "training data in its prompt? Two cheaper alternatives, each scored on the same items as the "
             "fine-tune: a few-shot prompt (training examples drawn at random, the same for every prompt) and "
             "retrieval (the training examples nearest to each prompt by BM25). The examples go in as earlier "
             "chat turns.</p>"]
    parts += [f'<p class="{"good" if beat else "bad"}">{_prose(line)}</p>' for beat, line in worth_it(summary) or []]
    rows = block.get("eval_rows")
    if isinstance(rows, dict) and isinstance(rows.get("variants"), dict):
        variants, tuned_vs = rows["variants"], rows.get("tuned_vs") or {}
        parts.append("<h3>Eval rows: loss of the reference answers</h3>")
        parts.append(_variant_table("eval loss", variants, tuned_vs, higher_is_better=False,
                                    value_key="loss", perplexity=True))
        parts.append(f'<p class="note">The same {_e(_int(rows.get("tokens")))} answer tokens of '
                     f"{_e(_int(rows.get('rows')))} eval rows in every row of the table; only what comes before "
                     "them changes. Δ is green when the fine-tune is lower (better) with an interval that excludes "
                     "0, red when higher.</p>")
        bars = []
        for name in ("base", *_ALTERNATIVES, "tuned"):
            part = variants.get(name)
            value, low, high = _interval(part.get("loss") if isinstance(part, dict) else None)
            if value is None:
                continue
            bars.append(plots.DeltaBar(label=str(part.get("label", name)), value=value, low=low, high=high,
                                       judgement="good" if name == "tuned" else "neutral"))
        if bars:
            parts.append(page.plot("baselines.png", plots.value_chart(bars, xlabel="eval loss (lower is better)"),
                                   "eval loss of the base model, the cheaper alternatives and the fine-tune"))
        parts.append(_baseline_samples(summary, rows.get("samples")))
    else:
        parts.append('<p class="missing">The eval rows could not be scored with examples in the prompt '
                     "(see the notes below).</p>")
    for suite in block.get("suites") or []:
        if not isinstance(suite, dict) or not isinstance(suite.get("variants"), dict):
            continue
        parts.append(f"<h3>Task suite {_e(suite.get('name', '?'))}: {_e(suite.get('metric', '?'))} "
                     f"(n={_e(_int(suite.get('n')))})</h3>")
        parts.append(_variant_table(str(suite.get("metric", "value")), suite["variants"],
                                    suite.get("tuned_vs") or {}, higher_is_better=suite.get("higher_is_better")
                                    is not False, value_key=None, perplexity=False))
    notes = [str(n) for n in block.get("notes") or []]
    if notes:
        parts.append('<ul class="note">' + "".join(f"<li>{_e(n)}</li>" for n in notes) + "</ul>")
    return "".join(parts)


def _baseline_samples(summary: dict[str, Any], samples: Any) -> str:
    samples = [s for s in samples or [] if isinstance(s, dict)]
    if not samples:
        return ""
    tuned = {g.get("prompt"): g.get("tuned") for g in summary.get("generations") or [] if isinstance(g, dict)}
    block = summary.get("baselines") or {}
    out = ['<details><summary>Sample answers with examples in the prompt</summary>']
    for i, s in enumerate(samples, 1):
        cols = [("reference", s.get("reference"))]
        cols += [(_ALTERNATIVES[v][0].format(k=_k(summary, v)), s.get(v)) for v in _ALTERNATIVES
                 if v in s and isinstance(block.get(v), dict)]
        if s.get("prompt") in tuned:
            cols.append(("fine-tuned", tuned[s.get("prompt")]))
        body = "".join(f'<div><span class="label">{_e(label)}</span>{_e(text or "")}</div>' for label, text in cols)
        out.append(f'<div class="sample"><div class="prompt"><b>{i}.</b> {_e(s.get("prompt", ""))}</div>'
                   f'<div class="cols{" four" if len(cols) == 4 else ""}">{body}</div></div>')
    return "".join(out) + "</details>"


def _forgetting_html(page: _Page) -> str:
    """The forgetting monitor's curve and what its budgets did (forgetting.json), and the WiSE-FT
    sweep (wise_ft.json); empty when the run has neither."""
    run = page.run
    parts = []
    record = run.forgetting
    if record:
        points = [p for p in record.get("points") or [] if isinstance(p, dict) and _number(p.get("step")) is not None]
        base = record.get("base") if isinstance(record.get("base"), dict) else {}
        budgets = record.get("budgets") if isinstance(record.get("budgets"), dict) else {}
        names = [k for k in base if _number(base.get(k)) is not None]
        scores = {k: [(0, float(base[k]))] + [(int(p["step"]), float(p["scores"][k])) for p in points
                                              if _number((p.get("scores") or {}).get(k)) is not None] for k in names}
        kl = [(int(p["step"]), float(p["kl"])) for p in points if _number(p.get("kl")) is not None]
        if kl and _number(record.get("base_kl")) is not None:
            kl = [(0, float(record["base_kl"])), *kl]
        eval_loss = [(int(p["step"]), float(p["eval_loss"])) for p in points if _number(p.get("eval_loss")) is not None]
        floors = {k: float(base[k]) - float(b) for k, b in budgets.items() if k in base and _number(b) is not None}
        fired = [f for f in record.get("fired") or [] if isinstance(f, dict)]
        rollback = record.get("rollback") if isinstance(record.get("rollback"), dict) else None
        marker = None
        if rollback and rollback.get("restored"):
            marker = (int(rollback.get("step") or 0), f"rolled back to step {rollback.get('step')}")
        elif _number(record.get("stopped_at")) is not None:
            marker = (int(record["stopped_at"]), f"stopped at step {record['stopped_at']}")
        parts.append("<h3>During training: the forgetting monitor</h3>")
        if points:
            breached = [int(f["step"]) for f in fired if _number(f.get("step")) is not None]
            png = plots.forgetting_curve(eval_loss, scores, kl, floors=floors, kl_budget=_number(budgets.get("kl")),
                                         breach_steps=breached, marker=marker)
            parts.append(page.plot("forgetting_curve.png", png,
                                   "task eval loss, general scores and KL to base against the optimizer step"))
        else:
            parts.append('<p class="missing">The monitor scored the base model, but no eval ran during training '
                         "(set train.eval_every above 0 and keep eval rows).</p>")
        shown = ", ".join(f"{_e(k)} ≤ {_e(v)} drop" if k != "kl" else f"KL ≤ {_e(v)}" for k, v in budgets.items())
        notes = [f"Base model (step 0): {', '.join(f'{_e(k)} {_fmt(base[k])}' for k in names)}.",
                 f"Budgets: {shown or 'none set'}; action: <b>{_e(record.get('action', 'warn'))}</b>."]
        if fired:
            first = fired[0]
            reasons = "; ".join(f"{_e(b.get('key'))} {_fmt(b.get('value'))} > {_e(b.get('budget'))}"
                                for b in first.get("breaches") or [] if isinstance(b, dict))
            notes.append(f'<span class="bad">Budget breached at {len(fired)} eval(s), first at step '
                         f"{_e(first.get('step'))} ({reasons}).</span>")
        else:
            notes.append("No budget was breached.")
        if record.get("action") == "stop" and _number(record.get("stopped_at")) is not None:
            notes.append(f"<b>Action fired: stop</b> — training ended at step {_e(record['stopped_at'])}.")
        if rollback:
            what = "restored the weights of step" if rollback.get("restored") else "kept the final weights, step"
            notes.append(f"<b>Action fired: rollback</b> — {what} {_e(rollback.get('step'))} "
                         f"({_e(rollback.get('reason', ''))}).")
        elif fired and record.get("action") == "warn":
            notes.append("<b>Action fired: warn</b> — training went on; the final weights are the last step's.")
        parts.append(f'<p class="note">{" ".join(notes)}</p>')
    wise = run.wise_ft
    if wise:
        rows = [p for p in wise.get("points") or [] if isinstance(p, dict)]
        keys = list((rows[0].get("scores") or {}) if rows else [])
        has_kl = any(_number(p.get("kl")) is not None for p in rows)
        head = ["α", "eval loss", *keys, *(["KL to base"] if has_kl else []), "within budget"]
        body = []
        for p in rows:
            chosen = p.get("alpha") == wise.get("chosen")
            cells = [_fmt(p.get("alpha"), 2), _fmt(p.get("eval_loss"), 4),
                     *(f"{_fmt((p.get('scores') or {}).get(k))} ({_fmt((p.get('deltas') or {}).get(k), sign=True)})"
                       for k in keys), *([_fmt(p.get("kl"), 4)] if has_kl else []),
                     ("yes" if p.get("within_budget") else "no") + (" ← chosen" if chosen else "")]
            style = ' style="font-weight:600"' if chosen else ""
            body.append(f"<tr{style}>" + "".join(f'<td class="num">{_e(c)}</td>' for c in cells) + "</tr>")
        parts.append("<h3>After training: WiSE-FT, (1−α)·base + α·tuned</h3><table><tr>"
                     + "".join(f"<th>{_e(h)}</th>" for h in head) + "</tr>" + "".join(body) + "</table>"
                     + f'<p class="note">Kept α = {_fmt(wise.get("chosen"), 2)}: {_e(wise.get("reason", ""))}. '
                       f"The saved weights and every score above the WiSE-FT table are this interpolation's.</p>")
    return "".join(parts)


def _general_html(page: _Page) -> str:
    run = page.run
    general = run.suites("general")
    during = _forgetting_html(page)  # the monitor's curve and WiSE-FT, when the run has them
    if not general:
        return _missing("General capability (forgetting)", run.hint("general")) + during
    return (_suite_table(general) + _delta_plot(page, "general_deltas.png", general,
                                                 "general capability deltas with intervals")
            + f'<p class="note">Forgetting fires when a drop is significant, or larger than {FORGETTING_BUDGET:g} '
              f"even when its interval reaches 0.</p>" + during)


def _safety_html(page: _Page) -> str:
    run = page.run
    safety, bias = run.suites("safety"), run.suites("bias")
    parts = []
    parts.append("<h3>Safety</h3>" + (_suite_table(safety) if safety else _missing("Safety", run.hint("safety"))))
    parts.append("<h3>Bias</h3>" + (_suite_table(bias) if bias else _missing("Bias", run.hint("bias"))))
    both = [*(safety or []), *(bias or [])]
    if both:
        parts.append(_delta_plot(page, "safety_bias_deltas.png", both, "safety and bias deltas with intervals"))
    if bias:
        parts.append(f'<p class="note">Bias metrics are ideal at {BIAS_IDEAL:g} (no preference); a bias delta is '
                     f"judged by the distance from {BIAS_IDEAL:g}, not by its sign.</p>")
    return "".join(parts)


def _generations_html(page: _Page) -> str:
    run = page.run
    if run.eval_summary is None:
        return _missing("Sample generations", run.hint("eval"))
    samples = [g for g in run.eval_summary.get("generations") or [] if isinstance(g, dict)]
    if not samples:
        return _missing("Sample generations", run.hint("generations"))
    def answer(value: Any) -> str:
        text = "" if value is None else str(value)
        return _e(text) if text.strip() else '<span class="note"><i>(empty answer)</i></span>'

    out = []
    for i, g in enumerate(samples, 1):
        same = ' <span class="same">(same as base)</span>' if g.get("base") == g.get("tuned") else ""
        out.append(
            f'<div class="sample"><div class="prompt"><b>{i}.</b> {_e(g.get("prompt", ""))}</div><div class="cols">'
            f'<div><span class="label">reference</span>{answer(g.get("reference"))}</div>'
            f'<div><span class="label">base</span>{answer(g.get("base"))}</div>'
            f'<div><span class="label">tuned{same}</span>{answer(g.get("tuned"))}</div></div></div>')
    return '<p class="note">Greedy decoding, the same prompts for both models.</p>' + "".join(out)


def _cost_html(page: _Page) -> str:
    run = page.run
    ts = run.train_summary
    if ts is None:
        last = next((m for m in reversed(run.metrics or []) if _number(m.get("elapsed_s")) is not None), None)
        if last is None:
            return _missing("Cost", run.hint("train_summary"))
        return (_kv([("Wall time (from metrics.jsonl)", _duration(last.get("elapsed_s"))),
                     ("Steps", str(last.get("step", "—"))), ("Tokens seen", _int(last.get("tokens_seen")))])
                + _missing("Throughput, peak memory and trainable parameters", run.hint("train_summary")))
    steps = _number(ts.get("steps"))
    wall = _number(ts.get("wall_s"))
    per_step = f" ({wall / steps:.2f} s per step)" if wall and steps else ""
    return _kv([
        ("Wall time", _duration(wall) + per_step),
        ("Steps", _int(steps) + (" (interrupted)" if ts.get("interrupted") else "")),
        ("Tokens seen (not padding)", _int(ts.get("tokens_seen"))),
        ("Throughput", f"{_int(ts.get('tokens_per_s'))} tokens/s"),
        ("Peak memory (process RSS)", _megabytes(ts.get("peak_rss_mb"))),
        ("Trainable parameters", f"{_int(ts.get('trainable_parameters'))} of {_int(ts.get('total_parameters'))} "
                                 f"({_fmt(ts.get('trainable_percent'), 2)}%)"),
        ("Method", str(ts.get("method", "—"))),
        ("Last checkpoint", str(ts.get("checkpoint") or "—")),
    ])


_RENDERERS: dict[str, Callable[[_Page], str]] = {
    "verdict": _verdict_html,
    "summary": _summary_html,
    "curves": _curves_html,
    "task": _task_html,
    "baselines": _baselines_html,
    "general": _general_html,
    "safety": _safety_html,
    "generations": _generations_html,
    "cost": _cost_html,
}


def _render(run: Run) -> tuple[str, dict[str, bytes]]:
    page = _Page(run)
    sections = []
    for sid, title, _ in _SECTIONS:
        try:
            body = _RENDERERS[sid](page)
        except Exception as e:  # a malformed field must cost one section, never the whole report
            body = (f'<p class="missing">This section could not be rendered: {_e(type(e).__name__)}: {_e(e)}. '
                    f"One of the run's files is probably malformed.</p>")
        sections.append(f'<section id="{sid}"><h2>{_e(title)}</h2>{body}</section>')
    model = _section(run.config, "model").get("name", "?")
    method = _section(run.config, "method").get("type", "?")
    from tunewise import __version__

    nav = "".join(f'<a href="#{sid}">{_e(short)}</a>' for sid, _, short in _SECTIONS)
    doc = (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>tunewise report — {_e(run.dir.name)}</title><style>{_CSS}</style></head><body><main>"
        f"<header><h1>tunewise report — {_e(run.dir.name)}</h1>"
        f'<div class="sub">{_e(model)} · {_e(method)} · what the fine-tune gained and what it cost, '
        f"measured against the base model</div></header><nav>{nav}</nav>"
        + "".join(sections)
        + f"<footer>Built by tunewise {_e(__version__)} from {_e(run.dir)}. Rebuild with "
          f"<code>tunewise report {_e(run.dir)}</code>.</footer></main></body></html>\n")
    return doc, page.plots


def _write_atomic(path: Path, data: bytes) -> None:
    # Write then rename: a reader (a browser on auto-reload) never sees half a file.
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        tmp.write_bytes(data)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


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
    doc, pngs = _render(run)
    plot_dir = run.dir / "plots"
    plot_dir.mkdir(exist_ok=True)
    for name in _PLOT_NAMES:
        if name not in pngs:
            (plot_dir / name).unlink(missing_ok=True)  # a plot from an earlier build that no longer applies
    for name, png in pngs.items():
        _write_atomic(plot_dir / name, png)
    out = run.dir / "report.html"
    _write_atomic(out, doc.encode("utf-8"))
    return out
