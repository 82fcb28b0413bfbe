"""Completion and continued pre-training: plain `{text}` rows, every token trained.

A text row is tokenized as is — the tokenizer's BOS where it adds one, EOS appended so the model
learns where a document ends (`data/templates.py`) — and every token after the first is a label:
no chat template, no prompt mask, `data.train_on` does not apply.

A document longer than `data.max_length` is not cut (a chat row is: its answer is one unit). It is
split into windows of `max_length` tokens, each starting on the last token of the one before, so
every token of the document is predicted exactly once and always with some context:

    tokens   t0 t1 t2 t3 t4 t5 t6        max_length = 4
    window 1 t0 t1 t2 t3                 trains t1 t2 t3
    window 2          t3 t4 t5 t6        trains t4 t5 t6
"""

from __future__ import annotations

import dataclasses
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING

from tunewise.data.templates import IGNORE_INDEX, Rendered, RenderStats
from tunewise.tasks._language import LanguageModelTask

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase

    from tunewise.config import DataConfig
    from tunewise.data import Example, Reject

__all__ = ["TASK", "CompletionTask", "render_documents", "windows"]


def windows(row: Rendered, max_length: int) -> list[Rendered]:
    """Split a rendered text row into windows of at most `max_length` tokens overlapping by one.

    Every label of `row` after its first position is trained in exactly one window; the first
    position of each window only gives context (label -100).
    """
    if max_length < 2:
        raise ValueError(f"max_length must be at least 2, not {max_length}")
    if row.n_tokens <= max_length:
        return [row]
    out = []
    stride = max_length - 1
    for start in range(0, row.n_tokens - 1, stride):
        ids = row.input_ids[start : start + max_length]
        labels = [IGNORE_INDEX, *row.labels[start + 1 : start + max_length]]
        out.append(
            Rendered(
                source=row.source,
                input_ids=ids,
                labels=labels,
                n_tokens=len(ids),
                n_trained=sum(1 for label in labels if label != IGNORE_INDEX),
                truncated=False,
                n_dropped_tokens=0,
            )
        )
    return out


def render_documents(
    examples: Sequence[Example], tokenizer: PreTrainedTokenizerBase, *, max_length: int
) -> tuple[list[Rendered], RenderStats, list[Reject]]:
    """Render text examples whole, then split the long ones into windows (see the module docstring).

    Returns:
        `(rows, stats, rejects)` as `render_all` returns them; the length statistics are of the
        documents, the token totals of the windows, and nothing is truncated or dropped.
    """
    from tunewise.data import render_all

    # No limit while rendering: windows() does the cutting, without losing a token.
    documents, stats, rejects = render_all(examples, tokenizer, train_on="everything", max_length=sys.maxsize)
    rows = [part for row in documents for part in windows(row, max_length)]
    stats = dataclasses.replace(
        stats,
        max_length=max_length,
        tokens_total=sum(r.n_tokens for r in rows),
        tokens_trained=sum(r.n_trained for r in rows),
    )
    return rows, stats, rejects


class CompletionTask(LanguageModelTask):
    """`task: completion`: plain text, every token trained (continued pre-training)."""

    name = "completion"
    description = "completion and continued pre-training on plain text: every token is trained"
    plain_text: bool | None = True

    def render(
        self, examples: list[Example], tokenizer: PreTrainedTokenizerBase, data: DataConfig
    ) -> tuple[list[Rendered], RenderStats, list[Reject]]:
        # Long documents become windows, not truncated.
        return render_documents(examples, tokenizer, max_length=data.max_length)


TASK = CompletionTask()
