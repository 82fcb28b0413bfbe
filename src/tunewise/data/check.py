"""The data check that runs before training: duplicates, eval leakage, suite contamination.

Reading and rendering already refuse malformed rows (with `file:line`) and count truncation;
this module looks at the rows that survived, across the splits and against the evaluation
suites, for the problems that silently flatter a fine-tune:

| finding | what it means |
|---|---|
| `duplicates` | training rows that repeat another (exactly, or nearly: MinHash Jaccard ≥ threshold) — they weigh that row more and push memorisation |
| `eval_leakage` / `test_leakage` | held-out rows that (nearly) repeat a training row — the held-out loss overstates what was learned |
| `contamination` | suite items whose word n-grams appear in the training data — that suite's score is no longer a clean measurement |

    check = check_data(prepared, config)
    check.findings      # [Finding(kind="eval_leakage", count=3, ...)]
    check.blocking      # the findings named in data.check.block_on
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

from tunewise.data.dedup import cross_duplicates, example_text, near_duplicate_clusters, normalise

if TYPE_CHECKING:
    from tunewise.config import Config
    from tunewise.data.shapes import Example

__all__ = ["CHECK_KINDS", "DataCheck", "Finding", "check_data", "suite_texts"]

CHECK_KINDS = ("duplicates", "eval_leakage", "test_leakage", "contamination")
"""Every finding the data check can report (the values `data.check.block_on` accepts)."""

_EXAMPLES_KEPT = 5
_WORD = re.compile(r"\w+")


@dataclass
class Finding:
    """One problem found, with how many rows it touches and where to look.

    Attributes:
        kind: one of `CHECK_KINDS`.
        count: rows (or suite items) affected.
        message: what was found and what it does to the results, in plain words.
        examples: `file:line` of a few affected rows, with the row they repeat when there is one.
        detail: numbers behind the message (per suite, per split, ...).
    """

    kind: str
    count: int
    message: str
    examples: list[str] = field(default_factory=list)
    detail: dict[str, Any] = field(default_factory=dict)


@dataclass
class DataCheck:
    """What the data check found; `findings` is empty when the data is clean."""

    rows: dict[str, int]
    threshold: float
    findings: list[Finding] = field(default_factory=list)
    block_on: list[str] = field(default_factory=list)

    @property
    def blocking(self) -> list[Finding]:
        return [f for f in self.findings if f.kind in self.block_on]

    def to_dict(self) -> dict[str, Any]:
        return {"rows": self.rows, "threshold": self.threshold, "block_on": self.block_on,
                "findings": [asdict(f) for f in self.findings]}


def check_data(train: Sequence[Example], held_out: dict[str, Sequence[Example]], config: Config,
               *, suites: Sequence[tuple[str, list[str]]] = ()) -> DataCheck:
    """Look for duplicates in `train`, leakage into each held-out split, and contamination.

    Args:
        train: the training examples.
        held_out: split name ("eval", "test") -> its examples.
        config: `data.check` sets the threshold, the n-gram length and what blocks.
        suites: (suite name, item texts) pairs to check for contamination.
    """
    settings = config.data.check
    rows = {"train": len(train), **{name: len(ex) for name, ex in held_out.items()}}
    check = DataCheck(rows=rows, threshold=settings.near_duplicate_threshold, block_on=list(settings.block_on))
    train_texts = [example_text(ex) for ex in train]

    clusters = near_duplicate_clusters(train_texts, threshold=settings.near_duplicate_threshold)
    repeats = [i for i, c in enumerate(clusters) if c != i]
    if repeats:
        exact = sum(normalise(train_texts[i]) == normalise(train_texts[clusters[i]]) for i in repeats)
        check.findings.append(Finding(
            kind="duplicates", count=len(repeats),
            message=(f"{len(repeats)} of {len(train)} training rows repeat an earlier one ({exact} exactly, "
                     f"{len(repeats) - exact} nearly); repeated rows are trained on more often than the rest. "
                     f"`tunewise data clean` keeps one row per cluster."),
            examples=[f"{train[i].source} repeats {train[clusters[i]].source}" for i in repeats[:_EXAMPLES_KEPT]],
            detail={"exact": exact, "near": len(repeats) - exact,
                    "clusters": len({clusters[i] for i in repeats})}))

    for name, examples in held_out.items():
        if not examples:
            continue
        pairs = cross_duplicates([example_text(ex) for ex in examples], train_texts,
                                 threshold=settings.near_duplicate_threshold)
        leaked = sorted({p.a for p in pairs})
        if leaked:
            first = {p.a: p.b for p in reversed(pairs)}
            check.findings.append(Finding(
                kind=f"{name}_leakage", count=len(leaked),
                message=(f"{len(leaked)} of {len(examples)} {name} rows (nearly) repeat a training row: the "
                         f"{name} loss measures memory there, not generalisation. Remove them from the "
                         f"{name} data, or deduplicate before splitting."),
                examples=[f"{examples[i].source} repeats {train[first[i]].source}" for i in leaked[:_EXAMPLES_KEPT]],
                detail={"rows": len(examples)}))

    contaminated = _contamination(train_texts, suites, settings.contamination_ngram)
    total = sum(len(items) for items in contaminated.values())
    if total:
        per_suite = {name: len(items) for name, items in contaminated.items()}
        check.findings.append(Finding(
            kind="contamination", count=total,
            message=(f"{total} evaluation item(s) share a {settings.contamination_ngram}-word passage with "
                     f"the training data ({', '.join(f'{n}: {c}' for n, c in per_suite.items())}); scores on "
                     f"those suites overstate the model. Drop the overlapping training rows or those items."),
            examples=[f"{name}: {text[:80]}" for name, items in contaminated.items()
                      for text in items[:_EXAMPLES_KEPT]][:_EXAMPLES_KEPT],
            detail={"per_suite": per_suite, "ngram": settings.contamination_ngram}))
    return check


def suite_texts(config: Config) -> list[tuple[str, list[str]]]:
    """(suite name, item texts) for each configured suite, in the words a training row could
    have copied: the question with its right answer, the prompt, the text. Bias pairs are
    sentences about groups, not answers, and are left out. Loading the suites here also means a
    bad suite file stops the run before training, not after it.
    """
    from tunewise.evaluation.suite import load_suite

    out = []
    for spec in config.eval.suites:
        suite = load_suite(spec.name, limit=spec.limit, columns=spec.columns)
        if suite.kind == "multiple_choice":
            texts = [f"{it['query']} {it['choices'][it['gold']]}" for it in suite.items]
        elif suite.kind in ("generation", "safety"):
            texts = [it["prompt"] for it in suite.items]
        elif suite.kind == "classification":
            texts = [it["text"] for it in suite.items]
        else:
            continue
        out.append((suite.name, texts))
    return out


def _ngrams(words: list[str], n: int) -> set[tuple[str, ...]]:
    return {tuple(words[i:i + n]) for i in range(len(words) - n + 1)}


def _contamination(train_texts: list[str], suites: Sequence[tuple[str, list[str]]],
                   n: int) -> dict[str, list[str]]:
    """Suite name -> its items sharing an n-word sequence with any training row.

    An item shorter than n words counts when all of its words occur in order in a training row.
    """
    train_grams: dict[int, set[tuple[str, ...]]] = {}

    def grams_of_train(size: int) -> set[tuple[str, ...]]:
        if size not in train_grams:
            train_grams[size] = set().union(*(_ngrams(_WORD.findall(t.lower()), size) for t in train_texts))
        return train_grams[size]

    found: dict[str, list[str]] = {}
    for name, items in suites:
        for text in items:
            words = _WORD.findall(text.lower())
            size = min(n, len(words))
            if size < 4:  # a handful of words repeats by chance
                continue
            if _ngrams(words, size) & grams_of_train(size):
                found.setdefault(name, []).append(text)
    return found
