"""Trainer callbacks: the metrics log and a Ctrl-C that saves before it stops."""

from __future__ import annotations

import json
import signal
import time
from pathlib import Path
from types import FrameType
from typing import Any

from transformers import TrainerCallback, TrainerControl, TrainerState, TrainingArguments

__all__ = ["GracefulInterrupt", "MetricsLog"]


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
