"""The public run API: one fine-tune as `Run` phases, and the verbs built on them.

    from tunewise import load_config
    from tunewise.run import Run

    run = Run(load_config("demo.yaml"), "demo.yaml")
    run.preflight()    # every check, nothing written
    run.fit()          # train
    run.save()         # adapter/
    run.evaluate()     # base vs tuned, eval_summary.json
    run.report()       # report.html

`train`, `evaluate` and `run` are what the CLI verbs call; `tunewise cv`, `tunewise tune` and the
sequential stages (`stages.py`) drive `Run` the same way.
"""

from __future__ import annotations

import sys
import types
from pathlib import Path

from tunewise.config import Config
from tunewise.run._run import (
    Preflight,
    Run,
    check_prepared,
    config_text,
    find_run_dir,
    new_run_dir,
    report_check,
)
from tunewise.run._verbs import evaluate, run, train
from tunewise.rundir import EvalSummary, RunDir, TrainSummary
from tunewise.tasks import Prepared, load_tokenizer_for, prepare_data

__all__ = [
    "EvalSummary",
    "Preflight",
    "Prepared",
    "Run",
    "RunDir",
    "TrainSummary",
    "check_prepared",
    "config_text",
    "evaluate",
    "find_run_dir",
    "load_tokenizer_for",
    "new_run_dir",
    "prepare_data",
    "report_check",
    "run",
    "train",
]


class _CallablePackage(types.ModuleType):
    """`tunewise.run` is this package and, for the library API's sake, the `run` verb as well:
    once the package is imported, Python's import system makes it the `tunewise.run` attribute, and
    `tunewise.run(config)` must keep working."""

    def __call__(self, config: Config, config_path: str | Path | None = None) -> Path:
        return run(config, config_path)


sys.modules[__name__].__class__ = _CallablePackage
