"""ULMFiT-style gradual unfreezing: train the top block group first, then one more group down at a time.

The top layers adapt first while the lower, more general ones stay put; each lower group joins
once the layers above have settled, which is gentler on what the model already knew than
unfreezing everything at step 0 (Howard & Ruder, 2018).

How newly unfrozen parameters get optimized: the Trainer builds its optimizer once, from the
parameters that require grad at that moment. So `apply_gradual_unfreeze` marks *every* group
trainable (the optimizer holds them all from the start), and `GradualUnfreeze`, a Trainer callback,
freezes the groups whose turn has not come before the first step. A frozen parameter gets no
gradient, and AdamW skips a parameter whose `.grad` is None — no update, no weight decay, no
state — until its group's step, when its `requires_grad` turns on.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, cast

from transformers import TrainerCallback

from tunewise.methods.layout import layout
from tunewise.methods.weights import keep_originals

if TYPE_CHECKING:
    from transformers import PreTrainedModel, TrainerControl, TrainerState, TrainingArguments

    from tunewise.config import GradualUnfreezeConfig

__all__ = ["GradualUnfreeze", "apply_gradual_unfreeze", "unfreeze_groups"]

_GROUPS = "_tunewise_unfreeze_groups"


def unfreeze_groups(model: PreTrainedModel, method: GradualUnfreezeConfig) -> list[list[str]]:
    """Parameter names per group, in unfreezing order: the top `group_size` blocks (with the head
    when `train_head`), the next blocks down, ..., and the input embeddings last when
    `train_embeddings`. A tied embedding/head matrix goes with the head, at the start."""
    parts = layout(model)
    blocks = parts.blocks[::-1]
    groups = [
        [n for block in blocks[i : i + method.group_size] for n in block]
        for i in range(0, len(blocks), method.group_size)
    ]
    if method.train_head:
        groups[0] = parts.head + groups[0]
    if method.train_embeddings:
        taken = {n for group in groups for n in group}
        embeddings = [n for n in parts.embeddings if n not in taken]
        if embeddings:
            groups.append(embeddings)
    return groups


def apply_gradual_unfreeze(model: PreTrainedModel, method: GradualUnfreezeConfig) -> PreTrainedModel:
    """Mark every group trainable (so the optimizer holds them all) and remember the groups;
    `GradualUnfreeze` then freezes all but the first before the first step."""
    groups = unfreeze_groups(model, method)
    candidates = {n for group in groups for n in group}
    keep_originals(model, candidates)
    for name, param in model.named_parameters():
        param.requires_grad_(name in candidates)
    setattr(model, _GROUPS, groups)
    return model


class GradualUnfreeze(TrainerCallback):
    """Sets `requires_grad` per group from the step (or epoch) the Trainer is at; resumes correctly."""

    def __init__(
        self, model: PreTrainedModel, method: GradualUnfreezeConfig, log: Callable[[str], Any] | None = None
    ) -> None:
        groups = getattr(model, _GROUPS, None)
        if groups is None:
            raise ValueError("GradualUnfreeze needs a model prepared by apply_gradual_unfreeze")
        params = dict(model.named_parameters())
        self.groups = [[params[n] for n in group] for group in groups]
        self.method = method
        self.log = log or (lambda line: None)
        self.active = 0

    def groups_at(self, state: TrainerState) -> int:
        """How many groups train at the optimizer step about to be taken."""
        if self.method.every_steps is not None:
            reached = state.global_step // self.method.every_steps
        else:
            # state.epoch counts finished steps as fractions of an epoch; the epsilon absorbs rounding.
            # The config sets exactly one of every_steps and every_epochs.
            reached = int((state.epoch or 0.0) / cast(float, self.method.every_epochs) + 1e-9)
        return min(len(self.groups), 1 + reached)

    def _set(self, state: TrainerState) -> None:
        active = self.groups_at(state)
        if active == self.active:
            return
        for i, group in enumerate(self.groups):
            for param in group:
                param.requires_grad_(i < active)
        if self.active:
            self.log(f"gradual unfreeze: step {state.global_step + 1}, group {active}/{len(self.groups)} joins")
        self.active = active

    def on_train_begin(
        self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kwargs: Any
    ) -> None:
        self.active = 0
        self._set(state)
        every = (
            f"{self.method.every_steps} steps"
            if self.method.every_steps is not None
            else f"{self.method.every_epochs:g} epochs"
        )
        if self.method.every_steps is not None:
            last = 1 + (max(state.max_steps, 1) - 1) // self.method.every_steps
        else:
            last = 1 + int(float(state.num_train_epochs or 0) / cast(float, self.method.every_epochs) - 1e-9)
        self.log(
            f"gradual unfreeze: {len(self.groups)} groups, the next one down every {every}; "
            f"{self.active} training now, {min(last, len(self.groups))} by the end of this run"
        )

    def on_step_begin(
        self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kwargs: Any
    ) -> None:
        self._set(state)
