"""Helpers for the guard tests: fixed rows, tiny models under each method, a few real Trainer steps."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch

from tunewise.config import Config, TrainConfig
from tunewise.data import Rendered
from tunewise.methods import METHODS
from tunewise.testing import tiny_model, tiny_tokenizer
from tunewise.training.loop import fit

__all__ = ["fit_rows", "method_model", "rows", "write_jsonl"]


def rows(
    n: int = 8, length: int = 10, seed: int = 0, low: int = 3, high: int = 400, prefix: str = "rows"
) -> list[Rendered]:
    """n fixed random rows (token ids in [low, high)), the first 3 tokens a prompt without loss."""
    g = torch.Generator().manual_seed(seed)
    out = []
    for i in range(n):
        ids = torch.randint(low, high, (length,), generator=g).tolist()
        labels = [-100] * 3 + ids[3:]
        out.append(Rendered(f"{prefix}:{i + 1}", ids, labels, length, length - 3, False, 0))
    return out


def method_model(kind: str, seed: int = 0, **settings: Any) -> torch.nn.Module:
    """A tiny model prepared by `method.type: kind` (seeded, so the adapter init is fixed)."""
    method = Config(method={"type": kind, **settings}).method
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return METHODS[kind](tiny_model(seed=0), method)


def fit_rows(
    tmp_path: Path,
    model: torch.nn.Module,
    train_rows: list[Rendered],
    *,
    terms: list | None = None,
    collator: Any = None,
    **train: Any,
) -> list[dict[str, Any]]:
    """Train with the real Trainer and return the metrics.jsonl records."""
    settings: dict[str, Any] = dict(
        max_steps=3,
        lr=1e-2,
        batch_size=4,
        log_every=1,
        eval_every=0,
        save_every=1000,
        warmup_ratio=0.0,
        precision="fp32",
        scheduler="constant",
    )
    settings.update(train)
    run_dir = tmp_path / f"run-{len(list(tmp_path.glob('run-*')))}"
    run_dir.mkdir()
    fit(
        model,
        tiny_tokenizer(),
        train_rows,
        [],
        TrainConfig(**settings),
        run_dir,
        resume=False,
        terms=terms,
        collator=collator,
    )
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


def write_jsonl(path: Path, records: list[dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    return path
