"""Optimizers and learning-rate schedules: transformers' own where it has them, two by hand.

`train.optimizer` maps onto the Trainer's `optim` names (AdamW, Adafactor, SGD); the schedules
`linear`, `cosine`, `cosine_with_restarts`, `constant` and `constant_with_warmup` are the Trainer's
`lr_scheduler_type`. transformers has no step or exponential decay, so those two are LambdaLR
multipliers below, each after the same linear warmup as the others.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import torch

if TYPE_CHECKING:
    from tunewise.config import TrainConfig

__all__ = ["HAND_WRITTEN_SCHEDULES", "build_schedule", "optimizer_arguments", "schedule_arguments", "warmup_steps"]

HAND_WRITTEN_SCHEDULES = ("step", "exponential")


def optimizer_arguments(train: TrainConfig) -> dict[str, Any]:
    """`TrainingArguments` keywords for `train.optimizer` and its settings."""
    from transformers import TrainingArguments

    if train.optimizer == "adamw":
        # transformers' default AdamW (the fused kernel on torch >= 2.8): same maths, fewer passes.
        return {
            "optim": TrainingArguments.default_optim,
            "adam_beta1": train.betas[0],
            "adam_beta2": train.betas[1],
            "adam_epsilon": train.eps,
        }
    if train.optimizer == "adafactor":
        # transformers' Adafactor with a fixed lr (relative_step=False): the schedule stays ours.
        return {"optim": "adafactor"}
    return {"optim": "sgd", "optim_args": f"momentum={train.momentum}"}


def schedule_arguments(train: TrainConfig) -> dict[str, Any]:
    """`TrainingArguments` keywords for `train.scheduler`.

    The hand-written schedules travel as `constant` here; `TunewiseTrainer.create_scheduler`
    replaces that with `build_schedule`.
    """
    if train.scheduler in HAND_WRITTEN_SCHEDULES:
        return {"lr_scheduler_type": "constant"}
    kwargs = {"num_cycles": train.num_cycles} if train.scheduler == "cosine_with_restarts" else None
    return {"lr_scheduler_type": train.scheduler, "lr_scheduler_kwargs": kwargs}


def warmup_steps(train: TrainConfig, total_steps: int) -> int:
    """Warmup in optimizer steps: `warmup_steps` when set, else `warmup_ratio` of the run (rounded up),
    the same rule as `TrainingArguments.get_warmup_steps`."""
    if train.warmup_steps is not None:
        return train.warmup_steps
    return math.ceil(total_steps * train.warmup_ratio)


def _multiplier(train: TrainConfig, warmup: int) -> Callable[[int], float]:
    gamma = train.gamma if train.gamma is not None else 0.1

    def factor(step: int) -> float:
        if step < warmup:
            return step / max(1, warmup)
        after = step - warmup
        if train.scheduler == "step":
            assert train.step_size is not None
            return gamma ** (after // train.step_size)
        return gamma**after

    return factor


def build_schedule(
    train: TrainConfig, optimizer: torch.optim.Optimizer, total_steps: int
) -> torch.optim.lr_scheduler.LambdaLR:
    """The `step` or `exponential` schedule: linear warmup from 0, then

    - step: lr × gamma^floor((t − warmup) / step_size)
    - exponential: lr × gamma^(t − warmup)

    where t counts optimizer steps from 0.
    """
    if train.scheduler not in HAND_WRITTEN_SCHEDULES:
        raise ValueError(f"{train.scheduler} is one of transformers' schedules, not a hand-written one")
    return torch.optim.lr_scheduler.LambdaLR(optimizer, _multiplier(train, warmup_steps(train, total_steps)))
