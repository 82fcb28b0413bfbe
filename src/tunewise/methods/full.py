"""Full fine-tuning: every weight trains. The most capacity, and the most to forget."""

from __future__ import annotations

from typing import TYPE_CHECKING

from tunewise.methods.weights import keep_originals

if TYPE_CHECKING:
    from transformers import PreTrainedModel

    from tunewise.config import FullConfig

__all__ = ["apply_full"]


def apply_full(model: PreTrainedModel, method: FullConfig) -> PreTrainedModel:
    """Make every parameter trainable, keeping a CPU copy of the originals for the base side."""
    names = [name for name, _ in model.named_parameters()]
    keep_originals(model, names)
    for param in model.parameters():
        param.requires_grad_(True)
    return model
