"""Tiny rows and configs shared by the task tests (the tiny random model: `tiny_model_dir`)."""

from __future__ import annotations

import json
from pathlib import Path

SHARED_DATA = Path(__file__).resolve().parents[3] / "shared" / "data"

FACTS = [
    ("What colour is the sky on a clear day?", "The sky is blue."),
    ("What do bees make?", "Bees make honey."),
    ("How many legs does a spider have?", "A spider has eight legs."),
]
CAPITALS = [
    ("What is the capital of France?", "Paris is the capital of France."),
    ("What is the capital of Italy?", "Rome is the capital of Italy."),
    ("What is the capital of Spain?", "Madrid is the capital of Spain."),
]


def chat_rows(pairs: list[tuple[str, str]], n: int) -> list[dict]:
    return [
        {"messages": [{"role": "user", "content": q}, {"role": "assistant", "content": a}]}
        for q, a in (pairs[i % len(pairs)] for i in range(n))
    ]


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


# Quiet, fast settings for a tiny model: fp32, no tracking, no suites, no prompting baselines.
TINY_RUN = (
    "method: {r: 4, alpha: 8, dropout: 0.0}\n"
    "train: {max_steps: 6, lr: 0.01, batch_size: 4, eval_every: 0, save_every: 100, log_every: 3, "
    "warmup_ratio: 0.0, precision: fp32}\n"
)
