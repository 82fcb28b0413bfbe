"""Hyperparameter search with Optuna: `tunewise tune CONFIG` (docs/tune.md).

`search.py` runs the study, `space.py` turns `tune.space` into Optuna draws checked against the
config schema, `objectives.py` scores a trial from its eval summary, `callbacks.py` reports the
evals during training to the pruner, `report.py` writes the results.
"""

from tunewise.tune.objectives import forgetting, objective_values, trial_metrics
from tunewise.tune.search import search_dir, trial_config, tune
from tunewise.tune.space import apply_params, check_space

__all__ = ["apply_params", "check_space", "forgetting", "objective_values", "search_dir", "trial_config",
           "trial_metrics", "tune"]
