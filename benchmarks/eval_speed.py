"""Multiple-choice scoring: the fast path against the naive loop, side by side in one run.

Scores the first `--limit` items of ARC-Easy (llm-foundry's file, from ../shared/data) with the
default model twice — `score_naive` (one forward pass per choice) and `score_multiple_choice`
(each context once, its choices batched on its KV cache) — and prints, for each: accuracy
(`acc`, `acc_norm`), wall and CPU time, and the speed ratio; then checks that both made the same
prediction on every item and how far apart their log-likelihoods are.

    python benchmarks/eval_speed.py                 # 500 items; the naive loop takes most of it
    python benchmarks/eval_speed.py --limit 100     # a quicker look

Exits 1 when any prediction differs. Timings on a shared machine are only as good as its load:
the load average is printed before and after, and CPU time is shown beside wall time.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch

from tunewise.evaluation.scoring import (
    DEFAULT_DELIMITER,
    ItemScore,
    mc_accuracy,
    score_multiple_choice,
    score_naive,
)
from tunewise.models import load_model, load_tokenizer

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "arc" / "arc_easy_test.jsonl"
TARGET_RATIO = 4.0


def _load(path: Path, limit: int) -> list[dict]:
    with path.open(encoding="utf-8") as fh:
        return [json.loads(line) for _, line in zip(range(limit), fh)]


def _timed(run: Callable[[], list[ItemScore]]) -> tuple[list[ItemScore], float, float]:
    wall, cpu = time.perf_counter(), time.process_time()
    scores = run()
    return scores, time.perf_counter() - wall, time.process_time() - cpu


def _load_average() -> str:
    try:
        return " ".join(f"{x:.2f}" for x in os.getloadavg())
    except OSError:  # pragma: no cover - not on this platform
        return "n/a"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DATA, help="JSONL of {query, choices, gold}")
    parser.add_argument("--limit", type=int, default=500, help="score the first N items")
    parser.add_argument("--model", default="smollm2-135m-instruct")
    parser.add_argument("--batch-size", type=int, default=16, help="items per batch (fast path)")
    parser.add_argument("--delimiter", default=DEFAULT_DELIMITER)
    args = parser.parse_args(argv)

    items = _load(args.data, args.limit)
    model, tokenizer = load_model(args.model), load_tokenizer(args.model)
    print(f"{len(items)} items from {args.data}")
    print(f"model {args.model}, torch {torch.__version__}, {torch.get_num_threads()} threads, "
          f"{os.cpu_count()} CPUs; load average before: {_load_average()}")

    # Warm up both paths (first-call allocations, lazy imports) outside the timings.
    score_naive(model, tokenizer, items[:2], delimiter=args.delimiter)
    score_multiple_choice(model, tokenizer, items[:2], delimiter=args.delimiter, progress=False)

    naive, naive_wall, naive_cpu = _timed(
        lambda: score_naive(model, tokenizer, items, delimiter=args.delimiter, progress=True))
    fast, fast_wall, fast_cpu = _timed(
        lambda: score_multiple_choice(model, tokenizer, items, delimiter=args.delimiter,
                                      batch_size=args.batch_size, progress=True))
    print(f"load average after: {_load_average()}")

    diffs = [abs(a - b) for n, f in zip(naive, fast) for a, b in zip(n.logliks, f.logliks)]
    raw_mismatch = [i for i, (n, f) in enumerate(zip(naive, fast)) if n.pred_raw != f.pred_raw]
    norm_mismatch = [i for i, (n, f) in enumerate(zip(naive, fast)) if n.pred_norm != f.pred_norm]
    acc_naive, acc_fast = mc_accuracy(naive), mc_accuracy(fast)
    ratio_wall, ratio_cpu = naive_wall / fast_wall, naive_cpu / fast_cpu

    rows = [
        ("naive (1 pass per choice)", acc_naive, naive_wall, naive_cpu, 1.0, 1.0),
        (f"fast (batch {args.batch_size})", acc_fast, fast_wall, fast_cpu, ratio_wall, ratio_cpu),
    ]
    print()
    print(f"{'method':<28}{'acc':>8}{'acc_norm':>10}{'wall s':>10}{'cpu s':>10}"
          f"{'items/s':>9}{'x wall':>8}{'x cpu':>8}")
    for name, acc, wall, cpu, rw, rc in rows:
        print(f"{name:<28}{acc['acc']:>8.3f}{acc['acc_norm']:>10.3f}{wall:>10.1f}{cpu:>10.1f}"
              f"{len(items) / wall:>9.2f}{rw:>8.2f}{rc:>8.2f}")
    print()
    print(f"acc stderr: ±{acc_fast['acc_stderr']:.3f}  (n = {len(items)})")
    print(f"prediction mismatches: pred_raw {len(raw_mismatch)}, pred_norm {len(norm_mismatch)} "
          f"of {len(items)} items")
    print(f"max |loglik naive - fast|: {max(diffs):.2e} over {len(diffs)} choices")
    verdict = "met" if ratio_wall >= TARGET_RATIO else "NOT met"
    print(f"speed-up (wall): {ratio_wall:.2f}x  (target >= {TARGET_RATIO:.0f}x: {verdict})")
    for i in sorted(set(raw_mismatch) | set(norm_mismatch)):
        print(f"  item {i}: naive {naive[i].logliks} vs fast {fast[i].logliks}")
    return 1 if raw_mismatch or norm_mismatch else 0


if __name__ == "__main__":
    sys.exit(main())
