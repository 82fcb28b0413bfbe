"""The objective table, the config's `objective` values and docs/training.md stay in step; a run trains through it."""

from __future__ import annotations

import importlib
import json
import re
from pathlib import Path
from typing import Any, get_args

import pytest

from tunewise.config import Objective, load_config
from tunewise.errors import ConfigError
from tunewise.objectives import OBJECTIVES
from tunewise.run import Run

DOCS = Path(__file__).resolve().parents[2] / "docs"


def documented_objectives() -> list[str]:
    """The objectives in the table of docs/training.md's "Objectives" section, in order."""
    section = (DOCS / "training.md").read_text().split("## Objectives", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"^\| `(\w+)`", section, flags=re.MULTILINE)


def test_every_objective_is_in_the_config_and_documented() -> None:
    assert list(OBJECTIVES) == list(get_args(Objective)) == documented_objectives() == ["sft"]


def test_each_objective_is_one_module_holding_its_object() -> None:
    for name, objective in OBJECTIVES.items():
        assert objective.name == name and objective.description
        assert importlib.import_module(f"tunewise.objectives.{name}").OBJECTIVE is objective


def test_sft_is_the_default(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("task: chat\n")
    assert load_config(path).objective == "sft"


def test_an_objective_not_built_is_a_config_error_listing_the_allowed_ones(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("task: chat\nobjective: dpo\n")
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    message = str(caught.value)
    assert "objective" in message and "dpo" in message and "'sft'" in message


def test_a_run_trains_through_its_objective(
    tmp_path: Path, tiny_model_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    rows = [
        {"messages": [{"role": "user", "content": q}, {"role": "assistant", "content": a}]}
        for q, a in [("What do bees make?", "Honey."), ("What colour is the sky?", "Blue.")]
    ] * 6
    (tmp_path / "train.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    config = tmp_path / "tiny.yaml"
    config.write_text(
        f"model: {{name: {tiny_model_dir}}}\n"
        "data: {train: train.jsonl, split: {eval: 0.25}, max_length: 64}\n"
        "train: {max_steps: 2, lr: 0.01, batch_size: 4, eval_every: 0, save_every: 100, log_every: 1, "
        "warmup_ratio: 0.0, precision: fp32}\n"
        "eval: {generations: 0, suites: [], baselines: {few_shot: 0, retrieval: 0}}\n"
        f"output: {{dir: {tmp_path / 'runs'}, tracking: []}}\n"
    )
    sft = OBJECTIVES["sft"]
    calls: list[dict[str, Any]] = []

    class Counting:
        name, description = sft.name, sft.description

        def fit(self, *args: Any, **kwargs: Any) -> Any:
            calls.append(kwargs)
            return sft.fit(*args, **kwargs)

    monkeypatch.setitem(OBJECTIVES, "sft", Counting())
    summary = Run(load_config(config), config).fit()
    assert len(calls) == 1 and calls[0]["resume"] is False
    assert summary.steps == 2 and summary.method == "lora" and summary.train_loss is not None
