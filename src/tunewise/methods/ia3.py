"""(IA)³ through PEFT: learned vectors that rescale keys, values and feed-forward activations
(Liu et al., 2022). The fewest trainable parameters of all methods here."""

from __future__ import annotations

from typing import TYPE_CHECKING

from tunewise.methods._peft import task_type, wrap

if TYPE_CHECKING:
    from transformers import PreTrainedModel

    from tunewise.config import IA3Config

__all__ = ["apply_ia3", "ia3_modules"]


def ia3_modules(model: PreTrainedModel, method: IA3Config) -> tuple[list[str] | None, list[str] | None]:
    """(target_modules, feedforward_modules) as PEFT gets them; None leaves PEFT's per-architecture choice."""
    from peft.utils.constants import TRANSFORMERS_MODELS_TO_IA3_FEEDFORWARD_MODULES_MAPPING as FEEDFORWARD

    if method.target_modules is None or method.feedforward_modules is not None:
        return method.target_modules, method.feedforward_modules
    # Targets given, feed-forward ones not: the architecture's feed-forward modules among the targets.
    known = FEEDFORWARD.get(model.config.model_type, [])
    return method.target_modules, [m for m in method.target_modules if m in known]


def apply_ia3(model: PreTrainedModel, method: IA3Config) -> PreTrainedModel:
    """Wrap `model` with (IA)³ scaling vectors; every base weight stays frozen."""
    from peft import IA3Config as PeftIA3Config

    target, feedforward = ia3_modules(model, method)
    return wrap(
        model, PeftIA3Config(task_type=task_type(model), target_modules=target, feedforward_modules=feedforward)
    )
