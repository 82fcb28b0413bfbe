"""Training callbacks: the readable progress line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from transformers import TrainerControl, TrainerState, TrainingArguments

from tunewise.rundir import RunDir
from tunewise.training.callbacks import MetricsLog, progress_line


def test_progress_line_shows_the_known_keys_in_order_and_leaves_the_rest() -> None:
    logs = {"loss": 1.23456, "grad_norm": 0.51234, "learning_rate": 0.000487, "epoch": 0.5, "total_flos": 9e12}
    assert progress_line(25, 114, logs, 212.4) == "step 25/114  loss 1.2346  lr 4.87e-04  grad norm 0.512  212 tokens/s"
    assert progress_line(50, 114, {"eval_loss": 0.9, "eval_runtime": 3.1}, None) == "step 50/114  eval loss 0.9000"


@pytest.mark.parametrize("rank", ["0", "1"])
def test_metrics_are_appended_by_the_writer_process_only(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, rank: str
) -> None:
    monkeypatch.delenv("LOCAL_RANK", raising=False)
    monkeypatch.setenv("RANK", rank)
    path = RunDir(tmp_path).metrics
    log = MetricsLog(path)
    state = TrainerState()
    for step, loss in ((1, 2.0), (2, 1.5)):
        state.global_step = step
        log.on_log(TrainingArguments(output_dir=str(tmp_path)), state, TrainerControl(), logs={"loss": loss})
    if rank == "0":
        lines = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
        assert [(r["step"], r["loss"]) for r in lines] == [(1, 2.0), (2, 1.5)]
    else:
        assert not path.exists(), "another rank writes nothing"


def test_a_resume_drops_the_lines_after_the_checkpoint(tmp_path: Path) -> None:
    path = RunDir(tmp_path).metrics
    path.write_text("".join(json.dumps({"step": s, "loss": 1.0}) + "\n" for s in (1, 2, 3, 4)), encoding="utf-8")
    MetricsLog(path, resume_step=2)
    assert [json.loads(line)["step"] for line in path.read_text(encoding="utf-8").splitlines()] == [1, 2]
    assert [p.name for p in tmp_path.iterdir()] == [RunDir.METRICS]  # no temporary file left
