"""Was fine-tuning worth it? The base model with training examples in its prompt, scored like the fine-tune.

A fine-tune has two cheaper rivals that need no training at all, and the report must say whether
it beat them. Both give the *base* model some of the training data in its prompt:

| variant | what the base model sees before each prompt |
|---|---|
| `few_shot` | k training examples drawn at random (seeded), the same k for every row: a fixed prompt, as prompt engineering writes it |
| `retrieval` | the k training examples nearest to the prompt by BM25: retrieval augmentation (RAG) |

The examples go in as earlier chat turns — user, assistant, user, assistant — after the row's own
system message (if any), so the model reads them as a conversation it already had. Retrieved
examples are ordered least similar first, so the nearest one sits right before the question.

They are scored on the task measurements only, never on the general, safety or bias suites:

- **the eval rows** (here): the loss of the reference answers, for the base model zero-shot, the
  two variants, and the fine-tune zero-shot. Every variant scores *exactly the same answer
  tokens* — the context changes, the answers do not. That is checked row by row: a row whose
  answer tokens change with the context (a chat template that renders a turn differently after
  earlier turns) is left out of every variant, with a note, never compared unequally. Each
  variant's loss gets a bootstrap interval, and tuned − variant a paired one (the same rows
  resampled on both sides, every token weighted equally).
- **task suites** (multiple choice and generation; `suite_eval.py` asks `ShotPool` for the
  examples): for generation the examples are earlier chat turns, for multiple choice they are
  rendered through the chat template in front of the query.

Retrieval: the query is the row's user turns (never its answers); a document is a training
example's user and assistant turns. Tokenised by bm25s — lowercase, words of one character and up
(chemical symbols, single-letter options), Porter-stemmed (nltk, which rouge-score brings), and no
stop-word list, because short prompts are often *about* such words ("the symbol He", "In") and
BM25's IDF already discounts the common ones. The eval row itself is never retrieved: training
rows with its `file:line` or with exactly its conversation are excluded (train and eval are
disjoint by construction; this guards duplicated rows).

A prompt that would not fit the model's context window drops its examples farthest from the
question until it does; the mean number of examples used is reported per variant.

    pool = ShotPool(prepared.train_examples, config.eval.baselines)
    summary = score_eval_rows(model, tokenizer, prepared.eval_examples, pool, train_on="all_assistant",
                              batch_size=8, generations=4, max_new_tokens=64)
"""

from __future__ import annotations

import functools
import math
import random
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from tunewise.config import BaselinesConfig
from tunewise.data.shapes import Example
from tunewise.data.templates import IGNORE_INDEX, Rendered, render, render_all
from tunewise.errors import DataError
from tunewise.evaluation.compare import row_losses, side
from tunewise.evaluation.metrics import bootstrap_ci_corpus, paired_bootstrap_delta_corpus
from tunewise.inference import generate_texts

if TYPE_CHECKING:
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

__all__ = [
    "VARIANTS",
    "BM25Index",
    "RowVariants",
    "ShotPool",
    "build_row_variants",
    "context_length",
    "prompt_text",
    "score_eval_rows",
    "suite_contexts",
    "variant_label",
    "with_context",
]

VARIANTS = ("few_shot", "retrieval")
"""The cheaper alternatives, in the order they are reported."""

_NO_LIMIT = 1 << 30  # render without truncation: a cut answer would not be the same answer


# --- Conversations -------------------------------------------------------------------------------


def _turns(example: Example) -> list[dict[str, str]]:
    """The user/assistant turns of a training example, without its system message or a trailing user turn."""
    turns = [dict(m) for m in example.messages or () if m["role"] != "system"]
    while turns and turns[-1]["role"] != "assistant":
        turns.pop()
    return turns


def prompt_text(messages: Sequence[dict[str, str]]) -> str:
    """What a retrieval query sees of a conversation: its user turns before the last answer.

    Answers are never part of the query: the reference answer must not find itself.
    """
    last = max((i for i, m in enumerate(messages) if m["role"] == "assistant"), default=len(messages))
    return "\n".join(m["content"] for m in messages[:last] if m["role"] == "user")


def with_context(example: Example, shots: Sequence[Example]) -> Example:
    """`example` with the turns of `shots` inserted before its own, after its system message."""
    messages = list(example.messages or ())
    head = messages[:1] if messages and messages[0]["role"] == "system" else []
    context = [turn for shot in shots for turn in _turns(shot)]
    return Example(source=example.source, messages=tuple(head + context + messages[len(head) :]))


def _identity(example: Example) -> tuple[tuple[str, str], ...]:
    return tuple((m["role"], m["content"].strip()) for m in example.messages or () if m["role"] != "system")


def context_length(model: PreTrainedModel) -> int | None:
    """The longest sequence the model takes (its position embeddings), or None when it does not say."""
    value = getattr(getattr(model, "config", None), "max_position_embeddings", None)
    return int(value) if isinstance(value, int) and value > 0 else None


# --- BM25 ----------------------------------------------------------------------------------------


@functools.cache
def _stemmer() -> Callable[[list[str]], list[str]] | None:
    try:  # nltk comes with rouge-score; without it, words are matched unstemmed
        from nltk.stem.porter import PorterStemmer
    except ImportError:
        return None
    porter = PorterStemmer()
    return lambda words: [porter.stem(w) for w in words]


def _tokenize(texts: Sequence[str]) -> list[list[str]]:
    import bm25s

    return bm25s.tokenize(
        list(texts),
        lower=True,
        token_pattern=r"(?u)\b\w+\b",
        stopwords=None,
        stemmer=_stemmer(),
        return_ids=False,
        show_progress=False,
    )


class BM25Index:
    """Okapi BM25 (bm25s, Lucene's variant) over a list of documents.

    Args:
        documents: one text per document; the index keeps their order.
    """

    def __init__(self, documents: Sequence[str]) -> None:
        import bm25s

        if not documents:
            raise ValueError("BM25Index needs at least one document")
        self.size = len(documents)
        self._bm25 = bm25s.BM25()
        self._bm25.index(_tokenize(documents), show_progress=False)

    def nearest(self, queries: Sequence[str], k: int, exclude: Sequence[set[int]] | None = None) -> list[list[int]]:
        """The `k` documents nearest to each query, nearest first, never one in its `exclude` set.

        Args:
            queries: the query texts.
            k: how many per query; fewer when the index holds fewer documents that are not excluded.
            exclude: per query, document indices it must never get.

        Returns:
            Per query, document indices in decreasing BM25 score (ties in index order).
        """
        if not queries or k <= 0:
            return [[] for _ in queries]
        exclude = exclude or [set() for _ in queries]
        tokens = _tokenize(queries)
        width = min(self.size, k + max(len(e) for e in exclude))
        docs, scores = self._bm25.retrieve(tokens, k=width, show_progress=False, n_threads=1)
        out = []
        for row_docs, row_scores, banned in zip(docs, scores, exclude):
            ranked = sorted(zip(row_docs.tolist(), row_scores.tolist()), key=lambda d: (-d[1], d[0]))
            out.append([int(d) for d, _ in ranked if d not in banned][:k])
        return out


# --- Which training examples go in front of which prompt -----------------------------------------


class ShotPool:
    """The training examples the baselines draw from, and how each variant picks them.

    Args:
        train: the training examples; rows without a chat conversation (plain `text`) are not used.
        config: `eval.baselines`: k per variant (0 = off) and the seed of the few-shot draw.

    Attributes:
        examples: the usable training examples, in the order indices refer to.
        k: variant -> its k, for the variants that are on (clamped to the pool size).
        notes: what was adjusted or left out, in words for the report.
    """

    def __init__(self, train: Sequence[Example], config: BaselinesConfig) -> None:
        self.examples = [ex for ex in train if ex.messages is not None and _turns(ex)]
        self.notes: list[str] = []
        self.k: dict[str, int] = {}
        self.seed = config.seed
        n = len(self.examples)
        for variant in VARIANTS:
            wanted = getattr(config, variant)
            if wanted == 0:
                continue
            if n == 0:
                self.notes.append(
                    f"eval.baselines.{variant}={wanted}: the training data has no chat rows to "
                    f"put in a prompt; {variant} was not scored"
                )
                continue
            if wanted > n:
                self.notes.append(
                    f"eval.baselines.{variant}={wanted} but the training data has {n} chat rows: using {n}"
                )
            self.k[variant] = min(wanted, n)
        # One permutation: the few-shot examples are its first k that are not the row itself.
        self._order = random.Random(config.seed).sample(range(n), n)
        self._index = (
            BM25Index([prompt_text(_turns(ex)) + "\n" + _answers(ex) for ex in self.examples])
            if "retrieval" in self.k
            else None
        )
        self._by_identity: dict[tuple[tuple[str, str], ...], set[int]] = defaultdict(set)
        self._by_source: dict[str, set[int]] = defaultdict(set)
        for i, ex in enumerate(self.examples):
            self._by_identity[_identity(ex)].add(i)
            self._by_source[ex.source].add(i)

    @property
    def variants(self) -> tuple[str, ...]:
        """The variants that are on, in report order."""
        return tuple(v for v in VARIANTS if v in self.k)

    def same_as(self, example: Example) -> set[int]:
        """Pool indices that are `example` itself: its `file:line`, or exactly its conversation."""
        return self._by_source.get(example.source, set()) | self._by_identity.get(_identity(example), set())

    def pick(self, queries: Sequence[str], exclude: Sequence[set[int]] | None = None) -> dict[str, list[list[int]]]:
        """Per variant, per query: the pool indices to put in its prompt, in prompt order.

        Few-shot: the same k for every query (the first k of the seeded permutation that are not
        excluded). Retrieval: the k nearest by BM25, least similar first, nearest last.
        """
        exclude = exclude or [set() for _ in queries]
        picked: dict[str, list[list[int]]] = {}
        if "few_shot" in self.k:
            k = self.k["few_shot"]
            picked["few_shot"] = [[i for i in self._order if i not in banned][:k] for banned in exclude]
        if self._index is not None:
            nearest = self._index.nearest(queries, self.k["retrieval"], exclude)
            picked["retrieval"] = [list(reversed(row)) for row in nearest]
        return picked

    def describe(self) -> dict[str, Any]:
        """The settings as they were applied, for eval_summary.json."""
        out: dict[str, Any] = {}
        if "few_shot" in self.k:
            out["few_shot"] = {
                "k": self.k["few_shot"],
                "seed": self.seed,
                "how": "k training examples drawn at random, the same for every prompt",
            }
        if "retrieval" in self.k:
            out["retrieval"] = {
                "k": self.k["retrieval"],
                "how": "the k training examples nearest to each prompt by BM25",
            }
        return out


def _answers(example: Example) -> str:
    return "\n".join(m["content"] for m in _turns(example) if m["role"] == "assistant")


# --- The eval rows, one rendering per variant ----------------------------------------------------


@dataclass
class RowVariants:
    """The eval rows as each variant sees them: different context, the same answer tokens.

    Attributes:
        examples: variant (`zero_shot`, `few_shot`, `retrieval`) -> the conversations, aligned.
        rows: variant -> the rendered rows, labels on the scored answer tokens only, aligned.
        shots: variant -> how many training examples each row's prompt holds.
        left_out: eval rows left out of every variant, with the reason.
    """

    examples: dict[str, list[Example]] = field(default_factory=dict)
    rows: dict[str, list[Rendered]] = field(default_factory=dict)
    shots: dict[str, list[int]] = field(default_factory=dict)
    left_out: list[tuple[str, str]] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.rows.get("zero_shot", []))


def _runs(labels: Sequence[int]) -> list[tuple[int, int]]:
    """(start, end) of each stretch of scored labels: one per trained answer."""
    runs, start = [], None
    for i, label in enumerate([*labels, IGNORE_INDEX]):
        if label != IGNORE_INDEX and start is None:
            start = i
        elif label == IGNORE_INDEX and start is not None:
            runs.append((start, i))
            start = None
    return runs


def _keep_last(row: Rendered, answers: int) -> tuple[Rendered, tuple[tuple[int, ...], ...]] | None:
    """`row` scored on its last `answers` trained stretches only, and those stretches' tokens."""
    runs = _runs(row.labels)
    if len(runs) < answers:
        return None
    labels = [IGNORE_INDEX] * len(row.labels)
    kept = runs[len(runs) - answers :]
    for start, end in kept:
        labels[start:end] = row.labels[start:end]
    scored = tuple(tuple(row.input_ids[s:e]) for s, e in kept)
    return Rendered(
        source=row.source,
        input_ids=row.input_ids,
        labels=labels,
        n_tokens=row.n_tokens,
        n_trained=sum(e - s for s, e in kept),
        truncated=False,
        n_dropped_tokens=0,
    ), scored


def _render_each(examples: list[Example], tokenizer: PreTrainedTokenizerBase, train_on: str) -> list[Rendered | None]:
    """Render without truncation; None for a row the template cannot render turn by turn."""
    tagged = [Example(source=str(i), messages=ex.messages) for i, ex in enumerate(examples)]
    try:
        rows, _, _ = render_all(tagged, tokenizer, train_on=train_on, max_length=_NO_LIMIT)  # type: ignore[arg-type]
        by_index: dict[int, Rendered] = {int(r.source): r for r in rows}
        return [by_index.get(i) for i in range(len(examples))]
    except DataError:
        out: list[Rendered | None] = []
        for ex in tagged:  # find the rows that fail, keep the others
            try:
                out.append(render(ex, tokenizer, train_on=train_on, max_length=_NO_LIMIT))  # type: ignore[arg-type]
            except DataError:
                out.append(None)
        return out


def build_row_variants(
    examples: Sequence[Example],
    pool: ShotPool,
    tokenizer: PreTrainedTokenizerBase,
    *,
    train_on: str,
    max_tokens: int | None = None,
) -> RowVariants:
    """Render the eval rows zero-shot and with each variant's examples, scored on the same answers.

    Args:
        examples: the eval examples (rows without a chat conversation are left out).
        pool: the training examples and the variants that are on.
        train_on: `data.train_on`: `last_assistant` scores the last answer of a row, anything
            else every answer of it (`everything` too: prompt tokens cannot be matched across
            contexts, so only answers are compared).
        max_tokens: the model's context window; examples farthest from the question are dropped
            from a prompt that would not fit.

    Returns:
        The aligned renderings; a row is in all of them or in none (see `left_out`).
    """
    out = RowVariants()
    chats = [ex for ex in examples if ex.messages is not None and _turns(ex)]
    out.left_out += [
        (ex.source, "not a chat row with an answer") for ex in examples if not (ex.messages is not None and _turns(ex))
    ]
    per_row_mode = "last_assistant" if train_on == "last_assistant" else "all_assistant"
    answers = [
        1 if per_row_mode == "last_assistant" else sum(m["role"] == "assistant" for m in ex.messages or ())
        for ex in chats
    ]
    picked = pool.pick([prompt_text(ex.messages or ()) for ex in chats], [pool.same_as(ex) for ex in chats])

    scored: dict[str, list[Any]] = {}
    zero = _render_each(chats, tokenizer, per_row_mode)
    scored["zero_shot"] = [_keep_last(r, a) if r is not None else None for r, a in zip(zero, answers)]
    shots: dict[str, list[list[int]]] = {"zero_shot": [[] for _ in chats], **picked}
    conversations: dict[str, list[Example]] = {"zero_shot": list(chats)}
    for variant, chosen in picked.items():
        convs = [with_context(ex, [pool.examples[i] for i in c]) for ex, c in zip(chats, chosen)]
        rows = _render_each(convs, tokenizer, per_row_mode)
        # Too long for the model: drop the example farthest from the question, render again.
        while max_tokens is not None:
            over = [i for i, r in enumerate(rows) if r is not None and r.n_tokens > max_tokens and chosen[i]]
            if not over:
                break
            for i in over:
                chosen[i] = chosen[i][1:]
                convs[i] = with_context(chats[i], [pool.examples[j] for j in chosen[i]])
            for i, r in zip(over, _render_each([convs[i] for i in over], tokenizer, per_row_mode)):
                rows[i] = r
        conversations[variant] = convs
        scored[variant] = [_keep_last(r, a) if r is not None else None for r, a in zip(rows, answers)]

    for i, ex in enumerate(chats):
        got = {v: scored[v][i] for v in scored}
        reason = None
        if any(g is None for g in got.values()):
            reason = "the chat template cannot render this row with earlier turns in front of it"
        elif len({g[1] for g in got.values()}) != 1:
            reason = "its answer tokens change when examples are put in front of it"
        elif max_tokens is not None and got["zero_shot"][0].n_tokens > max_tokens:
            reason = f"longer than the model's context window ({max_tokens} tokens)"
        if reason:
            out.left_out.append((ex.source, reason))
            continue
        for v in scored:
            out.rows.setdefault(v, []).append(got[v][0])
            out.examples.setdefault(v, []).append(conversations[v][i])
            out.shots.setdefault(v, []).append(len(shots[v][i]))
    return out


# --- Scoring -------------------------------------------------------------------------------------

_LABELS = {
    "base": "base model, zero-shot",
    "few_shot": "base model + {k} training examples in the prompt",
    "retrieval": "base model + {k} retrieved training examples",
    "tuned": "fine-tuned model, zero-shot",
}


def _mean_loss(stats: np.ndarray) -> Callable[[np.ndarray], float]:
    def loss(idx: np.ndarray) -> float:
        tokens = stats[idx, 1].sum()
        return float(stats[idx, 0].sum() / tokens) if tokens else float("nan")

    return loss


def score_eval_rows(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    examples: Sequence[Example],
    pool: ShotPool,
    *,
    train_on: str,
    batch_size: int,
    generations: int,
    max_new_tokens: int,
    bootstrap: int = 1000,
    confidence: float = 0.95,
    seed: int = 0,
    log: Callable[[str], Any] = print,
    scored: tuple[Sequence[Rendered], dict[str, list[tuple[float, int]]]] | None = None,
) -> dict[str, Any] | None:
    """Answer loss on the eval rows: base zero-shot, each variant, and the fine-tune zero-shot.

    Args:
        model: the tuned model; its adapter is switched off for the base and the variants.
        examples: the eval examples, aligned with the rows `compare` scored.
        pool: the training examples to draw from.
        train_on: `data.train_on` (which answers of a row are scored).
        generations: answer this many eval prompts greedily with each variant (samples).
        bootstrap, confidence, seed: the intervals' settings.
        scored: rows already scored zero-shot (`compare`'s rows and `Comparison.per_row`); when
            they are exactly the rows scored here, base and tuned are not scored again.

    Returns:
        `{rows, tokens, variants: {name: {loss, perplexity, examples, label}}, tuned_vs: {name:
        delta}, samples, left_out}` ready for JSON; None when no eval row could be scored (the
        reason is added to `pool.notes`).
    """
    variants = build_row_variants(examples, pool, tokenizer, train_on=train_on, max_tokens=context_length(model))
    for source, reason in variants.left_out[:3]:
        pool.notes.append(f"eval row {source} left out of the baselines: {reason}")
    if len(variants.left_out) > 3:
        pool.notes.append(f"... {len(variants.left_out) - 3} more eval rows left out of the baselines")
    if not len(variants):
        pool.notes.append("no eval row could be scored with examples in its prompt")
        return None

    pad = tokenizer.pad_token_id
    stats = {name: np.array(losses, float) for name, losses in _reuse(variants, scored).items()}
    for name, which, context in (
        ("base", "base", "zero_shot"),
        *((v, "base", v) for v in pool.variants),
        ("tuned", "tuned", "zero_shot"),
    ):
        if name in stats:
            continue
        log(f"  eval rows: {_LABELS[name].format(k=pool.k.get(name, 0))} ...")
        with side(model, which) as m:
            stats[name] = np.array(row_losses(m, variants.rows[context], pad_id=pad, batch_size=batch_size), float)
    stats = {name: stats[name] for name in ("base", *pool.variants, "tuned")}
    boot: dict[str, Any] = {"n_resamples": bootstrap, "confidence": confidence, "seed": seed}
    n = len(variants)
    result: dict[str, Any] = {
        "rows": n,
        "tokens": int(stats["base"][:, 1].sum()),
        "variants": {},
        "tuned_vs": {},
        "left_out": len(variants.left_out),
    }
    for name, s in stats.items():
        iv = bootstrap_ci_corpus(n, _mean_loss(s), **boot)
        context = "zero_shot" if name in ("base", "tuned") else name
        result["variants"][name] = {
            "label": _LABELS[name].format(k=pool.k.get(name, 0)),
            "loss": {"value": iv.value, "low": iv.low, "high": iv.high},
            "perplexity": math.exp(iv.value) if math.isfinite(iv.value) and iv.value < 700 else None,
            "examples": float(np.mean(variants.shots[context])),
        }
        if name != "tuned":
            d = paired_bootstrap_delta_corpus(n, _mean_loss(s), _mean_loss(stats["tuned"]), **boot)
            result["tuned_vs"][name] = {"value": d.value, "low": d.low, "high": d.high, "p_value": d.p_value}
    result["samples"] = _samples(model, tokenizer, variants, pool, generations, max_new_tokens, batch_size)
    return result


def _reuse(
    variants: RowVariants,
    scored: tuple[Sequence[Rendered], dict[str, list[tuple[float, int]]]] | None,
) -> dict[str, list[tuple[float, int]]]:
    """The zero-shot per-row losses already computed, when those rows score exactly the same tokens."""
    if scored is None:
        return {}
    rows, losses = scored
    at = {r.source: i for i, r in enumerate(rows)}
    picked = []
    for example, row in zip(variants.examples["zero_shot"], variants.rows["zero_shot"]):
        i = at.get(example.source)
        if i is None or rows[i].input_ids != row.input_ids or rows[i].labels != row.labels:
            return {}
        picked.append(i)
    return {
        side: [per_row[i] for i in picked]
        for side, per_row in losses.items()
        if side in ("base", "tuned") and len(per_row) == len(rows)
    }


def _samples(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    variants: RowVariants,
    pool: ShotPool,
    generations: int,
    max_new_tokens: int,
    batch_size: int,
) -> list[dict[str, Any]]:
    """The first `generations` prompts answered by each variant (the base and tuned answers are in `compare`)."""
    picks = [
        i for i, ex in enumerate(variants.examples["zero_shot"]) if (ex.messages or ())[-1]["role"] == "assistant"
    ][:generations]
    if not picks:
        return []
    samples = [
        {
            "prompt": variants.examples["zero_shot"][i].messages[-2]["content"],  # type: ignore[index]
            "reference": variants.examples["zero_shot"][i].messages[-1]["content"],  # type: ignore[index]
        }
        for i in picks
    ]
    with side(model, "base") as m:
        for variant in pool.variants:
            prompts = [list(variants.examples[variant][i].messages[:-1]) for i in picks]  # type: ignore[index]
            answers = generate_texts(m, tokenizer, prompts, max_new_tokens=max_new_tokens, batch_size=batch_size)
            for sample, answer, i in zip(samples, answers, picks):
                sample[variant] = answer
                sample[f"{variant}_examples"] = variants.shots[variant][i]
    return samples


# --- Task suites ---------------------------------------------------------------------------------


Turns = list[dict[str, str]]


def suite_contexts(
    pool: ShotPool,
    tokenizer: PreTrainedTokenizerBase,
    queries: Sequence[str],
    *,
    reserve: Sequence[int],
    max_tokens: int | None,
) -> dict[str, tuple[list[Turns], float]]:
    """Per variant: for each suite item, the chat turns to put before it, and the mean example count.

    Args:
        queries: each item's prompt (generation) or query (multiple choice).
        reserve: per item, tokens to leave free after the prompt (the answer or the longest choice).
        max_tokens: the model's context window; examples farthest from the question are dropped
            until prompt + reserve fits.
    """
    out: dict[str, tuple[list[Turns], float]] = {}
    for variant, chosen in pool.pick(queries).items():
        contexts, counts = [], []
        for query, picked, spare in zip(queries, chosen, reserve):
            while True:
                turns = [t for i in picked for t in _turns(pool.examples[i])]
                if max_tokens is None or not picked or _prompt_tokens(tokenizer, turns, query) + spare <= max_tokens:
                    break
                picked = picked[1:]
            contexts.append(turns)
            counts.append(len(picked))
        out[variant] = (contexts, float(np.mean(counts)) if counts else 0.0)
    return out


def _prompt_tokens(tokenizer: PreTrainedTokenizerBase, turns: list[dict[str, str]], query: str) -> int:
    text = tokenizer.apply_chat_template(
        [*turns, {"role": "user", "content": query}], tokenize=False, add_generation_prompt=True
    )
    return len(tokenizer(text, add_special_tokens=False)["input_ids"])


def variant_label(variant: str, k: int) -> str:
    """How the report names a variant: `base model + 3 retrieved training examples`."""
    return _LABELS[variant].format(k=k)
