"""QLoRA: LoRA adapters on a base model quantized to 4-bit NF4 as it loads (bitsandbytes).

The base weights are stored in 4 bits and dequantized block by block for each matmul, in the
compute dtype (bf16 where the run trains in bf16, else fp32); only the adapters train, in full
precision. bitsandbytes runs this on CPUs as well as CUDA GPUs. Note the base side of a QLoRA
comparison is the 4-bit base (the adapter switched off), the model the adapter was trained on.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from tunewise.errors import ConfigError
from tunewise.methods._peft import wrap
from tunewise.methods.lora import peft_lora_config

if TYPE_CHECKING:
    from transformers import PreTrainedModel

    from tunewise.config import QLoraConfig

__all__ = ["apply_qlora", "exact_cpu_kernels", "quantized_load_kwargs"]


def quantized_load_kwargs(method: QLoraConfig, precision: str) -> dict[str, Any]:
    """The `from_pretrained` arguments that load the base in 4-bit NF4.

    Args:
        precision: `train.precision` (`auto` is resolved for this machine); bf16/fp16 compute
            where the run trains in that precision, fp32 otherwise.
    """
    import torch
    from transformers import BitsAndBytesConfig

    from tunewise.training.loop import resolve_precision

    compute = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(resolve_precision(precision), torch.float32)
    kwargs: dict[str, Any] = {
        "quantization_config": BitsAndBytesConfig(
            load_in_4bit=True,
            bnb_4bit_quant_type="nf4",
            bnb_4bit_use_double_quant=method.double_quant,
            bnb_4bit_compute_dtype=compute,
        )
    }
    if torch.cuda.is_available():
        # Quantize straight onto the GPU: the Trainer never moves a quantized model.
        kwargs["device_map"] = {"": torch.cuda.current_device()}
    return kwargs


def exact_cpu_kernels(model: PreTrainedModel) -> PreTrainedModel:
    """Keep bitsandbytes off its CPU inference shortcut, which repacks the weights and multiplies in
    bf16 whatever the compute dtype. It is taken only in eval mode without gradients, so the model
    right after training (inputs still require grad) and the same model reloaded by `tunewise eval`
    would score differently; with it off both compute in the configured dtype."""
    for module in model.modules():
        if hasattr(module, "support_avx512bf16_for_cpu"):
            # torch types Module.__setattr__ for tensors and submodules only; a plain flag is set as on any object.
            module.support_avx512bf16_for_cpu = False  # type: ignore[assignment]
    return model


def apply_qlora(model: PreTrainedModel, method: QLoraConfig) -> PreTrainedModel:
    """Wrap a 4-bit base (loaded with `quantized_load_kwargs`) with trainable LoRA adapters."""
    from peft import prepare_model_for_kbit_training

    if not getattr(model, "is_loaded_in_4bit", False):
        raise ConfigError(
            [
                "method.type: qlora needs the base loaded in 4-bit (tunewise.methods.load_kwargs); "
                "this model was loaded in full precision"
            ]
        )
    # Casts the few unquantized weights (norms, embeddings) to fp32 and freezes the base; the
    # Trainer turns activation checkpointing on itself when train.gradient_checkpointing asks.
    model = prepare_model_for_kbit_training(exact_cpu_kernels(model), use_gradient_checkpointing=False)
    return wrap(model, peft_lora_config(model, method))
