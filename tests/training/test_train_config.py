"""The train section: settings that cannot work together are config errors naming their keys."""

from __future__ import annotations

from pathlib import Path

import pytest

from tunewise.config import dump_config, load_config
from tunewise.errors import ConfigError


def problems(*overrides: str) -> list[str]:
    with pytest.raises(ConfigError) as err:
        load_config(None, list(overrides))
    return err.value.problems


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        (["train.momentum=0.9"], "train.momentum (command-line override): only the sgd optimizer uses it"),
        (["train.optimizer=sgd", "train.betas=[0.8, 0.9]"], "train.betas (command-line override): only the adamw"),
        (["train.optimizer=adafactor", "train.eps=1e-6"], "train.eps (command-line override): only the adamw"),
        (["train.scheduler=step"], "train.step_size: the step scheduler needs it"),
        (["train.scheduler=exponential"], "train.gamma: the exponential scheduler needs it"),
        (["train.gamma=0.5"], "train.gamma (command-line override): only the step and exponential scheduler"),
        (["train.step_size=10"], "train.step_size (command-line override): only the step scheduler uses it"),
        (["train.num_cycles=3"], "train.num_cycles (command-line override): only the cosine_with_restarts"),
        (["train.scheduler=constant", "train.warmup_steps=10"], "the constant scheduler has no warmup"),
        (["train.early_stopping.enabled=true", "train.eval_every=0"], "train.early_stopping needs evals during"),
        (["train.early_stopping.mode=best"], "train.early_stopping.mode"),
        (["train.penalty.l2=-1"], "train.penalty.l2"),
        (["train.early_stopping.patiense=2"], "did you mean 'patience'?"),
    ],
)
def test_incompatible_settings_name_their_key(overrides: list[str], expected: str) -> None:
    found = problems(*overrides)
    assert len(found) == 1 and expected in found[0], found


def test_every_problem_is_reported_at_once() -> None:
    found = problems(
        "train.momentum=0.9", "train.scheduler=exponential", "train.early_stopping.enabled=true", "train.eval_every=0"
    )
    assert [p.split(" ")[0].rstrip(":") for p in found] == ["train.momentum", "train.gamma", "train.eval_every"]


def test_settings_that_fit_together_load_and_round_trip(tmp_path: Path) -> None:
    config = load_config(
        None,
        [
            "train.optimizer=sgd",
            "train.momentum=0.9",
            "train.scheduler=step",
            "train.step_size=50",
            "train.gamma=0.5",
            "train.penalty.l2=0.01",
            "train.early_stopping.enabled=true",
            "train.early_stopping.mode=max",
            "train.dropout=0.1",
            "train.neftune_alpha=5",
        ],
    )
    assert config.train.early_stopping.enabled and config.train.penalty.l2 == 0.01
    dump_config(config, tmp_path / "resolved.yaml")
    assert load_config(tmp_path / "resolved.yaml") == config


def test_every_optimizer_and_schedule_is_documented() -> None:
    from typing import get_args

    from tunewise.config import TrainConfig

    doc = (Path(__file__).resolve().parents[2] / "docs" / "training.md").read_text()
    for key in ("optimizer", "scheduler"):
        for name in get_args(TrainConfig.model_fields[key].annotation):
            assert f"| `{name}`" in doc, f"docs/training.md: no row for train.{key}={name}"
