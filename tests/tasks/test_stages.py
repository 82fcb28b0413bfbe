"""Sequential fine-tuning: stage configs, the run layout, and the stages table against direct evaluations."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from tasks_helpers import CAPITALS, FACTS, TINY_RUN, chat_rows, write_jsonl

from tunewise.config import load_config, resolve_stage
from tunewise.errors import ConfigError
from tunewise.run.stages import summarise


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "seq.yaml"
    path.write_text(text)
    return path


def test_a_stage_overrides_data_and_train_and_inherits_the_rest(tmp_path: Path) -> None:
    config = load_config(
        write(
            tmp_path,
            (
                "data: {train: all.jsonl, eval: all_eval.jsonl, max_length: 64}\ntrain: {lr: 0.001, batch_size: 2}\n"
                "stages:\n  - {name: same}\n  - {name: new-data, data: {train: b.jsonl}, train: {lr: 0.0001}}\n"
            ),
        )
    )
    same, new = resolve_stage(config, 0), resolve_stage(config, 1)
    assert (same.data.train, same.data.eval, same.train.lr) == (
        str(tmp_path / "all.jsonl"),
        str(tmp_path / "all_eval.jsonl"),
        0.001,
    )
    # Setting a file replaces all of train/eval/test/datasets; other keys are inherited.
    assert (new.data.train, new.data.eval) == (str(tmp_path / "b.jsonl"), None)
    assert (new.data.max_length, new.train.batch_size, new.train.lr) == (64, 2, 0.0001)
    assert new.stages == [] and new.model == config.model and new.method == config.method


def test_stage_mistakes_are_reported_at_once_with_their_lines(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        (
            "stages:\n"
            "  - {name: one, data: {train: a.jsonl}}\n"
            "  - {name: two, data: {trian: b.jsonl}, train: {lr: -1}}\n"
            "  - {name: one, data: {train: c.jsonl, split: {eval: 0.9, test: 0.2}}}\n"
            "  - {name: four}\n"
            "  - {name: 'bad/name', data: {train: d.jsonl}}\n"
        ),
    )
    with pytest.raises(ConfigError) as err:
        load_config(path)
    text = str(err.value)
    assert "stages.1.data.trian (" in text and ":3): unknown key; did you mean 'train'?" in text
    assert "stages.1.train.lr (" in text and "greater than 0" in text
    assert "stages.2.name" in text and "stage names must be unique; one is used twice" in text
    assert "stages.2.data.split" in text and "leaves no training rows" in text
    assert "stages.3.data" in text and "stage four has no training data" in text
    assert "stages.4.name" in text


def test_stages_refuse_classification_and_resume(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="task classification runs one stage"):
        load_config(write(tmp_path, "task: classification\nstages: [{name: a, data: {train: a.jsonl}}]\n"))
    with pytest.raises(ConfigError, match=r"train\.resume.*not supported yet"):
        load_config(write(tmp_path, "stages: [{name: a, data: {train: a.jsonl}}]\n"), ["train.resume=true"])


def test_summary_shape_forgetting_and_gain() -> None:
    summary = summarise(
        ["a", "b", "c"], [[3.0, 4.0, 5.0], [2.0, None, None], [2.5, 3.0, None], [2.8, 3.5, 2.0]], [5, 6, 7]
    )
    assert [r["model"] for r in summary["rows"]] == ["base", "after a", "after b", "after c"]
    assert summary["gain"] == [
        {"stage": n, "base": b, "right_after": r, "change": r - b}
        for n, b, r in (("a", 3.0, 2.0), ("b", 4.0, 3.0), ("c", 5.0, 2.0))
    ]
    assert summary["forgetting"] == [
        {"stage": "a", "right_after": 2.0, "after_last": 2.8, "change": pytest.approx(0.8)},
        {"stage": "b", "right_after": 3.0, "after_last": 3.5, "change": 0.5},
    ]
    assert [s["run"] for s in summary["stages"]] == ["1-a", "2-b", "3-c"]


def test_two_stages_print_the_table_and_it_equals_direct_evaluations(tmp_path: Path, tiny_model_dir: Path) -> None:
    """`tunewise run` with two stages, as a user runs it; then every cell recomputed from the saved adapters."""
    from peft import PeftModel

    from tunewise.evaluation.compare import loss_on
    from tunewise.models import load_model
    from tunewise.run import load_tokenizer_for, prepare_data

    write_jsonl(tmp_path / "facts.jsonl", chat_rows(FACTS, 16))
    write_jsonl(tmp_path / "capitals.jsonl", chat_rows(CAPITALS, 16))
    config_file = write(
        tmp_path,
        (
            f"model: {{name: {tiny_model_dir}}}\n"
            "data: {split: {eval: 0.25}, max_length: 128}\n"
            + TINY_RUN
            + "eval: {suites: [], generations: 0, baselines: {few_shot: 0, retrieval: 0}}\n"
            f"output: {{dir: {tmp_path / 'runs'}, name: seq, tracking: []}}\n"
            "stages:\n  - {name: facts, data: {train: facts.jsonl}}\n"
            "  - {name: capitals, data: {train: capitals.jsonl}, train: {lr: 0.02}}\n"
        ),
    )
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2] / "src")}
    done = subprocess.run(
        [sys.executable, "-m", "tunewise.cli", "run", str(config_file)],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    out = done.stdout
    table = out[out.index("stages: eval loss on each stage's eval rows") :]
    for line in ("base", "after facts", "after capitals", "forgetting of facts"):
        assert line in table, line

    top = tmp_path / "runs" / "seq"
    assert {p.name for p in top.iterdir()} == {"stages_config.yaml", "stages_summary.json", "1-facts", "2-capitals"}
    for stage in ("1-facts", "2-capitals"):
        for name in ("config.yaml", "adapter", "train_summary.json", "eval_summary.json", "report.html"):
            assert (top / stage / name).exists(), (stage, name)
    assert "Per stage: eval loss" in (top / "2-capitals" / "report.html").read_text()
    summary = json.loads((top / "stages_summary.json").read_text())
    losses = [r["losses"] for r in summary["rows"]]
    assert [len(row) for row in losses] == [2, 2, 2] and losses[1][1] is None
    assert all(v is not None for v in (losses[0] + losses[2] + losses[1][:1]))

    # Every cell equals a direct evaluation: the base model, and each stage's adapter loaded from disk.
    config = load_config(config_file)
    tokenizer = load_tokenizer_for(config)
    eval_rows = [prepare_data(resolve_stage(config, i), tokenizer).eval for i in range(2)]

    def loss(model, j: int) -> float:
        return loss_on(model, eval_rows[j], pad_id=tokenizer.pad_token_id, batch_size=4).loss

    base = load_model(str(tiny_model_dir))
    assert losses[0] == pytest.approx([loss(base, 0), loss(base, 1)], rel=1e-5)
    for k, stage in enumerate(("1-facts", "2-capitals"), start=1):
        tuned = PeftModel.from_pretrained(load_model(str(tiny_model_dir)), top / stage / "adapter")
        assert losses[k][:k] == pytest.approx([loss(tuned, j) for j in range(k)], rel=1e-5)
    # The second stage trained on from the first: its adapter differs from one trained from scratch on it.
    first = json.loads((top / "1-facts" / "eval_summary.json").read_text())
    assert first["tuned"]["loss"] == pytest.approx(losses[1][0], rel=1e-5)
    assert losses[1][0] < losses[0][0], "stage 1 learned its own data"
