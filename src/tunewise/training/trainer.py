"""The one subclass of the transformers Trainer: named loss terms and the hand-written schedules.

    loss = task + Σ weight_i · term_i

Each term is a `LossTerm` (see terms.py). Every training log carries `loss` (the total that was
minimised, as users expect), `loss/task` and one `loss/<name>` per term (already weighted, so the
parts add up to `loss`). Eval losses are the task loss alone: a penalty says nothing about how well
the model does on held-out rows, and early stopping must not be steered by it.
"""

from __future__ import annotations

from collections import defaultdict
from typing import TYPE_CHECKING, Any

import torch
from transformers import Trainer

from tunewise.training.optim import HAND_WRITTEN_SCHEDULES, build_schedule

if TYPE_CHECKING:
    from tunewise.config import TrainConfig
    from tunewise.training.terms import LossTerm

__all__ = ["TunewiseTrainer"]


class TunewiseTrainer(Trainer):
    """`transformers.Trainer` plus extra loss terms, each logged, and step/exponential schedules.

    Args:
        train_config: the `train` section (the schedule settings transformers has no names for).
        terms: extra loss terms; [] trains on the task loss alone.
        label_only_loss: compute the task loss from the trained positions' hidden states only
            (training/loss.py: no full-vocabulary logits for prompt and padding positions). Only
            for causal LMs with a plain output head, and only while no term reads the outputs
            (`reads_outputs`).
        tokens_per_pass: cut a packed batch (packing.py) into forward/backward passes of at most
            this many tokens: the same gradient, the activations of one pass alive at a time.
        **kwargs: everything `transformers.Trainer` takes.
    """

    def __init__(
        self,
        *args: Any,
        train_config: TrainConfig,
        terms: list[LossTerm] | None = None,
        label_only_loss: bool = False,
        tokens_per_pass: int | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        self.train_config = train_config
        self.terms = list(terms or [])
        self.label_only_loss = label_only_loss
        self.tokens_per_pass = tokens_per_pass
        names = [t.name for t in self.terms]
        if len(set(names)) != len(names) or "task" in names:
            raise ValueError(f"loss term names must be unique and not 'task': {names}")
        # Summed between two training logs, like the Trainer's own running loss.
        self._parts: dict[str, torch.Tensor] = defaultdict(lambda: torch.zeros((), device=self.args.device))
        self._parts_from: int | None = None  # the global step the sums started at
        self._terms_off = False  # the later passes of a batch cut into passes: terms count once per batch

    def create_scheduler(
        self, num_training_steps: int, optimizer: torch.optim.Optimizer | None = None
    ) -> torch.optim.lr_scheduler.LRScheduler:
        if self.lr_scheduler is None and self.train_config.scheduler in HAND_WRITTEN_SCHEDULES:
            optimizer = optimizer or self.optimizer
            if optimizer is None:  # the Trainer creates the optimizer before the schedule
                raise ValueError("create_scheduler needs an optimizer: call create_optimizer first")
            schedule = build_schedule(self.train_config, optimizer, num_training_steps)
            self.lr_scheduler = schedule
            self._created_lr_scheduler = True
            return schedule
        return super().create_scheduler(num_training_steps, optimizer)

    def _task_loss_is_scaled(self, num_items_in_batch: Any) -> bool:
        # The same rule as Trainer.training_step: the task loss comes back either already divided
        # over the accumulated batch (normalised by `num_items_in_batch`), or as this micro-batch's
        # mean, which the Trainer divides by the accumulation steps afterwards.
        if self.loss_is_scaled_for_ga is not None:
            return self.loss_is_scaled_for_ga
        return (
            bool(self.model_accepts_loss_kwargs and num_items_in_batch is not None)
            or self.compute_loss_func is not None
        )

    def training_step(
        self, model: torch.nn.Module, inputs: dict[str, Any], num_items_in_batch: Any = None
    ) -> torch.Tensor:
        # Passes add up to the batch only when each pass's loss is its share of the whole batch's
        # trained tokens (num_items_in_batch), never a mean of its own.
        if (
            self.tokens_per_pass
            and self.label_only_loss
            and "position_ids" in inputs
            and self._task_loss_is_scaled(num_items_in_batch)
        ):
            from tunewise.training.packing import split_packed

            parts = split_packed(inputs, self.tokens_per_pass)
            if len(parts) > 1:
                try:
                    total = super().training_step(model, parts[0], num_items_in_batch)
                    self._terms_off = True  # a term is added (and its gradient taken) with the first pass only
                    for part in parts[1:]:
                        total = total + super().training_step(model, part, num_items_in_batch)
                finally:
                    self._terms_off = False
                return total
        return super().training_step(model, inputs, num_items_in_batch)

    def compute_loss(
        self,
        model: torch.nn.Module,
        inputs: dict[str, Any],
        return_outputs: bool = False,
        num_items_in_batch: Any = None,
    ) -> Any:
        if self.label_only_loss and "labels" in inputs:
            from transformers.modeling_outputs import CausalLMOutputWithPast

            from tunewise.training.loss import causal_lm_loss

            # The decoder is called directly, past the autocast that wraps model.forward.
            with self.accelerator.autocast():
                task, _ = causal_lm_loss(model, inputs, num_items_in_batch)
            outputs = CausalLMOutputWithPast(loss=task)
        else:
            task, outputs = super().compute_loss(
                model, inputs, return_outputs=True, num_items_in_batch=num_items_in_batch
            )
        if not model.training or not self.terms:
            return (task, outputs) if return_outputs else task
        # A term is a per-optimizer-step quantity. When the task loss is already a share of the
        # accumulated batch, give each term the same share; otherwise the Trainer divides the whole
        # sum afterwards. Either way each term counts once per optimizer step.
        accumulated = self.current_gradient_accumulation_steps
        scaled = self._task_loss_is_scaled(num_items_in_batch)
        share = 1.0 / accumulated if scaled else 1.0
        logged = 1.0 if scaled else 1.0 / accumulated  # what this micro-batch adds to a step's loss
        if self._parts_from is None:
            self._parts_from = self.state.global_step
        total = task
        self._parts["task"] += task.detach() * logged
        if self._terms_off:
            return (total, outputs) if return_outputs else total
        for term in self.terms:
            value = term.weight * term(model, inputs, outputs) * share
            total = total + value
            self._parts[term.name] += value.detach() * logged
        return (total, outputs) if return_outputs else total

    def log(self, logs: dict[str, float], start_time: float | None = None) -> None:
        if "loss" in logs and self._parts and self._parts_from is not None:
            # Means per optimizer step since the last log, as the Trainer's own `loss`.
            steps = max(1, self.state.global_step - self._parts_from)
            for name, value in self._parts.items():
                logs[f"loss/{name}"] = float(value.item()) / steps
            self._parts.clear()
            self._parts_from = None
        super().log(logs, start_time)
