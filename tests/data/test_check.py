"""The data check before training: the data audit on the prepared rows (docs/data.md)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tunewise.config import load_config
from tunewise.errors import TunewiseError
from tunewise.run import check_prepared, load_tokenizer_for, prepare_data, train

TOPICS = [
    "volcanoes",
    "tides",
    "glaciers",
    "deserts",
    "rainforests",
    "earthquakes",
    "rivers",
    "coral reefs",
    "comets",
    "auroras",
    "monsoons",
    "caves",
]


def chat(question: str, answer: str) -> dict:
    return {"messages": [{"role": "user", "content": question}, {"role": "assistant", "content": answer}]}


def distinct_rows() -> list[dict]:
    return [
        chat(
            f"Tell me one fact about {t}, please, in a short sentence.",
            f"Here is a fact about {t}: scientists {verb} them {how} every single year.",
        )
        for t in TOPICS
        for verb, how in [("measure", "carefully"), ("map", "from orbit")]
    ]


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def make_config(
    tmp_path: Path,
    tiny_model_dir: Path,
    *,
    train_rows: list[dict],
    eval_rows: list[dict],
    suite_rows: list[dict] | None = None,
    extra: str = "",
) -> Path:
    write_jsonl(tmp_path / "train.jsonl", train_rows)
    write_jsonl(tmp_path / "eval.jsonl", eval_rows)
    suites = "[]"
    if suite_rows is not None:
        write_jsonl(tmp_path / "suite.jsonl", suite_rows)
        suites = "[suite.jsonl]"
    config = tmp_path / "check.yaml"
    config.write_text(
        f"model: {{name: {tiny_model_dir}}}\n"
        f"data: {{train: train.jsonl, eval: eval.jsonl, max_length: 512{extra}}}\n"
        "method: {r: 2, alpha: 4}\n"
        "train: {max_steps: 1, batch_size: 4, eval_every: 0, precision: fp32}\n"
        f"eval: {{generations: 0, suites: {suites}}}\n"
        f"output: {{dir: {tmp_path / 'runs'}}}\n"
    )
    return config


def run_check(config_path: Path):
    config = load_config(config_path)
    tokenizer = load_tokenizer_for(config)
    return check_prepared(config, prepare_data(config, tokenizer), tokenizer)


def test_clean_data_has_no_findings(tmp_path: Path, tiny_model_dir: Path) -> None:
    rows = distinct_rows()
    check = run_check(make_config(tmp_path, tiny_model_dir, train_rows=rows[:20], eval_rows=rows[20:]))
    assert check.findings == [] and check.rows == {"train": 20, "eval": 4, "test": 0}


def test_duplicates_leakage_and_contamination_are_found_with_their_rows(tmp_path: Path, tiny_model_dir: Path) -> None:
    rows = distinct_rows()
    train_rows = [
        *rows[:20],
        rows[3],
        chat(
            rows[5]["messages"][0]["content"].upper(),  # exact after case folding
            rows[5]["messages"][1]["content"].upper(),
        ),
    ]
    near = chat(
        rows[7]["messages"][0]["content"],
        rows[7]["messages"][1]["content"].replace("every single year", "every single year."),
    )
    eval_rows = [rows[20], near, rows[21]]
    suite = [
        {"query": "Here is a fact about tides: scientists", "choices": ["measure them carefully", "eat"], "gold": 0},
        {"query": "What colour is a clear sky at noon?", "choices": ["blue", "green"], "gold": 0},
    ]
    check = run_check(
        make_config(tmp_path, tiny_model_dir, train_rows=train_rows, eval_rows=eval_rows, suite_rows=suite)
    )
    found = {f.kind: f for f in check.findings}
    for finding in found.values():
        finding.examples = [e.replace(f"{tmp_path}/", "") for e in finding.examples]
    assert set(found) == {"duplicates", "eval_leakage", "contamination"}
    assert found["duplicates"].count == 2 and found["duplicates"].detail["exact"] == 2
    assert found["duplicates"].examples[0] == "train.jsonl:21 repeats train.jsonl:4"
    assert found["eval_leakage"].count == 1
    assert found["eval_leakage"].examples == ["eval.jsonl:2 repeats train.jsonl:8"]
    assert found["contamination"].count == 1 and found["contamination"].detail["per_suite"] == {"suite": 1}


def test_a_blocking_finding_stops_the_run_before_a_run_directory_exists(tmp_path: Path, tiny_model_dir: Path) -> None:
    rows = distinct_rows()
    config = make_config(
        tmp_path,
        tiny_model_dir,
        train_rows=rows[:20],
        eval_rows=[rows[0], rows[21]],
        extra=", check: {block_on: [eval_leakage]}",
    )
    with pytest.raises(TunewiseError, match=r"eval_leakage found .*data\.check\.block_on"):
        train(load_config(config), config)
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir())


def test_a_run_keeps_what_the_check_found(tmp_path: Path, tiny_model_dir: Path) -> None:
    rows = distinct_rows()
    config = make_config(tmp_path, tiny_model_dir, train_rows=[*rows[:20], rows[0]], eval_rows=rows[20:])
    run_dir = train(load_config(config), config)
    saved = json.loads((run_dir / "audit.json").read_text())
    assert [f["kind"] for f in saved["findings"]] == ["duplicates"] and saved["rows"]["train"] == 21


def test_the_check_can_be_switched_off(tmp_path: Path, tiny_model_dir: Path) -> None:
    rows = distinct_rows()
    config = make_config(
        tmp_path,
        tiny_model_dir,
        train_rows=[*rows[:20], rows[0]],
        eval_rows=rows[20:],
        extra=", check: {enabled: false}",
    )
    assert run_check(config) is None
    assert not (train(load_config(config), config) / "audit.json").exists()


def test_the_check_before_training_is_the_whole_audit(tmp_path: Path, tiny_model_dir: Path) -> None:
    rows = distinct_rows()
    train_rows = rows[:20]
    train_rows[4] = chat("Where do I write?", "Write to ana@example.org, she answers every single day.")
    train_rows[6] = chat("Say it long.", " ".join(["words"] * 200) + " " + " ".join(f"w{i}" for i in range(400)))
    train_rows[8] = chat("Is it?", "Yes")
    config = make_config(
        tmp_path,
        tiny_model_dir,
        train_rows=train_rows,
        eval_rows=rows[20:],
        extra=", check: {toxicity: false, min_tokens: 5}",
    )
    check = run_check(config)
    found = {f.kind: f for f in check.findings}
    assert set(found) == {"pii", "truncated", "too_short", "repetition"}
    assert found["pii"].detail["kinds"] == {"email": 1} and found["pii"].examples[0].startswith(
        f"{tmp_path}/train.jsonl:5"
    )
    assert found["truncated"].examples[0].startswith(f"{tmp_path}/train.jsonl:7")  # rendered length > max_length 512
    assert found["too_short"].examples[0].startswith(f"{tmp_path}/train.jsonl:9")  # counted with the tokenizer
