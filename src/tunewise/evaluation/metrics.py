"""Metrics for predictions against references, and bootstrap intervals for every one of them.

The core abstraction is the per-item score: a metric scores each row on its own, and its value is
the mean over rows. That is what makes a confidence interval, and a *paired* base-vs-tuned delta,
possible for every metric with one resampling routine. Metrics that are not a mean over rows
(corpus BLEU, macro F1) keep per-row sufficient statistics instead — BLEU's n-gram counts, one
confusion-matrix cell per row — plus a function that turns the rows of a resample into the score,
so they resample just as cheaply.

Scales follow each field's convention: BLEU is 0-100 (sacrebleu), everything else is 0-1.

The libraries are the field's own, imported only when a metric runs: scikit-learn for
classification, sacrebleu for BLEU, rouge-score for ROUGE. None of them downloads anything.

A suite names its metric in the config (`metric: exact_match`); `get_metric` resolves the name
from the `METRICS` table and the resulting `Metric` is called on predictions and references:

    scores = get_metric("exact_match")(predictions, references)
    scores.value, scores.items        # 0.62, array([1., 0., ...])
    scores.interval()                 # Interval(value=0.62, low=0.58, high=0.66, n=500, ...)
    score_delta(base_scores, tuned_scores)   # paired: the same rows resampled on both sides
"""

from __future__ import annotations

import difflib
import functools
import math
import re
import string
import unicodedata
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from tunewise.errors import ConfigError, DataError

if TYPE_CHECKING:
    from rouge_score.rouge_scorer import RougeScorer
    from sacrebleu.metrics import BLEU

__all__ = [
    "METRICS",
    "DeltaInterval",
    "Interval",
    "Metric",
    "Scores",
    "bleu",
    "bootstrap_ci",
    "bootstrap_ci_corpus",
    "classification_metrics",
    "contains_answer",
    "exact_match",
    "get_metric",
    "normalize_answer",
    "paired_bootstrap_delta",
    "paired_bootstrap_delta_corpus",
    "perplexity",
    "rouge",
    "score_delta",
    "sentence_bleu",
    "sentence_rouge",
]

# One row's references: a list of acceptable answers, or a single string (taken as a list of one;
# iterating a bare string would silently score against its characters).
References = Sequence[str] | str

ROUGE_TYPES = ("rouge1", "rouge2", "rougeL")


def _as_list(references: References) -> list[str]:
    return [references] if isinstance(references, str) else list(references)


def _check_lengths(predictions: Sequence[Any], references: Sequence[Any]) -> None:
    if len(predictions) != len(references):
        raise ValueError(
            f"{len(predictions)} predictions but {len(references)} references; "
            "each prediction needs its row's references"
        )


# --- Short answers -------------------------------------------------------------------------------

# SQuAD strips ASCII punctuation only; model output is full of curly quotes and dashes, so every
# Unicode punctuation character (category P*) goes too.
_ASCII_PUNCT = frozenset(string.punctuation)
_ARTICLES = re.compile(r"\b(a|an|the)\b")


def normalize_answer(text: str) -> str:
    """SQuAD-style normalisation: lowercase, drop punctuation and the articles a/an/the, collapse spaces.

    Args:
        text: a prediction or a reference.

    Returns:
        The normalised text; `"The  Eiffel Tower!"` becomes `"eiffel tower"`.
    """
    text = text.lower()
    text = "".join(ch for ch in text if ch not in _ASCII_PUNCT and not unicodedata.category(ch).startswith("P"))
    text = _ARTICLES.sub(" ", text)
    return " ".join(text.split())


def exact_match(prediction: str, references: References) -> float:
    """1.0 if the normalised prediction equals any normalised reference, else 0.0."""
    pred = normalize_answer(prediction)
    return float(any(pred == normalize_answer(ref) for ref in _as_list(references)))


def contains_answer(prediction: str, references: References) -> float:
    """1.0 if any normalised reference occurs as whole words inside the normalised prediction.

    Meant for short-answer checks on chat models, which wrap the answer in a sentence:
    `"I think it is Paris."` contains `"paris"`, but `"Parisian"` does not. A reference that
    normalises to nothing (`"the"`) only matches a prediction that does too.
    """
    # After normalisation words are separated by exactly one space, so padding both sides with a
    # space turns "whole-word substring" into a plain substring test.
    pred = f" {normalize_answer(prediction)} "
    for ref in _as_list(references):
        norm = normalize_answer(ref)
        if (norm and f" {norm} " in pred) or (not norm and pred == "  "):
            return 1.0
    return 0.0


# --- BLEU ------------------------------------------------------------------------------------------


@functools.cache
def _bleu_scorer(sentence: bool) -> BLEU:
    from sacrebleu.metrics import BLEU

    # sacrebleu's own defaults: 13a tokenisation, exp smoothing; effective order for one sentence,
    # so a short exact answer scores 100 instead of 0 for want of 4-grams.
    return BLEU(effective_order=sentence)


def bleu(predictions: Sequence[str], references: Sequence[References]) -> float:
    """Corpus BLEU (0-100) with sacrebleu's defaults.

    Args:
        predictions: one string per row.
        references: per row, its reference(s); rows may have different numbers of references.

    Returns:
        sacrebleu's corpus score. Corpus BLEU pools n-gram counts over all rows, so it is not the
        mean of `sentence_bleu`; a corpus of answers under four tokens has no 4-grams and scores
        0 even when every answer is right (use `exact_match` or `sentence_bleu` there).
    """
    _check_lengths(predictions, references)
    refs = [_as_list(r) for r in references]
    # sacrebleu wants reference *streams* (the k-th reference of every row); None pads rows with fewer.
    width = max((len(r) for r in refs), default=0)
    streams = [[r[k] if k < len(r) else None for r in refs] for k in range(width)]
    # sacrebleu documents None padding for rows with fewer references; its annotation says str only.
    return float(_bleu_scorer(False).corpus_score(list(predictions), streams).score)  # type: ignore[arg-type]


def sentence_bleu(prediction: str, references: References) -> float:
    """BLEU (0-100) of one prediction, with effective n-gram order as in `sacrebleu.sentence_bleu`."""
    return float(_bleu_scorer(True).sentence_score(prediction, _as_list(references)).score)


def _bleu_stats(
    predictions: Sequence[str], references: Sequence[References]
) -> tuple[np.ndarray, Callable[[np.ndarray], float]]:
    """Per-row BLEU sufficient statistics, and corpus BLEU from any subset of those rows.

    Columns: hypothesis length, closest reference length, matching n-grams (n=1..4), total
    n-grams (n=1..4). Summing rows and scoring the sum is exactly how sacrebleu computes corpus
    BLEU, so a resample costs one sum instead of re-tokenising the corpus.
    """
    scorer = _bleu_scorer(False)
    # The counts are raw whatever the scorer's effective order (that only changes the final
    # score), and the sentence scorer does not warn once per row about sentence-level BLEU.
    extract = _bleu_scorer(True)
    rows = []
    for pred, refs in zip(predictions, references, strict=True):
        s = extract.sentence_score(pred, _as_list(refs))
        rows.append([s.sys_len, s.ref_len, *s.counts, *s.totals])
    stats = np.asarray(rows, dtype=np.int64).reshape(len(rows), -1)
    order = (stats.shape[1] - 2) // 2

    def combine(subset: np.ndarray) -> float:
        total = [int(x) for x in subset.sum(axis=0)]
        return float(
            scorer.compute_bleu(
                correct=total[2 : 2 + order],
                total=total[2 + order :],
                sys_len=total[0],
                ref_len=total[1],
                smooth_method=scorer.smooth_method,
                smooth_value=scorer.smooth_value,
                effective_order=scorer.effective_order,
                max_ngram_order=order,
            ).score
        )

    return stats, combine


# --- ROUGE -----------------------------------------------------------------------------------------


@functools.cache
def _rouge_scorer(types: tuple[str, ...]) -> RougeScorer:
    from rouge_score import rouge_scorer

    return rouge_scorer.RougeScorer(list(types), use_stemmer=True)


def sentence_rouge(prediction: str, references: References, types: Sequence[str] = ROUGE_TYPES) -> dict[str, float]:
    """ROUGE F-measures (0-1) of one prediction; with several references, the best per type.

    Tokenisation is rouge-score's: lowercase, alphanumeric tokens, Porter stemming.
    """
    scored = _rouge_scorer(tuple(types)).score_multi(_as_list(references), prediction)
    return {t: float(scored[t].fmeasure) for t in types}


def rouge(predictions: Sequence[str], references: Sequence[References]) -> dict[str, float]:
    """Mean ROUGE-1, ROUGE-2 and ROUGE-L F-measures (0-1) over rows."""
    _check_lengths(predictions, references)
    if not predictions:
        raise ValueError("no predictions to score")
    rows = [sentence_rouge(p, r) for p, r in zip(predictions, references)]
    return {t: float(np.mean([row[t] for row in rows])) for t in ROUGE_TYPES}


# --- Classification --------------------------------------------------------------------------------


def classification_metrics(
    y_true: Sequence[Any], y_pred: Sequence[Any], labels: Sequence[Any] | None = None
) -> dict[str, Any]:
    """Accuracy, macro and micro precision/recall/F1 and per-label support, from scikit-learn.

    Args:
        y_true: gold labels.
        y_pred: predicted labels, in the same order.
        labels: the labels to average over; by default every label seen in either list (sklearn's
            default). A label never predicted gets precision 0 (`zero_division=0`), not a warning.

    Returns:
        `accuracy`, `precision_macro`, `recall_macro`, `f1_macro`, `precision_micro`,
        `recall_micro`, `f1_micro`, and `support`: `{label: count in y_true}`.
    """
    from sklearn.metrics import accuracy_score, precision_recall_fscore_support
    from sklearn.utils.multiclass import unique_labels

    _check_lengths(y_true, y_pred)
    if len(y_true) == 0:
        raise ValueError("no labels to score")
    labels = list(labels) if labels is not None else list(unique_labels(y_true, y_pred))
    out: dict[str, Any] = {"accuracy": float(accuracy_score(y_true, y_pred))}
    for average in ("macro", "micro"):
        p, r, f, _ = precision_recall_fscore_support(y_true, y_pred, labels=labels, average=average, zero_division=0)
        out |= {f"precision_{average}": float(p), f"recall_{average}": float(r), f"f1_{average}": float(f)}
    _, _, _, support = precision_recall_fscore_support(y_true, y_pred, labels=labels, average=None, zero_division=0)
    # numpy scalars as keys would break json.dumps; hand back plain Python values.
    out["support"] = {(k.item() if isinstance(k, np.generic) else k): int(n) for k, n in zip(labels, support)}
    return out


def _labels(predictions: Sequence[str], references: Sequence[References], metric: str) -> tuple[list[str], list[str]]:
    """Normalised (gold, predicted) labels; generated text like `"Positive."` becomes `"positive"`."""
    gold = []
    for i, refs in enumerate(references):
        refs = _as_list(refs)
        if len(refs) != 1:
            raise DataError(
                f"row {i}: metric {metric!r} needs exactly one reference label, "
                f"got {len(refs)}; give classification rows a single gold label"
            )
        gold.append(normalize_answer(refs[0]))
    return gold, [normalize_answer(p) for p in predictions]


def _confusion_stats(part: str) -> Callable[..., tuple[np.ndarray, Callable[[np.ndarray], float]]]:
    """Macro `part` ("precision", "recall" or "f1") from one confusion-matrix cell per row.

    Each row's statistic is the index of its (gold, predicted) cell; a resample's confusion matrix
    is a bincount. Averaging over the labels present in that resample is what sklearn does with
    `labels=None`, so the score of any subset equals `classification_metrics` on that subset.
    """

    def prepare(
        predictions: Sequence[str], references: Sequence[References]
    ) -> tuple[np.ndarray, Callable[[np.ndarray], float]]:
        gold, pred = _labels(predictions, references, f"{part}_macro")
        names = sorted(set(gold) | set(pred))
        index = {name: i for i, name in enumerate(names)}
        k = len(names)
        cells = np.array([index[g] * k + index[p] for g, p in zip(gold, pred)], dtype=np.int64)

        def combine(subset: np.ndarray) -> float:
            confusion = np.bincount(subset[:, 0], minlength=k * k).reshape(k, k)
            tp = np.diag(confusion).astype(float)
            true_n, pred_n = confusion.sum(axis=1), confusion.sum(axis=0)
            present = (true_n + pred_n) > 0
            denominator = {"precision": pred_n, "recall": true_n, "f1": (true_n + pred_n) / 2}[part]
            # zero_division=0: a label never predicted (or never true) scores 0 on that side.
            per_label = np.divide(tp, denominator, out=np.zeros(k), where=denominator > 0)
            return float(per_label[present].mean())

        return cells[:, None], combine

    return prepare


def _label_match(prediction: str, references: References) -> float:
    refs = _as_list(references)
    if len(refs) != 1:
        raise DataError(
            f"metric 'accuracy' needs exactly one reference label per row, got {len(refs)}; "
            "give classification rows a single gold label"
        )
    return float(normalize_answer(prediction) == normalize_answer(refs[0]))


# --- Perplexity ------------------------------------------------------------------------------------


def perplexity(mean_loss: float) -> float:
    """exp(mean token cross-entropy in nats); `inf` when that overflows a float."""
    if math.isnan(mean_loss):
        raise ValueError("mean loss is NaN; the model produced NaN logits or no token was scored")
    try:
        return math.exp(mean_loss)
    except OverflowError:
        return math.inf


# --- Bootstrap -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Interval:
    """A statistic on the full data and its percentile-bootstrap confidence interval."""

    value: float
    low: float
    high: float
    n: int
    confidence: float = 0.95


@dataclass(frozen=True)
class DeltaInterval:
    """tuned - base on the same rows, with a paired percentile-bootstrap interval.

    Attributes:
        p_value: two-sided bootstrap sign test: `min(1, 2 * min(P(delta* <= 0), P(delta* >= 0)))`
            over the resampled deltas `delta*`. It is 1.0 when base and tuned are identical, and
            below `1 - confidence` about when the interval excludes 0. Its resolution is
            `1 / n_resamples`, so 0.0 means "below that", not "impossible". It is a bootstrap
            summary, not an exact test under a null hypothesis.
    """

    value: float
    low: float
    high: float
    n: int
    p_value: float
    confidence: float = 0.95

    @property
    def excludes_zero(self) -> bool:
        """True when the whole interval lies on one side of zero: a difference at this confidence."""
        return self.low > 0 or self.high < 0


# A resample index matrix holds at most this many entries at once (int64: 32 MiB), so memory stays
# flat for large suites; the chunk size depends only on n, which keeps results fixed per seed.
_CHUNK_ENTRIES = 1 << 22


def _index_chunks(n: int, n_resamples: int, seed: int) -> Iterator[np.ndarray]:
    """Resampled row indices, drawn with replacement, as (rows, n) matrices totalling n_resamples rows."""
    rng = np.random.default_rng(seed)
    step = max(1, _CHUNK_ENTRIES // n)
    for start in range(0, n_resamples, step):
        yield rng.integers(0, n, size=(min(step, n_resamples - start), n))


def _check_bootstrap(n: int, n_resamples: int, confidence: float) -> None:
    if n == 0:
        raise ValueError("no scores to resample")
    if n_resamples < 1:
        raise ValueError(f"n_resamples must be at least 1, got {n_resamples}")
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must lie strictly between 0 and 1, got {confidence}")


def _percentiles(dist: np.ndarray, confidence: float) -> tuple[float, float]:
    low, high = np.quantile(dist, [(1 - confidence) / 2, (1 + confidence) / 2])
    return float(low), float(high)


def _delta(value: float, deltas: np.ndarray, n: int, confidence: float) -> DeltaInterval:
    low, high = _percentiles(deltas, confidence)
    p = min(1.0, 2 * min(float(np.mean(deltas <= 0)), float(np.mean(deltas >= 0))))
    return DeltaInterval(value=value, low=low, high=high, n=n, p_value=p, confidence=confidence)


def _as_scores(scores: Sequence[float] | np.ndarray) -> np.ndarray:
    arr = np.asarray(scores, dtype=float)
    if arr.ndim != 1:
        raise ValueError(f"scores must be one number per item, got an array of shape {arr.shape}")
    return arr


def bootstrap_ci(
    scores: Sequence[float] | np.ndarray,
    *,
    n_resamples: int = 1000,
    confidence: float = 0.95,
    seed: int = 0,
    statistic: Callable[..., Any] = np.mean,
) -> Interval:
    """Percentile-bootstrap interval for a statistic of per-item scores.

    Args:
        scores: one score per item.
        n_resamples: bootstrap resamples (1000 over 2000 items takes a few milliseconds).
        confidence: coverage of the equal-tailed interval.
        seed: the same seed, scores and settings give the same interval.
        statistic: a numpy-style reduction that accepts `axis=` (`np.mean`, `np.median`, ...).

    Returns:
        `Interval(value=statistic(scores), low, high, n=len(scores))`.
    """
    values = _as_scores(scores)
    _check_bootstrap(len(values), n_resamples, confidence)
    # The full-data value goes through the same 2-D reduction as the resamples, so a resample equal
    # to the data gives bit-for-bit the same number (constant scores: low == value == high).
    value = float(statistic(values[None, :], axis=1)[0])
    dist = np.concatenate([statistic(values[idx], axis=1) for idx in _index_chunks(len(values), n_resamples, seed)])
    low, high = _percentiles(dist, confidence)
    return Interval(value=value, low=low, high=high, n=len(values), confidence=confidence)


def paired_bootstrap_delta(
    base_scores: Sequence[float] | np.ndarray,
    tuned_scores: Sequence[float] | np.ndarray,
    *,
    n_resamples: int = 1000,
    confidence: float = 0.95,
    seed: int = 0,
    statistic: Callable[..., Any] = np.mean,
) -> DeltaInterval:
    """Interval for statistic(tuned) - statistic(base), resampling the same items on both sides.

    Pairing is what makes a small improvement visible: item difficulty varies far more than the
    fine-tune's effect, and drawing the same items for both models cancels it out.

    Args:
        base_scores: per-item scores of the base model.
        tuned_scores: per-item scores of the tuned model on the same items, in the same order.
        n_resamples, confidence, seed, statistic: as in `bootstrap_ci`.

    Returns:
        `DeltaInterval`; see its `p_value` for exactly what that number is.

    Raises:
        ValueError: the two lists differ in length.
    """
    base, tuned = _as_scores(base_scores), _as_scores(tuned_scores)
    if len(base) != len(tuned):
        raise ValueError(
            f"paired scores differ in length: {len(base)} base vs {len(tuned)} tuned; "
            "both models must be scored on the same items"
        )
    _check_bootstrap(len(base), n_resamples, confidence)
    value = float(statistic(tuned[None, :], axis=1)[0] - statistic(base[None, :], axis=1)[0])
    deltas = np.concatenate(
        [
            statistic(tuned[idx], axis=1) - statistic(base[idx], axis=1)
            for idx in _index_chunks(len(base), n_resamples, seed)
        ]
    )
    return _delta(value, deltas, len(base), confidence)


def bootstrap_ci_corpus(
    items: Sequence[Any] | int,
    statistic_fn: Callable[[np.ndarray], float],
    *,
    n_resamples: int = 1000,
    confidence: float = 0.95,
    seed: int = 0,
) -> Interval:
    """Percentile-bootstrap interval for a corpus-level statistic such as BLEU.

    Args:
        items: the items (or their count); only the count is used.
        statistic_fn: the statistic on the items at an array of (repeated) indices. Precompute what
            you can, as `Metric` does with BLEU's n-gram counts: it runs once per resample.
        n_resamples, confidence, seed: as in `bootstrap_ci`; the same seed draws the same resamples.
    """
    n = int(items) if isinstance(items, (int, np.integer)) else len(items)
    _check_bootstrap(n, n_resamples, confidence)
    dist = np.array([statistic_fn(row) for idx in _index_chunks(n, n_resamples, seed) for row in idx])
    low, high = _percentiles(dist, confidence)
    return Interval(value=float(statistic_fn(np.arange(n))), low=low, high=high, n=n, confidence=confidence)


def paired_bootstrap_delta_corpus(
    items: Sequence[Any] | int,
    base_fn: Callable[[np.ndarray], float],
    tuned_fn: Callable[[np.ndarray], float],
    *,
    n_resamples: int = 1000,
    confidence: float = 0.95,
    seed: int = 0,
) -> DeltaInterval:
    """`paired_bootstrap_delta` for corpus-level statistics: both functions see the same indices."""
    n = int(items) if isinstance(items, (int, np.integer)) else len(items)
    _check_bootstrap(n, n_resamples, confidence)
    deltas = np.array([tuned_fn(row) - base_fn(row) for idx in _index_chunks(n, n_resamples, seed) for row in idx])
    everything = np.arange(n)
    return _delta(float(tuned_fn(everything) - base_fn(everything)), deltas, n, confidence)


# --- Named metrics ---------------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class Scores:
    """One metric on one model's predictions: its value and what resampling it needs.

    Attributes:
        metric: the metric's name in `METRICS`.
        value: the metric on all rows.
        items: per-row scores when the metric is their mean, else None (corpus BLEU, macro F1).
        stats: per-row statistics, shape (rows, k); for per-item metrics the scores themselves.
        combine: the metric from the `stats` rows of any (re)sample.
    """

    metric: str
    value: float
    items: np.ndarray | None
    stats: np.ndarray
    combine: Callable[[np.ndarray], float]

    def __len__(self) -> int:
        return len(self.stats)

    def on(self, indices: np.ndarray) -> float:
        """The metric on the rows at `indices` (repeats allowed: a bootstrap resample)."""
        return self.combine(self.stats[indices])

    def interval(self, *, n_resamples: int = 1000, confidence: float = 0.95, seed: int = 0) -> Interval:
        """Percentile-bootstrap interval for this metric."""
        if self.items is not None:
            return bootstrap_ci(self.items, n_resamples=n_resamples, confidence=confidence, seed=seed)
        return bootstrap_ci_corpus(len(self), self.on, n_resamples=n_resamples, confidence=confidence, seed=seed)


def _mean_first_column(subset: np.ndarray) -> float:
    return float(subset[:, 0].mean())


@dataclass(frozen=True)
class Metric:
    """A metric a suite can name in its config. Call it on predictions and references to get `Scores`.

    Exactly one of `item` (a score per row; the metric is their mean) and `corpus` (per-row
    statistics plus the function that scores any subset of them) is set.
    """

    name: str
    description: str
    item: Callable[[str, References], float] | None = None
    corpus: Callable[[Sequence[str], Sequence[References]], tuple[np.ndarray, Callable[[np.ndarray], float]]] | None = (
        None
    )

    @property
    def per_item(self) -> bool:
        """True when the metric is a mean of per-row scores (then `Scores.items` is set)."""
        return self.item is not None

    def __call__(self, predictions: Sequence[str], references: Sequence[References]) -> Scores:
        """Score `predictions[i]` against `references[i]` (one string or a list of them) for every row."""
        _check_lengths(predictions, references)
        if not predictions:
            raise ValueError(f"metric {self.name!r}: no predictions to score")
        if self.item is not None:
            items = np.array([self.item(p, r) for p, r in zip(predictions, references)], dtype=float)
            return Scores(self.name, float(items.mean()), items, items[:, None], _mean_first_column)
        assert self.corpus is not None
        stats, combine = self.corpus(predictions, references)
        return Scores(self.name, combine(stats), None, stats, combine)


def _rouge_item(kind: str) -> Callable[[str, References], float]:
    def score(prediction: str, references: References) -> float:
        return sentence_rouge(prediction, references, types=(kind,))[kind]

    return score


METRICS: dict[str, Metric] = {
    m.name: m
    for m in [
        Metric("exact_match", "normalised prediction equals a reference (0-1)", item=exact_match),
        Metric(
            "contains", "a normalised reference occurs as whole words in the prediction (0-1)", item=contains_answer
        ),
        Metric("bleu", "corpus BLEU, sacrebleu defaults (0-100)", corpus=_bleu_stats),
        Metric("sentence_bleu", "mean sentence BLEU with effective order (0-100)", item=sentence_bleu),
        Metric("rouge1", "mean ROUGE-1 F-measure, stemmed (0-1)", item=_rouge_item("rouge1")),
        Metric("rouge2", "mean ROUGE-2 F-measure, stemmed (0-1)", item=_rouge_item("rouge2")),
        Metric("rougeL", "mean ROUGE-L F-measure, stemmed (0-1)", item=_rouge_item("rougeL")),
        Metric("accuracy", "normalised prediction equals the gold label (0-1)", item=_label_match),
        # Single-label multi-class: every row adds one to exactly one of TP or (FP and FN), so micro
        # precision = recall = F1 = accuracy, and it is a per-row mean.
        Metric("f1_micro", "micro F1 over labels; equals accuracy for single-label rows (0-1)", item=_label_match),
        Metric("f1_macro", "unweighted mean F1 over labels (0-1)", corpus=_confusion_stats("f1")),
        Metric("precision_macro", "unweighted mean precision over labels (0-1)", corpus=_confusion_stats("precision")),
        Metric("recall_macro", "unweighted mean recall over labels (0-1)", corpus=_confusion_stats("recall")),
    ]
}


def get_metric(name: str, *, key: str = "metric") -> Metric:
    """The metric called `name` in `METRICS`.

    Args:
        name: the name as written in the config.
        key: the config key path to blame in the error, e.g. `"eval.suites[0].metric"`.

    Raises:
        ConfigError: unknown name; the message lists the known names and the closest match.
    """
    if name in METRICS:
        return METRICS[name]
    close = difflib.get_close_matches(name, list(METRICS), n=1)
    # Case slips (`rougel`, `BLEU`) are the common typo and difflib ranks them poorly.
    close = close or [m for m in METRICS if m.lower() == name.lower()]
    hint = f"did you mean {close[0]!r}? " if close else ""
    raise ConfigError([f"{key}: unknown metric {name!r}; {hint}known metrics: {', '.join(METRICS)}"])


def score_delta(
    base: Scores, tuned: Scores, *, n_resamples: int = 1000, confidence: float = 0.95, seed: int = 0
) -> DeltaInterval:
    """Paired bootstrap interval for tuned.value - base.value; the same rows are drawn for both.

    Raises:
        ValueError: the two were scored with different metrics or on different numbers of rows.
    """
    if base.metric != tuned.metric:
        raise ValueError(f"cannot compare metric {base.metric!r} with {tuned.metric!r}")
    if len(base) != len(tuned):
        raise ValueError(
            f"paired scores differ in length: {len(base)} base vs {len(tuned)} tuned; "
            "both models must be scored on the same rows"
        )
    if base.items is not None and tuned.items is not None:
        return paired_bootstrap_delta(
            base.items, tuned.items, n_resamples=n_resamples, confidence=confidence, seed=seed
        )
    return paired_bootstrap_delta_corpus(
        len(base), base.on, tuned.on, n_resamples=n_resamples, confidence=confidence, seed=seed
    )
