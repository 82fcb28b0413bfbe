"""Near-duplicate detection: tunewise's vectorised MinHash LSH against the obvious datasketch loop.

Generates `--rows` texts (100,000 by default) deterministically: a word-bigram Markov chain
learned from real text in ../shared/data (BoolQ passages, the LLaMA-Factory Alpaca demo answers)
writes rows of 40–80 words, and `--planted` of them (10 %) are copies of another row with one or
two words replaced, inserted or deleted. The truth is every pair of rows whose exact Jaccard
similarity of word 3-gram sets reaches `--threshold` (computed for each planted pair; a detected
pair that was not planted is checked the same way, so an accidental near duplicate counts as true).

Three detectors run on the same texts, in one process:

- `tunewise (in memory)`: `near_duplicate_clusters` — numpy shingling and MinHash for all rows at
  once, LSH banding, every candidate verified against the exact Jaccard;
- `tunewise (streamed)`: `StreamDeduper` in batches of 4,096 rows, as `data audit` and `data clean`
  run it (bounded memory: a hash and a signature per row);
- `datasketch loop`: the obvious code — per row a `MinHash(num_perm=128)` updated with its
  shingles (`update_batch`) and inserted into a `MinHashLSH`, then each row queried.

For each: precision and recall of the detected pairs against the truth, wall and CPU time, rows/s,
and the speed ratio against the datasketch loop, by wall time and by CPU time (measured within this
run). Timings on a shared machine are as good as its load: the load average is printed before and
after, and the CPU-time ratio is the steadier of the two there.

    python benchmarks/dedup.py                    # 100k rows
    python benchmarks/dedup.py --rows 20000       # a quicker look

Exits 1 when tunewise's precision or recall is below 0.95.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from tunewise.data.dedup import StreamDeduper, jaccard, near_duplicate_clusters, normalise

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
TARGET = 0.95


def corpus_words() -> list[str]:
    """Words of real text, in order: BoolQ passages and the Alpaca demo's answers."""
    import re

    texts = []
    with open(DATA / "boolq" / "boolq_dev.jsonl", encoding="utf-8") as f:
        texts += [json.loads(line)["query"] for line in f]
    texts += [row["output"] for row in json.loads((DATA / "llamafactory_demo" / "alpaca_en_demo.json").read_text())]
    return re.findall(r"[A-Za-z']+|[.,;:!?]", " ".join(texts))


def generate(rows: int, planted: int, seed: int = 0) -> tuple[list[str], list[tuple[int, int]]]:
    """`rows` texts, the last `planted` of them edited copies of earlier ones; and the planted pairs."""
    words = corpus_words()
    vocab, ids = np.unique(np.array(words), return_inverse=True)
    # Successor lists of the bigram chain as CSR arrays, so all rows take a step at once.
    order = np.argsort(ids[:-1], kind="stable")
    successors = ids[1:][order]
    counts = np.bincount(ids[:-1], minlength=len(vocab))
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    rng = np.random.RandomState(seed)
    base = rows - planted
    longest = 80
    state = rng.randint(0, len(vocab), base)
    steps = np.empty((base, longest), dtype=np.int64)
    for j in range(longest):
        dead = counts[state] == 0
        state[dead] = rng.randint(0, len(vocab), int(dead.sum()))
        state = successors[starts[state] + (rng.random_sample(base) * counts[state]).astype(np.int64)]
        steps[:, j] = state
    lengths = rng.randint(40, longest + 1, base)
    texts = [" ".join(vocab[steps[i, :lengths[i]]]) for i in range(base)]
    pairs = []
    sources = rng.choice(base, planted, replace=False)
    for k, src in enumerate(sources):
        tokens = texts[src].split()
        for _ in range(1 + rng.randint(0, 2)):  # one or two edits
            at = rng.randint(0, len(tokens))
            op = rng.randint(0, 3)
            if op == 0:
                tokens[at] = vocab[rng.randint(0, len(vocab))]
            elif op == 1:
                tokens.insert(at, vocab[rng.randint(0, len(vocab))])
            elif len(tokens) > 2:
                del tokens[at]
        texts.append(" ".join(tokens))
        pairs.append((int(src), base + k))
    return texts, pairs


def tunewise_in_memory(texts: list[str], threshold: float) -> set[tuple[int, int]]:
    clusters = near_duplicate_clusters(texts, threshold=threshold)
    members: dict[int, list[int]] = {}
    for i, c in enumerate(clusters):
        members.setdefault(c, []).append(i)
    return {(a, b) for group in members.values() if len(group) > 1
            for k, b in enumerate(group) for a in group[:k]}


def tunewise_streamed(texts: list[str], threshold: float) -> set[tuple[int, int]]:
    dedup = StreamDeduper(threshold=threshold)
    for start in range(0, len(texts), 4096):
        dedup.add(texts[start:start + 4096])
    groups, pairs = dedup.pairs(lambda wanted: {i: texts[i] for i in wanted})
    found = {(g[0], i) for g in groups for i in g[1:]}
    for p in pairs:  # every row of one group with every row of the other
        found |= {(min(a, b), max(a, b)) for a in groups[p.a] for b in groups[p.b]}
    return found


def datasketch_loop(texts: list[str], threshold: float) -> set[tuple[int, int]]:
    import re

    from datasketch import MinHash, MinHashLSH

    lsh = MinHashLSH(threshold=threshold, num_perm=128)
    hashes = []
    for i, text in enumerate(texts):
        tokens = re.findall(r"\w+", normalise(text))  # the words tunewise shingles, so both see the same sets
        shingles = {" ".join(tokens[j:j + 3]) for j in range(max(len(tokens) - 2, 1))}
        m = MinHash(num_perm=128)
        m.update_batch([s.encode("utf-8") for s in shingles])
        lsh.insert(i, m)
        hashes.append(m)
    found = set()
    for i, m in enumerate(hashes):
        for j in lsh.query(m):
            if j != i:
                found.add((min(i, j), max(i, j)))
    return found


def timed(run: Callable[[], set[tuple[int, int]]]) -> tuple[set[tuple[int, int]], float, float]:
    wall, cpu = time.perf_counter(), time.process_time()
    found = run()
    return found, time.perf_counter() - wall, time.process_time() - cpu


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--planted", type=int, default=None, help="near-duplicate copies (default: 10 %% of rows)")
    parser.add_argument("--threshold", type=float, default=0.8)
    args = parser.parse_args()
    planted = args.planted if args.planted is not None else args.rows // 10

    print(f"load average before: {os.getloadavg()[0]:.2f} (cores: {os.cpu_count()})")
    started = time.perf_counter()
    texts, pairs = generate(args.rows, planted)
    truth = {p for p in pairs if jaccard(texts[p[0]], texts[p[1]]) >= args.threshold}
    print(f"{len(texts):,} rows generated in {time.perf_counter() - started:.1f} s "
          f"(mean {np.mean([len(t.split()) for t in texts]):.0f} words); {len(pairs):,} planted near-duplicate pairs, "
          f"{len(truth):,} of them at Jaccard >= {args.threshold} (the truth; the rest were edited further apart)")

    results = []
    for name, run in (("tunewise (in memory)", lambda: tunewise_in_memory(texts, args.threshold)),
                      ("tunewise (streamed)", lambda: tunewise_streamed(texts, args.threshold)),
                      ("datasketch loop", lambda: datasketch_loop(texts, args.threshold))):
        found, wall, cpu = timed(run)
        accidental = {p for p in found - truth if p not in set(pairs) and jaccard(texts[p[0]], texts[p[1]])
                      >= args.threshold}
        true = truth | accidental
        tp = len(found & true)
        precision = tp / len(found) if found else 1.0
        recall = len(found & truth) / len(truth) if truth else 1.0
        results.append((name, precision, recall, wall, cpu, len(found)))
        print(f"  {name}: {len(found):,} pairs, precision {precision:.4f}, recall {recall:.4f}, "
              f"{wall:.1f} s wall / {cpu:.1f} s CPU, {len(texts) / wall:,.0f} rows/s", flush=True)

    base_wall, base_cpu = results[-1][3], results[-1][4]
    print()
    print("| detector | precision | recall | wall s | CPU s | rows/s | speed vs datasketch loop (wall) | (CPU) |")
    print("|---|---|---|---|---|---|---|---|")
    for name, precision, recall, wall, cpu, _ in results:
        print(f"| {name} | {precision:.4f} | {recall:.4f} | {wall:.1f} | {cpu:.1f} | {len(texts) / wall:,.0f} | "
              f"{base_wall / wall:.1f}× | {base_cpu / cpu:.1f}× |")
    print(f"\nload average after: {os.getloadavg()[0]:.2f}")
    ok = all(p >= TARGET and r >= TARGET for name, p, r, *_ in results if name.startswith("tunewise"))
    print(f"target precision and recall >= {TARGET}: {'met' if ok else 'NOT met'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
