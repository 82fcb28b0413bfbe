"""`train.dropout`: set the base model's own dropout, whatever the architecture calls it.

Modules copy their dropout rate out of the config when they are built, so changing `model.config`
after loading does nothing. This sets the rate where forward reads it: `nn.Dropout.p` and float
attributes named `*dropout` (Llama-family attention reads `self.attention_dropout`; OPT layers read
`self.dropout`). The config fields are updated too, so a saved config tells the truth.

What that covers, per family: Llama, SmolLM2, Mistral, Qwen2, Gemma — attention-probability
dropout only (these architectures have no hidden or residual dropout); GPT-2, Phi — attention,
residual and embedding dropout; GPT-NeoX, Falcon, OPT, BERT-style encoders — attention and hidden
dropout. Adapter dropout (`method.dropout`) is the method's own and is left alone.
"""

from __future__ import annotations

from collections import Counter
from typing import TYPE_CHECKING

from torch import nn

if TYPE_CHECKING:
    from transformers import PretrainedConfig

__all__ = ["config_dropout_fields", "set_dropout"]

# Config fields holding a dropout rate of the model body (not a head's, not an adapter's).
_CONFIG_SUFFIXES = ("dropout", "pdrop", "dropout_prob", "dropout_rate")
_NOT_BODY = ("classifier_dropout", "summary_first_dropout", "summary_last_dropout")


def config_dropout_fields(config: PretrainedConfig) -> list[str]:
    """The dropout-rate fields of a model config (e.g. `attention_dropout` for Llama)."""
    return sorted(
        key
        for key, value in config.to_dict().items()
        if key.endswith(_CONFIG_SUFFIXES)
        and key not in _NOT_BODY
        and isinstance(value, (int, float))
        and not isinstance(value, bool)
    )


def set_dropout(model: nn.Module, p: float) -> list[str]:
    """Set every dropout of the base model to `p`; adapters' own dropout is left alone.

    Returns:
        What was set, e.g. `["attention_dropout × 30"]`; empty when the model has no dropout.
    """
    changed: Counter[str] = Counter()
    for name, module in model.named_modules():
        if "lora_" in name or "modules_to_save" in name:
            continue  # adapter dropout: `method.dropout`
        if isinstance(module, nn.Dropout):
            module.p = p
            changed[f"{name.rsplit('.', 1)[-1]}"] += 1
            continue
        for attr, value in list(vars(module).items()):
            if attr.endswith("dropout") and isinstance(value, float) and attr not in _NOT_BODY:
                setattr(module, attr, float(p))
                changed[attr] += 1
    config = getattr(model, "config", None)
    if config is not None:
        for field in config_dropout_fields(config):
            setattr(config, field, float(p))
    return [f"{what} × {count}" for what, count in sorted(changed.items())]
