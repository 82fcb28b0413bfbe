"""Tuning methods: how much of the model a fine-tune changes. One file per method family."""

from __future__ import annotations

from collections.abc import Callable

from tunewise.methods.lora import apply_lora

__all__ = ["METHODS", "apply_lora", "count_parameters"]

# method.type -> the function that prepares a loaded model for that method.
METHODS: dict[str, Callable] = {"lora": apply_lora}


def count_parameters(model) -> tuple[int, int]:
    """Return (trainable, total) parameter counts."""
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    total = sum(p.numel() for p in model.parameters())
    return trainable, total
