"""The phases of `Run`: preflight checks everything and writes nothing; a bad input fails there."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import tunewise
from tunewise.config import load_config
from tunewise.errors import ConfigError, TunewiseError
from tunewise.run import Preflight, Run

FACTS = [
    ("What do bees make?", "Bees make honey."),
    ("What colour is the sky?", "The sky is blue."),
    ("How many legs does a spider have?", "A spider has eight legs."),
]


@pytest.fixture()
def run_config(tmp_path: Path, tiny_model_dir: Path) -> Path:
    rows = [{"messages": [{"role": "user", "content": q}, {"role": "assistant", "content": a}]} for q, a in FACTS] * 4
    (tmp_path / "train.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    config = tmp_path / "tiny.yaml"
    config.write_text(
        f"model: {{name: {tiny_model_dir}}}\n"
        "data: {train: train.jsonl, split: {eval: 0.25}, max_length: 128}\n"
        "train: {max_steps: 2, lr: 0.01, batch_size: 4, eval_every: 0, save_every: 100, log_every: 1, "
        "warmup_ratio: 0.0, precision: fp32}\n"
        "eval: {generations: 1, max_new_tokens: 4, suites: [], baselines: {few_shot: 0, retrieval: 0}}\n"
        f"output: {{dir: {tmp_path / 'runs'}, tracking: []}}\n"
    )
    return config


def files_under(path: Path) -> list[Path]:
    return sorted(path.rglob("*"))


def test_preflight_checks_and_prepares_but_writes_nothing(run_config: Path) -> None:
    before = files_under(run_config.parent)
    job = Run(load_config(run_config), run_config)
    found = job.preflight()
    assert isinstance(found, Preflight)
    assert len(found.data.train) == 9 and len(found.data.eval) == 3
    assert found.check is not None, "the data audit ran"
    assert found.run_dir.name.startswith("tiny-") and not found.run_dir.exists()
    assert files_under(run_config.parent) == before, "preflight wrote a file"
    assert job.preflight() is found, "preflight runs once"
    assert job.run_dir == found.run_dir.path


def test_a_bad_config_fails_in_preflight_before_anything_is_written(run_config: Path) -> None:
    before = files_under(run_config.parent)
    # Chat rows, but the task trains on plain text: found when the data is prepared.
    with pytest.raises(ConfigError, match="task: completion"):
        Run(load_config(run_config, ["task=completion"]), run_config).preflight()
    # Resuming a run that does not exist: found before the tokenizer loads.
    with pytest.raises(TunewiseError):
        Run(load_config(run_config, ["train.resume=true"]), run_config).preflight()
    assert files_under(run_config.parent) == before


def test_the_phases_in_order_write_the_run_directory(run_config: Path) -> None:
    job = Run(load_config(run_config), run_config)
    summary = job.fit()
    assert summary.steps == 2 and summary.method == "lora"
    assert job.run_dir is not None and (job.run_dir / "train_summary.json").is_file()
    assert not (job.run_dir / "adapter").exists(), "fit trains; save writes the adapter"
    assert job.save() == job.run_dir and (job.run_dir / "adapter").is_dir()
    result = job.evaluate()
    assert result == json.loads((job.run_dir / "eval_summary.json").read_text())
    assert result["tuned"]["loss"] < result["base"]["loss"]
    assert job.report().name == "report.html"


def test_tunewise_run_is_the_package_and_the_verb(run_config: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import tunewise.run as package

    called: list[tuple] = []
    monkeypatch.setattr(package, "run", lambda config, path=None: called.append((config, path)) or Path("x"))
    config = load_config(run_config)
    assert tunewise.run(config, run_config) == Path("x") and called == [(config, run_config)]
    assert tunewise.train is package.train and tunewise.evaluate is package.evaluate


def test_a_sequential_config_is_not_one_run(run_config: Path) -> None:
    config = load_config(run_config, ["stages=[{name: a, data: {train: train.jsonl, split: {eval: 0.25}}}]"])
    assert config.stages
    with pytest.raises(TunewiseError, match="sequential run"):
        Run(config, run_config).preflight()
