"""Multiple-choice scoring by log-likelihood, as lm-evaluation-harness and llm-foundry do it.

For an item `{query, choices, gold}` every choice is scored by the summed log-probability the
model gives its tokens after the query:

    context      = query
    continuation = delimiter + choice          (delimiter " " by default)
    loglik       = sum over continuation tokens t of log p(t | context, earlier continuation tokens)

Two predictions come out of it (lm-eval-harness's `acc` and `acc_norm`):

- `pred_raw`  = argmax of the raw sums (favours short choices: fewer tokens, fewer penalties);
- `pred_norm` = argmax of the sum divided by the continuation's length **in characters**
  (delimiter included), lm-eval-harness's length normalisation. Characters, not tokens, so that
  the figure does not depend on the tokenizer.

Conventions, decided once here:

- **Delimiter.** Suite files hold bare choices (`"safety goggles"`), as the llm-foundry and
  lm-eval-harness files do; the delimiter (default one space) joins them to the query, so
  `"Question: ...?"` + `" safety goggles"`. Whitespace at the end of the query moves to the start
  of the continuation (lm-eval-harness's rule), so `"Answer: "` + `"x"` scores `" x"` after
  `"Answer:"`: a byte-level BPE attaches the space to the word that follows it.
- **Tokens at the boundary.** The context's tokens are `encode(context)`, the same for every
  choice (which is what lets the fast path compute them once). The continuation's tokens are the
  tail of `encode(context + continuation)` after those context tokens — lm-eval-harness's "encode
  whole, encode context, take the tail" — so a choice is tokenized as it would be in running text.
  In the rare case where a merge across the boundary changes the context's own tokens (the whole's
  first tokens are not the context's tokens), the continuation is encoded on its own instead, so
  the scored sequence is always `context tokens + continuation tokens` with nothing lost.
- **No special tokens** are added, except a lone BOS (or EOS when there is no BOS) as the context
  when the query is empty, so that the first choice token has something to be predicted from.
- **Too long.** When context + the longest continuation exceeds the model's context window, the
  context is cut from the left (its end, next to the answer, matters most).

Two implementations, with identical results up to float rounding:

- `score_naive`: one forward pass per (item, choice), the whole sequence, one at a time. Slow and
  obviously right; the reference for tests and `benchmarks/eval_speed.py`.
- `score_multiple_choice`: the fast path. Items are sorted by length and taken `batch_size` at a
  time. One forward pass runs all their contexts (right-padded) and keeps the KV cache; a second
  runs every choice of every item of the batch at once on top of that cache, each choice row
  reading its own item's cache (`Cache.reorder_cache` with a repeated index). A context is thus
  computed once for all its choices, and the vocabulary-wide log-softmax runs only on the
  positions that predict a continuation token. See `benchmarks/eval_speed.py` for the measured
  speed-up over the naive loop.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch

from tunewise.errors import DataError

if TYPE_CHECKING:
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

__all__ = [
    "DEFAULT_DELIMITER",
    "EncodedItem",
    "ItemScore",
    "MCItem",
    "encode_item",
    "mc_accuracy",
    "score_multiple_choice",
    "score_naive",
]

DEFAULT_DELIMITER = " "
"""Joins a query and a bare choice: `"Question: ...?"` + `" " + "safety goggles"`."""


@dataclass(frozen=True)
class MCItem:
    """One multiple-choice item, as in a suite file row `{query, choices, gold}`.

    Attributes:
        query: the context, e.g. `"Question: Which gas do plants take in?"`.
        choices: the candidate answers, bare (no leading space; the delimiter adds it).
        gold: index of the right choice.
    """

    query: str
    choices: tuple[str, ...]
    gold: int


@dataclass(frozen=True)
class EncodedItem:
    """An item's token ids: one shared context, one continuation per choice.

    Attributes:
        context: context token ids (never empty).
        continuations: one tuple of token ids per choice (never empty).
        num_chars: characters of each continuation (delimiter included), for `acc_norm`.
        gold: index of the right choice.
    """

    context: tuple[int, ...]
    continuations: tuple[tuple[int, ...], ...]
    num_chars: tuple[int, ...]
    gold: int


@dataclass(frozen=True)
class ItemScore:
    """The scores of one item's choices, and the predictions they make.

    Attributes:
        logliks: summed log-probability of each choice's continuation tokens (each <= 0).
        num_tokens: continuation tokens per choice.
        num_chars: continuation characters per choice (delimiter included).
        pred_raw: argmax of `logliks` (lm-eval-harness's `acc`).
        pred_norm: argmax of `logliks / num_chars` (lm-eval-harness's `acc_norm`).
        gold: index of the right choice.
        correct_raw: `pred_raw == gold`.
        correct_norm: `pred_norm == gold`.
    """

    logliks: tuple[float, ...]
    num_tokens: tuple[int, ...]
    num_chars: tuple[int, ...]
    pred_raw: int
    pred_norm: int
    gold: int
    correct_raw: bool
    correct_norm: bool

    @classmethod
    def from_logliks(cls, logliks: Sequence[float], item: EncodedItem) -> ItemScore:
        """Build the score of `item` from its choices' log-likelihood sums."""
        logliks = tuple(float(x) for x in logliks)
        normed = [ll / n for ll, n in zip(logliks, item.num_chars)]
        # Ties go to the lowest index, as numpy's argmax (and lm-eval-harness) does.
        pred_raw = max(range(len(logliks)), key=lambda i: (logliks[i], -i))
        pred_norm = max(range(len(normed)), key=lambda i: (normed[i], -i))
        return cls(
            logliks=logliks,
            num_tokens=tuple(len(c) for c in item.continuations),
            num_chars=item.num_chars,
            pred_raw=pred_raw,
            pred_norm=pred_norm,
            gold=item.gold,
            correct_raw=pred_raw == item.gold,
            correct_norm=pred_norm == item.gold,
        )


# ---------------------------------------------------------------------------------------------
# Items and their tokens.
# ---------------------------------------------------------------------------------------------


def _as_item(row: MCItem | Mapping[str, Any], index: int) -> MCItem:
    if isinstance(row, MCItem):
        query, choices, gold = row.query, row.choices, row.gold
    elif isinstance(row, Mapping):
        missing = [k for k in ("query", "choices", "gold") if k not in row]
        if missing:
            raise DataError(
                f"Multiple-choice item {index} lacks {', '.join(missing)}: each item needs "
                f"query (str), choices (list of str) and gold (index of the right choice)."
            )
        query, choices, gold = row["query"], row["choices"], row["gold"]
    else:
        raise DataError(
            f"Multiple-choice item {index} is a {type(row).__name__}; expected a mapping "
            f"{{query, choices, gold}} or an MCItem."
        )
    problems = []
    if not isinstance(query, str):
        problems.append(f"query must be a string, got {type(query).__name__}")
    if (
        not isinstance(choices, (list, tuple))
        or not choices
        or not all(isinstance(c, str) and c for c in choices)
    ):
        problems.append("choices must be a non-empty list of non-empty strings")
    elif isinstance(gold, bool) or not isinstance(gold, int) or not 0 <= gold < len(choices):
        problems.append(f"gold must be an index into choices (0..{len(choices) - 1}), got {gold!r}")
    if problems:
        raise DataError(f"Multiple-choice item {index}: " + "; ".join(problems) + ".")
    return MCItem(query=query, choices=tuple(choices), gold=gold)


def _encode(tokenizer: PreTrainedTokenizerBase, text: str) -> list[int]:
    return list(tokenizer(text, add_special_tokens=False)["input_ids"])


def encode_item(
    tokenizer: PreTrainedTokenizerBase,
    item: MCItem | Mapping[str, Any],
    *,
    delimiter: str = DEFAULT_DELIMITER,
    max_length: int | None = None,
) -> EncodedItem:
    """Tokenize one item by the conventions in the module docstring.

    Args:
        tokenizer: the model's tokenizer.
        item: a `{query, choices, gold}` mapping or an `MCItem`.
        delimiter: put between the query and each choice.
        max_length: the model's context window; the context is cut from the left to fit.

    Returns:
        The shared context ids and one continuation per choice.

    Raises:
        DataError: the item is malformed, or a choice alone does not fit in `max_length`.
    """
    mc = _as_item(item, 0) if not isinstance(item, MCItem) else item
    context = mc.query
    continuations = [delimiter + choice for choice in mc.choices]
    # lm-eval-harness's rule: trailing whitespace of the context belongs to the continuation,
    # where a byte-level BPE attaches it to the following word.
    stripped = context.rstrip()
    if len(stripped) < len(context):
        tail = context[len(stripped):]
        continuations = [tail + c for c in continuations]
        context = stripped
    ctx = _encode(tokenizer, context)
    if not ctx:
        prefix = tokenizer.bos_token_id if tokenizer.bos_token_id is not None else tokenizer.eos_token_id
        if prefix is None:
            raise DataError("The query is empty and the tokenizer has neither a BOS nor an EOS token to stand in for it.")
        ctx = [prefix]
    conts = []
    for text in continuations:
        whole = _encode(tokenizer, context + text) if context else []
        if context and whole[: len(ctx)] == ctx and len(whole) > len(ctx):
            conts.append(tuple(whole[len(ctx):]))
        else:  # a merge across the boundary changed the context's tokens (or no context)
            conts.append(tuple(_encode(tokenizer, text)))
    if max_length is not None:
        longest = max(len(c) for c in conts)
        if longest >= max_length:
            raise DataError(
                f"A choice of the item with query {mc.query[:60]!r} is {longest} tokens long; with "
                f"its context it cannot fit the model's {max_length}-token window."
            )
        ctx = ctx[-(max_length - longest):]
    return EncodedItem(
        context=tuple(ctx),
        continuations=tuple(conts),
        num_chars=tuple(len(c) for c in continuations),
        gold=mc.gold,
    )


def _max_length(model: PreTrainedModel) -> int | None:
    return getattr(model.config, "max_position_embeddings", None)


def _encode_all(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    items: Iterable[MCItem | Mapping[str, Any]],
    delimiter: str,
) -> list[EncodedItem]:
    limit = _max_length(model)
    return [
        encode_item(tokenizer, _as_item(row, i), delimiter=delimiter, max_length=limit)
        for i, row in enumerate(items)
    ]


def _device(model: PreTrainedModel) -> torch.device:
    return next(model.parameters()).device


class _EvalMode:
    """Put the model in eval mode (no dropout) for the scoring, then restore its mode."""

    def __init__(self, model: PreTrainedModel) -> None:
        self.model = model
        self.was_training = model.training

    def __enter__(self) -> None:
        self.model.eval()

    def __exit__(self, *exc: object) -> None:
        self.model.train(self.was_training)


def _progress(total: int, enabled: bool, desc: str) -> Any:
    from tqdm.auto import tqdm

    return tqdm(total=total, disable=not enabled, desc=desc, unit="item", leave=False)


# ---------------------------------------------------------------------------------------------
# The reference: one full sequence at a time.
# ---------------------------------------------------------------------------------------------


def score_naive(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    items: Iterable[MCItem | Mapping[str, Any]],
    *,
    delimiter: str = DEFAULT_DELIMITER,
    progress: bool = False,
) -> list[ItemScore]:
    """Score each choice with its own forward pass over context + continuation.

    The obvious loop, kept as the reference the fast path is tested and benchmarked against.

    Args:
        model: a causal language model.
        tokenizer: its tokenizer.
        items: `{query, choices, gold}` mappings or `MCItem`s.
        delimiter: put between the query and each choice.
        progress: show a progress bar.

    Returns:
        One `ItemScore` per item, in input order.

    Raises:
        DataError: an item is malformed.
    """
    encoded = _encode_all(model, tokenizer, items, delimiter)
    device = _device(model)
    scores = []
    with _EvalMode(model), torch.inference_mode(), _progress(len(encoded), progress, "scoring") as bar:
        for item in encoded:
            logliks = []
            for cont in item.continuations:
                ids = torch.tensor([item.context + cont], device=device)
                logits = model(input_ids=ids).logits[0].float()
                # Position t predicts token t + 1: the continuation is predicted from the
                # context's last position up to the second-to-last position.
                logprobs = torch.log_softmax(logits[len(item.context) - 1 : -1], dim=-1)
                target = torch.tensor(cont, device=device)
                logliks.append(float(logprobs.gather(-1, target[:, None]).sum()))
            scores.append(ItemScore.from_logliks(logliks, item))
            bar.update(1)
    return scores


# ---------------------------------------------------------------------------------------------
# The fast path: each context once, all its choices on top of its KV cache.
# ---------------------------------------------------------------------------------------------


def score_multiple_choice(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    items: Iterable[MCItem | Mapping[str, Any]],
    *,
    delimiter: str = DEFAULT_DELIMITER,
    batch_size: int = 16,
    progress: bool = True,
) -> list[ItemScore]:
    """Score every choice of every item by log-likelihood, fast.

    Same results as `score_naive` up to float rounding (tested to 1e-4), several times faster:
    each context runs once for all its choices, items are batched by similar length, and the
    log-softmax over the vocabulary runs only where a continuation token is predicted.

    Args:
        model: a causal language model (a PEFT-wrapped one too).
        tokenizer: its tokenizer.
        items: `{query, choices, gold}` mappings or `MCItem`s.
        delimiter: put between the query and each choice.
        batch_size: items per batch; their choices run together (about `batch_size` x the
            number of choices rows).
        progress: show a progress bar.

    Returns:
        One `ItemScore` per item, in input order.

    Raises:
        DataError: an item is malformed.
        ValueError: `batch_size` is not positive.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, got {batch_size}")
    encoded = _encode_all(model, tokenizer, items, delimiter)
    # Longest first: similar lengths share a batch (little padding), and a batch that does not
    # fit in memory fails at once rather than at the end.
    order = sorted(
        range(len(encoded)),
        key=lambda i: (len(encoded[i].context), max(map(len, encoded[i].continuations))),
        reverse=True,
    )
    logliks: list[list[float]] = [[] for _ in encoded]
    with _EvalMode(model), torch.inference_mode(), _progress(len(encoded), progress, "scoring") as bar:
        for start in range(0, len(order), batch_size):
            chunk = order[start : start + batch_size]
            for index, values in zip(chunk, _score_batch(model, [encoded[i] for i in chunk])):
                logliks[index] = values
            bar.update(len(chunk))
    return [ItemScore.from_logliks(ll, item) for ll, item in zip(logliks, encoded)]


def _score_batch(model: PreTrainedModel, batch: list[EncodedItem]) -> list[list[float]]:
    """Log-likelihood sums of every choice of a few items: a context pass, then a choice pass."""
    from transformers import DynamicCache

    device = _device(model)
    pad = 0  # any valid id: padded positions are masked out and their outputs never read

    # 1) Contexts, right-padded, all but their last token. The last context token goes in front
    #    of every choice instead, so that the choice pass yields the logits that predict the
    #    first continuation token (and the context pass needs no logits at all). Right padding
    #    keeps every padded query row attending to at least its row's first real token, so no
    #    attention row is ever fully masked.
    prefixes = [item.context[:-1] for item in batch]
    width = max(map(len, prefixes))
    cache = None
    prefix_mask = torch.zeros(len(batch), width, dtype=torch.long, device=device)
    if width:
        ids = torch.full((len(batch), width), pad, dtype=torch.long, device=device)
        for row, prefix in enumerate(prefixes):
            ids[row, : len(prefix)] = torch.tensor(prefix, dtype=torch.long)
            prefix_mask[row, : len(prefix)] = 1
        cache = DynamicCache(config=model.config)
        model(
            input_ids=ids,
            attention_mask=prefix_mask,
            position_ids=torch.arange(width, device=device).expand(len(batch), -1),
            past_key_values=cache,
            use_cache=True,
            logits_to_keep=1,
        )

    # 2) Every choice of every item: [last context token] + continuation, right-padded, on top of
    #    its own item's cache rows. Positions continue from each item's real context length, not
    #    from the padded width, so padding changes nothing.
    owners = [row for row, item in enumerate(batch) for _ in item.continuations]
    seqs = [(item.context[-1], *cont) for item in batch for cont in item.continuations]
    length = max(map(len, seqs))
    ids = torch.full((len(seqs), length), pad, dtype=torch.long, device=device)
    choice_mask = torch.zeros(len(seqs), length, dtype=torch.long, device=device)
    for row, seq in enumerate(seqs):
        ids[row, : len(seq)] = torch.tensor(seq, dtype=torch.long)
        choice_mask[row, : len(seq)] = 1
    owner = torch.tensor(owners, dtype=torch.long, device=device)
    if cache is not None:
        cache.reorder_cache(owner)  # row r of the cache becomes its owner item's context
    starts = torch.tensor([len(p) for p in prefixes], device=device)[owner]
    out = model(
        input_ids=ids,
        attention_mask=torch.cat([prefix_mask[owner], choice_mask], dim=1),
        position_ids=starts[:, None] + torch.arange(length, device=device),
        past_key_values=cache,
        use_cache=cache is not None,
        # Positions 0..length-2 predict tokens 1..length-1; the last one predicts nothing.
        logits_to_keep=torch.arange(length - 1, device=device),
    )
    logits = out.logits

    # 3) Gather the positions that predict a continuation token, then log-softmax only those.
    targets = ids[:, 1:]
    wanted = choice_mask[:, 1:].bool()
    picked = torch.log_softmax(logits[wanted].float(), dim=-1)
    token_logprobs = picked.gather(-1, targets[wanted][:, None]).squeeze(-1)
    rows = torch.arange(len(seqs), device=device)[:, None].expand_as(wanted)[wanted]
    sums = torch.zeros(len(seqs), dtype=torch.float64, device=device)
    sums.index_add_(0, rows, token_logprobs.double())
    values = sums.tolist()

    result, at = [], 0
    for item in batch:
        result.append(values[at : at + len(item.continuations)])
        at += len(item.continuations)
    return result


# ---------------------------------------------------------------------------------------------
# Accuracy.
# ---------------------------------------------------------------------------------------------


def mc_accuracy(scores: Sequence[ItemScore]) -> dict[str, float]:
    """Accuracy of the raw and the length-normalised predictions.

    Args:
        scores: from `score_multiple_choice` or `score_naive`.

    Returns:
        `acc` and `acc_norm` (fractions in [0, 1]; NaN when there are no scores), their standard
        errors `acc_stderr` and `acc_norm_stderr` (sample standard deviation / sqrt(n), as
        lm-eval-harness reports), and `n`, the number of items.
    """
    n = len(scores)
    result: dict[str, float] = {"n": float(n)}
    for key, field in (("acc", "correct_raw"), ("acc_norm", "correct_norm")):
        hits = [float(getattr(s, field)) for s in scores]
        mean = sum(hits) / n if n else math.nan
        var = sum((h - mean) ** 2 for h in hits) / (n - 1) if n > 1 else math.nan
        result[key] = mean
        result[f"{key}_stderr"] = math.sqrt(var / n) if n > 1 else math.nan
    return result
