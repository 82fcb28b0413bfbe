"""`tunewise train` with the guards on, end to end on a tiny model: terms logged, replay mixed in."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from guard_helpers import write_jsonl

from tunewise.config import load_config
from tunewise.errors import ConfigError, DataError
from tunewise.run import train


def _chat(q: str, a: str) -> dict:
    return {"messages": [{"role": "user", "content": q}, {"role": "assistant", "content": a}]}


@pytest.fixture()
def guarded(tmp_path: Path, tiny_model_dir: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("TUNEWISE_HOME", str(tmp_path / "home"))
    write_jsonl(tmp_path / "train.jsonl", [_chat(f"Review {i}: it was fine.", "positive") for i in range(12)])
    write_jsonl(tmp_path / "general.jsonl", [_chat(f"Tell me fact {i}.", f"Here is fact {i}.") for i in range(5)])
    config = tmp_path / "guarded.yaml"
    config.write_text(
        f"model: {{name: {tiny_model_dir}}}\n"
        "data: {train: train.jsonl, split: {eval: 0.0}, max_length: 256}\n"
        "method: {type: full}\n"
        "train: {max_steps: 3, lr: 0.001, batch_size: 4, eval_every: 0, log_every: 1, warmup_ratio: 0.0, "
        "precision: fp32}\n"
        "guard:\n"
        "  general: general.jsonl\n"
        "  replay: {ratio: 0.25}\n"
        "  ewc: {weight: 1.0, samples: 4}\n"
        "  kl: {weight: 1.0, on: both, batch_size: 2}\n"
        "  l2sp: {weight: 0.01}\n"
        f"output: {{dir: {tmp_path / 'runs'}, tracking: []}}\n"
    )
    return config


def test_every_guard_is_a_logged_term_and_replay_is_mixed_in(guarded: Path) -> None:
    run_dir = train(load_config(guarded), guarded)
    records = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    logged = [r for r in records if "loss/task" in r]
    assert logged
    for record in logged:
        assert {"loss/ewc", "loss/kl", "loss/l2sp"} <= set(record)
        parts = record["loss/task"] + record["loss/ewc"] + record["loss/kl"] + record["loss/l2sp"]
        assert record["loss"] == pytest.approx(parts, rel=1e-3)
    info = json.loads((run_dir / "regularize.json").read_text())
    assert info["replay"] == {"ratio": 0.25, "task_rows": 12, "replay_rows": 4, "distinct_general_rows": 4}
    assert info["ewc"]["samples"] == 4 and info["kl"]["on"] == "both"


def test_a_bad_general_file_stops_before_the_run_directory_exists(guarded: Path, tmp_path: Path) -> None:
    (tmp_path / "general.jsonl").write_text('{"messages": [{"role": "user", "content": "hi"}]}\nnot json\n')
    with pytest.raises(DataError, match="general.jsonl"):
        train(load_config(guarded), guarded)
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir())


def test_a_missing_general_source_is_a_config_error(guarded: Path) -> None:
    with pytest.raises(ConfigError, match="guard.general: self"):
        load_config(guarded, ["guard.general=null"])
