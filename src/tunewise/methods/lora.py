"""LoRA adapters through PEFT: low-rank updates beside frozen base weights."""

from __future__ import annotations

from typing import TYPE_CHECKING

from tunewise.config import LoraConfig
from tunewise.errors import ConfigError

if TYPE_CHECKING:
    from transformers import PreTrainedModel

__all__ = ["apply_lora"]


def apply_lora(model: PreTrainedModel, method: LoraConfig) -> PreTrainedModel:
    """Wrap `model` with trainable LoRA adapters; every base weight stays frozen.

    Raises:
        ConfigError: when `method.target_modules` names modules the model does not have.
    """
    from peft import LoraConfig as PeftLoraConfig
    from peft import TaskType, get_peft_model

    peft_config = PeftLoraConfig(
        r=method.r,
        lora_alpha=method.alpha,
        lora_dropout=method.dropout,
        target_modules=method.target_modules,
        task_type=TaskType.CAUSAL_LM,
    )
    try:
        return get_peft_model(model, peft_config)
    except ValueError as err:
        linear = sorted({name.rsplit(".", 1)[-1] for name, module in model.named_modules()
                         if type(module).__name__ == "Linear"})
        raise ConfigError([f"method.target_modules: {err} — this model's linear layers are "
                           f"{', '.join(linear)}; or use `all-linear`"]) from None
