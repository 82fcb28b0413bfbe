"""What every training objective provides (`Objective`).

An objective is the loss a run minimises: supervised fine-tuning today, preference objectives
(DPO, KTO, ORPO, SimPO, reward models) next. It is not a `method:`, which decides which weights
train (full, LoRA, QLoRA, ...): any method combines with any objective. Each objective is one module
holding one object that satisfies `Objective`, registered in the `OBJECTIVES` table of
`tunewise.objectives`; `Run.fit` hands it the model its method made and the rows its task rendered.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from collections.abc import Callable
    from pathlib import Path

    import torch
    from transformers import PreTrainedModel, PreTrainedTokenizerBase, TrainerCallback

    from tunewise.config import TrainConfig
    from tunewise.data import Rendered
    from tunewise.training.loop import FitResult
    from tunewise.training.terms import LossTerm

__all__ = ["Objective"]


class Objective(Protocol):
    """A training objective: its name (the `objective:` value), a one-line description, and `fit`."""

    name: str
    description: str

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
        """Train `model` (already wrapped by its method) on `train_rows`, checkpointing under `run_dir`.

        Args:
            model: the model the method made; trained in place (with early stopping, it ends holding
                the best checkpoint's weights).
            tokenizer: the run's tokenizer.
            train_rows: the task's rendered training rows, with the guard's replay rows mixed in.
            eval_rows: the rendered eval rows, scored every `train.eval_every` steps.
            train: the `train:` section; its keys decide steps, rate, precision and checkpoints.
            run_dir: the run directory; metrics.jsonl and checkpoints/ are written there.
            resume: continue from the newest checkpoint in `run_dir/checkpoints`.
            callbacks: more Trainer callbacks (the trackers', the method's, `tunewise tune`'s).
            terms: extra loss terms (the forgetting guard's regularizers).
            monitors: callbacks that see every event first (the forgetting monitor).
            collator: the task's batch collator; None pads token labels.

        Returns:
            What the training did and what it cost.
        """
        ...
