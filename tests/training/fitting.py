"""Helpers for the training tests: random fixed-length rows, a tiny LoRA model, `fit` in a folder."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from transformers import TrainerCallback

from tunewise.config import TrainConfig
from tunewise.data import Rendered
from tunewise.testing import tiny_model, tiny_tokenizer
from tunewise.training.loop import FitResult, fit

__all__ = [
    "Probe",
    "Record",
    "lora_model",
    "losses",
    "make_rows",
    "run",
    "train_config",
    "trainable",
    "write_run_config",
]


def make_rows(n: int = 16, length: int = 12, seed: int = 0) -> list[Rendered]:
    g = torch.Generator().manual_seed(seed)
    rows = []
    for i in range(n):
        ids = torch.randint(3, 400, (length,), generator=g).tolist()
        rows.append(Rendered(f"rows:{i + 1}", ids, ids, length, length, False, 0))
    return rows


def lora_model(seed: int = 0, **config: Any) -> torch.nn.Module:
    from peft import LoraConfig, get_peft_model

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return get_peft_model(
            tiny_model(**config), LoraConfig(r=4, lora_alpha=8, lora_dropout=0.0, target_modules="all-linear")
        )


def train_config(**overrides: Any) -> TrainConfig:
    settings: dict[str, Any] = dict(
        max_steps=4,
        lr=1e-2,
        batch_size=4,
        log_every=1,
        eval_every=0,
        save_every=1000,
        warmup_ratio=0.0,
        precision="fp32",
        scheduler="constant",
    )
    settings.update(overrides)
    return TrainConfig(**settings)


def run(
    tmp_path: Path,
    train: TrainConfig,
    *,
    model: torch.nn.Module | None = None,
    eval_rows: int = 0,
    rows: list[Rendered] | None = None,
    **kwargs: Any,
) -> tuple[FitResult, list[dict[str, Any]]]:
    run_dir = tmp_path / f"run-{len(list(tmp_path.glob('run-*')))}"
    run_dir.mkdir()
    result = fit(
        model if model is not None else lora_model(),
        tiny_tokenizer(),
        rows if rows is not None else make_rows(),
        make_rows(eval_rows, seed=99) if eval_rows else [],
        train,
        run_dir,
        resume=False,
        **kwargs,
    )
    records = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    return result, records


def losses(records: list[dict[str, Any]]) -> list[float]:
    return [r["loss"] for r in records if "loss" in r]


def trainable(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {n: p.detach().clone() for n, p in model.named_parameters() if p.requires_grad}


class Record(TrainerCallback):
    """Keeps what the Trainer hands its callbacks around each optimizer step."""

    def __init__(self) -> None:
        self.optimizers: list[Any] = []
        self.before: list[dict[str, tuple[torch.Tensor, torch.Tensor]]] = []
        self.after: list[dict[str, torch.Tensor]] = []

    def on_pre_optimizer_step(self, args, state, control, model=None, optimizer=None, **kwargs):
        self.optimizers.append(getattr(optimizer, "optimizer", optimizer))
        self.before.append(
            {n: (p.detach().clone(), p.grad.detach().clone()) for n, p in model.named_parameters() if p.requires_grad}
        )

    def on_optimizer_step(self, args, state, control, model=None, **kwargs):
        self.after.append(trainable(model))


class Probe:
    """A loss term of weight 0 that only looks: how the model is run while training."""

    name, weight = "probe", 0.0

    def __init__(self, look: Any) -> None:
        self.look = look
        self.seen: list[Any] = []

    def __call__(self, model: torch.nn.Module, inputs: dict[str, Any], outputs: Any) -> torch.Tensor:
        self.seen.append(self.look(model, inputs, outputs))
        return outputs.logits.sum() * 0.0


FACTS = [
    ("What colour is the sky?", "The sky is blue."),
    ("What do bees make?", "Bees make honey."),
    ("How many legs does a spider have?", "A spider has eight legs."),
]


def write_run_config(tmp_path: Path, model_dir: Path, train: str, name: str = "run") -> Path:
    """A run config for `tunewise train` on the tiny model: 24 chat rows, a quarter held out for eval,
    no tracking, no suites; `train` is the YAML flow mapping of the train section."""
    rows = [{"messages": [{"role": "user", "content": q}, {"role": "assistant", "content": a}]} for q, a in FACTS * 8]
    (tmp_path / "train.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    config = tmp_path / f"{name}.yaml"
    config.write_text(
        f"model: {{name: {model_dir}}}\n"
        "data: {train: train.jsonl, split: {eval: 0.25}, max_length: 128, check: {enabled: false}}\n"
        "method: {r: 4, alpha: 8, dropout: 0.0}\n"
        f"train: {train}\n"
        "eval: {generations: 0, suites: []}\n"
        f"output: {{dir: {tmp_path / 'runs'}, tracking: []}}\n"
    )
    return config
