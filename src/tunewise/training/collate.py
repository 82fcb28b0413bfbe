"""Batch rendered rows: pad by position, never by token id.

SmolLM2 (and many chat models) use the same id for padding and for the end-of-turn token. A
collator that masks every pad-id label would also mask the trained `<|im_end|>` and the model would
never learn to stop, so labels are padded with -100 only *past the end of each row*.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

__all__ = ["PadCollator"]

IGNORE = -100


@dataclass
class PadCollator:
    """Right-pad `input_ids`/`labels` rows to the longest row of the batch.

    Args:
        pad_id: the tokenizer's pad token id (may equal the end-of-turn id; that is fine here).
        multiple_of: round the padded length up to a multiple of this (tensor-core friendly on GPU).
    """

    pad_id: int
    multiple_of: int = 1

    def __call__(self, rows: list[dict[str, Any]]) -> dict[str, torch.Tensor]:
        longest = max(len(r["input_ids"]) for r in rows)
        width = -(-longest // self.multiple_of) * self.multiple_of
        input_ids = torch.full((len(rows), width), self.pad_id, dtype=torch.long)
        labels = torch.full((len(rows), width), IGNORE, dtype=torch.long)
        attention = torch.zeros((len(rows), width), dtype=torch.long)
        for i, row in enumerate(rows):
            n = len(row["input_ids"])
            input_ids[i, :n] = torch.as_tensor(row["input_ids"])
            labels[i, :n] = torch.as_tensor(row["labels"])
            attention[i, :n] = 1
        return {"input_ids": input_ids, "labels": labels, "attention_mask": attention}
