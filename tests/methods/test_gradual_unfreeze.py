"""Gradual unfreezing on schedule: which parameters require grad at which step, each group's weights
bit-identical before its step and changed after, and every group in the optimizer from the start."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch
from transformers import TrainerCallback, TrainerState
from tuning import method, train_method

from tunewise.methods import METHODS
from tunewise.methods.gradual_unfreeze import GradualUnfreeze, unfreeze_groups
from tunewise.testing import tiny_model


def block(i: int, model: torch.nn.Module) -> set[str]:
    return {n for n, _ in model.named_parameters() if n.startswith(f"model.layers.{i}.")}


class Watch(TrainerCallback):
    """Per optimizer step: what requires grad as the step starts, and every weight after it."""

    def __init__(self) -> None:
        self.grad: list[set[str]] = []
        self.weights: list[dict[str, torch.Tensor]] = []
        self.optimizer_params: set[int] = set()
        self.optimizer: Any = None

    def on_train_begin(self, args, state, control, model=None, optimizer=None, **kwargs):
        self.optimizer = getattr(optimizer, "optimizer", optimizer)
        self.optimizer_params = {id(p) for group in self.optimizer.param_groups for p in group["params"]}

    def on_step_begin(self, args, state, control, model=None, **kwargs):
        self.grad.append({n for n, p in model.named_parameters() if p.requires_grad})

    def on_step_end(self, args, state, control, model=None, **kwargs):
        self.weights.append({n: p.detach().clone() for n, p in model.named_parameters()})


@pytest.mark.parametrize("schedule", [{"every_steps": 2}, {"every_epochs": 1.0}], ids=["steps", "epochs"])
def test_groups_unfreeze_on_schedule_and_only_then_change(tmp_path: Path, schedule: dict[str, Any]) -> None:
    # 8 rows / batch 4 = 2 steps per epoch, so both schedules unfreeze a group every 2 steps.
    watch = Watch()
    config = method(type="gradual_unfreeze", group_size=1, **schedule)
    run = train_method(tmp_path, config, steps=6, extra_callbacks=[watch], weight_decay=0.1, epochs=3)
    model = run.model
    b = {i: block(i, model) for i in range(4)}
    # Steps 1-2: block 3 alone; 3-4: blocks 3, 2; 5-6: blocks 3, 2, 1. Block 0 never (its turn is step 7).
    assert watch.grad == [b[3], b[3], b[3] | b[2], b[3] | b[2], b[3] | b[2] | b[1], b[3] | b[2] | b[1]]
    first_change = {}
    for i in range(4):
        for step, weights in enumerate(watch.weights, start=1):
            if any(not torch.equal(weights[n], run.before[n]) for n in b[i]):
                first_change[i] = step
                break
    assert first_change == {3: 1, 2: 3, 1: 5}, "a group is bit-identical until its unfreeze step, then moves"
    # Every parameter of a group that trained has moved (none left behind by the optimizer).
    assert b[3] | b[2] | b[1] == run.changed()
    assert run.loss_after < run.loss_before
    # The optimizer was built holding every group (the lower ones frozen then), not just the first.
    candidates = {id(p) for n, p in model.named_parameters() if n in b[0] | b[1] | b[2] | b[3]}
    assert candidates == watch.optimizer_params
    # A frozen group never got a gradient: no optimizer state, and weight decay never touched it.
    with_state = {id(p) for p in watch.optimizer.state}
    assert not ({id(p) for n, p in model.named_parameters() if n in b[0]} & with_state)


def test_groups_with_head_and_embeddings() -> None:
    model = tiny_model(seed=0, num_hidden_layers=4, tie_word_embeddings=False)
    groups = unfreeze_groups(
        model, method(type="gradual_unfreeze", group_size=3, train_head=True, train_embeddings=True)
    )
    assert set(groups[0]) == block(3, model) | block(2, model) | block(1, model) | {
        "model.norm.weight",
        "lm_head.weight",
    }
    assert set(groups[1]) == block(0, model)
    assert groups[2] == ["model.embed_tokens.weight"], "the input embeddings join last"


def test_schedule_resumes_from_the_step_it_stopped_at() -> None:
    model = METHODS["gradual_unfreeze"](
        tiny_model(seed=0, num_hidden_layers=4), method(type="gradual_unfreeze", group_size=1, every_steps=5)
    )
    callback = GradualUnfreeze(model, method(type="gradual_unfreeze", group_size=1, every_steps=5))
    assert [callback.groups_at(TrainerState(global_step=s)) for s in (0, 4, 5, 14, 15, 99)] == [1, 1, 2, 3, 4, 4]
    callback.on_train_begin(None, TrainerState(global_step=12, max_steps=20), None)
    trains = {n for n, p in model.named_parameters() if p.requires_grad}
    assert trains == block(3, model) | block(2, model) | block(1, model)
