"""The Trainer callback a trial trains with: evals go to the pruner, a NaN loss ends the trial.

At every eval during training (`train.eval_every`) the callback reports `tune.prune_metric` to the
trial (`trial.report`) and asks the pruner whether to stop (`trial.should_prune`). Optuna's pruners
compare the reported values in the study's direction, so the value is turned to that direction:
with a study that maximizes and `eval_loss` (lower is better) the callback reports `-eval_loss`.

A training loss that becomes NaN or infinite stops training at once: the trial is recorded as
failed (the search goes on) instead of spending its remaining steps on a diverged model.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

from transformers import TrainerCallback, TrainerControl, TrainerState, TrainingArguments

from tunewise.training.callbacks import eval_metric_key

if TYPE_CHECKING:
    import optuna

__all__ = ["TrialCallback"]


class TrialCallback(TrainerCallback):
    """Report evals to an Optuna trial, stop on its pruner's say-so or on a non-finite loss.

    Args:
        trial: the trial; None reports nothing (a multi-objective study, which Optuna does not prune).
        metric: the eval metric reported (`eval_` is prepended when missing).
        sign: +1 or -1, what the metric is multiplied by so that the study's direction applies.

    Attributes:
        pruned_at: the step at which the pruner stopped the trial, or None.
        diverged_at: the step at which the training loss stopped being finite, or None.
        reported: (step, value) of every report, in order.
    """

    def __init__(self, trial: optuna.Trial | None, metric: str = "eval_loss", sign: float = 1.0) -> None:
        self.trial = trial
        self.metric = eval_metric_key(metric)
        self.sign = sign
        self.pruned_at: int | None = None
        self.diverged_at: int | None = None
        self.diverged_value: float | None = None
        self.reported: list[tuple[int, float]] = []

    def on_log(
        self,
        args: TrainingArguments,
        state: TrainerState,
        control: TrainerControl,
        logs: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        loss = (logs or {}).get("loss")
        if isinstance(loss, (int, float)) and not math.isfinite(loss) and self.diverged_at is None:
            self.diverged_at, self.diverged_value = state.global_step, float(loss)
            control.should_training_stop = True

    def on_evaluate(
        self,
        args: TrainingArguments,
        state: TrainerState,
        control: TrainerControl,
        metrics: dict[str, float] | None = None,
        **kwargs: Any,
    ) -> None:
        if self.trial is None or self.pruned_at is not None:
            return
        value = (metrics or {}).get(self.metric)
        if not isinstance(value, (int, float)):
            from tunewise.errors import ConfigError

            shown = ", ".join(sorted(k for k in metrics or {} if k.startswith("eval_")))
            raise ConfigError([f"tune.prune_metric: {self.metric} is not among the eval metrics ({shown})"])
        if not math.isfinite(value):
            return  # a diverged eval is the NaN guard's business, not the pruner's
        step = state.global_step
        self.trial.report(self.sign * float(value), step)
        self.reported.append((step, float(value)))
        if self.trial.should_prune():
            self.pruned_at = step
            control.should_training_stop = True
