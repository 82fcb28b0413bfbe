"""Exact and near-duplicate detection: MinHash signatures, LSH buckets, union-find clusters.

Two rows are *exact* duplicates when their normalised texts are equal (`normalise`: Unicode
NFKC, case folded, whitespace collapsed). They are *near* duplicates when the Jaccard
similarity of their sets of word n-grams (shingles) reaches a threshold, e.g. the same answer
with a few words changed.

Comparing every pair is quadratic, so the work is done in the usual three steps, vectorised with
numpy because the obvious per-row loop (one `datasketch.MinHash` per row, one `update` per
shingle) spends its time in Python:

1. shingles: each distinct word is hashed once (blake2b), word n-grams are combined from those
   hashes with array arithmetic, giving each text a set of 32-bit shingle hashes;
2. MinHash signatures for all texts at once, in blocks: `min(a * fmix32(h) + b mod 2^32)` per
   permutation — exactly datasketch's "affine32" scheme, so `as_minhashes` hands the rows to a
   `datasketch.MinHashLSH` index unchanged;
3. LSH banding with the (bands, rows) that `datasketch.MinHashLSH` picks for the threshold; rows
   sharing a band bucket are candidates, and each candidate pair is verified against the exact
   Jaccard of the shingle sets (`verify=True`), so a cluster never chains unrelated rows
   through a lucky bucket collision. Because candidates are verified, the bands are tuned for
   recall (few missed pairs) rather than precision.

Exact duplicates are merged before any hashing, so a file with many copies of a row costs one
signature. Clusters come from a union-find whose representative is the smallest index, so a
cluster id is stable: it is the index of the cluster's first row.

Texts shorter than `ngram` words count as one shingle of all their words; texts without any
word (empty, punctuation only) match only exact duplicates.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING, NamedTuple

import numpy as np

if TYPE_CHECKING:
    from datasketch import LeanMinHash

    from tunewise.data.shapes import Example

__all__ = [
    "DuplicatePair",
    "StreamDeduper",
    "as_minhashes",
    "cross_duplicates",
    "example_text",
    "jaccard",
    "minhash_signatures",
    "near_duplicate_clusters",
    "normalise",
    "shingle_hashes",
]

_WORD = re.compile(r"\w+")
_U32 = np.uint64(0xFFFFFFFF)
_EMPTY = np.uint32(0xFFFFFFFF)  # datasketch's "no element seen" value for affine32
_MUL = np.uint64(0x9E3779B97F4A7C15)  # odd: the polynomial combine is order-sensitive
# Shingles per block of (permutations x shingles) values: 4 MB at 128 permutations, small enough
# to stay in cache, which makes the min-reduction several times faster than larger blocks.
_BLOCK = 1 << 13


def normalise(text: str) -> str:
    """The form two texts are compared in: NFKC, case folded, runs of whitespace as one space.

    Example:
        >>> normalise("  The  Sky\\tis BLUE ")
        'the sky is blue'
    """
    return " ".join(unicodedata.normalize("NFKC", text).casefold().split())


def example_text(example: Example, *, system: bool = False) -> str:
    """The text of a training example that duplicate detection compares.

    Args:
        example: a loaded `Example`.
        system: include the system message. Off by default: a system prompt shared by every
            row is boilerplate that would make unrelated rows look alike.

    Returns:
        The message contents joined by newlines (or the `text` of a plain-text example).
    """
    if example.messages is None:
        return example.text or ""
    return "\n".join(m["content"] for m in example.messages if system or m["role"] != "system")


class DuplicatePair(NamedTuple):
    """Row `a` of the first collection and row `b` of the second are (near) duplicates.

    `similarity` is the Jaccard similarity of their shingle sets (1.0 for exact duplicates); an
    estimate from the signatures when verification is off.
    """

    a: int
    b: int
    similarity: float


# --------------------------------------------------------------------------- hashing


def _fmix64(h: np.ndarray) -> np.ndarray:
    """MurmurHash3's 64-bit finaliser: spreads structured values over all bits (a bijection)."""
    h = h ^ (h >> np.uint64(33))
    h = h * np.uint64(0xFF51AFD7ED558CCD)
    h = h ^ (h >> np.uint64(33))
    h = h * np.uint64(0xC4CEB9FE1A85EC53)
    return h ^ (h >> np.uint64(33))


def _fmix32(h: np.ndarray) -> np.ndarray:
    """MurmurHash3's 32-bit finaliser, as datasketch applies it before the affine32 permutations."""
    h = h ^ (h >> np.uint32(16))
    h = h * np.uint32(0x85EBCA6B)
    h = h ^ (h >> np.uint32(13))
    h = h * np.uint32(0xC2B2AE35)
    return h ^ (h >> np.uint32(16))


@lru_cache(maxsize=16)
def _permutations(num_perm: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    # The same draws as datasketch >= 2.0 `MinHash(num_perm, seed, scheme="affine32")`; odd `a`
    # makes h -> a*h + b mod 2^32 a bijection.
    gen = np.random.RandomState(seed)
    a = gen.randint(0, 1 << 31, num_perm, dtype=np.uint32) * np.uint32(2) + np.uint32(1)
    b = gen.randint(0, 1 << 32, num_perm, dtype=np.uint32)
    return a, b


@dataclass
class _Shingled:
    """Sorted unique 32-bit shingle hashes of many texts, concatenated; text i owns
    `hashes[offsets[i]:offsets[i + 1]]`."""

    hashes: np.ndarray
    offsets: np.ndarray

    def __len__(self) -> int:
        return len(self.offsets) - 1

    def of(self, i: int) -> np.ndarray:
        return self.hashes[self.offsets[i] : self.offsets[i + 1]]

    def jaccard(self, i: int, j: int) -> float:
        x, y = self.of(i), self.of(j)
        if not len(x) or not len(y):
            return 0.0
        inter = np.intersect1d(x, y, assume_unique=True).size
        return inter / (len(x) + len(y) - inter)

    @classmethod
    def build(cls, normalised: Sequence[str], ngram: int) -> _Shingled:
        # Each distinct word is hashed once; the n-grams are built from those hashes in bulk.
        words: list[str] = []
        lengths = np.zeros(len(normalised), dtype=np.int64)
        for i, text in enumerate(normalised):
            found = _WORD.findall(text)
            lengths[i] = len(found)
            words += found
        vocab = {w: i for i, w in enumerate(dict.fromkeys(words))}
        digests = b"".join(hashlib.blake2b(w.encode("utf-8"), digest_size=8).digest() for w in vocab)
        word_hash = np.frombuffer(digests, dtype="<u8").astype(np.uint64)
        ids = np.fromiter(map(vocab.__getitem__, words), dtype=np.int64, count=len(words))
        tokens = word_hash[ids]
        doc_of_token = np.repeat(np.arange(len(normalised), dtype=np.int64), lengths)

        docs: list[np.ndarray] = []
        grams: list[np.ndarray] = []
        windows = len(tokens) - ngram + 1
        if windows > 0:
            h = tokens[:windows].copy()
            for j in range(1, ngram):
                h = h * _MUL + tokens[j : windows + j]
            # A window belongs to one text when its first and last word do.
            inside = doc_of_token[:windows] == doc_of_token[ngram - 1 :]
            docs.append(doc_of_token[:windows][inside])
            grams.append(h[inside])
        starts = np.concatenate([[0], np.cumsum(lengths)])
        short = np.flatnonzero((lengths > 0) & (lengths < ngram))
        if len(short):
            # A text shorter than one n-gram is a single shingle of all its words.
            h = tokens[starts[short]].copy()
            for j in range(1, ngram - 1):
                more = lengths[short] > j
                h[more] = h[more] * _MUL + tokens[starts[short][more] + j]
            docs.append(short)
            grams.append(h)
        if not docs:
            return cls(np.zeros(0, np.uint32), np.zeros(len(normalised) + 1, np.int64))
        doc = np.concatenate(docs).astype(np.uint64)
        gram32 = _fmix64(np.concatenate(grams)) >> np.uint64(32)
        # One sort makes the sets: unique (text, shingle) keys, grouped by text. (np.unique
        # would do the same, several times slower: it hashes before it sorts.)
        keys = np.sort((doc << np.uint64(32)) | gram32)
        keys = keys[np.concatenate([[True], keys[1:] != keys[:-1]])]
        offsets = np.searchsorted(keys >> np.uint64(32), np.arange(len(normalised) + 1, dtype=np.uint64))
        return cls((keys & _U32).astype(np.uint32), offsets.astype(np.int64))

    def signatures(self, num_perm: int, seed: int) -> np.ndarray:
        a, b = _permutations(num_perm, seed)
        sig = np.full((len(self), num_perm), _EMPTY, dtype=np.uint32)
        mixed = _fmix32(self.hashes)
        nonempty = np.flatnonzero(np.diff(self.offsets) > 0)
        starts = self.offsets[nonempty]
        pos = 0
        while pos < len(nonempty):
            # Whole texts per block, about _BLOCK shingles each (one long text may exceed it).
            first = starts[pos]
            end = max(int(np.searchsorted(starts, first + _BLOCK, side="right")), pos + 1)
            docs = nonempty[pos:end]
            # Permutations along rows: the reduction then runs over contiguous memory.
            block = a[:, None] * mixed[None, first : self.offsets[docs[-1] + 1]] + b[:, None]  # mod 2^32
            sig[docs] = np.minimum.reduceat(block, starts[pos:end] - first, axis=1).T
            pos = end
        return sig


def _check(*, threshold: float = 1.0, num_perm: int = 2, ngram: int = 3) -> None:
    if not 0 < threshold <= 1:
        raise ValueError(f"threshold must be above 0 and at most 1, not {threshold}")
    if num_perm < 2:
        raise ValueError(f"num_perm must be at least 2, not {num_perm}")
    if ngram < 1:
        raise ValueError(f"ngram must be at least 1, not {ngram}")


def shingle_hashes(text: str, ngram: int = 3) -> np.ndarray:
    """The sorted, unique 32-bit hashes of a text's word n-grams (after `normalise`)."""
    _check(ngram=ngram)
    return _Shingled.build([normalise(text)], ngram).of(0).copy()


def jaccard(a: str, b: str, ngram: int = 3) -> float:
    """Exact Jaccard similarity of two texts' shingle sets (1.0 when they normalise equal)."""
    _check(ngram=ngram)
    na, nb = normalise(a), normalise(b)
    if na == nb:
        return 1.0
    return _Shingled.build([na, nb], ngram).jaccard(0, 1)


def minhash_signatures(texts: Sequence[str], *, num_perm: int = 128, ngram: int = 3, seed: int = 1) -> np.ndarray:
    """MinHash signatures of many texts at once, one uint32 row per text.

    Row i equals the `hashvalues` of a datasketch `MinHash(num_perm, seed, scheme="affine32",
    hashfunc=int)` updated with `shingle_hashes(texts[i], ngram)`. A text without words has the
    empty signature (every value 2^32 - 1).
    """
    _check(num_perm=num_perm, ngram=ngram)
    return _Shingled.build([normalise(t) for t in texts], ngram).signatures(num_perm, seed)


def as_minhashes(signatures: np.ndarray, *, seed: int = 1) -> list[LeanMinHash]:
    """Wrap signature rows as datasketch `LeanMinHash`es, e.g. to insert into a `MinHashLSH`."""
    from datasketch import LeanMinHash

    return [LeanMinHash(seed=seed, hashvalues=row, scheme="affine32") for row in signatures]


# --------------------------------------------------------------------------- candidates


@lru_cache(maxsize=32)
def _bands(threshold: float, num_perm: int, verify: bool) -> tuple[int, int]:
    from datasketch import MinHashLSH

    # Verified candidates cost only a set comparison, so favour recall: weight misses higher.
    weights = (0.1, 0.9) if verify else (0.5, 0.5)
    try:
        lsh = MinHashLSH(threshold=threshold, num_perm=num_perm, weights=weights)
    except ValueError:
        # Near 1.0 the best split is a single band (MinHashLSH refuses it): identical signatures.
        return 1, num_perm
    return lsh.b, lsh.r


def _buckets(sig: np.ndarray, rows: np.ndarray, threshold: float, verify: bool) -> Iterator[np.ndarray]:
    """Groups of `rows` (ascending) that share a band of their signatures."""
    if len(rows) < 2:
        return
    n_bands, width = _bands(threshold, sig.shape[1], verify)
    for band in range(n_bands):
        part = sig[rows, band * width : (band + 1) * width].astype(np.uint64)
        key = part[:, 0].copy()
        for j in range(1, width):
            key = key * _MUL + part[:, j]
        key = _fmix64(key)
        order = np.argsort(key, kind="stable")
        ordered = key[order]
        cuts = np.flatnonzero(ordered[1:] != ordered[:-1]) + 1
        starts = np.concatenate([[0], cuts])
        ends = np.concatenate([cuts, [len(ordered)]])
        for s, e in zip(starts[ends - starts > 1], ends[ends - starts > 1]):
            yield rows[order[s:e]]


class _UnionFind:
    """Disjoint sets whose root is always the smallest member."""

    def __init__(self, n: int) -> None:
        self.parent = list(range(n))

    def find(self, i: int) -> int:
        parent = self.parent
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    def union(self, i: int, j: int) -> None:
        ri, rj = self.find(i), self.find(j)
        if ri != rj:
            self.parent[max(ri, rj)] = min(ri, rj)


def _exact_groups(normalised: Sequence[str]) -> dict[str, list[int]]:
    groups: dict[str, list[int]] = {}
    for i, text in enumerate(normalised):
        groups.setdefault(text, []).append(i)
    return groups


# --------------------------------------------------------------------------- public entry points


def near_duplicate_clusters(
    texts: Sequence[str],
    *,
    threshold: float = 0.8,
    num_perm: int = 128,
    ngram: int = 3,
    seed: int = 1,
    verify: bool = True,
) -> list[int]:
    """Group texts that are exact or near duplicates of each other.

    Args:
        texts: the texts, e.g. `example_text` of each training example.
        threshold: Jaccard similarity of word n-gram sets from which two texts are near
            duplicates, in (0, 1]. 1.0 finds only texts with identical shingle sets.
        num_perm: MinHash permutations; more is a finer similarity estimate, slower.
        ngram: words per shingle.
        seed: the MinHash permutations' seed; the same texts and seed give the same clusters.
        verify: check every LSH candidate pair against the exact Jaccard of the shingle sets
            (precise). Off, every pair sharing a bucket is merged (faster, may over-merge).

    Returns:
        A cluster id per text: the index of the first text of its cluster, so a text that has
        no duplicate gets its own index, and ids do not change when unrelated texts are
        appended.

    Raises:
        ValueError: threshold, num_perm or ngram out of range.
    """
    _check(threshold=threshold, num_perm=num_perm, ngram=ngram)
    normalised = [normalise(t) for t in texts]
    sets = _UnionFind(len(texts))
    groups = _exact_groups(normalised)
    for group in groups.values():
        for i in group[1:]:
            sets.union(group[0], i)
    reps = [group[0] for group in groups.values()]  # ascending: dicts keep first-seen order
    shingled = _Shingled.build([normalised[i] for i in reps], ngram)
    sig = shingled.signatures(num_perm, seed)
    with_words = np.flatnonzero(np.diff(shingled.offsets) > 0)
    rejected: set[tuple[int, int]] = set()
    for bucket in _buckets(sig, with_words, threshold, verify):
        members = bucket.tolist()
        for k, q in enumerate(members[1:], 1):
            for p in members[:k]:
                if sets.find(reps[p]) == sets.find(reps[q]):
                    continue
                if verify:
                    if (p, q) in rejected:
                        continue
                    if shingled.jaccard(p, q) < threshold:
                        rejected.add((p, q))
                        continue
                sets.union(reps[p], reps[q])
    return [sets.find(i) for i in range(len(texts))]


def cross_duplicates(
    a_texts: Sequence[str],
    b_texts: Sequence[str],
    *,
    threshold: float = 0.8,
    num_perm: int = 128,
    ngram: int = 3,
    seed: int = 1,
    verify: bool = True,
) -> list[DuplicatePair]:
    """Every pair (row of `a_texts`, row of `b_texts`) that is an exact or near duplicate.

    Meant for leakage between splits: e.g. `cross_duplicates(train, eval)` lists each eval row
    that (nearly) repeats a training row. Pairs are direct matches, not chained through a third
    text. Arguments as for `near_duplicate_clusters`.

    Returns:
        `DuplicatePair(a, b, similarity)` sorted by `(a, b)`.
    """
    _check(threshold=threshold, num_perm=num_perm, ngram=ngram)
    n_a = len(a_texts)
    normalised = [normalise(t) for t in [*a_texts, *b_texts]]
    groups = list(_exact_groups(normalised).values())
    sides = [([i for i in g if i < n_a], [i - n_a for i in g if i >= n_a]) for g in groups]
    pairs = [DuplicatePair(i, j, 1.0) for in_a, in_b in sides for i in in_a for j in in_b]

    shingled = _Shingled.build([normalised[g[0]] for g in groups], ngram)
    sig = shingled.signatures(num_perm, seed)
    with_words = np.flatnonzero(np.diff(shingled.offsets) > 0)
    seen: set[tuple[int, int]] = set()
    for bucket in _buckets(sig, with_words, threshold, verify):
        members = bucket.tolist()
        for k, q in enumerate(members[1:], 1):
            for p in members[:k]:
                crosses = (sides[p][0] and sides[q][1]) or (sides[p][1] and sides[q][0])
                if not crosses or (p, q) in seen:
                    continue
                seen.add((p, q))
                similarity = shingled.jaccard(p, q) if verify else float(np.mean(sig[p] == sig[q]))
                if similarity < threshold:
                    continue
                for x, y in ((p, q), (q, p)):
                    pairs += [DuplicatePair(i, j, similarity) for i in sides[x][0] for j in sides[y][1]]
    return sorted(pairs)


# --------------------------------------------------------------------------- streamed


class StreamDeduper:
    """Exact and near duplicates among rows that arrive in batches, in bounded memory.

    Memory is one 8-byte hash of the normalised text and one `num_perm`-value signature per
    row (about 520 bytes at 128 permutations), however long the rows are. The texts are asked
    for again, by index, only for the rows whose signatures collide (`pairs(texts_of)`), to
    verify each candidate pair against the exact Jaccard of its shingle sets — so a caller
    streaming a large file reads it twice rather than holding it.

        dedup = StreamDeduper(threshold=0.8)
        for batch in batches:
            dedup.add(batch)
        groups, pairs = dedup.pairs(lambda wanted: {i: text_of_row(i) for i in wanted})

    The candidates and verdicts are those of `near_duplicate_clusters` on the same texts.
    """

    def __init__(self, *, threshold: float = 0.8, num_perm: int = 128, ngram: int = 3, seed: int = 1) -> None:
        _check(threshold=threshold, num_perm=num_perm, ngram=ngram)
        self.threshold, self.num_perm, self.ngram, self.seed = threshold, num_perm, ngram, seed
        self._keys: list[np.ndarray] = []
        self._sigs: list[np.ndarray] = []
        self._has_words: list[np.ndarray] = []
        self.rows = 0

    def add(self, texts: Sequence[str]) -> None:
        """Hash a batch of texts; their indices continue from the previous batch."""
        normalised = [normalise(t) for t in texts]
        digests = b"".join(hashlib.blake2b(t.encode("utf-8"), digest_size=8).digest() for t in normalised)
        self._keys.append(np.frombuffer(digests, dtype="<u8").copy())
        shingled = _Shingled.build(normalised, self.ngram)
        self._sigs.append(shingled.signatures(self.num_perm, self.seed))
        self._has_words.append(np.diff(shingled.offsets) > 0)
        self.rows += len(texts)

    def pairs(self, texts_of: Callable[[set[int]], dict[int, str]]) -> tuple[list[list[int]], list[DuplicatePair]]:
        """The exact groups and the verified near pairs between them.

        Args:
            texts_of: given row indices, returns their texts (only rows that are candidates).

        Returns:
            `(groups, pairs)`: `groups` lists every set of rows with equal normalised text (each
            ascending, one-row groups included, ordered by first row); `pairs` holds
            `DuplicatePair(g, h, jaccard)` for groups `g < h` whose texts are near duplicates.
        """
        if not self.rows:
            return [], []
        keys = np.concatenate(self._keys)
        order = np.argsort(keys, kind="stable")
        cuts = np.flatnonzero(keys[order][1:] != keys[order][:-1]) + 1
        groups = sorted((part.tolist() for part in np.split(order, cuts)), key=lambda g: g[0])
        reps = np.array([g[0] for g in groups], dtype=np.int64)
        sig = np.concatenate(self._sigs)[reps]
        with_words = np.flatnonzero(np.concatenate(self._has_words)[reps])
        candidates: set[tuple[int, int]] = set()
        for bucket in _buckets(sig, with_words, self.threshold, True):
            members = bucket.tolist()
            candidates.update((p, q) for k, q in enumerate(members[1:], 1) for p in members[:k])
        if not candidates:
            return groups, []
        wanted = sorted({g for pair in candidates for g in pair})
        texts = texts_of({int(reps[g]) for g in wanted})
        position = {g: i for i, g in enumerate(wanted)}
        shingled = _Shingled.build([normalise(texts[int(reps[g])]) for g in wanted], self.ngram)
        found = []
        for p, q in sorted(candidates):
            similarity = shingled.jaccard(position[p], position[q])
            if similarity >= self.threshold:
                found.append(DuplicatePair(p, q, similarity))
        return groups, found
