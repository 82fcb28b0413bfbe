"""`tunewise data audit` / `data clean` from the command line, and the streamed dedup's invariants."""

from __future__ import annotations

import json
import random
import sys
from pathlib import Path

import pytest

from tunewise.data.dedup import StreamDeduper, near_duplicate_clusters

DEMO = Path(__file__).resolve().parents[3] / "shared" / "data" / "llamafactory_demo" / "alpaca_en_demo.json"


def cli(monkeypatch: pytest.MonkeyPatch, *args: str) -> int:
    from tunewise.cli import main

    monkeypatch.setattr(sys, "argv", ["tunewise", *map(str, args)])
    with pytest.raises(SystemExit) as done:
        main()
    return int(done.value.code or 0)


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def chat(i: int) -> dict:
    return {
        "messages": [
            {"role": "user", "content": f"Question number {i}: what is {i} plus {i}?"},
            {"role": "assistant", "content": f"The sum of {i} and {i} is {2 * i}, as counted."},
        ]
    }


def test_audit_command_writes_json_and_exits_2_on_a_blocking_finding(
    tmp_path: Path, tiny_model_dir: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    train = write_jsonl(tmp_path / "train.jsonl", [chat(i) for i in range(12)])
    ev = write_jsonl(tmp_path / "eval.jsonl", [chat(3), chat(40)])
    out = tmp_path / "audit.json"
    common = [
        train,
        "--eval",
        ev,
        "--model",
        tiny_model_dir,
        "--out",
        out,
        "data.check.toxicity=false",
        "eval.suites=[]",
    ]
    assert cli(monkeypatch, "data", "audit", *common) == 0
    saved = json.loads(out.read_text())
    assert [f["kind"] for f in saved["findings"]] == ["eval_leakage"] and saved["rows"] == {"train": 12, "eval": 2}
    assert saved["tokens"]["max"] > 0  # counted with the tiny model's tokenizer
    assert "eval_leakage" in capsys.readouterr().out
    assert cli(monkeypatch, "data", "audit", *common, "data.check.block_on=[eval_leakage]") == 2
    assert "data.check.block_on" in capsys.readouterr().err
    assert cli(monkeypatch, "data", "audit", *common, "data.check.block_on=[nonsense]") == 2
    assert "data.check.block_on" in capsys.readouterr().err


def test_audit_command_reads_a_config(tmp_path: Path, tiny_model_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write_jsonl(tmp_path / "train.jsonl", [chat(i) for i in range(10)] + [chat(2)])
    config = tmp_path / "run.yaml"
    config.write_text(
        f"model: {{name: {tiny_model_dir}}}\ndata: {{train: train.jsonl, check: {{toxicity: false}}}}\n"
        "eval: {suites: []}\n"
    )
    assert cli(monkeypatch, "data", "audit", config, "--out", tmp_path / "a.json") == 0
    assert [f["kind"] for f in json.loads((tmp_path / "a.json").read_text())["findings"]] == ["duplicates"]


def test_clean_command(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    rows = [chat(i) for i in range(8)] + [chat(1)]
    rows[2]["messages"][1]["content"] += " Mail me: x@example.org"
    src = write_jsonl(tmp_path / "t.jsonl", rows)
    assert cli(monkeypatch, "data", "clean", src, "--out", tmp_path / "out", "eval.suites=[]") == 0
    text = capsys.readouterr().out
    assert "9 rows in = 8 out + 1 removed (1 changed)" in text
    assert len((tmp_path / "out" / "rejects.jsonl").read_text().splitlines()) == 2


def test_streamed_dedup_finds_what_the_in_memory_clusters_find() -> None:
    rng = random.Random(7)
    vocab = [f"w{i}" for i in range(400)]
    texts = [" ".join(rng.choice(vocab) for _ in range(40)) for _ in range(300)]
    for i in range(0, 300, 10):  # plant near duplicates: one word changed
        words = texts[i].split()
        words[20] = "changed"
        texts.append(" ".join(words))
    texts.append(texts[5].upper())  # and one exact duplicate
    expected = near_duplicate_clusters(texts, threshold=0.8)
    dedup = StreamDeduper(threshold=0.8)
    for start in range(0, len(texts), 64):  # batches that split the planted pairs
        dedup.add(texts[start : start + 64])
    asked: set[int] = set()

    def texts_of(wanted: set[int]) -> dict[int, str]:
        asked.update(wanted)
        return {i: texts[i] for i in wanted}

    groups, pairs = dedup.pairs(texts_of)
    assert sum(len(g) for g in groups) == len(texts)
    found = {(groups[p.a][0], groups[p.b][0]) for p in pairs} | {(g[0], i) for g in groups for i in g[1:]}
    planted = {(i, 300 + i // 10) for i in range(0, 300, 10)} | {(5, len(texts) - 1)}
    # The same pairs as the in-memory clusters (same signatures, same bands, same verification)...
    assert found == {(min(i, expected[i]), max(i, expected[i])) for i in range(len(texts)) if expected[i] != i}
    # ...nothing unplanted (verified pairs), and LSH misses at most one pair of Jaccard 0.85 here.
    assert found <= planted and len(planted - found) <= 1
    assert len(asked) < len(texts) // 2  # only candidates are read again


@pytest.mark.integration
def test_audit_of_the_alpaca_demo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The audit shown in docs/data.md, with the default model's tokenizer and the built-in suites."""
    out = tmp_path / "audit.json"
    assert cli(monkeypatch, "data", "audit", DEMO, "--out", out) == 0
    saved = json.loads(out.read_text())
    found = {f["kind"]: f for f in saved["findings"]}
    assert saved["rows"] == {"train": 999}
    assert found["duplicates"]["count"] == 14 and found["duplicates"]["detail"]["exact"] == 14
    assert found["pii"]["detail"]["kinds"] == {"email": 5, "phone": 1}
    assert "contamination" in found and "format" not in found
