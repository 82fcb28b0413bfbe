"""Padding-free batches: a batch's rows concatenated into one row, each attending only to itself.

A padded batch computes every layer on its padding (rows of ~20 to ~500 tokens pad to the longest
one: about half of a random batch of chat rows is padding). `PackCollator` puts the rows of a
batch end to end in one row instead — the same rows per optimizer step, no padding token — with
`position_ids` that restart at 0 for every row.

What keeps rows apart:
- transformers reads restarting `position_ids` (with no `attention_mask`) as packed sequences and
  builds a block-diagonal causal mask (`masking_utils.find_packed_sequence_indices`), so any
  attention implementation is correct on these batches;
- `packed_attention`, the implementation `packed_attention_for` switches a model to while it
  trains, runs causal attention on each row's own slice instead of one masked attention over the
  whole concatenation: the same result without the cross-row products (a masked (T × T) attention
  computes all of them and throws them away — at 8 rows of ~200 tokens, 8× the attention work);
- the first label of every row is -100, so the last token of one row never learns to predict the
  first token of the next.

tests/training/test_packing.py checks the loss and the gradients of a packed batch against each row
computed alone, and that changing one row changes nothing in the others.
"""

from __future__ import annotations

import contextlib
import itertools
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import torch

__all__ = ["PACKED_ATTENTION", "PackCollator", "can_pack", "packed_attention", "packed_attention_for", "split_packed"]

IGNORE = -100

PACKED_ATTENTION = "tunewise_packed"
"""The name `packed_attention` is registered under in transformers' attention interfaces."""

# Architectures whose attention goes through transformers' attention interface with the
# `position_ids` passed on, and whose causal-LM head is a plain linear layer on the last hidden
# state (no soft-capping, no logit scale): packing and the label-only loss (loss.py) are exact there.
PACKABLE_MODEL_TYPES = frozenset({"llama", "mistral", "qwen2", "qwen3", "phi3", "olmo", "olmo2", "smollm3"})


@dataclass
class PackCollator:
    """Concatenate a batch's rows into one row of `input_ids`, `labels` and restarting `position_ids`.

    No `attention_mask` is returned: transformers then reads the row boundaries from
    `position_ids` (a 2-D attention mask of ones would hide them and let rows attend to each other).

    Args:
        pad_id: unused (nothing is padded); kept so that the collators are built alike.
    """

    pad_id: int | None = None

    def __call__(self, rows: list[dict[str, Any]]) -> dict[str, torch.Tensor]:
        lengths = [len(r["input_ids"]) for r in rows]
        total = sum(lengths)
        input_ids = torch.empty(total, dtype=torch.long)
        labels = torch.empty(total, dtype=torch.long)
        position_ids = torch.empty(total, dtype=torch.long)
        start = 0
        for row, n in zip(rows, lengths, strict=True):
            input_ids[start : start + n] = torch.as_tensor(row["input_ids"])
            labels[start : start + n] = torch.as_tensor(row["labels"])
            # A row's first token has no earlier token of its row to be predicted from.
            labels[start] = IGNORE
            position_ids[start : start + n] = torch.arange(n)
            start += n
        return {"input_ids": input_ids[None], "labels": labels[None], "position_ids": position_ids[None]}


def split_packed(batch: dict[str, Any], max_tokens: int) -> list[dict[str, Any]]:
    """Cut a packed batch into parts of at most `max_tokens` tokens each (a row longer than that is a
    part of its own). Rows are never split: every part is a packed batch of whole rows.

    Rows go to parts first-fit decreasing — the longest first, each into the first part with room —
    so a batch of mixed lengths runs as few, full passes (random batches would otherwise cut into
    many half-empty ones). A packed row is self-contained (its positions restart, its first label is
    ignored), so the parts' rows may come from anywhere in the batch; within a part they keep their order.

    Summed over the parts, losses normalised by the whole batch's trained tokens give the batch's loss
    and gradient, with the activations of one part alive at a time.
    """
    starts = _row_starts(batch.get("position_ids"))
    length = batch["input_ids"].shape[1]
    if starts is None or length <= max_tokens:
        return [batch]
    spans = list(zip(starts, [*starts[1:], length], strict=True))
    parts: list[list[tuple[int, int]]] = []
    room: list[int] = []
    for begin, end in sorted(spans, key=lambda span: span[0] - span[1]):  # longest first; ties in order
        size = end - begin
        fits = next((i for i, free in enumerate(room) if size <= free), None)
        if fits is None:
            parts.append([(begin, end)])
            room.append(max_tokens - size)
        else:
            parts[fits].append((begin, end))
            room[fits] -= size
    out = []
    for part in parts:
        part.sort()
        if all(a[1] == b[0] for a, b in itertools.pairwise(part)):  # contiguous: a view, no copy
            out.append({k: v[:, part[0][0] : part[-1][1]] for k, v in batch.items()})
        else:
            index = torch.cat([torch.arange(a, b) for a, b in part]).to(batch["input_ids"].device)
            out.append({k: v.index_select(1, index) for k, v in batch.items()})
    return out


def _row_starts(position_ids: torch.Tensor | None) -> list[int] | None:
    """Start offsets of the packed rows of a (1, T) batch, or None when it is not one packed row."""
    if position_ids is None or position_ids.dim() != 2 or position_ids.shape[0] != 1:
        return None
    starts = (position_ids[0] == 0).nonzero()[:, 0].tolist()
    if not starts or starts[0] != 0:
        return None
    return starts


def packed_attention(
    module: torch.nn.Module,
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    attention_mask: torch.Tensor | None,
    dropout: float = 0.0,
    scaling: float | None = None,
    **kwargs: Any,
) -> tuple[torch.Tensor, None]:
    """transformers' SDPA attention, run row by row on a packed batch.

    A packed batch (one row, `position_ids` restarting at 0, no key/value cache) gets plain causal
    attention on each row's slice, concatenated; anything else (padded batches, generation with a
    cache) goes to transformers' own SDPA attention with the mask it was given.

    Returns:
        `(batch, length, heads, head_dim)` attention output and None (no attention weights), as
        every transformers attention function.
    """
    from transformers.integrations.sdpa_attention import sdpa_attention_forward

    starts = _row_starts(kwargs.get("position_ids"))
    length = query.shape[2]
    if starts is None or key.shape[2] != length or len(starts) == 1:
        if starts is not None and len(starts) == 1 and key.shape[2] == length:
            attention_mask = None  # one row: plain causal attention, no mask to read
        return sdpa_attention_forward(
            module,
            query,
            key,
            value,
            attention_mask,
            dropout=dropout,
            scaling=scaling,
            is_causal=True,
            **_without(kwargs, "position_ids", "is_causal"),
        )
    bounds = [*starts, length]
    outputs = []
    for begin, end in itertools.pairwise(bounds):
        out, _ = sdpa_attention_forward(
            module,
            query[:, :, begin:end],
            key[:, :, begin:end],
            value[:, :, begin:end],
            None,
            dropout=dropout,
            scaling=scaling,
            is_causal=True,
            **_without(kwargs, "position_ids", "is_causal"),
        )
        outputs.append(out)
    return torch.cat(outputs, dim=1), None


def _without(kwargs: dict[str, Any], *names: str) -> dict[str, Any]:
    return {k: v for k, v in kwargs.items() if k not in names}


def _register() -> None:
    from transformers import AttentionInterface
    from transformers.masking_utils import ALL_MASK_ATTENTION_FUNCTIONS, sdpa_mask

    AttentionInterface.register(PACKED_ATTENTION, packed_attention)
    # Padded batches and generation still need SDPA's masks; a packed batch's mask is built but unread.
    ALL_MASK_ATTENTION_FUNCTIONS.register(PACKED_ATTENTION, sdpa_mask)


def _causal_lm(model: torch.nn.Module) -> Any:
    """The transformers model inside a PEFT wrapper (or the model itself)."""
    get_base = getattr(model, "get_base_model", None)
    return get_base() if callable(get_base) else model


def can_pack(model: torch.nn.Module) -> bool:
    """Whether `model` trains exactly the same on packed batches: a causal LM of a known
    architecture, not wrapped by a prompt-learning method (prefix, prompt, P-tuning prepend
    virtual tokens to the one packed row, which the rows after the first would not see alike)."""
    peft_config = getattr(model, "peft_config", None)
    if isinstance(peft_config, dict) and any(getattr(c, "is_prompt_learning", False) for c in peft_config.values()):
        return False
    lm = _causal_lm(model)
    config = getattr(lm, "config", None)
    return (
        getattr(config, "model_type", None) in PACKABLE_MODEL_TYPES
        and type(lm).__name__.endswith("ForCausalLM")
        and getattr(config, "_attn_implementation", None) in ("sdpa", "eager", PACKED_ATTENTION)
    )


@contextlib.contextmanager
def packed_attention_for(model: torch.nn.Module) -> Iterator[None]:
    """Run `model`'s attention through `packed_attention` inside the block; the model's own
    implementation is restored afterwards (generation and scoring after training see it unchanged)."""
    lm = _causal_lm(model)
    before = lm.config._attn_implementation
    _register()
    lm.set_attn_implementation(PACKED_ATTENTION)
    try:
        yield
    finally:
        lm.set_attn_implementation(before)
