"""Trainer callbacks: the metrics log, the trackers, and a Ctrl-C that saves before it stops."""

from __future__ import annotations

import json
import signal
import time
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Any

from transformers import EarlyStoppingCallback, TrainerCallback, TrainerControl, TrainerState, TrainingArguments
from transformers.trainer_callback import ProgressCallback

from tunewise.errors import ConfigError
from tunewise.rundir import is_writer, write_text
from tunewise.tracking import metric_name

if TYPE_CHECKING:
    from tunewise.tracking import Tracker

__all__ = [
    "EarlyStopping",
    "GracefulInterrupt",
    "MetricsLog",
    "Progress",
    "TrackMetrics",
    "eval_metric_key",
    "progress_line",
]

# Logged key -> (shown name, format); keys not listed are left to metrics.jsonl.
_SHOWN = {
    "loss": ("loss", ".4f"),
    "eval_loss": ("eval loss", ".4f"),
    "learning_rate": ("lr", ".2e"),
    "grad_norm": ("grad norm", ".3g"),
}


def progress_line(step: int, max_steps: int, logs: dict[str, Any], tokens_per_s: float | None) -> str:
    """One readable line per log: `step 25/114  loss 1.2345  lr 4.87e-04  212 tokens/s`."""
    parts = [f"step {step}/{max_steps}"]
    parts += [
        f"{name} {logs[key]:{fmt}}" for key, (name, fmt) in _SHOWN.items() if isinstance(logs.get(key), (int, float))
    ]
    if tokens_per_s:
        parts.append(f"{tokens_per_s:.0f} tokens/s")
    return "  ".join(parts)


class Progress(ProgressCallback):
    """The Trainer's progress bar, with one readable line per log instead of a raw dict."""

    def __init__(self) -> None:
        super().__init__()
        self._last: tuple[float, int] | None = None

    def on_log(
        self,
        args: TrainingArguments,
        state: TrainerState,
        control: TrainerControl,
        logs: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        if not (state.is_world_process_zero and self.training_bar is not None and logs):
            return
        now, tokens = time.monotonic(), int(state.num_input_tokens_seen or 0)
        rate = None
        if self._last is not None and now > self._last[0] and tokens > self._last[1]:
            rate = (tokens - self._last[1]) / (now - self._last[0])
        if "loss" not in logs:  # an eval log: the rate is reported per training interval only
            rate = None
        else:
            self._last = (now, tokens)
        if any(key in logs for key in _SHOWN):
            self.training_bar.write(progress_line(state.global_step, state.max_steps, logs, rate))


class MetricsLog(TrainerCallback):
    """Append every logged dict (train loss, lr, eval loss, ...) to `metrics.jsonl` with its step.

    On resume, lines from after the checkpoint being resumed are dropped first, so the file tells
    one consistent story: each step appears once.
    """

    def __init__(self, path: Path, resume_step: int = 0) -> None:
        self.path = path
        self._start = time.monotonic()
        if resume_step and path.exists():
            kept = [
                line
                for line in path.read_text(encoding="utf-8").splitlines()
                if line.strip() and json.loads(line).get("step", 0) <= resume_step
            ]
            write_text(path, "".join(f"{line}\n" for line in kept))

    def on_log(
        self,
        args: TrainingArguments,
        state: TrainerState,
        control: TrainerControl,
        logs: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        if not logs:
            return
        record = {
            "step": state.global_step,
            "epoch": round(state.epoch or 0.0, 4),
            "tokens_seen": int(state.num_input_tokens_seen or 0),
            "elapsed_s": round(time.monotonic() - self._start, 2),
            **logs,
        }
        if not is_writer():
            return  # one process writes the run's files; the others log the same numbers
        # An append, not an atomic rewrite: the file is a stream, and a crash loses at most its last line.
        with self.path.open("a", encoding="utf-8") as f:
            f.write(json.dumps(record) + "\n")


class TrackMetrics(TrainerCallback):
    """Send every logged dict to the experiment trackers as it is logged (`loss` → `train/loss`,
    `eval_loss` → `eval/loss`), with the same step as metrics.jsonl.

    The Trainer's end-of-training summary (runtime, mean loss) is left out: it is not a point of
    any curve, and the run's cost goes to the trackers from train_summary.json.
    """

    def __init__(self, tracker: Tracker) -> None:
        self.tracker = tracker
        self._sent: tuple[int, set[str]] = (-1, set())

    def on_train_begin(
        self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kwargs: Any
    ) -> None:
        self.tracker.begin_training(state.global_step)  # the checkpoint's step when resuming

    def on_log(
        self,
        args: TrainingArguments,
        state: TrainerState,
        control: TrainerControl,
        logs: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        if not logs or "total_flos" in logs:  # the end-of-training summary
            return
        step = state.global_step
        if self._sent[0] != step:
            self._sent = (step, set())
        # A train and an eval log at the same step both carry `epoch`: one point per step and name.
        metrics = {metric_name(k): v for k, v in logs.items() if metric_name(k) not in self._sent[1]}
        self._sent[1].update(metrics)
        self.tracker.log_metrics(metrics, step)


class GracefulInterrupt(TrainerCallback):
    """The first Ctrl-C saves a checkpoint at the end of the current step and stops training.

    A second Ctrl-C interrupts at once (the default behaviour is restored after the first).
    Use as a context manager around `trainer.train()` so the handler never outlives training.
    """

    def __init__(self) -> None:
        self.interrupted = False
        self._previous: Any = None

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        self.interrupted = True
        signal.signal(signal.SIGINT, self._previous or signal.default_int_handler)
        print("\nInterrupted: saving a checkpoint at the end of this step (Ctrl-C again to abort now).", flush=True)

    def __enter__(self) -> GracefulInterrupt:
        self._previous = signal.signal(signal.SIGINT, self._handle)
        return self

    def __exit__(self, *exc: object) -> None:
        signal.signal(signal.SIGINT, self._previous or signal.default_int_handler)

    def on_step_end(self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kwargs: Any) -> None:
        if self.interrupted:
            control.should_save = True
            control.should_training_stop = True


def eval_metric_key(metric: str) -> str:
    """The logged key of an eval metric: `loss` and `eval_loss` are both `eval_loss`."""
    return metric if metric.startswith("eval_") else f"eval_{metric}"


class EarlyStopping(EarlyStoppingCallback):
    """Stop after `patience` evals in a row without an improvement larger than `min_delta`.

    transformers' callback compares each eval with the best value so far, and that best moves on
    *every* improvement, however small: a metric creeping down by less than `min_delta` per eval
    would never count as improving, even after it has moved far more than `min_delta` in total.
    Here the reference moves only on an improvement that counts (as in Keras), so a slow steady
    improvement resets the patience once it adds up to `min_delta`.

    The best checkpoint itself is the Trainer's (`load_best_model_at_end`): the strictly best
    evaluated step, restored at the end of training.
    """

    def __init__(
        self,
        early_stopping_patience: int = 1,
        early_stopping_threshold: float | None = 0.0,
        reference: float | None = None,
    ) -> None:
        super().__init__(early_stopping_patience, early_stopping_threshold)
        self.reference = reference
        self.stopped_at: int | None = None

    def check_metric_value(
        self, args: TrainingArguments, state: TrainerState, control: TrainerControl, metric_value: float
    ) -> None:
        delta = self.early_stopping_threshold or 0.0
        if self.reference is None:
            improved = True
        elif args.greater_is_better:
            improved = metric_value > self.reference + delta
        else:
            improved = metric_value < self.reference - delta
        if improved:
            self.reference = float(metric_value)
            self.early_stopping_patience_counter = 0
        else:
            self.early_stopping_patience_counter += 1

    # The signature of transformers' EarlyStoppingCallback.on_evaluate, which itself requires `metrics`
    # where TrainerCallback declares only **kwargs (the Trainer always passes `metrics=`).
    def on_evaluate(  # type: ignore[override]
        self,
        args: TrainingArguments,
        state: TrainerState,
        control: TrainerControl,
        metrics: dict[str, float],
        **kwargs: Any,
    ) -> None:
        key = eval_metric_key(args.metric_for_best_model or "eval_loss")
        if key not in metrics:
            numeric = [k for k, v in metrics.items() if k.startswith("eval_") and isinstance(v, (int, float))]
            shown = ", ".join(sorted(numeric))
            raise ConfigError([f"train.early_stopping.metric: {key} is not among the eval metrics ({shown})"])
        super().on_evaluate(args, state, control, metrics, **kwargs)
        # Not `control.should_training_stop`: that is also set when the last step is an eval step.
        if self.early_stopping_patience_counter >= self.early_stopping_patience and self.stopped_at is None:
            self.stopped_at = state.global_step

    def state(self) -> dict[str, Any]:
        saved = super().state()
        saved["args"]["reference"] = self.reference
        return saved
