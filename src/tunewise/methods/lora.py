"""LoRA adapters through PEFT: low-rank updates beside frozen base weights (rsLoRA and DoRA as switches)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from tunewise.methods._peft import task_type, wrap

if TYPE_CHECKING:
    from peft import LoraConfig as PeftLoraConfig
    from transformers import PreTrainedModel

    from tunewise.config import LoraConfig, QLoraConfig

__all__ = ["apply_lora", "peft_lora_config"]


def peft_lora_config(model: PreTrainedModel, method: LoraConfig | QLoraConfig) -> PeftLoraConfig:
    """The PEFT `LoraConfig` for `method` (also used by QLoRA)."""
    from peft import LoraConfig as PeftLoraConfig

    return PeftLoraConfig(
        r=method.r,
        # peft annotates lora_alpha as int, but only divides by it (alpha/r, alpha/sqrt(r)): a float alpha is valid.
        lora_alpha=method.alpha,  # type: ignore[arg-type]
        lora_dropout=method.dropout,
        target_modules=method.target_modules,
        use_rslora=method.rslora,
        use_dora=method.dora,
        task_type=task_type(model),
    )


def apply_lora(model: PreTrainedModel, method: LoraConfig) -> PreTrainedModel:
    """Wrap `model` with trainable LoRA adapters; every base weight stays frozen.

    Raises:
        ConfigError: when `method.target_modules` names modules the model does not have.
    """
    return wrap(model, peft_lora_config(model, method))
