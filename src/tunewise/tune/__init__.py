"""Hyperparameter search with Optuna: `tunewise tune CONFIG` (docs/tune.md).

`search.py` runs the trials, `study.py` opens the study (storage, sampler, pruner), `space.py`
turns `tune.space` into Optuna draws checked against the config schema, `objectives.py` scores a
trial from its eval summary, `callbacks.py` reports the evals during training to the pruner,
`report.py` writes the results.

Optuna is the `tune` extra (`pip install 'tunewise[tune]'`). Importing this package does not import
it; a search without it stops at once with a `MissingExtraError` naming the extra.
"""

from tunewise.tune.objectives import forgetting, objective_values, trial_metrics
from tunewise.tune.search import search_dir, trial_config, tune
from tunewise.tune.space import apply_params, check_space

__all__ = [
    "apply_params",
    "check_space",
    "forgetting",
    "objective_values",
    "search_dir",
    "trial_config",
    "trial_metrics",
    "tune",
]
