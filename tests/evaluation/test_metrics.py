"""Metrics and bootstrap intervals: tunewise.evaluation.metrics.

Expected values are worked out by hand in the comments, not copied from the code under test.
"""

from __future__ import annotations

import json
import math
import time

import numpy as np
import pytest
from sklearn.metrics import f1_score, precision_score, recall_score

from tunewise.errors import ConfigError, DataError
from tunewise.evaluation.metrics import (
    METRICS,
    Interval,
    bleu,
    bootstrap_ci,
    bootstrap_ci_corpus,
    classification_metrics,
    contains_answer,
    exact_match,
    get_metric,
    normalize_answer,
    paired_bootstrap_delta,
    perplexity,
    rouge,
    score_delta,
    sentence_bleu,
    sentence_rouge,
)

# --- Short answers -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("The  Eiffel Tower!", "eiffel tower"),
        ("an apple, a pear and the plum.", "apple pear and plum"),
        ("“Paris” — obviously", "paris obviously"),  # Unicode quotes and dash are punctuation too
        ("Theatre", "theatre"),  # "the" inside a word is not an article
        ("  ", ""),
    ],
)
def test_normalize_answer(text: str, expected: str) -> None:
    assert normalize_answer(text) == expected


def test_normalize_answer_is_idempotent() -> None:
    for text in ["The  Eiffel Tower!", "A, an; THE... end", "“x” — y"]:
        once = normalize_answer(text)
        assert normalize_answer(once) == once


def test_exact_match_ignores_case_articles_and_punctuation() -> None:
    assert exact_match("The Eiffel Tower.", ["eiffel tower"]) == 1.0
    assert exact_match("Eiffel", ["eiffel tower"]) == 0.0
    # Any of several references counts.
    assert exact_match("an elephant", ["giraffe", "Elephant!"]) == 1.0
    # A bare string is one reference, not a list of characters ("a" would match otherwise).
    assert exact_match("x", "xyz") == 0.0
    assert exact_match("XYZ", "xyz") == 1.0


def test_contains_answer_matches_whole_words_only() -> None:
    assert contains_answer("I think it is Paris.", ["paris"]) == 1.0
    assert contains_answer("The answer: New York City!", ["new york"]) == 1.0
    assert contains_answer("Parisian food", ["paris"]) == 0.0
    assert contains_answer("It is London.", ["Paris", "london"]) == 1.0
    # A reference that normalises to nothing is not "contained" in every prediction.
    assert contains_answer("anything at all", ["The"]) == 0.0
    assert contains_answer("the", ["The"]) == 1.0


# --- Classification ------------------------------------------------------------------------------


def test_classification_metrics_by_hand() -> None:
    y_true = [0, 0, 1, 1, 2]
    y_pred = [0, 1, 1, 1, 0]
    m = classification_metrics(y_true, y_pred)
    # Correct at positions 0, 2, 3: accuracy = 3/5.
    assert m["accuracy"] == pytest.approx(0.6)
    # class 0: TP=1 (pos 0), FP=1 (pos 4), FN=1 (pos 1) -> P=1/2, R=1/2, F1=1/2
    # class 1: TP=2 (pos 2, 3), FP=1 (pos 1), FN=0     -> P=2/3, R=1,   F1=2*(2/3)/(5/3)=4/5
    # class 2: TP=0, FP=0, FN=1 (pos 4)                  -> P=0 (zero_division=0), R=0, F1=0
    assert m["precision_macro"] == pytest.approx((1 / 2 + 2 / 3 + 0) / 3)  # 7/18
    assert m["recall_macro"] == pytest.approx((1 / 2 + 1 + 0) / 3)  # 1/2
    assert m["f1_macro"] == pytest.approx((1 / 2 + 4 / 5 + 0) / 3)  # 13/30
    # Micro: TP=3, FP=2, FN=2 summed over classes -> P=R=F1=3/5.
    for key in ("precision_micro", "recall_micro", "f1_micro"):
        assert m[key] == pytest.approx(0.6)
    assert m["support"] == {0: 2, 1: 2, 2: 1}


def test_micro_f1_equals_accuracy_for_single_label_multiclass() -> None:
    rng = np.random.default_rng(3)
    y_true, y_pred = rng.integers(0, 4, 200).tolist(), rng.integers(0, 4, 200).tolist()
    m = classification_metrics(y_true, y_pred)
    assert m["f1_micro"] == pytest.approx(m["accuracy"])


def test_classification_support_is_json_ready() -> None:
    m = classification_metrics(np.array([1, 2, 2]), np.array([1, 2, 1]))
    assert json.loads(json.dumps(m))["support"] == {"1": 1, "2": 2}


def test_classification_metrics_explicit_labels_and_string_labels() -> None:
    m = classification_metrics(["pos", "neg", "pos"], ["pos", "pos", "pos"], labels=["neg", "pos"])
    # neg: TP=0 -> P=R=F1=0; pos: TP=2, FP=1 -> P=2/3, R=1, F1=4/5.
    assert m["f1_macro"] == pytest.approx((0 + 4 / 5) / 2)
    assert m["support"] == {"neg": 1, "pos": 2}


# --- BLEU and ROUGE ------------------------------------------------------------------------------


def test_bleu_identical_is_100_and_disjoint_is_0() -> None:
    sentences = ["the quick brown fox jumps over the lazy dog", "a b c d e f"]
    assert bleu(sentences, [[s] for s in sentences]) == pytest.approx(100.0)
    assert bleu(["alpha beta gamma delta"], [["one two three four"]]) == 0.0
    assert sentence_bleu("the quick brown fox", ["the quick brown fox"]) == pytest.approx(100.0)
    assert sentence_bleu("alpha beta gamma delta", ["one two three four"]) == 0.0
    # Effective order: a right three-token answer is 100 at sentence level.
    assert sentence_bleu("in the morning", "in the morning") == pytest.approx(100.0)


def test_bleu_metric_from_row_statistics_equals_sacrebleu_corpus_bleu() -> None:
    preds = ["the cat sat on the mat", "a dog ran in the park today", "hello there", "x y z w"]
    # Rows with different numbers of references.
    refs = [
        ["the cat sat on a mat", "a cat was on the mat"],
        ["the dog ran in a park today"],
        ["hello there general kenobi"],
        "x y z w",
    ]
    scores = get_metric("bleu")(preds, refs)
    assert scores.items is None
    assert scores.value == pytest.approx(bleu(preds, refs))
    # A subset scored from its rows' statistics is corpus BLEU of that subset.
    assert scores.on(np.array([0, 1])) == pytest.approx(bleu(preds[:2], refs[:2]))


def test_rouge_by_hand() -> None:
    # ROUGE-1 "the cat sat" vs "the cat ran": overlap {the, cat} = 2 -> P = R = 2/3, F = 2/3.
    # ROUGE-2 bigrams (the cat)(cat sat) vs (the cat)(cat ran): overlap 1 -> F = 1/2.
    one = sentence_rouge("the cat sat", ["the cat ran"])
    assert one["rouge1"] == pytest.approx(2 / 3)
    assert one["rouge2"] == pytest.approx(1 / 2)
    assert one["rougeL"] == pytest.approx(2 / 3)  # LCS "the cat" = 2 tokens
    # "the cat sat down" vs "the cat sat": overlap 3, P = 3/4, R = 3/3, F = 2*(3/4)*1/(7/4) = 6/7.
    two = sentence_rouge("the cat sat down", "the cat sat")
    assert two["rouge1"] == pytest.approx(6 / 7)
    means = rouge(["the cat sat", "the cat sat down"], [["the cat ran"], ["the cat sat"]])
    assert means["rouge1"] == pytest.approx((2 / 3 + 6 / 7) / 2)
    # Stemming: "cats" and "cat" are the same token; several references take the best.
    assert sentence_rouge("cats", ["dog", "cat"])["rouge1"] == pytest.approx(1.0)


# --- Perplexity ----------------------------------------------------------------------------------


def test_perplexity() -> None:
    assert perplexity(0.0) == 1.0
    assert perplexity(math.log(10)) == pytest.approx(10.0)
    assert perplexity(1e6) == math.inf
    with pytest.raises(ValueError, match="NaN"):
        perplexity(float("nan"))


# --- Bootstrap -----------------------------------------------------------------------------------


def test_bootstrap_constant_scores_give_a_point_interval() -> None:
    ci = bootstrap_ci([0.7] * 37)
    assert ci.low == ci.high == ci.value == pytest.approx(0.7)
    assert ci.n == 37


def test_bootstrap_interval_contains_the_mean_and_is_deterministic() -> None:
    scores = np.random.default_rng(0).random(300)
    ci = bootstrap_ci(scores, seed=5)
    assert ci.value == pytest.approx(scores.mean())
    assert ci.low < ci.value < ci.high
    assert bootstrap_ci(scores, seed=5) == ci
    assert bootstrap_ci(scores, seed=6) != ci


def test_bootstrap_width_matches_the_normal_approximation() -> None:
    # Bernoulli(0.5), n=400: standard error sqrt(0.25/400) = 0.025; a 95% interval is about
    # 2 * 1.96 * 0.025 = 0.098 wide.
    scores = np.random.default_rng(42).integers(0, 2, 400).astype(float)
    ci = bootstrap_ci(scores, n_resamples=2000)
    expected = 2 * 1.96 * math.sqrt(0.25 / 400)
    assert abs((ci.high - ci.low) - expected) < 0.3 * expected


def test_bootstrap_other_statistic() -> None:
    scores = [1.0, 2.0, 3.0, 100.0, 4.0]
    ci = bootstrap_ci(scores, statistic=np.median)
    assert ci.value == 3.0
    assert 1.0 <= ci.low <= ci.value <= ci.high <= 100.0


def test_corpus_bootstrap_draws_the_same_resamples_as_the_item_bootstrap() -> None:
    scores = np.random.default_rng(1).random(50)
    fast = bootstrap_ci(scores, seed=3)
    slow = bootstrap_ci_corpus(len(scores), lambda idx: float(scores[idx].mean()), seed=3)
    assert (slow.low, slow.high) == pytest.approx((fast.low, fast.high))
    assert slow.value == pytest.approx(fast.value)


def test_bootstrap_is_fast() -> None:
    scores = np.random.default_rng(0).random(2000)
    start = time.perf_counter()
    bootstrap_ci(scores, n_resamples=1000)
    paired_bootstrap_delta(scores, scores[::-1], n_resamples=1000)
    assert time.perf_counter() - start < 1.0


def test_bootstrap_rejects_bad_arguments() -> None:
    with pytest.raises(ValueError, match="no scores"):
        bootstrap_ci([])
    with pytest.raises(ValueError, match="confidence"):
        bootstrap_ci([1.0], confidence=1.5)
    with pytest.raises(ValueError, match="n_resamples"):
        bootstrap_ci([1.0], n_resamples=0)


def test_paired_delta_of_identical_scores_is_exactly_zero() -> None:
    scores = np.random.default_rng(2).random(100)
    d = paired_bootstrap_delta(scores, scores.copy())
    assert d.value == d.low == d.high == 0.0
    assert d.p_value == 1.0
    assert not d.excludes_zero


def test_paired_delta_detects_a_clear_improvement() -> None:
    base = np.random.default_rng(4).random(200)
    d = paired_bootstrap_delta(base, base + 0.1)
    assert d.value == pytest.approx(0.1)
    assert d.low == pytest.approx(0.1) and d.high == pytest.approx(0.1)
    assert d.p_value == 0.0 and d.excludes_zero


def test_paired_interval_is_narrower_than_unpaired_for_correlated_items() -> None:
    # Item difficulty varies a lot (uniform 0..1) and dominates both models' scores; the
    # fine-tune adds 0.05 plus a little noise. Pairing cancels the difficulty.
    rng = np.random.default_rng(7)
    difficulty = rng.random(300)
    base = difficulty + rng.normal(0, 0.02, 300)
    tuned = difficulty + 0.05 + rng.normal(0, 0.02, 300)
    paired = paired_bootstrap_delta(base, tuned)
    # Unpaired: the two means vary independently, so their widths add in quadrature.
    b, t = bootstrap_ci(base, seed=1), bootstrap_ci(tuned, seed=2)
    unpaired_width = math.hypot(b.high - b.low, t.high - t.low)
    assert paired.high - paired.low < 0.25 * unpaired_width
    assert paired.low > 0  # and the small gain is detected


def test_paired_delta_needs_equal_lengths() -> None:
    with pytest.raises(ValueError, match="differ in length"):
        paired_bootstrap_delta([1.0, 0.0], [1.0])


# --- Named metrics -------------------------------------------------------------------------------


def test_metric_gives_per_item_scores_and_an_interval() -> None:
    scores = get_metric("exact_match")(["Paris.", "london", "Rome"], [["paris"], "Berlin", ["rome", "Roma"]])
    assert scores.items.tolist() == [1.0, 0.0, 1.0]
    assert scores.value == pytest.approx(2 / 3)
    ci = scores.interval(n_resamples=200)
    assert isinstance(ci, Interval) and ci.n == 3


@pytest.mark.parametrize("name", sorted(METRICS))
def test_every_metric_runs_and_identical_predictions_score_best(name: str) -> None:
    # Four tokens or more, so corpus BLEU has 4-grams and ROUGE-2 has bigrams.
    texts = ["the film was great fun", "the plot made no sense", "it was fine I suppose", "the film was great fun"]
    scores = METRICS[name](texts, [[x] for x in texts])
    assert scores.value == pytest.approx(100.0 if "bleu" in name else 1.0)
    assert METRICS[name].per_item == (scores.items is not None)
    d = score_delta(scores, scores, n_resamples=100)
    assert d.value == d.low == d.high == 0.0


def test_macro_metrics_on_any_resample_equal_sklearn() -> None:
    rng = np.random.default_rng(11)
    classes = ["pos", "neg", "neutral", "mixed"]
    gold = [classes[i] for i in rng.integers(0, 4, 60)]
    pred = [classes[i] if rng.random() < 0.6 else "Pos." for i in rng.integers(0, 4, 60)]
    # The table's classification metrics compare normalised text: "Pos." is the label "pos".
    norm_pred = [normalize_answer(p) for p in pred]
    everything = np.arange(60)
    resample = rng.integers(0, 60, 60)
    for name, fn in [("f1_macro", f1_score), ("precision_macro", precision_score), ("recall_macro", recall_score)]:
        scores = get_metric(name)(pred, gold)
        for idx in (everything, resample):
            expected = fn([gold[i] for i in idx], [norm_pred[i] for i in idx], average="macro", zero_division=0)
            assert scores.on(idx) == pytest.approx(expected), (name, idx)
    m = classification_metrics(gold, norm_pred)
    assert get_metric("accuracy")(pred, gold).value == pytest.approx(m["accuracy"])
    assert get_metric("f1_micro")(pred, gold).value == pytest.approx(m["f1_micro"])


def test_corpus_metric_delta_pairs_rows() -> None:
    refs = [["the cat sat on the mat"], ["a dog ran in the park"], ["birds fly south in winter"]] * 10
    base = get_metric("bleu")(["the dog sat", "a cat ran", "fish swim"] * 10, refs)
    tuned = get_metric("bleu")([r[0] for r in refs], refs)
    d = score_delta(base, tuned, n_resamples=200)
    assert d.value == pytest.approx(tuned.value - base.value)
    assert d.low > 0 and d.p_value == 0.0


def test_score_delta_refuses_mismatched_scores() -> None:
    a = get_metric("exact_match")(["x", "y"], ["x", "y"])
    with pytest.raises(ValueError, match="differ in length"):
        score_delta(a, get_metric("exact_match")(["x"], ["x"]))
    with pytest.raises(ValueError, match="cannot compare"):
        score_delta(a, get_metric("contains")(["x", "y"], ["x", "y"]))


def test_metric_rejects_mismatched_and_empty_inputs() -> None:
    with pytest.raises(ValueError, match="2 predictions but 1 references"):
        get_metric("exact_match")(["a", "b"], ["a"])
    with pytest.raises(ValueError, match="no predictions"):
        get_metric("bleu")([], [])


def test_classification_metric_needs_one_gold_label() -> None:
    with pytest.raises(DataError, match="exactly one reference"):
        get_metric("f1_macro")(["a"], [["a", "b"]])
    with pytest.raises(DataError, match="exactly one reference"):
        get_metric("accuracy")(["a"], [["a", "b"]])


@pytest.mark.parametrize(
    ("typo", "suggestion"),
    [
        ("exact_mtch", "exact_match"),
        ("rougel", "rougeL"),
        ("f1-macro", "f1_macro"),
        ("BLEU", "bleu"),
    ],
)
def test_unknown_metric_suggests_the_closest_name(typo: str, suggestion: str) -> None:
    with pytest.raises(ConfigError) as err:
        get_metric(typo, key="eval.suites[0].metric")
    (problem,) = err.value.problems
    assert problem.startswith("eval.suites[0].metric: unknown metric")
    assert f"did you mean {suggestion!r}?" in problem
    assert "exact_match" in problem and "rougeL" in problem  # lists the known names


def test_unknown_metric_far_from_any_name_lists_known_names() -> None:
    with pytest.raises(ConfigError, match="known metrics: exact_match") as err:
        get_metric("zzzzzz")
    assert "did you mean" not in str(err.value)
