"""Trainer callbacks: the metrics log, the trackers, and a Ctrl-C that saves before it stops."""

from __future__ import annotations

import json
import signal
import time
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Any

from transformers import TrainerCallback, TrainerControl, TrainerState, TrainingArguments
from transformers.trainer_callback import ProgressCallback

from tunewise.tracking import metric_name

if TYPE_CHECKING:
    from tunewise.tracking import Tracker

__all__ = ["GracefulInterrupt", "MetricsLog", "Progress", "TrackMetrics", "progress_line"]

# Logged key -> (shown name, format); keys not listed are left to metrics.jsonl.
_SHOWN = {"loss": ("loss", ".4f"), "eval_loss": ("eval loss", ".4f"), "learning_rate": ("lr", ".2e"),
          "grad_norm": ("grad norm", ".3g")}


def progress_line(step: int, max_steps: int, logs: dict[str, Any], tokens_per_s: float | None) -> str:
    """One readable line per log: `step 25/114  loss 1.2345  lr 4.87e-04  212 tokens/s`."""
    parts = [f"step {step}/{max_steps}"]
    parts += [f"{name} {logs[key]:{fmt}}" for key, (name, fmt) in _SHOWN.items()
              if isinstance(logs.get(key), (int, float))]
    if tokens_per_s:
        parts.append(f"{tokens_per_s:.0f} tokens/s")
    return "  ".join(parts)


class Progress(ProgressCallback):
    """The Trainer's progress bar, with one readable line per log instead of a raw dict."""

    def __init__(self) -> None:
        super().__init__()
        self._last: tuple[float, int] | None = None

    def on_log(self, args: TrainingArguments, state: TrainerState, control: TrainerControl,
               logs: dict[str, Any] | None = None, **kwargs: Any) -> None:
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
            kept = [line for line in path.read_text(encoding="utf-8").splitlines()
                    if line.strip() and json.loads(line).get("step", 0) <= resume_step]
            path.write_text("".join(f"{line}\n" for line in kept), encoding="utf-8")

    def on_log(self, args: TrainingArguments, state: TrainerState, control: TrainerControl,
               logs: dict[str, Any] | None = None, **kwargs: Any) -> None:
        if not logs:
            return
        record = {"step": state.global_step, "epoch": round(state.epoch or 0.0, 4),
                  "tokens_seen": int(state.num_input_tokens_seen or 0),
                  "elapsed_s": round(time.monotonic() - self._start, 2), **logs}
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

    def on_train_begin(self, args: TrainingArguments, state: TrainerState, control: TrainerControl,
                       **kwargs: Any) -> None:
        self.tracker.begin_training(state.global_step)  # the checkpoint's step when resuming

    def on_log(self, args: TrainingArguments, state: TrainerState, control: TrainerControl,
               logs: dict[str, Any] | None = None, **kwargs: Any) -> None:
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

    def on_step_end(self, args: TrainingArguments, state: TrainerState, control: TrainerControl,
                    **kwargs: Any) -> None:
        if self.interrupted:
            control.should_save = True
            control.should_training_stop = True
