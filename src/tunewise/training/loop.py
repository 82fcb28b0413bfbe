"""Fit a prepared model on rendered rows with the transformers Trainer.

The Trainer brings the loop we would otherwise write by hand: schedules, gradient accumulation,
checkpoints with optimizer/scheduler/RNG state (so `train.resume` continues bit-for-bit), and the
progress bar. tunewise adds what it lacks: padding by position (see collate.py), a metrics file in
the run directory, and a Ctrl-C that saves before it stops.
"""

from __future__ import annotations

import os
import resource
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import torch

from tunewise.config import TrainConfig
from tunewise.training.callbacks import GracefulInterrupt, MetricsLog, Progress
from tunewise.training.collate import PadCollator

if TYPE_CHECKING:
    from transformers import PreTrainedModel, PreTrainedTokenizerBase, TrainerCallback

    from tunewise.data import Rendered

__all__ = ["FitResult", "fit", "last_checkpoint", "resolve_precision"]


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


def _cpu_has_bf16() -> bool:
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
    return "bf16" if _cpu_has_bf16() else "fp32"


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


def _peak_rss_mb() -> float:
    # ru_maxrss is KiB on Linux, bytes on macOS.
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (1024 * 1024) if sys.platform == "darwin" else peak / 1024


def fit(model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, train_rows: list[Rendered],
        eval_rows: list[Rendered], train: TrainConfig, run_dir: Path, *, resume: bool,
        callbacks: list[TrainerCallback] | None = None) -> FitResult:
    """Train `model` (already wrapped by its method) and save checkpoints under `run_dir`.

    Args:
        resume: continue from the newest checkpoint in `run_dir/checkpoints`.
        callbacks: more Trainer callbacks (the experiment trackers' `TrackMetrics`).
    """
    from transformers import Trainer, TrainingArguments
    from transformers.trainer_callback import ProgressCallback

    checkpoints = run_dir / "checkpoints"
    start_from = last_checkpoint(checkpoints) if resume else None
    precision = resolve_precision(train.precision)
    on_cpu = not torch.cuda.is_available()
    args = TrainingArguments(
        output_dir=str(checkpoints),
        per_device_train_batch_size=train.batch_size,
        per_device_eval_batch_size=train.batch_size,
        gradient_accumulation_steps=train.grad_accum,
        learning_rate=train.lr,
        lr_scheduler_type=train.scheduler,
        warmup_steps=train.warmup_steps if train.warmup_steps is not None else train.warmup_ratio,
        weight_decay=train.weight_decay,
        max_grad_norm=train.max_grad_norm,
        num_train_epochs=train.epochs,
        max_steps=train.max_steps or -1,
        logging_steps=train.log_every,
        logging_first_step=True,
        eval_strategy="steps" if train.eval_every and eval_rows else "no",
        eval_steps=train.eval_every or None,
        save_strategy="steps",
        save_steps=train.save_every,
        save_total_limit=train.save_total_limit,
        seed=train.seed,
        data_seed=train.seed,
        bf16=precision == "bf16",
        fp16=precision == "fp16",
        activation_checkpointing=train.gradient_checkpointing,
        # Rows of similar length share a batch: far less padding computed for nothing.
        train_sampling_strategy="group_by_length",
        include_num_input_tokens_seen="non_padding",
        remove_unused_columns=False,
        report_to="none",
        use_cpu=on_cpu,
        dataloader_num_workers=0,
        disable_tqdm=False,
    )
    train_set = _RowDataset(train_rows)
    metrics = MetricsLog(run_dir / "metrics.jsonl",
                         resume_step=int(start_from.name.split("-")[-1]) if start_from else 0)
    interrupt = GracefulInterrupt()
    trainer = Trainer(
        model=model,
        args=args,
        train_dataset=train_set,
        eval_dataset=_RowDataset(eval_rows) if eval_rows else None,
        data_collator=PadCollator(pad_id=tokenizer.pad_token_id, multiple_of=1 if on_cpu else 8),
        processing_class=tokenizer,
        callbacks=[metrics, interrupt, *(callbacks or [])],
    )
    trainer.remove_callback(ProgressCallback)
    trainer.add_callback(Progress())
    if on_cpu:
        # Two physical cores: more threads than cores only adds contention.
        torch.set_num_threads(max(1, min(torch.get_num_threads(), os.cpu_count() or 1)))

    started = time.monotonic()
    with interrupt:
        output = trainer.train(resume_from_checkpoint=str(start_from) if start_from else None)
    wall = time.monotonic() - started
    # Mixed precision wraps model.forward in autocast in place; unwrap it so that whatever runs
    # next (the in-memory eval of `tunewise run`) computes exactly as a model loaded from disk.
    trainer.accelerator.unwrap_model(trainer.model, keep_fp32_wrapper=False)
    state = trainer.state
    seen_before = 0
    if start_from is not None:
        from transformers import TrainerState
        seen_before = int(TrainerState.load_from_json(str(start_from / "trainer_state.json")).num_input_tokens_seen or 0)
    tokens = int(state.num_input_tokens_seen or 0)
    newest = last_checkpoint(checkpoints)
    return FitResult(
        steps=state.global_step,
        interrupted=interrupt.interrupted,
        train_loss=float(output.training_loss) if output.training_loss is not None else None,
        tokens_seen=tokens,
        wall_s=wall,
        tokens_per_s=(tokens - seen_before) / wall if wall > 0 else 0.0,
        peak_rss_mb=_peak_rss_mb(),
        checkpoint=str(newest) if newest else None,
    )
