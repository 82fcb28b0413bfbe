"""Tuning methods: how much of the model a fine-tune changes. One file per method family.

The life of a method in a run, top to bottom:

1. `check_method(config)` — settings the model's shape decides, from config.json, before loading.
2. `load_kwargs(config)` — extra `from_pretrained` arguments (QLoRA's 4-bit quantization).
3. `METHODS[type](model, method)` — make exactly the intended parameters trainable.
4. `training_callbacks(model, method)` — Trainer callbacks the method needs (gradual unfreezing).
5. `save_tuned` / `load_tuned` — the run's `adapter/` directory, and the tuned model rebuilt from it.
6. `as_base(model)` — the base model of every base-vs-tuned comparison, from the same object.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from tunewise.methods.check import check_method
from tunewise.methods.freeze import apply_freeze
from tunewise.methods.full import apply_full
from tunewise.methods.gradual_unfreeze import GradualUnfreeze, apply_gradual_unfreeze
from tunewise.methods.ia3 import apply_ia3
from tunewise.methods.lora import apply_lora
from tunewise.methods.prompt_learning import apply_prefix, apply_prompt, apply_ptuning
from tunewise.methods.qlora import apply_qlora, quantized_load_kwargs
from tunewise.methods.weights import as_base, load_tuned, save_tuned

if TYPE_CHECKING:
    from transformers import PreTrainedModel, TrainerCallback

    from tunewise.config import Config

__all__ = [
    "METHODS",
    "apply_freeze",
    "apply_full",
    "apply_gradual_unfreeze",
    "apply_ia3",
    "apply_lora",
    "apply_prefix",
    "apply_prompt",
    "apply_ptuning",
    "apply_qlora",
    "as_base",
    "check_method",
    "count_parameters",
    "load_kwargs",
    "load_tuned",
    "save_tuned",
    "training_callbacks",
]

# method.type -> the function that prepares a loaded model for that method (same order as
# tunewise.config.METHOD_CONFIGS; a test keeps the two and docs/methods.md in step).
METHODS: dict[str, Callable[..., Any]] = {
    "full": apply_full,
    "freeze": apply_freeze,
    "gradual_unfreeze": apply_gradual_unfreeze,
    "lora": apply_lora,
    "qlora": apply_qlora,
    "prefix": apply_prefix,
    "prompt": apply_prompt,
    "ptuning": apply_ptuning,
    "ia3": apply_ia3,
}


def load_kwargs(config: Config) -> dict[str, Any]:
    """Extra `from_pretrained` arguments the method needs: 4-bit NF4 quantization for QLoRA."""
    if config.method.type == "qlora":
        return quantized_load_kwargs(config.method, config.train.precision)
    return {}


def training_callbacks(
    model: PreTrainedModel, method: Any, log: Callable[[str], Any] | None = None
) -> list[TrainerCallback]:
    """The Trainer callbacks `method` needs while training (`gradual_unfreeze`'s schedule)."""
    return [GradualUnfreeze(model, method, log=log)] if method.type == "gradual_unfreeze" else []


def count_parameters(model: PreTrainedModel) -> tuple[int, int]:
    """Return (trainable, total) parameter counts; a 4-bit weight counts as the weights it packs.

    For `gradual_unfreeze`, "trainable" is every parameter that trains by the last group (all
    groups require grad between `apply_gradual_unfreeze` and the first training step).
    """
    trainable = total = 0
    for param in model.parameters():
        count = param.numel()
        if type(param).__name__ == "Params4bit":
            # Two 4-bit values per byte of the storage dtype (as PEFT counts them).
            storage = getattr(param, "quant_storage", None)
            count *= 2 * (storage.itemsize if storage is not None else 1)
        total += count
        trainable += count if param.requires_grad else 0
    return trainable, total
