"""Base vs tuned on the same rows: eval loss, perplexity and greedy generations.

For an adapter the base model is the very same weights with the adapter switched off, so the
comparison costs no second copy of the model in memory.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

import torch

from tunewise.training.collate import PadCollator

if TYPE_CHECKING:
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

    from tunewise.data import Example, Rendered

__all__ = ["Comparison", "LossScore", "compare", "generate", "loss_on", "side"]


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

    def to_dict(self) -> dict[str, Any]:
        delta = self.tuned.loss - self.base.loss
        return {"base": asdict(self.base), "tuned": asdict(self.tuned),
                "delta_loss": delta, "relative_loss_change": delta / self.base.loss if self.base.loss else None,
                "generations": self.generations}


@contextlib.contextmanager
def side(model: PreTrainedModel, which: str) -> Iterator[PreTrainedModel]:
    """Yield `model` as the base (`which="base"`: adapters disabled) or as tuned."""
    if which == "base" and hasattr(model, "disable_adapter"):
        with model.disable_adapter():
            yield model
    else:
        yield model


@torch.no_grad()
def loss_on(model: PreTrainedModel, rows: list[Rendered], *, pad_id: int, batch_size: int) -> LossScore:
    """Token-weighted mean loss of `model` on `rows`, batched by similar length."""
    model.eval()
    collate = PadCollator(pad_id=pad_id)
    total, count = 0.0, 0
    ordered = sorted(rows, key=lambda r: len(r.input_ids))
    device = next(model.parameters()).device
    for start in range(0, len(ordered), batch_size):
        batch = collate([{"input_ids": r.input_ids, "labels": r.labels}
                         for r in ordered[start:start + batch_size]])
        batch = {k: v.to(device) for k, v in batch.items()}
        logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
        targets = batch["labels"][:, 1:]
        losses = torch.nn.functional.cross_entropy(
            logits[:, :-1].float().reshape(-1, logits.size(-1)), targets.reshape(-1),
            ignore_index=-100, reduction="sum")
        total += float(losses)
        count += int((targets != -100).sum())
    mean = total / count if count else float("nan")
    return LossScore(loss=mean, perplexity=math.exp(mean) if count else float("nan"),
                     tokens=count, rows=len(rows))


@torch.no_grad()
def generate(model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase,
             conversations: list[list[dict[str, str]]], *, max_new_tokens: int, batch_size: int = 8) -> list[str]:
    """Greedy answers to chat prompts, rendered exactly as at training time."""
    model.eval()
    answers: list[str] = []
    device = next(model.parameters()).device
    old_side = tokenizer.padding_side
    tokenizer.padding_side = "left"  # generation continues from the right edge
    try:
        for start in range(0, len(conversations), batch_size):
            chunk = conversations[start:start + batch_size]
            texts = [tokenizer.apply_chat_template(c, add_generation_prompt=True, tokenize=False) for c in chunk]
            enc = tokenizer(texts, return_tensors="pt", padding=True, add_special_tokens=False).to(device)
            out = model.generate(**enc, max_new_tokens=max_new_tokens, do_sample=False,
                                 pad_token_id=tokenizer.pad_token_id, eos_token_id=tokenizer.eos_token_id)
            for row in out[:, enc["input_ids"].shape[1]:]:
                answers.append(tokenizer.decode(row, skip_special_tokens=True).strip())
    finally:
        tokenizer.padding_side = old_side
    return answers


def compare(model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, rows: list[Rendered],
            examples: list[Example], *, batch_size: int, generations: int, max_new_tokens: int) -> Comparison:
    """Score base and tuned on the same eval rows and answer the first `generations` prompts."""
    scores = {}
    for which in ("base", "tuned"):
        with side(model, which) as m:
            scores[which] = loss_on(m, rows, pad_id=tokenizer.pad_token_id, batch_size=batch_size)

    chats = [ex for ex in examples if ex.messages and ex.messages[-1]["role"] == "assistant"][:generations]
    prompts = [list(ex.messages[:-1]) for ex in chats]
    answers = {}
    for which in ("base", "tuned"):
        with side(model, which) as m:
            answers[which] = generate(m, tokenizer, prompts, max_new_tokens=max_new_tokens) if prompts else []
    samples = [{"prompt": p[-1]["content"], "reference": ex.messages[-1]["content"],
                "base": b, "tuned": t}
               for p, ex, b, t in zip(prompts, chats, answers["base"], answers["tuned"])]
    return Comparison(base=scores["base"], tuned=scores["tuned"], generations=samples)
