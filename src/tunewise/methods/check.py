"""Method settings that only the model's shape can judge, checked before any weight loads.

`freeze.top_k: 40` on a 30-block model, a module glob that matches nothing, `train_head` without
`train_embeddings` on a model whose head *is* its embedding matrix: each is a config error with
the reason, found from config.json alone (the model is built on the meta device, which reads no
weights and allocates no memory).
"""

from __future__ import annotations

import importlib.util
import re
from typing import TYPE_CHECKING, Any, Final

from tunewise.errors import ConfigError

if TYPE_CHECKING:
    from transformers import PreTrainedModel

    from tunewise.config import Config

__all__ = ["PROMPT_LEARNING", "check_method", "method_problems"]

PROMPT_LEARNING: Final = ("prefix", "prompt", "ptuning")


def _module_names(model: PreTrainedModel) -> list[str]:
    return [name for name, _ in model.named_modules() if name]


def _target_problems(model: PreTrainedModel, targets: str | list[str] | None, key: str) -> list[str]:
    """PEFT's matching: `all-linear`; a list matched as name suffixes; a string as a full-name regex."""
    from tunewise.methods._peft import linear_module_names

    if targets is None or targets == "all-linear":
        return []
    names = _module_names(model)
    if isinstance(targets, str):
        try:
            found = any(re.fullmatch(targets, n) for n in names)
        except re.error as err:
            return [f"{key}: {targets!r} is not a valid regular expression ({err})"]
        missing = [] if found else [targets]
    else:
        missing = [t for t in targets if not any(n == t or n.endswith("." + t) for n in names)]
    if not missing:
        return []
    return [
        f"{key}: {', '.join(map(repr, missing))} matches no module of this model; its linear layers are "
        f"{', '.join(linear_module_names(model))} (or use all-linear)"
    ]


def method_problems(config: Config, model: PreTrainedModel, *, head: bool = False) -> list[str]:
    """Every problem of `config.method` on this model (real or on the meta device), one line each.

    Args:
        head: the model carries a new task head that reads each row's last real token (a classifier).
    """
    from tunewise.methods.freeze import matched_parameters
    from tunewise.methods.layout import layout

    # The branches test `method.type` itself, not `kind`: that narrows `method` to its type's config class.
    method = config.method
    problems: list[str] = []
    kind = method.type
    if kind in ("prompt", "ptuning") and head:
        # The head reads each row's last non-padding token, found from input_ids; these methods hand
        # the model embeddings instead (virtual tokens in front), so padded rows would be classified
        # from a padding position. Prefix tuning passes input_ids on and works.
        problems.append(
            f"method.type: {kind} feeds the model embeddings, not token ids, and a classification "
            f"head then cannot find each row's last real token, so padded rows would be misread; "
            f"with task: classification use prefix, lora, qlora, ia3, freeze, gradual_unfreeze or full"
        )
    if kind == "qlora" and importlib.util.find_spec("bitsandbytes") is None:
        problems.append(
            "method.type: qlora quantizes the base with bitsandbytes, which is not installed: "
            "pip install 'bitsandbytes>=0.50'"
        )
    if method.type in ("freeze", "gradual_unfreeze"):
        try:
            parts = layout(model)
        except ValueError as err:
            return [f"method.type: {kind} needs a stack of transformer blocks: {err}"]
        blocks = len(parts.blocks)
        size_key, size = ("top_k", method.top_k) if method.type == "freeze" else ("group_size", method.group_size)
        if size > blocks:
            problems.append(
                f"method.{size_key}: {size} is more than the {blocks} transformer blocks of "
                f"{config.model.name} (from its config.json); use at most {blocks}"
            )
        if parts.tied and method.train_head != method.train_embeddings:
            problems.append(
                f"method.train_head / method.train_embeddings: {config.model.name} ties its output "
                f"head to its input embeddings (one matrix), so one cannot train without the "
                f"other; set both to {str(method.train_head or method.train_embeddings).lower()}"
            )
        if method.type == "freeze":
            example = f"{parts.block_path}.{blocks - 1}.mlp"
            for pattern, names in matched_parameters(model, method.modules).items():
                if not names:
                    problems.append(
                        f"method.modules: {pattern!r} matches no module or parameter of this model; "
                        f"names look like {example} or {parts.head[0] if parts.head else example}"
                    )
    if method.type in ("lora", "qlora"):
        problems += _target_problems(model, method.target_modules, "method.target_modules")
    if method.type == "ia3":
        problems += _target_problems(model, method.target_modules, "method.target_modules")
    if method.type in PROMPT_LEARNING:
        text = model.config.get_text_config()
        limit = getattr(text, "max_position_embeddings", None)
        if limit and method.num_virtual_tokens + config.data.max_length > limit:
            problems.append(
                f"method.num_virtual_tokens: {method.num_virtual_tokens} virtual tokens + "
                f"data.max_length {config.data.max_length} exceed the model's "
                f"{limit} positions; lower one of them"
            )
    return problems


def check_method(config: Config, model_class: Any = None) -> None:
    """Raise one ConfigError with every method problem, judged from the model's config.json alone.

    Args:
        model_class: the Auto class the run will load with (the task's: a classification head's, say);
            causal LM when None.
    """
    from tunewise.methods.layout import meta_model

    problems = method_problems(config, meta_model(config, model_class), head=model_class is not None)
    if problems:
        raise ConfigError(problems)
