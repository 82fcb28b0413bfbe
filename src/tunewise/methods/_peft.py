"""What every PEFT method shares: the task type and one readable error for a bad module name."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from tunewise.errors import ConfigError

if TYPE_CHECKING:
    from transformers import PreTrainedModel

__all__ = ["linear_module_names", "task_type", "wrap"]


def task_type(model: PreTrainedModel) -> Any:
    """PEFT's task type for `model`: a classification head keeps training (SEQ_CLS), else CAUSAL_LM."""
    from peft import TaskType

    return TaskType.SEQ_CLS if type(model).__name__.endswith("ForSequenceClassification") else TaskType.CAUSAL_LM


def linear_module_names(model: PreTrainedModel) -> list[str]:
    """The distinct last name parts of the model's linear layers (what `target_modules` lists)."""
    return sorted(
        {
            name.rsplit(".", 1)[-1]
            for name, module in model.named_modules()
            if type(module).__name__ in ("Linear", "Linear4bit", "Conv1D")
        }
    )


def wrap(model: PreTrainedModel, peft_config: Any, key: str = "method.target_modules") -> PreTrainedModel:
    """`get_peft_model`, with a module-name mistake reported as a config error naming `key`."""
    from peft import get_peft_model

    try:
        return get_peft_model(model, peft_config)
    except ValueError as err:
        if "target" not in str(err) and "module" not in str(err):
            raise
        raise ConfigError(
            [f"{key}: {err} — this model's linear layers are {', '.join(linear_module_names(model))}"]
        ) from None
