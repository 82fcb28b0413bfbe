"""Supervised fine-tuning: next-token cross-entropy on the rows the task rendered (`objective: sft`)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from tunewise.training.loop import fit

if TYPE_CHECKING:
    from collections.abc import Callable
    from pathlib import Path

    import torch
    from transformers import PreTrainedModel, PreTrainedTokenizerBase, TrainerCallback

    from tunewise.config import TrainConfig
    from tunewise.data import Rendered
    from tunewise.training.loop import FitResult
    from tunewise.training.terms import LossTerm

__all__ = ["OBJECTIVE", "SFT"]


class SFT:
    """Supervised fine-tuning: the training loop of `tunewise.training.loop` as it is.

    The loss is the task's own (cross-entropy on the trained tokens, or on the class id for a
    classification head) plus the guard's loss terms; `tunewise.training.loop.fit` documents the rest.
    """

    name = "sft"
    description = "supervised fine-tuning on the rendered rows"

    def fit(
        self,
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
        """Train with the training loop (see `Objective.fit` for the arguments)."""
        return fit(
            model,
            tokenizer,
            train_rows,
            eval_rows,
            train,
            run_dir,
            resume=resume,
            callbacks=callbacks,
            terms=terms,
            monitors=monitors,
            collator=collator,
        )


OBJECTIVE = SFT()
