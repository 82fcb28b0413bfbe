"""Base vs tuned on the same rows: eval loss, perplexity and greedy generations.

For an adapter the base model is the very same weights with the adapter switched off, so the
comparison costs no second copy of the model in memory; a method that trains base weights swaps
their kept originals in for the base side.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

from tunewise.inference import eval_mode, generate_texts, token_logprobs
from tunewise.training.collate import PadCollator

if TYPE_CHECKING:
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

    from tunewise.data import Example, Rendered

__all__ = ["Comparison", "LossScore", "compare", "loss_on", "row_losses", "side"]


@dataclass
class LossScore:
    """Mean next-token loss over the trained (label != -100) tokens, weighted per token."""

    loss: float
    perplexity: float
    tokens: int
    rows: int


@dataclass
class Comparison:
    """Everything `tunewise eval` reports, ready for JSON."""

    base: LossScore
    tuned: LossScore
    generations: list[dict[str, str]]
    per_row: dict[str, list[tuple[float, int]]] = field(default_factory=dict, repr=False)
    """Side -> (summed loss, trained tokens) of each row, in row order; not part of the JSON."""

    def to_dict(self) -> dict[str, Any]:
        delta = self.tuned.loss - self.base.loss
        return {
            "base": asdict(self.base),
            "tuned": asdict(self.tuned),
            "delta_loss": delta,
            "relative_loss_change": delta / self.base.loss if self.base.loss else None,
            "generations": self.generations,
        }


@contextlib.contextmanager
def side(model: PreTrainedModel, which: str) -> Iterator[PreTrainedModel]:
    """Yield `model` as the base (`which="base"`: adapters disabled, or the original values of
    trained base weights swapped in — see `tunewise.methods.as_base`) or as tuned."""
    if which == "base":
        from tunewise.methods.weights import as_base

        with as_base(model):
            yield model
    else:
        yield model


def row_losses(
    model: PreTrainedModel, rows: list[Rendered], *, pad_id: int, batch_size: int
) -> list[tuple[float, int]]:
    """Per row, in input order: (summed next-token loss over its trained tokens, their count).

    Rows are batched by similar length; padding never changes a row's numbers. Keeping the sum
    and the count per row (rather than one mean) is what lets a bootstrap resample rows and still
    weight every token equally. The model runs in eval mode (`tunewise.inference.eval_mode`).
    """
    collate = PadCollator(pad_id=pad_id)
    out: list[tuple[float, int]] = [(0.0, 0)] * len(rows)
    order = sorted(range(len(rows)), key=lambda i: len(rows[i].input_ids))
    with eval_mode(model):
        for start in range(0, len(order), batch_size):
            chunk = order[start : start + batch_size]
            batch = collate([{"input_ids": rows[i].input_ids, "labels": rows[i].labels} for i in chunk])
            logprobs = token_logprobs(model, batch["input_ids"], batch["attention_mask"])
            trained = (batch["labels"][:, 1:] != -100).to(logprobs.device)
            # A trained label is its input token, so -log p of it is the token's cross-entropy.
            sums = (-logprobs).masked_fill(~trained, 0.0).sum(-1).tolist()
            counts = trained.sum(-1).tolist()
            for i, total, count in zip(chunk, sums, counts):
                out[i] = (float(total), int(count))
    return out


def loss_on(model: PreTrainedModel, rows: list[Rendered], *, pad_id: int, batch_size: int) -> LossScore:
    """Token-weighted mean loss of `model` on `rows`, batched by similar length."""
    return _loss_score(row_losses(model, rows, pad_id=pad_id, batch_size=batch_size))


def _loss_score(per_row: list[tuple[float, int]]) -> LossScore:
    total, count = sum(s for s, _ in per_row), sum(c for _, c in per_row)
    mean = total / count if count else float("nan")
    return LossScore(loss=mean, perplexity=math.exp(mean) if count else float("nan"), tokens=count, rows=len(per_row))


def compare(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    rows: list[Rendered],
    examples: list[Example],
    *,
    batch_size: int,
    generations: int,
    max_new_tokens: int,
) -> Comparison:
    """Score base and tuned on the same eval rows and answer the first `generations` prompts."""
    scores, per_row = {}, {}
    for which in ("base", "tuned"):
        with side(model, which) as m:
            per_row[which] = row_losses(m, rows, pad_id=tokenizer.pad_token_id, batch_size=batch_size)
        scores[which] = _loss_score(per_row[which])

    chats = [ex.messages for ex in examples if ex.messages and ex.messages[-1]["role"] == "assistant"][:generations]
    prompts = [list(messages[:-1]) for messages in chats]
    answers = {}
    for which in ("base", "tuned"):
        with side(model, which) as m:
            answers[which] = generate_texts(m, tokenizer, prompts, max_new_tokens=max_new_tokens) if prompts else []
    samples = [
        {"prompt": p[-1]["content"], "reference": messages[-1]["content"], "base": b, "tuned": t}
        for p, messages, b, t in zip(prompts, chats, answers["base"], answers["tuned"])
    ]
    return Comparison(base=scores["base"], tuned=scores["tuned"], generations=samples, per_row=per_row)
