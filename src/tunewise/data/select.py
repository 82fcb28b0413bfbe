"""Active learning: choose the K unlabelled rows most worth labelling.

Three ways to score a row, each with the model that is going to be fine-tuned:

| `by`         | a row is informative when...                      | score                                  |
|--------------|---------------------------------------------------|----------------------------------------|
| `entropy`    | the model is unsure what comes next in it          | mean entropy (nats) of the next-token distributions over the row's tokens |
| `perplexity` | the model finds the text surprising                | exp(mean negative log-likelihood of its tokens) |
| `kcenter`    | it lies far from everything chosen so far          | distance to the nearest chosen row (or labelled row) in embedding space |

`entropy` and `perplexity` take the K highest scores. `kcenter` is the k-center greedy of Sener &
Savarese (2018) on embeddings = mean-pooled last hidden states of the model, L2-normalised: it
starts from the rows already labelled (`labelled`) or, without them, from the row farthest from the
centroid, then repeatedly adds the row farthest from its nearest chosen one, so the K rows spread
over the data instead of crowding into one uncertain corner.

What is scored is the row's input side: the user turns of a chat, Alpaca `instruction`+`input`,
`prompt`, or `text` — the same fields `tunewise data augment` edits (`--field` names others).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from tunewise.data._generation import progress, read_all, write_rows
from tunewise.data.augment import _get, _row_kinds, editable_fields
from tunewise.data.io import Row
from tunewise.errors import DataError, TunewiseError

if TYPE_CHECKING:
    import torch
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

__all__ = [
    "METHODS",
    "Selected",
    "embed",
    "k_center_greedy",
    "mean_token_entropy",
    "row_text",
    "select_file",
    "select_rows",
    "sequence_perplexity",
    "uncertainty",
]

METHODS = ("entropy", "perplexity", "kcenter")


@dataclass(frozen=True)
class Selected:
    """One chosen row.

    Attributes:
        rank: 1 for the first chosen.
        index: the row's position in the input.
        source: its `file:line`.
        score: see the module table.
        row: the row as read.
    """

    rank: int
    index: int
    source: str
    score: float
    row: dict[str, Any]


# --------------------------------------------------------------------------- scores from logits


def mean_token_entropy(logits: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean entropy (nats) of the predictive distributions at the masked positions, per row.

    Args:
        logits: `[batch, positions, vocab]`.
        mask: `[batch, positions]`, 1 where the position counts.

    Returns:
        `[batch]`; NaN for a row with no counted position.
    """
    import torch

    logp = torch.log_softmax(logits.float(), dim=-1)
    entropy = -(logp.exp() * logp).sum(-1)
    mask = mask.to(entropy.dtype)
    return (entropy * mask).sum(-1) / mask.sum(-1)


def sequence_perplexity(logits: torch.Tensor, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """exp(mean NLL) of each row's tokens after the first, predicted from the ones before.

    Args:
        logits: `[batch, length, vocab]` for `input_ids`.
        input_ids, attention_mask: `[batch, length]`, right-padded.

    Returns:
        `[batch]`.
    """
    import torch

    logp = torch.log_softmax(logits[:, :-1].float(), dim=-1)
    target = input_ids[:, 1:]
    nll = -logp.gather(-1, target.unsqueeze(-1)).squeeze(-1)
    mask = attention_mask[:, 1:].to(nll.dtype)
    return torch.exp((nll * mask).sum(-1) / mask.sum(-1))


# --------------------------------------------------------------------------- model passes


def _encode(tokenizer: PreTrainedTokenizerBase, texts: Sequence[str], max_length: int) -> list[list[int]]:
    # A leading bos lets the model predict the first real token too (so one-token rows have a score).
    bos = [tokenizer.bos_token_id] if tokenizer.bos_token_id is not None else []
    return [bos + tokenizer(t, add_special_tokens=False)["input_ids"][: max_length - len(bos)] for t in texts]


def _batches(
    model: PreTrainedModel, ids: list[list[int]], pad_id: int, batch_size: int, desc: str, show_progress: bool | None
) -> Any:
    import torch

    from tunewise.inference import device_of

    device = device_of(model)
    bar = progress(total=len(ids), desc=desc, enabled=show_progress)
    for start in range(0, len(ids), batch_size):
        chunk = ids[start : start + batch_size]
        width = max(len(x) for x in chunk)
        input_ids = torch.full((len(chunk), width), pad_id, dtype=torch.long)
        attention = torch.zeros((len(chunk), width), dtype=torch.long)
        for i, x in enumerate(chunk):
            input_ids[i, : len(x)] = torch.tensor(x)
            attention[i, : len(x)] = 1
        yield input_ids.to(device), attention.to(device)
        bar.update(len(chunk))
    bar.close()


def uncertainty(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    texts: Sequence[str],
    *,
    by: str = "entropy",
    max_length: int = 256,
    batch_size: int = 8,
    show_progress: bool | None = None,
) -> list[float]:
    """Per-text uncertainty of a causal LM: mean token entropy or perplexity (module table)."""
    from tunewise.inference import eval_mode

    if by not in ("entropy", "perplexity"):
        raise TunewiseError(f"--by {by}: uncertainty is 'entropy' or 'perplexity'")
    ids = _encode(tokenizer, texts, max_length)
    scores: list[float] = []
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    with eval_mode(model):
        for input_ids, attention in _batches(model, ids, pad, batch_size, by, show_progress):
            logits = model(input_ids=input_ids, attention_mask=attention).logits
            if by == "entropy":
                # Position t predicts token t+1: count it when t+1 is a real token.
                batch = mean_token_entropy(logits[:, :-1], attention[:, 1:])
            else:
                batch = sequence_perplexity(logits, input_ids, attention)
            scores += batch.tolist()
    return scores


def embed(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    texts: Sequence[str],
    *,
    max_length: int = 256,
    batch_size: int = 8,
    show_progress: bool | None = None,
) -> np.ndarray:
    """Mean-pooled last hidden states (over real tokens), L2-normalised: `[len(texts), hidden]`."""
    import torch

    from tunewise.inference import eval_mode

    ids = _encode(tokenizer, texts, max_length)
    out: list[np.ndarray] = []
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    with eval_mode(model):
        for input_ids, attention in _batches(model, ids, pad, batch_size, "embed", show_progress):
            hidden = model(input_ids=input_ids, attention_mask=attention, output_hidden_states=True).hidden_states[-1]
            mask = attention.unsqueeze(-1).to(hidden.dtype)
            pooled = (hidden.float() * mask).sum(1) / mask.sum(1)
            out.append(torch.nn.functional.normalize(pooled, dim=-1).cpu().numpy())
    return np.concatenate(out) if out else np.zeros((0, 0), dtype=np.float32)


# --------------------------------------------------------------------------- k-center greedy


def k_center_greedy(points: np.ndarray, k: int, *, initial: np.ndarray | None = None) -> tuple[list[int], list[float]]:
    """Pick `k` rows of `points` greedily, each the farthest (Euclidean) from those picked so far.

    Args:
        points: `[n, d]`.
        k: how many to pick (at most n).
        initial: `[m, d]` centers already chosen (e.g. labelled rows); the first pick is then the
            point farthest from them. Without them, the first pick is the point farthest from the
            centroid.

    Returns:
        `(indices, distances)`: picked row indices in order, and each one's distance to its
        nearest earlier center (or to the centroid, for the first pick without `initial`).
        Ties go to the lowest index, so the result is deterministic.
    """
    points = np.asarray(points, dtype=np.float64)
    n = len(points)
    if not 0 < k <= n:
        raise TunewiseError(f"--k {k}: must be between 1 and the number of rows ({n})")
    if initial is not None and len(initial):
        initial = np.asarray(initial, dtype=np.float64)
        nearest = np.min(np.linalg.norm(points[:, None, :] - initial[None, :, :], axis=-1), axis=1)
    else:
        nearest = np.linalg.norm(points - points.mean(0), axis=1)
    picked: list[int] = []
    distances: list[float] = []
    for _ in range(k):
        masked = nearest.copy()
        masked[picked] = -np.inf
        i = int(np.argmax(masked))  # argmax returns the first maximum: lowest index on ties
        picked.append(i)
        distances.append(float(nearest[i]))
        nearest = np.minimum(nearest, np.linalg.norm(points - points[i], axis=1))
    return picked, distances


# --------------------------------------------------------------------------- rows


def row_text(row: Row, kind: str, fields: Sequence[str] | None = None) -> str:
    """The input side of a row (user turns, instruction + input, prompt or text), joined by newlines."""
    return "\n".join(_get(row.data, p) for p in editable_fields(row, kind, fields=fields))


def select_rows(
    rows: Sequence[Row],
    k: int,
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    *,
    by: str = "entropy",
    labelled: Sequence[Row] = (),
    fields: Sequence[str] | None = None,
    max_length: int = 256,
    batch_size: int = 8,
    show_progress: bool | None = None,
) -> list[Selected]:
    """Choose the `k` most informative rows (module docstring).

    Args:
        rows: the unlabelled pool.
        k: how many to choose.
        model, tokenizer: a causal LM and its tokenizer.
        by: one of `METHODS`.
        labelled: rows already labelled (used by `kcenter` as the starting centers).
        fields: score these top-level text fields instead of the shape's input fields.
        max_length: tokens per row scored (longer rows are cut).
        batch_size: rows per forward pass.
        show_progress: a progress bar; on when stderr is a terminal if None.

    Returns:
        The chosen rows, best first.

    Raises:
        DataError: rows mix shapes or lack their text fields (named by `file:line`).
        TunewiseError: unknown method, or k out of range.
    """
    if by not in METHODS:
        raise TunewiseError(f"--by {by}: choose from {', '.join(METHODS)}")
    if not 0 < k <= len(rows):
        raise TunewiseError(f"--k {k}: must be between 1 and the number of rows ({len(rows)})")
    kind = _row_kinds(rows, fields)
    texts = [row_text(r, kind, fields) for r in rows]
    empty = [r.source for r, t in zip(rows, texts) if not t.strip()]
    if empty:
        raise DataError(
            f"{empty[0]}: nothing to score — the row's input side (user turns, instruction, "
            f"prompt or text) is empty ({len(empty)} such rows). Fill or remove it, or name the "
            "fields to score with --field."
        )
    if by == "kcenter":
        vectors = embed(
            model, tokenizer, texts, max_length=max_length, batch_size=batch_size, show_progress=show_progress
        )
        initial = None
        if labelled:
            labelled_kind = _row_kinds(labelled, fields)
            initial = embed(
                model,
                tokenizer,
                [row_text(r, labelled_kind, fields) for r in labelled],
                max_length=max_length,
                batch_size=batch_size,
                show_progress=show_progress,
            )
        order, scores = k_center_greedy(vectors, k, initial=initial)
    else:
        values = uncertainty(
            model, tokenizer, texts, by=by, max_length=max_length, batch_size=batch_size, show_progress=show_progress
        )
        # Highest first; ties by input order (a stable sort on the negated score).
        order = sorted(range(len(values)), key=lambda i: -values[i])[:k]
        scores = [values[i] for i in order]
    return [
        Selected(rank, i, rows[i].source, float(s), rows[i].data)
        for rank, (i, s) in enumerate(zip(order, scores), start=1)
    ]


def select_file(
    path: str | Path,
    out: str | Path,
    k: int,
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    *,
    labelled: str | Path | None = None,
    model_name: str | None = None,
    limit: int | None = None,
    **kwargs: Any,
) -> list[Selected]:
    """Read the pool, choose `k` rows (`select_rows` arguments), and write them with their scores.

    Each output row is the input row plus `selection`: `{rank, by, score, source, model}`.
    `limit` scores only the first N rows of the pool.
    """
    if Path(out).resolve() == Path(path).resolve():
        raise TunewiseError(f"--out {out}: is the input file; write the selection to a new file")
    rows = read_all(path)[:limit]
    labelled_rows = read_all(labelled) if labelled is not None else []
    chosen = select_rows(rows, k, model, tokenizer, labelled=labelled_rows, **kwargs)
    by = kwargs.get("by", "entropy")
    write_rows(
        [
            {
                **c.row,
                "selection": {
                    "rank": c.rank,
                    "by": by,
                    "score": round(c.score, 6),
                    "source": c.source,
                    "model": model_name,
                },
            }
            for c in chosen
        ],
        out,
    )
    return chosen
