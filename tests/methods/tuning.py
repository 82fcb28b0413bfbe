"""Helpers for the method tests: fixed rows, a method applied to a tiny model, a few real Trainer steps."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from transformers import TrainerCallback

from tunewise.config import Config, TrainConfig
from tunewise.data import Rendered
from tunewise.methods import METHODS, training_callbacks
from tunewise.testing import tiny_model, tiny_tokenizer
from tunewise.training.loop import fit

__all__ = ["Trained", "method", "row_loss", "rows", "snapshot", "train_method"]


def method(**settings: Any) -> Any:
    """A validated method config, e.g. method(type="freeze", top_k=1)."""
    return Config(method=settings).method


def rows(n: int = 8, length: int = 12, seed: int = 0) -> list[Rendered]:
    """n fixed random rows, every token trained: a model that learns them shows a falling loss."""
    g = torch.Generator().manual_seed(seed)
    out = []
    for i in range(n):
        ids = torch.randint(3, 400, (length,), generator=g).tolist()
        out.append(Rendered(f"rows:{i + 1}", ids, ids, length, length, False, 0))
    return out


def snapshot(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {n: p.detach().clone() for n, p in model.named_parameters()}


@torch.no_grad()
def row_loss(model: torch.nn.Module, data: list[Rendered]) -> float:
    model.eval()
    ids = torch.tensor([r.input_ids for r in data])
    return float(model(input_ids=ids, labels=ids).loss)


@dataclass
class Trained:
    model: torch.nn.Module
    before: dict[str, torch.Tensor]
    """Every parameter right after the method was applied (before the first step)."""
    loss_before: float
    loss_after: float
    run_dir: Path
    trainable: set[str] = field(default_factory=set)

    def changed(self) -> set[str]:
        after = dict(self.model.named_parameters())
        return {n for n, value in self.before.items() if not torch.equal(after[n].detach(), value)}


def train_method(
    tmp_path: Path,
    config: Any,
    *,
    model: torch.nn.Module | None = None,
    steps: int = 6,
    lr: float = 1e-2,
    extra_callbacks: list[TrainerCallback] | None = None,
    **train: Any,
) -> Trained:
    """Apply `config` (a method config) to `model` (a 4-layer tiny model by default), train `steps`
    optimizer steps with the real Trainer on fixed rows, and return the before/after picture."""
    model = model if model is not None else tiny_model(seed=0, num_hidden_layers=4)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        model = METHODS[config.type](model, config)
    data = rows()
    before = snapshot(model)
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    loss_before = row_loss(model, data)
    settings: dict[str, Any] = dict(
        max_steps=steps,
        lr=lr,
        batch_size=4,
        log_every=1,
        eval_every=0,
        save_every=1000,
        warmup_ratio=0.0,
        precision="fp32",
        scheduler="constant",
    )
    settings.update(train)
    run_dir = tmp_path / f"run-{config.type}-{len(list(tmp_path.glob('run-*')))}"
    run_dir.mkdir()
    fit(
        model,
        tiny_tokenizer(),
        data,
        [],
        TrainConfig(**settings),
        run_dir,
        resume=False,
        callbacks=[*training_callbacks(model, config), *(extra_callbacks or [])],
    )
    return Trained(model, before, loss_before, row_loss(model, data), run_dir, trainable)
