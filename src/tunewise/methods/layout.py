"""The anatomy of a transformer, as the non-adapter methods see it: blocks, embeddings, head.

`freeze` and `gradual_unfreeze` say "the top k blocks" and "the head"; this file decides which
parameters those words mean, for any architecture, from the module tree alone. It also builds the
model on the meta device from its config.json, so that every such question can be answered (and a
bad setting reported) before a single weight is read.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import torch
    from transformers import PreTrainedModel

    from tunewise.config import Config

__all__ = ["Layout", "layout", "meta_model"]


@dataclass
class Layout:
    """Parameter names of a model by role. A tied matrix appears under both embeddings and head."""

    blocks: list[list[str]]
    """Per transformer block, bottom (nearest the input) to top."""
    block_path: str
    """Where the blocks live, e.g. `model.layers`."""
    embeddings: list[str]
    """Input embeddings (token, and position where the model has them)."""
    head: list[str]
    """Everything after the last block: the final norm and the unembedding."""
    tied: bool
    """Input embeddings and unembedding are one matrix."""


def _block_list(model: PreTrainedModel) -> tuple[str, torch.nn.ModuleList]:
    import torch

    lists = [
        (name, module)
        for name, module in model.named_modules()
        if isinstance(module, torch.nn.ModuleList) and len(module) > 0
    ]
    if not lists:
        raise ValueError(f"{type(model).__name__} has no list of transformer blocks (no ModuleList)")
    text_config = model.config.get_text_config() if hasattr(model.config, "get_text_config") else model.config
    layers = getattr(text_config, "num_hidden_layers", None)
    exact = [item for item in lists if len(item[1]) == layers]
    # Prefer the list as long as the config's layer count; nested lists (experts) are shorter or deeper.
    return min(exact or lists, key=lambda item: (-len(item[1]), item[0].count(".")))


def layout(model: PreTrainedModel) -> Layout:
    """Sort every parameter of `model` into blocks, embeddings and head."""
    import torch

    block_path, blocks = _block_list(model)
    names = {id(p): n for n, p in model.named_parameters()}
    per_block: list[list[str]] = [[] for _ in blocks]
    for i, block in enumerate(blocks):
        per_block[i] = [names[id(p)] for p in block.parameters()]
    in_blocks = {n for group in per_block for n in group}

    input_embeddings = model.get_input_embeddings()
    output_embeddings = model.get_output_embeddings()
    embedding_ids = {id(p) for p in input_embeddings.parameters()} if input_embeddings is not None else set()
    for name, module in model.named_modules():
        if isinstance(module, torch.nn.Embedding) and not name.startswith(block_path + "."):
            embedding_ids |= {id(p) for p in module.parameters(recurse=False)}
    embeddings = [names[i] for i in names if i in embedding_ids]
    head_ids = {id(p) for p in output_embeddings.parameters()} if output_embeddings is not None else set()
    head = [n for i, n in names.items() if n not in in_blocks and (i in head_ids or i not in embedding_ids)]
    tied = bool(head_ids & embedding_ids)
    return Layout(blocks=per_block, block_path=block_path, embeddings=embeddings, head=head, tied=tied)


def meta_model(config: Config, model_class: Any = None) -> PreTrainedModel:
    """The configured model built from its config.json on the meta device: every module and
    parameter shape, no weights read and no memory spent."""
    import torch
    from transformers import AutoConfig

    from tunewise.models import friendly_errors, local_only_files, resolve_model

    if model_class is None:
        from transformers import AutoModelForCausalLM

        model_class = AutoModelForCausalLM
    name = config.model.name
    target = resolve_model(name)
    with friendly_errors(name, target, "config"):
        model_config = AutoConfig.from_pretrained(
            target,
            revision=config.model.revision,
            trust_remote_code=config.model.trust_remote_code,
            local_files_only=local_only_files(target),
        )
    with torch.device("meta"):
        return model_class.from_config(model_config, trust_remote_code=config.model.trust_remote_code)
