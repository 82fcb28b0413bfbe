"""Near-duplicate clustering: planted duplicates found, unrelated rows apart, stable ids, and the
signatures agree with datasketch's own MinHash."""

from __future__ import annotations

import random

import numpy as np
import pytest
from datasketch import MinHash, MinHashLSH

from tunewise.data import Example
from tunewise.data.dedup import (
    as_minhashes,
    cross_duplicates,
    example_text,
    jaccard,
    minhash_signatures,
    near_duplicate_clusters,
    normalise,
    shingle_hashes,
)

WORDS = [f"word{i}" for i in range(3000)]


def random_text(rng: random.Random, n: int = 60) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(n))


def edit(text: str, positions: list[int], new: str = "changed") -> str:
    words = text.split()
    for p in positions:
        words[p] = f"{new}{p}"
    return " ".join(words)


@pytest.fixture(scope="module")
def planted() -> tuple[list[str], dict[int, int]]:
    """40 unrelated texts, then near copies of some of them (original index -> copy index)."""
    rng = random.Random(7)
    texts = [random_text(rng) for _ in range(40)]
    copies = {}
    for original, positions in ((3, [30]), (11, [5, 50]), (20, [0]), (27, [59]), (35, [10, 40])):
        copies[original] = len(texts)
        texts.append(edit(texts[original], positions))
    return texts, copies


def test_normalise_folds_case_whitespace_and_unicode_forms() -> None:
    assert normalise("  The\tSky  is\nBLUE ") == "the sky is blue"
    assert normalise("ﬁne Straße") == normalise("FINE STRASSE")  # NFKC ligature, casefold ß
    assert normalise("") == ""


def test_planted_near_duplicates_share_a_cluster_and_unrelated_rows_do_not(planted) -> None:
    texts, copies = planted
    for original, copy in copies.items():
        assert jaccard(texts[original], texts[copy]) >= 0.8, "the planted copy must be a near duplicate"
    clusters = near_duplicate_clusters(texts, threshold=0.8)
    for original, copy in copies.items():
        assert clusters[copy] == clusters[original] == original
    # Everything else is alone in its cluster.
    assert len(set(clusters)) == len(texts) - len(copies)


def test_a_copy_below_the_threshold_stays_apart() -> None:
    rng = random.Random(1)
    text = random_text(rng, 30)
    far = edit(text, [3, 9, 15, 21, 27])  # 5 of 30 words: Jaccard well below 0.8
    assert jaccard(text, far) < 0.6
    assert near_duplicate_clusters([text, far], threshold=0.8) == [0, 1]
    assert near_duplicate_clusters([text, far], threshold=0.3) == [0, 0]


def test_exact_duplicates_after_normalisation_cluster_even_at_threshold_one() -> None:
    texts = ["What do bees make?", "what  do BEES make?", "Bees make honey.", "WHAT DO BEES MAKE?\n"]
    assert near_duplicate_clusters(texts, threshold=1.0) == [0, 0, 2, 0]
    assert near_duplicate_clusters(texts) == [0, 0, 2, 0]


def test_empty_and_very_short_texts() -> None:
    texts = ["", "yes", "  ", "YES", "!!!", "?", "no", "yes please", "Yes!"]
    clusters = near_duplicate_clusters(texts, ngram=3)
    assert clusters == [0, 1, 0, 1, 4, 5, 6, 7, 1]
    assert near_duplicate_clusters([]) == []
    assert near_duplicate_clusters(["only one"]) == [0]
    assert len(shingle_hashes("")) == 0 and len(shingle_hashes("one two")) == 1
    assert (minhash_signatures(["", "..."]) == np.iinfo(np.uint32).max).all()


def test_cluster_ids_are_the_smallest_index_and_stable_when_rows_are_appended(planted) -> None:
    texts, _ = planted
    clusters = near_duplicate_clusters(texts)
    assert all(c <= i and clusters[c] == c for i, c in enumerate(clusters))
    rng = random.Random(99)
    extended = near_duplicate_clusters(texts + [random_text(rng) for _ in range(10)])
    assert extended[: len(texts)] == clusters


def test_clustering_is_deterministic_and_idempotent(planted) -> None:
    texts, _ = planted
    first = near_duplicate_clusters(texts, seed=3)
    assert near_duplicate_clusters(texts, seed=3) == first
    assert near_duplicate_clusters(texts, seed=4) == first  # same truth, other permutations
    kept = [texts[i] for i in sorted(set(first))]
    assert near_duplicate_clusters(kept, seed=3) == list(range(len(kept))), "dedup once is enough"
    assert (minhash_signatures(texts, seed=3) == minhash_signatures(texts, seed=3)).all()
    assert (minhash_signatures(texts, seed=3) != minhash_signatures(texts, seed=4)).any()


def test_every_member_of_a_cluster_is_verified_against_another() -> None:
    """Verification keeps precision: a cluster is linked by pairs at or above the threshold."""
    rng = random.Random(5)
    base = random_text(rng, 40)
    # A chain of small edits plus unrelated rows.
    texts = [base, edit(base, [10]), edit(base, [10, 30]), random_text(rng, 40), random_text(rng, 40)]
    clusters = near_duplicate_clusters(texts, threshold=0.8)
    for i, c in enumerate(clusters):
        mates = [j for j, d in enumerate(clusters) if d == c and j != i]
        if mates:
            assert max(jaccard(texts[i], texts[j]) for j in mates) >= 0.8


def test_signatures_match_datasketch_minhash() -> None:
    text = "The quick brown fox jumps over the lazy dog by the river"
    for seed, num_perm in ((1, 128), (7, 32)):
        expected = MinHash(num_perm=num_perm, seed=seed, scheme="affine32", hashfunc=int)
        expected.update_batch([int(h) for h in shingle_hashes(text)])
        ours = minhash_signatures([text], num_perm=num_perm, seed=seed)[0]
        assert (ours == expected.hashvalues).all()


def test_signatures_work_in_a_datasketch_lsh_index(planted) -> None:
    texts, copies = planted
    minhashes = as_minhashes(minhash_signatures(texts, seed=2), seed=2)
    lsh = MinHashLSH(threshold=0.8, num_perm=128)
    for i, m in enumerate(minhashes[:40]):
        lsh.insert(i, m)
    for original, copy in copies.items():
        assert original in lsh.query(minhashes[copy])
        assert minhashes[copy].jaccard(minhashes[original]) > 0.7


def test_jaccard_is_exact_on_word_ngrams() -> None:
    # 6 words -> 4 trigrams; changing the last word replaces one of them: 3 shared of 5.
    assert jaccard("a b c d e f", "a b c d e g") == pytest.approx(3 / 5)
    assert jaccard("a b c", "A  B  C") == 1.0
    assert jaccard("a b c d", "w x y z") == 0.0
    assert jaccard("a b c d", "a b c d", ngram=1) == 1.0


def test_cross_duplicates_finds_leakage_between_two_sets(planted) -> None:
    texts, copies = planted
    train = texts[:40]
    evaluation = [texts[copies[11]], "Something else entirely, unrelated.", texts[20].upper(), texts[copies[3]]]
    pairs = cross_duplicates(train, evaluation)
    assert [(p.a, p.b) for p in pairs] == [(3, 3), (11, 0), (20, 2)]
    assert pairs[2].similarity == 1.0 and 0.8 <= pairs[1].similarity < 1.0
    assert cross_duplicates(train, []) == [] and cross_duplicates([], evaluation) == []
    # Duplicates inside one side are not leakage.
    assert cross_duplicates(["a b c d", "a b c d"], ["e f g h"]) == []


def test_example_text_leaves_out_the_system_prompt_by_default() -> None:
    ex = Example(
        "f:1",
        messages=(
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "Hi"},
            {"role": "assistant", "content": "Hello"},
        ),
    )
    assert example_text(ex) == "Hi\nHello"
    assert example_text(ex, system=True) == "Be brief.\nHi\nHello"
    assert example_text(Example("f:2", text="plain")) == "plain"


@pytest.mark.parametrize("kwargs", [{"threshold": 0.0}, {"threshold": 1.5}, {"num_perm": 1}, {"ngram": 0}])
def test_bad_parameters_are_refused(kwargs) -> None:
    with pytest.raises(ValueError, match=next(iter(kwargs))):
        near_duplicate_clusters(["a", "b"], **kwargs)
