"""`data clean`: rows in = rows out + rows removed, every removed/changed row in rejects.jsonl, idempotent."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest

from tunewise.config import CheckConfig, CleanConfig
from tunewise.data.clean import clean_files, output_name
from tunewise.errors import DataError, TunewiseError

WORDS = [
    "river",
    "stone",
    "cloud",
    "lantern",
    "harbor",
    "meadow",
    "copper",
    "violin",
    "orchard",
    "glacier",
    "pepper",
    "tunnel",
    "maple",
    "falcon",
    "canyon",
    "ember",
    "quartz",
    "willow",
    "saddle",
    "beacon",
    "thistle",
    "marble",
    "comet",
    "velvet",
    "anchor",
    "prairie",
]


def sentence(rng: random.Random, n: int = 18) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(n)).capitalize() + "."


def rows_with_problems(seed: int = 0) -> list[dict]:
    rng = random.Random(seed)
    rows = [{"instruction": sentence(rng, 8), "input": "", "output": sentence(rng)} for _ in range(30)]
    rows[4] = dict(rows[1])  # exact duplicate of row 2
    rows[7] = {**rows[2], "output": rows[2]["output"][:-1] + " indeed."}  # near duplicate of row 3
    rows[10]["output"] += " Write to bo@example.com or +1 (555) 010-2030."  # changed: redacted
    rows[12]["output"] = "?!"  # empty
    rows[15] = {"messages": [{"role": "user", "content": "no answer"}]}  # format
    rows[18]["input"] = "key AKIAIOSFODNN7EXAMPLE"  # changed: secret redacted
    return rows


def write_jsonl(path: Path, rows: list[dict]) -> str:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return str(path)


def read_jsonl(path: str | Path) -> list[dict]:
    return [json.loads(line) for line in Path(path).read_text(encoding="utf-8").splitlines()]


CHECK = CheckConfig(toxicity=False)


def test_every_row_is_accounted_for_with_its_reason(tmp_path: Path) -> None:
    src = write_jsonl(tmp_path / "train.jsonl", rows_with_problems())
    result = clean_files([src], tmp_path / "out", CleanConfig(), CHECK)
    assert (result.rows_in, result.rows_out, result.removed, result.changed) == (30, 26, 4, 2)
    assert result.rows_in == result.rows_out + result.removed
    kept = read_jsonl(tmp_path / "out" / "train.jsonl")
    rejects = read_jsonl(result.rejects)
    assert len(kept) == result.rows_out and len(rejects) == result.removed + result.changed
    removed = {r["source"].rsplit(":", 1)[1]: r["reason"] for r in rejects if r["action"] == "removed"}
    assert removed == {
        "5": f"duplicates: exact duplicate of {src}:2 (kept)",
        "8": f"duplicates: near duplicate of {src}:3 (kept)",
        "13": "empty: the answer has no words",
        "16": "format: missing key `instruction` (read as alpaca, like the file's first "
        "rows; its keys (messages) are those of chat rows: mixed schemas)",
    }
    changed = {r["source"].rsplit(":", 1)[1]: r for r in rejects if r["action"] == "changed"}
    assert changed["11"]["reason"] == "redacted email ×1, phone ×1"
    assert changed["11"]["cleaned"]["output"].endswith("Write to <EMAIL> or <PHONE>.")
    assert changed["11"]["row"]["output"].endswith("Write to bo@example.com or +1 (555) 010-2030.")  # the original
    assert changed["19"]["cleaned"]["input"] == "key <SECRET>"
    assert changed["11"]["cleaned"] in kept and changed["11"]["row"] not in kept
    assert result.reasons["redacted secret"] == 1 and result.reasons["duplicates"] == 2
    summary = json.loads((tmp_path / "out" / "clean_summary.json").read_text())
    assert summary["rows_in"] == 30 and summary["removed"] == 4


def test_clean_of_clean_changes_nothing(tmp_path: Path) -> None:
    src = write_jsonl(tmp_path / "train.jsonl", rows_with_problems(1))
    drop = CleanConfig(drop=["duplicates", "format", "empty", "repetition", "non_text", "too_short"])
    counter = lambda texts: [len(t.split()) for t in texts]  # noqa: E731
    first = clean_files([src], tmp_path / "a", drop, CHECK, count_tokens=counter)
    second = clean_files(first.outputs, tmp_path / "b", drop, CHECK, count_tokens=counter)
    assert (second.rows_in, second.rows_out, second.removed, second.changed) == (first.rows_out,) * 2 + (0, 0)
    assert Path(second.outputs[0]).read_bytes() == Path(first.outputs[0]).read_bytes()
    assert Path(second.rejects).read_text() == ""


def test_dedup_keeps_the_first_row_of_each_cluster_across_files(tmp_path: Path) -> None:
    rng = random.Random(3)
    train = [{"text": sentence(rng, 30)} for _ in range(12)]
    evaluation = [dict(train[5]), {"text": sentence(rng, 30)}, {"text": train[8]["text"] + " Again"}]
    a = write_jsonl(tmp_path / "train.jsonl", train)
    b = write_jsonl(tmp_path / "eval.jsonl", evaluation)
    result = clean_files([a, b], tmp_path / "out", CleanConfig(), CHECK)
    assert read_jsonl(tmp_path / "out" / "train.jsonl") == train  # the earlier file wins
    assert read_jsonl(tmp_path / "out" / "eval.jsonl") == [evaluation[1]]
    reasons = [r["reason"] for r in read_jsonl(result.rejects)]
    assert reasons == [f"duplicates: exact duplicate of {a}:6 (kept)", f"duplicates: near duplicate of {a}:9 (kept)"]
    again = clean_files([a, b], tmp_path / "out2", CleanConfig(), CHECK)
    assert read_jsonl(again.rejects) == read_jsonl(result.rejects)  # deterministic


def test_drop_instead_of_redact(tmp_path: Path) -> None:
    src = write_jsonl(tmp_path / "t.jsonl", rows_with_problems())
    result = clean_files([src], tmp_path / "out", CleanConfig(drop=["secrets", "pii"]), CHECK)
    rejects = read_jsonl(result.rejects)
    assert [(r["action"], r["reason"]) for r in rejects] == [
        ("removed", "pii: holds email, phone"),
        ("removed", "secrets: holds an API key, token or private key"),
    ]
    assert result.rows_in == result.rows_out + result.removed == 30


def test_bad_inputs(tmp_path: Path) -> None:
    bad = tmp_path / "bad.jsonl"
    bad.write_bytes(b'{"text": "fine"}\n{"text": "fine"}\n{"text": "\xff"}\n')
    with pytest.raises(DataError, match=rf"{bad}:3: not UTF-8"):
        clean_files([str(bad)], tmp_path / "out", CleanConfig(), CHECK)
    one = write_jsonl(tmp_path / "a.jsonl", [{"text": "x y z"}])
    (tmp_path / "sub").mkdir()
    two = write_jsonl(tmp_path / "sub" / "a.jsonl", [{"text": "x y z"}])
    with pytest.raises(TunewiseError, match="a.jsonl more than once"):
        clean_files([one, two], tmp_path / "out", CleanConfig(), CHECK)
    with pytest.raises(TunewiseError, match="need a tokenizer"):
        clean_files([one], tmp_path / "out", CleanConfig(drop=["too_long"]), CHECK)


def test_output_names() -> None:
    assert output_name("d/train.json") == "train.jsonl" and output_name("x.jsonl.gz") == "x.jsonl"
    assert output_name("rows.csv") == "rows.jsonl"
