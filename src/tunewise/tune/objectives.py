"""What a trial is scored on, read from the `eval_summary.json` every trial writes.

| metric | value | direction |
|---|---|---|
| `eval_loss` | tuned loss on the eval rows | minimize |
| `perplexity` | tuned perplexity on the eval rows | minimize |
| `forgetting` | mean drop of the general suites, tuned vs base, in each metric's units (> 0: worse) | minimize |
| any `cv_summary.json` name | e.g. `suite/<name>/<metric>/tuned`, `suite/<name>/<metric>/delta`, `eval_loss/delta` | set `direction` |

`forgetting` is the same measure as the report card's forgetting rule (`report/rules.py`): for each
general suite, how much worse tuned is than base (accuracy down, or a lower-is-better metric up),
averaged over the general suites; a trial that improves them scores below 0.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from tunewise.config import Config, TuneObjective
from tunewise.errors import ConfigError, TunewiseError
from tunewise.rundir import EvalSummary

__all__ = ["MINIMIZED", "check_objectives", "directions", "forgetting", "objective_values", "trial_metrics"]

MINIMIZED = ("eval_loss", "perplexity", "forgetting")
"""Objectives whose direction is known: lower is better."""


def _general_suites(config: Config) -> list[str]:
    from tunewise.evaluation.suite_eval import BUILTIN_ROLES

    return [
        s.name
        for s in config.eval.suites
        if s.role == "general" or (s.role == "auto" and BUILTIN_ROLES.get(s.name) == "general")
    ]


def check_objectives(config: Config) -> None:
    """Problems of `tune.objectives` (and of the pruner with them), found before any trial.

    Raises:
        ConfigError: every problem at once, each naming its key.
    """
    tune = config.tune
    problems: list[str] = []
    suites = {s.name for s in config.eval.suites}
    for i, objective in enumerate(tune.objectives):
        key = f"tune.objectives.{i}"
        metric = objective.metric
        if metric not in MINIMIZED and objective.direction == "auto":
            problems.append(
                f"{key}.direction: say whether {metric} should go up or down: direction: maximize "
                f"(accuracy, scores) or minimize (losses); only {', '.join(MINIMIZED)} know their own"
            )
        if metric == "forgetting" and not _general_suites(config):
            problems.append(
                f"{key}.metric: forgetting is the drop of the general suites vs base, and eval.suites has "
                f"none; add general_knowledge or chat (or a suite with role: general) to eval.suites"
            )
        if metric.startswith("suite/"):
            name = metric.split("/")[1] if metric.count("/") >= 3 else None
            # Suite names may be paths holding slashes: match the configured names as prefixes.
            if name is None or not any(metric.startswith(f"suite/{s}/") for s in suites):
                problems.append(
                    f"{key}.metric: {metric} names no suite of eval.suites ({', '.join(sorted(suites)) or 'none'}); "
                    f"write suite/<suite name>/<metric>/tuned"
                )
        elif metric not in MINIMIZED and "/" not in metric:
            problems.append(
                f"{key}.metric: unknown metric {metric!r}; use eval_loss, perplexity, forgetting, or a "
                f"name like suite/<suite>/<metric>/tuned (docs/tune.md)"
            )
    metrics = [o.metric for o in tune.objectives]
    if len(set(metrics)) != len(metrics):
        problems.append(f"tune.objectives: {metrics} repeats a metric; give two different ones")
    if len(tune.objectives) > 1 and tune.pruner not in ("auto", "none"):
        problems.append(
            f"tune.pruner: {tune.pruner} prunes single-objective searches only (Optuna cannot compare "
            f"the intermediate results of a multi-objective trial); set tune.pruner: none, or keep one "
            f"objective"
        )
    if tune.pruner not in ("auto", "none") and config.train.eval_every == 0:
        problems.append(
            f"tune.pruner: {tune.pruner} judges the evals during training, and train.eval_every is 0 "
            f"(evaluate only at the end); set train.eval_every above 0, or tune.pruner: none"
        )
    if problems:
        raise ConfigError(problems)


def directions(objectives: Sequence[TuneObjective]) -> list[str]:
    """Optuna's study directions, one per objective."""
    return ["minimize" if o.direction == "auto" else o.direction for o in objectives]


def forgetting(summary: Mapping[str, Any]) -> float | None:
    """Mean over the general suites of how much worse tuned is than base (None: no general suite scored)."""
    from tunewise.report import harm

    found = [harm(s) for s in summary.get("suites") or [] if isinstance(s, dict) and s.get("role") == "general"]
    harms = [h for h in found if h is not None]
    return sum(harms) / len(harms) if harms else None


def trial_metrics(summary: Mapping[str, Any]) -> dict[str, float]:
    """Every number a trial can be scored on: `cv_summary.json`'s names plus the short ones above."""
    out = EvalSummary.from_dict(summary).metrics()
    if "eval_loss/tuned" in out:
        out["eval_loss"] = out["eval_loss/tuned"]
    if "perplexity/tuned" in out:
        out["perplexity"] = out["perplexity/tuned"]
    lost = forgetting(summary)
    if lost is not None:
        out["forgetting"] = lost
    return out


def objective_values(summary: Mapping[str, Any], objectives: Sequence[TuneObjective]) -> list[float]:
    """The trial's value for each objective.

    Raises:
        TunewiseError: a metric is missing from the summary or is not a finite number (the trial fails).
    """
    metrics = trial_metrics(summary)
    values = []
    for objective in objectives:
        value = metrics.get(objective.metric)
        if value is None:
            raise TunewiseError(
                f"objective {objective.metric}: not in this trial's eval summary; measured: "
                f"{', '.join(sorted(metrics))}"
            )
        if not math.isfinite(value):
            raise TunewiseError(f"objective {objective.metric} is {value} (the training diverged?)")
        values.append(float(value))
    return values
