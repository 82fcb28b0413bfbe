"""Partial fine-tuning: only the top-k transformer blocks (and modules matched by name) train.

The blocks nearest the output hold the most task-specific features; training only them is cheap
and leaves the lower layers, and much of what the model knew, untouched.
"""

from __future__ import annotations

import fnmatch
from typing import TYPE_CHECKING

from tunewise.methods.layout import Layout, layout
from tunewise.methods.weights import keep_originals

if TYPE_CHECKING:
    from transformers import PreTrainedModel

    from tunewise.config import FreezeConfig

__all__ = ["apply_freeze", "matched_parameters", "trained_parameters"]


def matched_parameters(model: PreTrainedModel, patterns: list[str]) -> dict[str, list[str]]:
    """Pattern -> the parameter names it selects: those whose own name, or the name of a module
    holding them, matches the glob."""
    names = [name for name, _ in model.named_parameters()]
    out: dict[str, list[str]] = {}
    for pattern in patterns:
        out[pattern] = [
            name
            for name in names
            if any(fnmatch.fnmatchcase(".".join(name.split(".")[:i]), pattern) for i in range(1, name.count(".") + 2))
        ]
    return out


def trained_parameters(model: PreTrainedModel, method: FreezeConfig, parts: Layout | None = None) -> list[str]:
    """The names of the parameters `method` trains on `model`, in model order."""
    parts = parts or layout(model)
    chosen: set[str] = set()
    for block in parts.blocks[len(parts.blocks) - method.top_k :] if method.top_k else []:
        chosen.update(block)
    for names in matched_parameters(model, method.modules).values():
        chosen.update(names)
    if method.train_embeddings:
        chosen.update(parts.embeddings)
    if method.train_head:
        chosen.update(parts.head)
    return [name for name, _ in model.named_parameters() if name in chosen]


def apply_freeze(model: PreTrainedModel, method: FreezeConfig) -> PreTrainedModel:
    """Freeze everything but the chosen parameters; keep their originals for the base side."""
    chosen = set(trained_parameters(model, method))
    keep_originals(model, chosen)
    for name, param in model.named_parameters():
        param.requires_grad_(name in chosen)
    return model
