"""Reading dataset files and normalising their shapes: tunewise.data.io and tunewise.data.shapes."""

from __future__ import annotations

import csv
import gzip
import json
import os
from pathlib import Path
from typing import Any

import pytest

from tunewise.data import (
    SHAPES,
    BadRow,
    Example,
    Reject,
    Row,
    detect_shape,
    load_examples,
    read_rows,
    split_examples,
    to_example,
    write_rejects,
)
from tunewise.errors import ConfigError, DataError

ALPACA: list[dict[str, Any]] = [
    {"instruction": "Name a colour.", "input": "", "output": "Blue."},
    {"instruction": "Translate to French.", "input": "Good morning", "output": "Bonjour."},
    # A newline inside a field: CSV must quote it, and line counting must survive it.
    {"instruction": "Write two lines.", "input": "", "output": "Line one.\nLine two."},
    {"instruction": 'Say hi. Use "quotes", commas', "input": "", "output": 'Hi, "you".'},
]


def write(path: Path, records: list[dict[str, Any]]) -> Path:
    """Write records in the format the path's extension names."""
    name = path.name
    if name.endswith(".jsonl.gz"):
        with gzip.open(path, "wt", encoding="utf-8") as f:
            f.writelines(json.dumps(r) + "\n" for r in records)
    elif name.endswith(".jsonl"):
        path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    elif name.endswith(".json"):
        path.write_text(json.dumps(records, indent=2), encoding="utf-8")
    elif name.endswith(".csv"):
        with open(path, "w", newline="", encoding="utf-8") as f:
            writer = csv.DictWriter(f, fieldnames=list(records[0]))
            writer.writeheader()
            writer.writerows(records)
    elif name.endswith(".parquet"):
        import pyarrow as pa
        import pyarrow.parquet as pq

        pq.write_table(pa.Table.from_pylist(records), path)
    elif name.endswith(".hf"):
        import datasets

        datasets.Dataset.from_list(records).save_to_disk(str(path))
    else:
        raise AssertionError(name)
    return path


FORMATS = ["d.jsonl", "d.jsonl.gz", "d.json", "d.csv", "d.parquet", "d.hf"]


# --------------------------------------------------------------------------- formats


@pytest.mark.parametrize("name", FORMATS)
def test_every_format_gives_the_same_examples(tmp_path: Path, name: str) -> None:
    reference, _ = load_examples(write(tmp_path / "ref.jsonl", ALPACA))
    examples, rejects = load_examples(write(tmp_path / name, ALPACA))
    assert rejects == []
    assert [e.messages for e in examples] == [e.messages for e in reference]
    # Every source names this file, and no two rows share one.
    assert all(e.source.startswith(str(tmp_path / name) + ":") for e in examples)
    assert len({e.source for e in examples}) == len(ALPACA)


def test_jsonl_sources_are_real_line_numbers(tmp_path: Path) -> None:
    path = tmp_path / "d.jsonl"
    path.write_text('{"a": 1}\n\n  \n{"a": 2}\n{"a": 3}\n', encoding="utf-8")
    assert [r.source for r in read_rows(path)] == [f"{path}:1", f"{path}:4", f"{path}:5"]
    assert [r.data["a"] for r in read_rows(path)] == [1, 2, 3]


def test_csv_sources_are_physical_start_lines(tmp_path: Path) -> None:
    rows = list(read_rows(write(tmp_path / "d.csv", ALPACA)))
    # Header on line 1; row 3's output spans two physical lines, so row 4 starts on line 6.
    assert [r.source.rsplit(":", 1)[1] for r in rows] == ["2", "3", "4", "6"]
    assert rows[2].data["output"] == "Line one.\nLine two."
    lines = (tmp_path / "d.csv").read_text(encoding="utf-8").splitlines()
    assert lines[5].startswith("Say hi.") or lines[5].startswith('"Say hi.')


def test_json_sources_are_the_lines_objects_start_on(tmp_path: Path) -> None:
    path = write(tmp_path / "d.json", ALPACA)
    lines = path.read_text(encoding="utf-8").splitlines()
    for row in read_rows(path):
        line = int(row.source.rsplit(":", 1)[1])
        assert lines[line - 1].strip() == "{"
        assert json.dumps(row.data["instruction"]) in lines[line]


def test_minified_json_names_items(tmp_path: Path) -> None:
    path = tmp_path / "d.json"
    path.write_text(json.dumps({"data": ALPACA}), encoding="utf-8")  # one line, wrapped list
    assert [r.source for r in read_rows(path)] == [f"{path}:item {i}" for i in range(1, 5)]


def test_csv_utf8_bom_does_not_leak_into_the_header(tmp_path: Path) -> None:
    path = tmp_path / "d.csv"
    path.write_bytes("\ufefftext\nhello\n".encode())
    assert next(iter(read_rows(path))).data == {"text": "hello"}


# --------------------------------------------------------------------------- read errors


def test_malformed_json_line_names_its_line(tmp_path: Path) -> None:
    path = tmp_path / "d.jsonl"
    path.write_text('{"text": "a"}\n{"text": "b"}\n{"text": "c",}\n{"text": "d"}\n')
    with pytest.raises(DataError) as e:
        list(read_rows(path))
    assert f"{path}:3:" in str(e.value)
    assert "not valid JSON" in str(e.value)


def test_malformed_json_file_names_its_line(tmp_path: Path) -> None:
    path = tmp_path / "d.json"
    path.write_text('[\n  {"text": "a"},\n  {"text": "b"\n  {"text": "c"}\n]\n')
    with pytest.raises(DataError, match=rf"{path}:4: not valid JSON"):
        list(read_rows(path))


def test_jsonl_in_a_json_file_suggests_renaming(tmp_path: Path) -> None:
    path = write(tmp_path / "x.jsonl", ALPACA).rename(tmp_path / "d.json")
    with pytest.raises(DataError, match="rename it to .jsonl"):
        list(read_rows(path))


@pytest.mark.parametrize("line", ['["a", "b"]', '"text"', "3"])
def test_a_row_that_is_not_an_object(tmp_path: Path, line: str) -> None:
    path = tmp_path / "d.jsonl"
    path.write_text('{"text": "a"}\n' + line + "\n")
    with pytest.raises(DataError, match=rf"{path}:2: expected a JSON object"):
        list(read_rows(path))


def test_missing_file_says_so_and_names_the_directory(tmp_path: Path) -> None:
    with pytest.raises(DataError) as e:
        read_rows("data/nope.jsonl")  # fails at the call, not at the first next()
    assert "data/nope.jsonl: no such file" in str(e.value)
    assert os.getcwd() in str(e.value)


def test_unknown_extension_lists_the_supported_ones(tmp_path: Path) -> None:
    path = tmp_path / "d.xlsx"
    path.write_text("x")
    with pytest.raises(DataError) as e:
        read_rows(path)
    for ext in (".jsonl", ".json", ".csv", ".parquet", "save_to_disk"):
        assert ext in str(e.value)


@pytest.mark.parametrize("content", ["", "\n\n   \n"])
@pytest.mark.parametrize("name", ["d.jsonl", "d.csv"])
def test_empty_file_has_no_rows(tmp_path: Path, name: str, content: str) -> None:
    path = tmp_path / name
    path.write_text(content)
    with pytest.raises(DataError, match="no rows"):
        list(read_rows(path))


def test_empty_json_list_has_no_rows(tmp_path: Path) -> None:
    path = tmp_path / "d.json"
    path.write_text("[]")
    with pytest.raises(DataError, match="no rows"):
        load_examples(path)


def test_json_object_with_two_lists_is_ambiguous(tmp_path: Path) -> None:
    path = tmp_path / "d.json"
    path.write_text(json.dumps({"train": ALPACA, "test": ALPACA}))
    with pytest.raises(DataError, match="exactly one list"):
        list(read_rows(path))


def test_csv_record_with_wrong_field_count(tmp_path: Path) -> None:
    path = tmp_path / "d.csv"
    path.write_text("instruction,output\na,b\nc,d,e\n")
    with pytest.raises(DataError, match=rf"{path}:3: 3 fields but the header has 2"):
        list(read_rows(path))


def test_a_directory_that_is_not_a_saved_dataset(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="save_to_disk"):
        list(read_rows(tmp_path))


# --------------------------------------------------------------------------- shapes


SHAPE_ROWS = {
    "chat": {"messages": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello."}]},
    "sharegpt": {"conversations": [{"from": "human", "value": "Hi"}, {"from": "gpt", "value": "Hello."}]},
    "alpaca": {"instruction": "Hi", "input": "", "output": "Hello."},
    "prompt_completion": {"prompt": "Hi", "completion": "Hello."},
    "text": {"text": "Hello there."},
}


@pytest.mark.parametrize("shape", list(SHAPES))
def test_each_shape_is_detected(shape: str) -> None:
    assert detect_shape([SHAPE_ROWS[shape]], "f.jsonl") == shape


def test_the_four_conversational_shapes_normalise_to_the_same_chat() -> None:
    chats = [to_example(Row("f:1", SHAPE_ROWS[s]), s).messages for s in SHAPES if s != "text"]
    assert chats == [({"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello."})] * 4
    assert to_example(Row("f:1", SHAPE_ROWS["text"]), "text") == Example("f:1", text="Hello there.")


def test_unknown_shape_lists_the_keys_found_and_the_shapes() -> None:
    with pytest.raises(DataError) as e:
        detect_shape([{"question": "q", "answer": "a"}], "f.jsonl")
    message = str(e.value)
    assert "answer, question" in message
    assert all(shape in message for shape in SHAPES)
    assert "data.columns" in message


@pytest.mark.parametrize(
    ("row", "kind"),
    [
        ({"prompt": "p", "chosen": "a", "rejected": "b"}, "preference"),
        ({"conversations": [], "chosen": {}, "rejected": {}}, "preference"),
        ({"messages": [], "label": True}, "KTO"),
        ({"text": "t", "label": 1}, "classification"),
    ],
)
def test_data_for_other_kinds_of_training_is_refused(row: dict, kind: str) -> None:
    with pytest.raises(DataError, match=kind):
        detect_shape([row], "f.jsonl")


def test_explicit_shape_overrides_detection(tmp_path: Path) -> None:
    path = write(
        tmp_path / "d.jsonl", [{"text": "positive review", "label": 1}, {"text": "negative review", "label": 0}]
    )
    with pytest.raises(DataError, match="classification"):
        load_examples(path)
    examples, _ = load_examples(path, shape="text")
    assert [e.text for e in examples] == ["positive review", "negative review"]


def test_shape_is_detected_from_all_sampled_rows(tmp_path: Path) -> None:
    # The first row lacks `input`; keys are pooled, so later rows still read as alpaca.
    path = write(
        tmp_path / "d.jsonl", [{"instruction": "a", "output": "b"}, {"instruction": "c", "input": "d", "output": "e"}]
    )
    examples, _ = load_examples(path)
    assert examples[1].messages[0]["content"] == "c\n\nd"


def test_alpaca_with_input_system_and_history() -> None:
    row = {
        "instruction": "Translate.",
        "input": "Hallo",
        "output": "Hello",
        "system": "Be brief.",
        "history": [["Hi", "Hey."]],
    }
    assert to_example(Row("f:1", row), "alpaca").messages == (
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Hi"},
        {"role": "assistant", "content": "Hey."},
        {"role": "user", "content": "Translate.\n\nHallo"},
        {"role": "assistant", "content": "Hello"},
    )


def test_sharegpt_roles_and_system() -> None:
    row = {
        "system": "S",
        "conversations": [
            {"from": "human", "value": "a"},
            {"from": "gpt", "value": "b"},
            {"from": "user", "value": "c"},
            {"from": "assistant", "value": "d"},
        ],
    }
    messages = to_example(Row("f:1", row), "sharegpt").messages
    assert [m["role"] for m in messages] == ["system", "user", "assistant", "user", "assistant"]
    assert [m["content"] for m in messages] == ["S", "a", "b", "c", "d"]


def test_prompt_completion_with_message_lists() -> None:
    row = {
        "prompt": [{"role": "system", "content": "S"}, {"role": "user", "content": "q"}],
        "completion": [{"role": "assistant", "content": "a"}],
    }
    assert [m["role"] for m in to_example(Row("f:1", row), "prompt_completion").messages] == [
        "system",
        "user",
        "assistant",
    ]


def test_chat_messages_stored_as_json_text_in_csv(tmp_path: Path) -> None:
    path = tmp_path / "d.csv"
    with open(path, "w", newline="") as f:
        csv.writer(f).writerows([["messages"], [json.dumps(SHAPE_ROWS["chat"]["messages"])]])
    examples, _ = load_examples(path)
    assert examples[0].messages == to_example(Row("x", SHAPE_ROWS["chat"]), "chat").messages


def test_column_renaming_applies_before_detection(tmp_path: Path) -> None:
    path = write(tmp_path / "d.jsonl", [{"question": "Hi", "answer": "Hello."}])
    examples, _ = load_examples(path, columns={"question": "prompt", "answer": "completion"})
    assert examples[0].messages == to_example(Row("x", SHAPE_ROWS["chat"]), "chat").messages


def test_renaming_a_column_that_does_not_exist(tmp_path: Path) -> None:
    path = write(tmp_path / "d.jsonl", [{"question": "Hi", "answer": "Hello."}])
    with pytest.raises(ConfigError, match="no column 'query'"):
        load_examples(path, columns={"query": "prompt", "answer": "completion"})


def user(c: str) -> dict[str, str]:
    return {"role": "user", "content": c}


def bot(c: str) -> dict[str, str]:
    return {"role": "assistant", "content": c}


BAD_ROWS = [
    ("alpaca", {"instruction": "a"}, "missing key `output`"),
    ("alpaca", {"instruction": "a", "output": "   "}, "`output` is empty"),
    ("alpaca", {"instruction": "a", "output": 42}, "`output` must be a string"),
    ("text", {"text": ""}, "`text` is empty"),
    ("chat", {"messages": "hello"}, "must be a list of messages"),
    ("chat", {"messages": []}, "empty list"),
    ("chat", {"messages": [user("q")]}, "no assistant turn"),
    ("chat", {"messages": [{"role": "system", "content": "s"}, user("q")]}, "no assistant turn"),
    ("chat", {"messages": [user("q"), {"role": "tool", "content": "x"}]}, "unknown role 'tool'"),
    ("chat", {"messages": [user("q"), bot("")]}, "message 2 (assistant) has empty content"),
    ("chat", {"messages": [user("q"), {"role": "assistant"}]}, "message 2 has no `content`"),
    ("chat", {"messages": [bot("a"), user("q")]}, "turns must alternate"),
    ("chat", {"messages": [user("q"), user("q"), bot("a")]}, "turns must alternate"),
    ("chat", {"messages": [user("q"), bot("a"), {"role": "system", "content": "s"}]}, "only the first may be"),
    (
        "sharegpt",
        {"conversations": [{"from": "human", "value": "q"}, {"from": "observation", "value": "x"}]},
        "unknown role",
    ),
]


@pytest.mark.parametrize(("shape", "row", "reason"), BAD_ROWS)
def test_bad_rows_have_precise_reasons(shape: str, row: dict, reason: str) -> None:
    with pytest.raises(BadRow) as e:
        to_example(Row("f.jsonl:7", row), shape)
    assert reason in e.value.reason
    assert str(e.value).startswith("f.jsonl:7: ")


def test_a_trailing_user_turn_is_kept_when_an_answer_precedes_it() -> None:
    messages = [user("q"), bot("a"), user("thanks")]
    assert to_example(Row("f:1", {"messages": messages}), "chat").messages == tuple(messages)


MIXED = [
    {"instruction": "a", "output": "b"},
    {"instruction": "c", "output": ""},
    {"instruction": "e", "output": "f"},
    {"instruction": "g"},
]


def test_a_bad_row_stops_the_load_naming_line_reason_and_fix(tmp_path: Path) -> None:
    path = write(tmp_path / "d.jsonl", MIXED)
    with pytest.raises(DataError) as e:
        load_examples(path)
    message = str(e.value)
    assert message.startswith(f"{path}:2: `output` is empty")
    assert "data.on_bad_rows: skip" in message


def test_skipping_bad_rows_keeps_them_as_rejects(tmp_path: Path) -> None:
    path = write(tmp_path / "d.jsonl", [{"q": r.get("instruction"), **r} for r in MIXED])
    examples, rejects = load_examples(path, on_bad_rows="skip", columns={"q": "question"})
    assert [e.source for e in examples] == [f"{path}:1", f"{path}:3"]
    assert [(r.source, r.reason) for r in rejects] == [
        (f"{path}:2", "`output` is empty"),
        (f"{path}:4", "missing key `output`"),
    ]
    assert rejects[0].row == {"q": "c", **MIXED[1]}  # as written in the file, before renaming

    out = write_rejects(rejects, tmp_path / "run" / "rejects.jsonl")
    back = [json.loads(line) for line in out.read_text().splitlines()]
    assert back == [{"source": r.source, "reason": r.reason, "row": r.row} for r in rejects]


def test_no_usable_rows_is_an_error_even_when_skipping(tmp_path: Path) -> None:
    path = write(tmp_path / "d.jsonl", [{"messages": [user("q")]}] * 3)
    with pytest.raises(DataError, match="no usable rows.*no assistant turn"):
        load_examples(path, on_bad_rows="skip")


def test_invalid_options_are_config_errors(tmp_path: Path) -> None:
    path = write(tmp_path / "d.jsonl", ALPACA)
    with pytest.raises(ConfigError, match="data.shape"):
        load_examples(path, shape="dialogue")
    with pytest.raises(ConfigError, match="data.on_bad_rows"):
        load_examples(path, on_bad_rows="ignore")  # type: ignore[arg-type]


def test_reject_is_a_plain_record() -> None:
    assert Reject("f:1", "why", {"a": 1}).row == {"a": 1}


# --------------------------------------------------------------------------- splits


@pytest.mark.parametrize("n", [1, 2, 3, 7, 10, 101])
@pytest.mark.parametrize(("eval_fraction", "test_fraction"), [(0.1, 0.1), (0.2, 0.0), (0.0, 0.3)])
def test_split_is_disjoint_covering_and_deterministic(n: int, eval_fraction: float, test_fraction: float) -> None:
    items = list(range(n))
    train, eval_, test = split_examples(items, eval_fraction=eval_fraction, test_fraction=test_fraction, seed=3)
    assert sorted(train + eval_ + test) == items  # covering, and disjoint (no duplicates)
    assert train, "the train split always keeps a row"
    assert all(part == sorted(part) for part in (train, eval_, test))  # file order kept
    if eval_fraction > 0 and n >= 2:
        assert eval_
    assert (train, eval_, test) == split_examples(
        items, eval_fraction=eval_fraction, test_fraction=test_fraction, seed=3
    )


def test_split_sizes_follow_the_fractions_and_the_seed_matters() -> None:
    items = list(range(1000))
    train, eval_, test = split_examples(items, eval_fraction=0.1, test_fraction=0.05, seed=0)
    assert (len(train), len(eval_), len(test)) == (850, 100, 50)
    other = split_examples(items, eval_fraction=0.1, test_fraction=0.05, seed=1)
    assert other[1] != eval_


def test_the_test_split_does_not_move_when_eval_fraction_changes() -> None:
    items = list(range(200))
    a = split_examples(items, eval_fraction=0.1, test_fraction=0.1, seed=0)
    b = split_examples(items, eval_fraction=0.3, test_fraction=0.1, seed=0)
    assert a[2] == b[2]


@pytest.mark.parametrize(("e", "t"), [(-0.1, 0.0), (1.0, 0.0), (0.6, 0.4)])
def test_bad_fractions_are_config_errors(e: float, t: float) -> None:
    with pytest.raises(ConfigError, match="data.eval_fraction|data.test_fraction"):
        split_examples([1, 2, 3], eval_fraction=e, test_fraction=t, seed=0)
