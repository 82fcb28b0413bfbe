"""task: completion — plain text, every token trained; long documents split into windows, never cut."""

from __future__ import annotations

from pathlib import Path

import pytest
from tasks_helpers import FACTS, TINY_RUN, chat_rows, write_jsonl

from tunewise.config import load_config
from tunewise.data import IGNORE_INDEX, Example, render
from tunewise.errors import ConfigError
from tunewise.tasks.completion import render_documents, windows
from tunewise.testing import tiny_tokenizer

LONG = " ".join(f"The quick brown fox number {i} jumps over the lazy dog." for i in range(40))


@pytest.mark.parametrize("max_length", [2, 3, 7, 16, 64])
def test_windows_train_every_token_of_a_document_exactly_once(max_length: int) -> None:
    row = render(Example("f:1", text=LONG), tiny_tokenizer(), max_length=10**6)
    parts = windows(row, max_length)
    assert all(p.n_tokens <= max_length for p in parts)
    # Rebuild the document's labels from the windows: position start+i of window k.
    trained: list[int] = []
    start = 0
    for k, part in enumerate(parts):
        if k:
            assert part.input_ids[0] == parts[k - 1].input_ids[-1], "a window starts on the last token before it"
        trained += [label for label in part.labels if label != IGNORE_INDEX]
        assert part.labels[0] == IGNORE_INDEX, "a window's first token has no context to be predicted from"
        start += part.n_tokens - 1
    assert trained == row.input_ids[1:], "every token but the first is a label, once, in order"
    assert sum(p.n_trained for p in parts) == row.n_trained == row.n_tokens - 1


def test_a_text_row_trains_every_token_and_ends_with_eos() -> None:
    tok = tiny_tokenizer()
    row = render(Example("f:1", text="Water boils at 100 degrees."), tok, max_length=1024)
    assert row.input_ids[-1] == tok.eos_token_id
    assert row.labels[1:] == row.input_ids[1:] and row.labels[0] == IGNORE_INDEX


def test_render_documents_cuts_nothing_and_reports_document_lengths() -> None:
    tok = tiny_tokenizer()
    examples = [Example("f:1", text=LONG), Example("f:2", text="Short text.")]
    rows, stats, rejects = render_documents(examples, tok, max_length=32)
    whole = [render(ex, tok, max_length=10**6) for ex in examples]
    assert not rejects and stats.rows_truncated == 0 and stats.tokens_dropped == 0
    assert stats.max_length == 32 and stats.length_max == whole[0].n_tokens
    assert stats.tokens_trained == sum(w.n_trained for w in whole) == sum(r.n_trained for r in rows)
    assert len(rows) > 2 and {r.source for r in rows} == {"f:1", "f:2"}


def _config(tmp_path: Path, tiny_model_dir: Path, task: str, rows: list[dict]) -> Path:
    write_jsonl(tmp_path / "train.jsonl", rows)
    path = tmp_path / "run.yaml"
    path.write_text(
        f"task: {task}\nmodel: {{name: {tiny_model_dir}}}\n"
        "data: {train: train.jsonl, split: {eval: 0.25}, max_length: 24}\n"
        + TINY_RUN
        + "eval: {suites: [], generations: 0}\n"
        f"output: {{dir: {tmp_path / 'runs'}, tracking: []}}\n"
    )
    return path


def test_completion_run_trains_on_all_tokens_and_evaluates(tmp_path: Path, tiny_model_dir: Path) -> None:
    import json

    from tunewise.run import run

    config = _config(tmp_path, tiny_model_dir, "completion", [{"text": LONG}] * 3 + [{"text": "A short one."}] * 5)
    run_dir = run(load_config(config), config)
    stats = json.loads((run_dir / "data_stats.json").read_text())["train"]
    assert stats["rows_truncated"] == 0 and stats["tokens_dropped"] == 0
    summary = json.loads((run_dir / "eval_summary.json").read_text())
    assert summary["tuned"]["loss"] < summary["base"]["loss"]
    assert summary["generations"] == [], "plain text has no prompts to answer"


def test_task_and_rows_must_agree_before_the_model_loads(tmp_path: Path, tiny_model_dir: Path) -> None:
    from tunewise.run import train

    chat = _config(tmp_path, tiny_model_dir, "completion", chat_rows(FACTS, 8))
    with pytest.raises(ConfigError, match="task: completion trains on plain text.*set task: chat"):
        train(load_config(chat), chat)
    text = _config(tmp_path, tiny_model_dir, "chat", [{"text": LONG}] * 8)
    with pytest.raises(ConfigError, match="task: chat trains on chat rows.*set task: completion"):
        train(load_config(text), text)
    assert not (tmp_path / "runs").exists()


def test_shape_and_task_conflicts_are_config_errors(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("task: completion\ndata: {train: t.jsonl, shape: alpaca}\n")
    with pytest.raises(ConfigError, match=r"data\.shape \(.*c\.yaml:2\): task completion trains on plain text"):
        load_config(path)
    path.write_text("data: {train: t.jsonl, shape: text}\n")
    with pytest.raises(ConfigError, match="set task: completion"):
        load_config(path)
