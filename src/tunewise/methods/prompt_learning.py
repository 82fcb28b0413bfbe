"""Prefix tuning, prompt tuning and P-tuning through PEFT: the model is untouched, trained virtual
tokens steer it. The fewest trainable parameters after (IA)³; each virtual token takes a place
in the context of every row."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from tunewise.methods._peft import task_type, wrap

if TYPE_CHECKING:
    from transformers import PreTrainedModel

    from tunewise.config import PrefixConfig, PromptConfig, PTuningConfig

__all__ = ["align_logits", "apply_prefix", "apply_prompt", "apply_ptuning"]


def _drop_virtual_positions(module: Any, args: tuple, kwargs: dict[str, Any], output: Any) -> Any:
    # Prompt tuning and P-tuning put the virtual tokens in front of the input, so the logits come
    # back longer than the input by num_virtual_tokens. Everything that reads logits (eval loss,
    # suite scoring, KL to the base) lines them up with the input tokens; drop the virtual ones.
    # (The training loss is computed inside PEFT's forward, with labels padded to match.)
    given = kwargs.get("input_ids") if kwargs.get("input_ids") is not None else kwargs.get("inputs_embeds")
    if given is None and args:
        given = args[0]
    logits = getattr(output, "logits", None)
    if given is not None and logits is not None and logits.shape[1] > given.shape[1]:
        output.logits = logits[:, logits.shape[1] - given.shape[1] :]
    return output


def align_logits(model: Any) -> Any:
    """Make a prompt- or P-tuned PeftModel return one logit row per input token (no-op otherwise)."""
    config = getattr(model, "active_peft_config", None)
    if config is not None and str(config.peft_type.value) in ("PROMPT_TUNING", "P_TUNING"):
        model.register_forward_hook(_drop_virtual_positions, with_kwargs=True)
    return model


def apply_prefix(model: PreTrainedModel, method: PrefixConfig) -> PreTrainedModel:
    """Trained key/value prefixes at every attention layer (Li & Liang, 2021)."""
    from peft import PrefixTuningConfig

    hidden = model.config.get_text_config().hidden_size
    return wrap(
        model,
        PrefixTuningConfig(
            task_type=task_type(model),
            num_virtual_tokens=method.num_virtual_tokens,
            prefix_projection=method.projection,
            encoder_hidden_size=hidden,
        ),
    )


def apply_prompt(model: PreTrainedModel, method: PromptConfig) -> PreTrainedModel:
    """A trained soft prompt prepended to the input embeddings (Lester et al., 2021)."""
    from peft import PromptTuningConfig, PromptTuningInit

    from_text = method.init_text is not None
    return align_logits(
        wrap(
            model,
            PromptTuningConfig(
                task_type=task_type(model),
                num_virtual_tokens=method.num_virtual_tokens,
                prompt_tuning_init=PromptTuningInit.TEXT if from_text else PromptTuningInit.RANDOM,
                prompt_tuning_init_text=method.init_text,
                tokenizer_name_or_path=model.name_or_path if from_text else None,
            ),
        )
    )


def apply_ptuning(model: PreTrainedModel, method: PTuningConfig) -> PreTrainedModel:
    """Virtual token embeddings produced by a small trained MLP or LSTM encoder (Liu et al., 2021)."""
    from peft import PromptEncoderConfig, PromptEncoderReparameterizationType

    kind = {"mlp": PromptEncoderReparameterizationType.MLP, "lstm": PromptEncoderReparameterizationType.LSTM}
    return align_logits(
        wrap(
            model,
            PromptEncoderConfig(
                task_type=task_type(model),
                num_virtual_tokens=method.num_virtual_tokens,
                encoder_reparameterization_type=kind[method.encoder],
                encoder_hidden_size=method.encoder_hidden_size,
            ),
        )
    )
