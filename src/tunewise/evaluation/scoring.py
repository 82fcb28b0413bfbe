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
  of the continuation (lm-eval-harness's rule), where a byte-level BPE attaches it to the word
  after it: with `delimiter=""`, `"Answer: "` + `"x"` scores `" x"` after `"Answer:"`. (A file
  whose queries already end in a space wants `delimiter=""`; the default would add a second.)
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
- `score_multiple_choice`: the fast path. Each item becomes **one packed row** — its context once,
  then each of its choices — with a 4D attention mask that lets a choice see the context and
  itself only, and position ids that restart each choice at the end of the context. That is the
  fewest token computations possible (the context is never repeated), all in one forward pass
  per batch of items sorted by length; the vocabulary-wide log-softmax runs only on the
  positions that predict a continuation token, and the vocabulary projection only from the
  earliest such position on.

  Measured on the default model and ARC-Easy on a 2-core CPU: 500 items take 180 s in the naive
  loop and 25 s here (7.3x, `benchmarks/eval_speed.py`). Alternatives tried on 100 items in one
  process, alternating runs: packed ~14 s at 16 items a batch (8-16 best; 32 and up slower as
  activations spill out of the CPU caches); two passes with a shared KV cache (all contexts once
  with `use_cache=True`, then all choices on it, `Cache.reorder_cache` giving each choice row
  its item's context) ~28-33 s; full context+choice sequences batched by length ~53 s. So
  packing is the path, and the KV-cache one is kept as the fallback for models that cannot take
  a custom 4D mask (flash-attention kernels) or that place tokens by index rather than by
  position id (ALiBi): the first batch is checked against a plain forward pass, and a
  disagreement (or an error) switches to it with a warning.

Padding never changes a result: padded positions are masked as keys for every real token, and
positions come from explicit position ids, never from where a token sits in the padded batch.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, cast

import torch

from tunewise.errors import DataError
from tunewise.inference import device_of, eval_mode, token_logprobs

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

_log = logging.getLogger(__name__)

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
    if not isinstance(choices, (list, tuple)) or not choices or not all(isinstance(c, str) and c for c in choices):
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
        tail = context[len(stripped) :]
        continuations = [tail + c for c in continuations]
        context = stripped
    ctx = _encode(tokenizer, context)
    if not ctx:
        prefix = tokenizer.bos_token_id
        if prefix is None:
            prefix = tokenizer.eos_token_id
        if prefix is None:
            raise DataError(
                "The query is empty and the tokenizer has neither a BOS nor an EOS token to "
                "stand in for it; give the item a query."
            )
        ctx = [prefix]
    conts = []
    for text in continuations:
        whole = _encode(tokenizer, context + text) if context else []
        if context and whole[: len(ctx)] == ctx and len(whole) > len(ctx):
            conts.append(tuple(whole[len(ctx) :]))
        else:  # a merge across the boundary changed the context's tokens (or no context)
            conts.append(tuple(_encode(tokenizer, text)))
    if max_length is not None:
        longest = max(len(c) for c in conts)
        if longest >= max_length:
            raise DataError(
                f"A choice of the item with query {mc.query[:60]!r} is {longest} tokens long; with "
                f"its context it cannot fit the model's {max_length}-token window."
            )
        ctx = ctx[-(max_length - longest) :]
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
        encode_item(tokenizer, _as_item(row, i), delimiter=delimiter, max_length=limit) for i, row in enumerate(items)
    ]


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
    scores = []
    bar = _progress(len(encoded), progress, "scoring")
    with eval_mode(model, autograd="inference_mode"), bar:
        for item in encoded:
            logliks = [_plain_loglik(model, item, j) for j in range(len(item.continuations))]
            scores.append(ItemScore.from_logliks(logliks, item))
            bar.update(1)
    return scores


def _plain_loglik(model: PreTrainedModel, item: EncodedItem, choice: int) -> float:
    """One choice's log-likelihood from one forward pass over context + continuation."""
    cont = item.continuations[choice]
    logprobs = token_logprobs(model, torch.tensor([item.context + cont]))[0]
    # Entry t scores token t + 1: the continuation is scored from the context's last position on.
    return float(logprobs[len(item.context) - 1 :].sum())


# ---------------------------------------------------------------------------------------------
# The fast path: each item packed into one row, its context computed once for all its choices.
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
    each item is one packed row (context once, then all its choices), items of similar length
    share a batch, and the log-softmax over the vocabulary runs only where a continuation token
    is predicted. On the first batch the packed result is checked against a plain forward pass;
    a model whose attention ignores the packed mask (or rejects it) is scored through the
    KV-cache path instead, with a warning.

    Args:
        model: a causal language model (a PEFT-wrapped one too).
        tokenizer: its tokenizer.
        items: `{query, choices, gold}` mappings or `MCItem`s.
        delimiter: put between the query and each choice.
        batch_size: items per forward pass. 8 to 16 was fastest for the default model on a
            2-core CPU (bigger batches spill out of the CPU caches); raise it on a GPU.
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
    order = sorted(range(len(encoded)), key=lambda i: _packed_length(encoded[i]), reverse=True)
    score_batch = _score_batch_packed if _packing_supported(model) else _score_batch_cached
    logliks: list[list[float]] = [[] for _ in encoded]
    bar = _progress(len(encoded), progress, "scoring")
    with eval_mode(model, autograd="inference_mode"), bar:
        for start in range(0, len(order), batch_size):
            batch = [encoded[i] for i in order[start : start + batch_size]]
            if start == 0 and score_batch is _score_batch_packed:
                values = _checked_packed(model, batch)
                if values is None:
                    score_batch = _score_batch_cached
                    values = score_batch(model, batch)
            else:
                values = score_batch(model, batch)
            for index, item_values in zip(order[start : start + batch_size], values):
                logliks[index] = item_values
            bar.update(len(batch))
    return [ItemScore.from_logliks(ll, item) for ll, item in zip(logliks, encoded)]


def _packed_length(item: EncodedItem) -> int:
    return len(item.context) + sum(map(len, item.continuations))


def _packing_supported(model: PreTrainedModel) -> bool:
    # eager and sdpa attention take a custom 4D mask as given; flash-attention kernels take
    # only padding masks, so they go the KV-cache way.
    return getattr(model.config, "_attn_implementation", None) in ("eager", "sdpa")


def _checked_packed(model: PreTrainedModel, batch: list[EncodedItem]) -> list[list[float]] | None:
    """The packed scores of the first batch, or None when packing does not work for this model.

    A model that places tokens by their index rather than by `position_ids` (ALiBi, learned
    positions computed from a 2D mask) would give packed choices wrong scores without any error;
    one plain forward pass on one choice catches that.
    """
    try:
        values = _score_batch_packed(model, batch)
    except Exception as exc:
        _log.warning("packed scoring failed for this model (%s); using the KV-cache path", exc)
        return None
    plain = _plain_loglik(model, batch[0], 0)
    full_precision = model.dtype in (torch.float32, torch.float64)
    tolerance = (1e-3 if full_precision else 5e-2) * max(1.0, abs(plain))
    if abs(values[0][0] - plain) > tolerance:
        _log.warning(
            "packed scoring disagrees with a plain forward pass for this model (%.4f vs %.4f); using the KV-cache path",
            values[0][0],
            plain,
        )
        return None
    return values


def _score_batch_packed(model: PreTrainedModel, batch: list[EncodedItem]) -> list[list[float]]:
    """Log-likelihood sums of every choice of a few items in one forward pass.

    Each item is one row: its context, then each of its choices in turn, then padding. A 4D
    attention mask lets a choice token see the context and the earlier tokens of its own choice
    only, and its position id continues from the end of the context, so each choice is computed
    exactly as if it followed the context alone — while the context is computed once. This
    needs fewer token computations than any other arrangement: no context repeated per choice,
    no extra token per choice.
    """
    device = device_of(model)
    width = max(map(_packed_length, batch))
    ids = torch.zeros(len(batch), width, dtype=torch.long)  # id 0 in padding: masked, never read
    positions = torch.zeros(len(batch), width, dtype=torch.long)
    # Segment of each position: 0 the context, k >= 1 the k-th choice, -1 padding.
    segment = torch.full((len(batch), width), -1, dtype=torch.long)
    rows: list[int] = []  # where each continuation token is predicted from
    cols: list[int] = []
    targets: list[int] = []
    owners: list[int] = []  # which choice (counted over the batch) each target belongs to
    choice = 0
    for row, item in enumerate(batch):
        n_ctx = len(item.context)
        ids[row, :n_ctx] = torch.tensor(item.context)
        positions[row, :n_ctx] = torch.arange(n_ctx)
        segment[row, :n_ctx] = 0
        at = n_ctx
        for k, cont in enumerate(item.continuations, start=1):
            n = len(cont)
            ids[row, at : at + n] = torch.tensor(cont)
            positions[row, at : at + n] = torch.arange(n_ctx, n_ctx + n)
            segment[row, at : at + n] = k
            # The first token is predicted from the context's last position, every later one
            # from the token before it in the same choice.
            cols += [n_ctx - 1, *range(at, at + n - 1)]
            rows += [row] * n
            targets += cont
            owners += [choice] * n
            choice += 1
            at += n
    causal = torch.ones(width, width, dtype=torch.bool).tril()
    same_segment = segment[:, :, None] == segment[:, None, :]
    context_key = (segment == 0)[:, None, :]
    # Padding rows see the context and each other: finite, and never read.
    allowed = causal & (context_key | same_segment)
    mask = torch.zeros(allowed.shape, dtype=model.dtype).masked_fill_(~allowed, torch.finfo(model.dtype).min)[:, None]

    # The earliest position any item needs logits for is its context's last one: nothing before
    # it reaches the vocabulary projection.
    first = min(len(item.context) for item in batch) - 1
    logits = model(
        input_ids=ids.to(device),
        attention_mask=mask.to(device),
        position_ids=positions.to(device),
        logits_to_keep=torch.arange(first, width, device=device),
    ).logits
    picked = logits[torch.tensor(rows, device=device), torch.tensor(cols, device=device) - first]
    return _sum_by_choice(picked, targets, owners, batch)


def _sum_by_choice(
    picked: torch.Tensor, targets: list[int], owners: list[int], batch: list[EncodedItem]
) -> list[list[float]]:
    """Log-softmax the picked logits rows (only those), and sum each choice's token scores."""
    device = picked.device
    logprobs = torch.log_softmax(picked.float(), dim=-1)
    token = logprobs.gather(-1, torch.tensor(targets, device=device)[:, None]).squeeze(-1)
    count = sum(len(item.continuations) for item in batch)
    sums = torch.zeros(count, dtype=torch.float64, device=device)
    sums.index_add_(0, torch.tensor(owners, device=device), token.double())
    values = sums.tolist()
    result, at = [], 0
    for item in batch:
        result.append(values[at : at + len(item.continuations)])
        at += len(item.continuations)
    return result


def _score_batch_cached(model: PreTrainedModel, batch: list[EncodedItem]) -> list[list[float]]:
    """The same sums in two passes: all contexts once with a KV cache, then all choices on it.

    The fallback for models that cannot take the packed mask. It works with any attention that
    takes a 2D padding mask, at about half the packed path's speed on the default model.
    """
    from transformers import DynamicCache

    device = device_of(model)
    pad = 0  # any valid id: padded positions are masked out and their outputs never read

    # 1) Contexts, right-padded, all but their last token. The last context token goes in front
    #    of every choice instead, so that the choice pass yields the logits that predict the
    #    first continuation token (and the context pass needs no logits at all).
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
        cache.reorder_cache(cast(torch.LongTensor, owner))  # row r of the cache becomes its owner item's context
    starts = torch.tensor([len(p) for p in prefixes], device=device)[owner]
    logits = model(
        input_ids=ids,
        attention_mask=torch.cat([prefix_mask[owner], choice_mask], dim=1),
        position_ids=starts[:, None] + torch.arange(length, device=device),
        past_key_values=cache,
        use_cache=cache is not None,
        # Positions 0..length-2 predict tokens 1..length-1; the last one predicts nothing.
        logits_to_keep=torch.arange(length - 1, device=device),
    ).logits

    # 3) Only the positions that predict a continuation token reach the log-softmax.
    wanted = choice_mask[:, 1:].bool()
    choice_of_token = torch.arange(len(seqs), device=device)[:, None].expand_as(wanted)[wanted]
    targets = ids[:, 1:][wanted].tolist()
    return _sum_by_choice(logits[wanted], targets, choice_of_token.tolist(), batch)


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
