"""Fit a prepared model on rendered rows with the transformers Trainer.

The Trainer brings the loop we would otherwise write by hand: schedules, gradient accumulation,
checkpoints with optimizer/scheduler/RNG state (so `train.resume` continues bit-for-bit), and the
progress bar. tunewise adds what it lacks: padding by position (see collate.py), a metrics file in
the run directory, a Ctrl-C that saves before it stops, named loss terms and the step/exponential
schedules (trainer.py), early stopping that keeps the best checkpoint (callbacks.py), and the checks
that find incompatible settings before the model loads (`check_training`). docs/training.md
describes every control.
"""

from __future__ import annotations

import contextlib
import math
import os
import resource
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from tunewise.config import TrainConfig
from tunewise.console import make_console
from tunewise.errors import ConfigError
from tunewise.rundir import RunDir
from tunewise.training.callbacks import EarlyStopping, GracefulInterrupt, MetricsLog, Progress, eval_metric_key
from tunewise.training.collate import PadCollator
from tunewise.training.dropout import set_dropout
from tunewise.training.loss import has_plain_head
from tunewise.training.optim import optimizer_arguments, schedule_arguments
from tunewise.training.packing import PackCollator, can_pack, packed_attention_for
from tunewise.training.terms import penalty_terms, reads_outputs
from tunewise.training.trainer import TunewiseTrainer

if TYPE_CHECKING:
    from collections.abc import Callable

    from transformers import PreTrainedModel, PreTrainedTokenizerBase, TrainerCallback

    from tunewise.data import Rendered
    from tunewise.training.terms import LossTerm

__all__ = [
    "FitResult",
    "check_training",
    "cpu_has_bf16",
    "fit",
    "last_checkpoint",
    "peak_rss_mb",
    "planned_steps",
    "resolve_precision",
]

console = make_console()


@dataclass
class FitResult:
    """What a training run did and what it cost."""

    steps: int
    interrupted: bool
    train_loss: float | None
    tokens_seen: int
    wall_s: float
    tokens_per_s: float
    peak_rss_mb: float
    checkpoint: str | None
    best_checkpoint: str | None = None
    """With early stopping: the checkpoint whose weights the model holds (and the saved adapter)."""
    best_metric: float | None = None
    stopped_early_at: int | None = None
    """The step at which early stopping ended the run; None when it ran to the end."""
    cpu_s: float = 0.0
    """CPU time of the process while training (all threads): steadier than wall time on a busy machine."""


def cpu_has_bf16() -> bool:
    """Whether this CPU computes bf16 in hardware (AVX512-BF16 or AMX), so bf16 autocast pays off."""
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def resolve_precision(precision: str) -> str:
    """Turn `auto` into what this hardware runs fastest without losing accuracy.

    bf16 autocast keeps fp32 master weights and pays off only with hardware bf16 (Ampere+ GPUs,
    CPUs with AVX512-BF16 or AMX); elsewhere it is emulated and slower than fp32.
    """
    if precision != "auto":
        return precision
    if torch.cuda.is_available():
        return "bf16" if torch.cuda.is_bf16_supported() else "fp16"
    return "bf16" if cpu_has_bf16() else "fp32"


def last_checkpoint(checkpoint_dir: Path) -> Path | None:
    """The newest `checkpoint-N` directory, or None."""
    if not checkpoint_dir.is_dir():
        return None
    found = [p for p in checkpoint_dir.glob("checkpoint-*") if p.name.split("-")[-1].isdigit()]
    return max(found, key=lambda p: int(p.name.split("-")[-1]), default=None)


class _RowDataset(torch.utils.data.Dataset):
    def __init__(self, rows: list[Rendered]) -> None:
        self.rows = rows

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, i: int) -> dict[str, list[int]]:
        row = self.rows[i]
        return {"input_ids": row.input_ids, "labels": row.labels}


def peak_rss_mb() -> float:
    """The peak resident memory of this process so far, in MB."""
    # ru_maxrss is KiB on Linux, bytes on macOS.
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (1024 * 1024) if sys.platform == "darwin" else peak / 1024


def planned_steps(train: TrainConfig, train_rows: int) -> int:
    """Optimizer steps the run will take: `max_steps`, else epochs over the rows (the Trainer's rule:
    a last partial accumulation still makes a step)."""
    if train.max_steps:
        return train.max_steps
    batches = math.ceil(train_rows / train.batch_size)
    per_epoch = max(batches // train.grad_accum + int(batches % train.grad_accum > 0), 1)
    return math.ceil(train.epochs * per_epoch)


def check_training(train: TrainConfig, *, train_rows: int, eval_rows: int) -> None:
    """Problems of the `train` section that need the data or the hardware to see, found before the
    model loads (the schema catches the rest when the config is read).

    Raises:
        ConfigError: every problem at once, each naming its key.
    """
    problems = []
    precision = resolve_precision(train.precision)
    if precision == "fp16" and not torch.cuda.is_available():
        problems.append(
            "train.precision: fp16 needs a CUDA GPU (CPUs have no fp16 training kernels); use bf16 or fp32 here"
        )
    if precision == "bf16" and torch.cuda.is_available() and not torch.cuda.is_bf16_supported():
        problems.append("train.precision: this GPU has no bf16; use fp16 or fp32")
    stopping = train.early_stopping
    if stopping.enabled and not eval_rows:
        problems.append(
            "train.early_stopping: there are no eval rows to judge on; set data.eval to a file "
            "or data.split.eval above 0"
        )
    steps = planned_steps(train, train_rows)
    if stopping.enabled and eval_rows and train.eval_every > steps:
        problems.append(
            f"train.early_stopping: the run has {steps} optimizer steps and evaluates every "
            f"{train.eval_every} (train.eval_every), so it could never stop early; "
            f"lower train.eval_every"
        )
    if train.scheduler == "step" and train.step_size and train.step_size >= steps:
        problems.append(
            f"train.step_size: {train.step_size} is not below the run's {steps} optimizer steps, "
            f"so the learning rate would never step down"
        )
    if problems:
        raise ConfigError(problems)


def _training_arguments(
    train: TrainConfig, checkpoints: Path, *, has_eval: bool, on_cpu: bool, packing: bool = False
) -> Any:
    from transformers import TrainingArguments

    precision = resolve_precision(train.precision)
    stopping = train.early_stopping.enabled and has_eval
    evaluating = bool(train.eval_every and has_eval)
    return TrainingArguments(
        output_dir=str(checkpoints),
        per_device_train_batch_size=train.batch_size,
        per_device_eval_batch_size=train.batch_size,
        gradient_accumulation_steps=train.grad_accum,
        learning_rate=train.lr,
        **optimizer_arguments(train),
        **schedule_arguments(train),
        warmup_steps=train.warmup_steps if train.warmup_steps is not None else train.warmup_ratio,
        weight_decay=train.weight_decay,
        max_grad_norm=train.max_grad_norm,
        num_train_epochs=train.epochs,
        max_steps=train.max_steps or -1,
        logging_steps=train.log_every,
        logging_first_step=True,
        eval_strategy="steps" if evaluating else "no",
        eval_steps=train.eval_every or None,
        save_strategy="steps",
        # The best checkpoint can only be one that was saved: with early stopping, every eval saves.
        save_steps=train.eval_every if stopping else train.save_every,
        save_total_limit=train.save_total_limit,
        load_best_model_at_end=stopping,
        metric_for_best_model=eval_metric_key(train.early_stopping.metric) if stopping else None,
        greater_is_better=train.early_stopping.mode == "max" if stopping else None,
        # The patience counter is part of the checkpoint: a resumed run does not start counting anew.
        restore_callback_states_from_checkpoint=stopping,
        neftune_noise_alpha=train.neftune_alpha,
        seed=train.seed,
        data_seed=train.seed,
        full_determinism=train.deterministic,
        bf16=precision == "bf16",
        fp16=precision == "fp16",
        activation_checkpointing=train.gradient_checkpointing,
        # Rows of similar length share a padded batch: far less padding computed. A packed batch has
        # no padding to save, so it takes random batches (each step's tokens spread over all lengths).
        train_sampling_strategy="group_by_length"
        if (train.group_by_length if train.group_by_length is not None else not packing)
        else "random",
        # A packed batch is all real tokens (and pad id == end-of-turn id would undercount them).
        include_num_input_tokens_seen="all" if packing else "non_padding",
        remove_unused_columns=False,
        report_to="none",
        use_cpu=on_cpu,
        dataloader_num_workers=0,
        disable_tqdm=False,
    )


def fit(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    train_rows: list[Rendered],
    eval_rows: list[Rendered],
    train: TrainConfig,
    run_dir: Path,
    *,
    resume: bool,
    callbacks: list[TrainerCallback] | None = None,
    terms: list[LossTerm] | None = None,
    monitors: list[TrainerCallback] | None = None,
    collator: Callable[[list[dict[str, Any]]], dict[str, torch.Tensor]] | None = None,
) -> FitResult:
    """Train `model` (already wrapped by its method) and save checkpoints under `run_dir`.

    With `train.early_stopping.enabled`, the model returned holds the best checkpoint's weights.

    Args:
        resume: continue from the newest checkpoint in `run_dir/checkpoints`.
        callbacks: more Trainer callbacks (the experiment trackers' `TrackMetrics`); they see each
            eval before early stopping does.
        terms: extra loss terms besides `train.penalty` (see training/terms.py).
        monitors: callbacks that see every event first, so that what they add to an eval's logs
            reaches metrics.jsonl, the trackers and early stopping (the forgetting monitor).
        collator: batches rows for a task whose labels are not per token (a class id per row:
            `tunewise.tasks.classification.LabelCollator`); None pads token labels (`PadCollator`).
    """
    from transformers.trainer_callback import ProgressCallback

    files = RunDir(run_dir)
    checkpoints = files.checkpoints
    start_from = last_checkpoint(checkpoints) if resume else None
    on_cpu = not torch.cuda.is_available()
    check_training(train, train_rows=len(train_rows), eval_rows=len(eval_rows))
    if train.dropout is not None:
        changed = set_dropout(model, train.dropout)
        if not changed:
            raise ConfigError(
                [
                    f"train.dropout: {type(model).__name__} has no dropout of its own to set; "
                    f"remove train.dropout (an adapter's dropout is method.dropout)"
                ]
            )
        console.print(f"dropout {train.dropout:g}: {', '.join(changed)}", highlight=False)
    all_terms = [*penalty_terms(train.penalty), *(terms or [])]
    # The fast path (docs/performance.md): padding-free packed batches and a loss computed on the
    # trained positions only. A term that reads the model's full logits on the batch (KL on the
    # batch), and other tasks with their own collator, keep padded batches and the model's own loss.
    fast = collator is None and not any(reads_outputs(t) for t in all_terms) and can_pack(model)
    # NEFTune scales its noise by the row length: one packed row would get the noise of a long row.
    packing = fast and train.packing and train.neftune_alpha is None
    args = _training_arguments(train, checkpoints, has_eval=bool(eval_rows), on_cpu=on_cpu, packing=packing)
    metrics = MetricsLog(files.metrics, resume_step=int(start_from.name.split("-")[-1]) if start_from else 0)
    interrupt = GracefulInterrupt()
    stopping = train.early_stopping
    early = EarlyStopping(stopping.patience, stopping.min_delta) if stopping.enabled and eval_rows else None
    trainer = TunewiseTrainer(
        model=model,
        args=args,
        train_dataset=_RowDataset(train_rows),
        eval_dataset=_RowDataset(eval_rows) if eval_rows else None,
        data_collator=collator
        or (PackCollator() if packing else PadCollator(pad_id=tokenizer.pad_token_id, multiple_of=1 if on_cpu else 8)),
        processing_class=tokenizer,
        callbacks=[*(monitors or []), metrics, interrupt, *(callbacks or []), *([early] if early else [])],
        train_config=train,
        terms=all_terms,
        label_only_loss=fast and has_plain_head(model),
        tokens_per_pass=train.tokens_per_pass if packing else None,
    )
    trainer.remove_callback(ProgressCallback)
    trainer.add_callback(Progress())
    if on_cpu:
        # Two physical cores: more threads than cores only adds contention.
        torch.set_num_threads(max(1, min(torch.get_num_threads(), os.cpu_count() or 1)))

    seen_before = 0
    if start_from is not None:
        # Read now: checkpoint rotation may delete the resumed checkpoint while training goes on.
        from transformers import TrainerState

        resumed = TrainerState.load_from_json(str(start_from / "trainer_state.json"))
        seen_before = int(resumed.num_input_tokens_seen or 0)
    started, cpu_started = time.monotonic(), time.process_time()
    with interrupt, packed_attention_for(model) if packing else contextlib.nullcontext():
        output = trainer.train(resume_from_checkpoint=str(start_from) if start_from else None)
    wall, cpu = time.monotonic() - started, time.process_time() - cpu_started
    # Mixed precision wraps model.forward in autocast in place; unwrap it so that whatever runs
    # next (the in-memory eval of `tunewise run`) computes exactly as a model loaded from disk.
    trainer.accelerator.unwrap_model(trainer.model, keep_fp32_wrapper=False)
    state = trainer.state
    tokens = int(state.num_input_tokens_seen or 0)
    newest = last_checkpoint(checkpoints)
    # A resumed run restores the callback from the checkpoint as a new object: look it up again.
    early = next((c for c in trainer.callback_handler.callbacks if isinstance(c, EarlyStopping)), None)
    return FitResult(
        steps=state.global_step,
        interrupted=interrupt.interrupted,
        train_loss=float(output.training_loss) if output.training_loss is not None else None,
        tokens_seen=tokens,
        wall_s=wall,
        tokens_per_s=(tokens - seen_before) / wall if wall > 0 else 0.0,
        peak_rss_mb=peak_rss_mb(),
        checkpoint=str(newest) if newest else None,
        best_checkpoint=state.best_model_checkpoint if early else None,
        best_metric=float(state.best_metric) if early and state.best_metric is not None else None,
        stopped_early_at=early.stopped_at if early else None,
        cpu_s=cpu,
    )
