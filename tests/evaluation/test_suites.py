"""The built-in evaluation suites and their loader: tunewise.evaluation.suite."""

from __future__ import annotations

import csv
import json
import re
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from tunewise.errors import DataError
from tunewise.evaluation.suite import (
    BUILTIN_SUITES,
    SAFETY_LABELS,
    SUITE_KINDS,
    Suite,
    load_suite,
)

ARC_EASY = Path(__file__).resolve().parents[3] / "shared" / "data" / "arc" / "arc_easy_test.jsonl"


def write_jsonl(path: Path, rows: list[dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def words(text: str) -> list[str]:
    return re.findall(r"[\w'-]+", text.lower())


def word_edit_distance(a: list[str], b: list[str]) -> int:
    previous = list(range(len(b) + 1))
    for i, x in enumerate(a, start=1):
        current = [i]
        for j, y in enumerate(b, start=1):
            current.append(min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (x != y)))
        previous = current
    return previous[-1]


def normalize(text: str, *, punctuation_to: str) -> str:
    """How a `contains` check compares text: lowercased, punctuation and articles dropped.

    `punctuation_to` is " " (punctuation splits words) or "" (punctuation is deleted); the
    built-in answers must survive either choice a scorer makes.
    """
    text = re.sub(r"[^\w\s]", punctuation_to, text.lower())
    return " ".join(w for w in text.split() if w not in {"a", "an", "the"})


def contains(response: str, answer: str, *, punctuation_to: str) -> bool:
    needle = normalize(answer, punctuation_to=punctuation_to)
    return f" {needle} " in f" {normalize(response, punctuation_to=punctuation_to)} "


# --------------------------------------------------------------------------- built-in suites


@pytest.fixture(scope="module")
def suites() -> dict[str, Suite]:
    return {name: load_suite(name) for name in BUILTIN_SUITES}


def test_every_builtin_suite_loads_with_its_kind(suites: dict[str, Suite]) -> None:
    expected = {"general_knowledge": "multiple_choice", "chat": "generation", "safety": "safety", "bias_pairs": "bias"}
    assert set(BUILTIN_SUITES) == set(expected)
    for name, suite in suites.items():
        assert suite.name == name
        assert suite.kind == expected[name]
        assert suite.path.name == BUILTIN_SUITES[name]
        assert len(suite.items) == len(suite.sources) == len(suite)
        assert suite.sources[0].endswith(f"{BUILTIN_SUITES[name]}:1")
        ids = [item["id"] for item in suite.items]
        assert len(set(ids)) == len(ids), f"{name}: duplicate ids"


def test_builtin_files_are_package_data() -> None:
    from importlib import resources

    shipped = {p.name for p in resources.files("tunewise.evaluation.suites").iterdir()}
    assert set(BUILTIN_SUITES.values()) <= shipped
    pyproject = Path(__file__).resolve().parents[2] / "pyproject.toml"
    assert '"evaluation/suites/*.jsonl"' in pyproject.read_text(encoding="utf-8")


def test_general_knowledge_counts_and_format(suites: dict[str, Suite]) -> None:
    items = suites["general_knowledge"].items
    assert len(items) >= 220
    per_category = Counter(item["category"] for item in items)
    assert set(per_category) == {"science", "geography", "history", "everyday"}
    assert min(per_category.values()) >= 50, per_category
    queries = [item["query"] for item in items]
    assert len(set(queries)) == len(queries), "duplicate queries"
    for item in items:
        assert item["query"].startswith("Question: ") and item["query"].endswith("\nAnswer:")
        assert item["query"].count("\n") == 1
        choices = item["choices"]
        assert len(choices) == 4 and len({c.lower() for c in choices}) == 4, item
        assert all(c == c.strip() and c for c in choices), item
        assert isinstance(item["gold"], int) and 0 <= item["gold"] < 4


def test_general_knowledge_gold_is_balanced(suites: dict[str, Suite]) -> None:
    golds = Counter(item["gold"] for item in suites["general_knowledge"].items)
    assert set(golds) == {0, 1, 2, 3}
    assert max(golds.values()) - min(golds.values()) <= 1, golds
    # a prefix (what `limit` takes) is mixed too, not one category or one gold position
    head = suites["general_knowledge"].items[:40]
    assert len({item["category"] for item in head}) == 4
    assert len({item["gold"] for item in head}) == 4


def test_chat_items_are_checkable(suites: dict[str, Suite]) -> None:
    items = suites["chat"].items
    assert len(items) >= 110
    per_category = Counter(item["category"] for item in items)
    assert set(per_category) == {"geography", "arithmetic", "everyday", "language", "instructions"}
    assert min(per_category.values()) >= 15, per_category
    prompts = [item["prompt"].lower() for item in items]
    assert len(set(prompts)) == len(prompts), "duplicate prompts"
    for item in items:
        assert item["check"] == "contains"
        assert item["answers"] and all(a.strip() for a in item["answers"]), item
        for style in (" ", ""):
            for answer in item["answers"]:
                assert normalize(answer, punctuation_to=style), f"{answer!r} normalizes away"
                assert contains(f"Sure! The answer is {answer}.", answer, punctuation_to=style)
            if item["category"] != "instructions":
                # echoing the question back must not count as a right answer
                echoed = [a for a in item["answers"] if contains(item["prompt"], a, punctuation_to=style)]
                assert not echoed, (item["prompt"], echoed)


def test_chat_check_rejects_a_task_label_reply(suites: dict[str, Suite]) -> None:
    # The failure this suite exists to catch: a fine-tune that answers everything with a label.
    for label in ("positive", "negative", "sports", "World", "Business"):
        hits = [
            item
            for item in suites["chat"].items
            if any(contains(label, a, punctuation_to=" ") for a in item["answers"])
        ]
        assert not hits, (label, [h["prompt"] for h in hits])


def test_safety_has_both_labels(suites: dict[str, Suite]) -> None:
    items = suites["safety"].items
    assert len(items) >= 60
    labels = Counter(item["label"] for item in items)
    assert set(labels) == set(SAFETY_LABELS)
    assert min(labels.values()) >= 25, labels
    prompts = [item["prompt"].lower() for item in items]
    assert len(set(prompts)) == len(prompts), "duplicate prompts"
    by_label = {lab: {i["category"] for i in items if i["label"] == lab} for lab in SAFETY_LABELS}
    assert by_label["harmful"] >= {"weapons", "malware", "fraud", "violence", "self_harm", "drugs", "harassment"}
    # every harm area has benign look-alikes, so over-refusal can be measured per area
    assert by_label["benign"] == by_label["harmful"]


def test_bias_pairs_are_minimal(suites: dict[str, Suite]) -> None:
    items = suites["bias_pairs"].items
    assert len(items) >= 60
    per_category = Counter(item["category"] for item in items)
    for category in ("gender", "race", "religion", "age", "nationality", "disability", "socioeconomic"):
        assert per_category[category] >= 4, per_category
    mores = [item["more"].lower() for item in items]
    assert len(set(mores)) == len(mores), "duplicate pairs"
    for item in items:
        more, less = words(item["more"]), words(item["less"])
        assert item["more"] != item["less"]
        distance = word_edit_distance(more, less)
        assert 1 <= distance <= 3 and distance <= len(more) / 3, item
        assert item["more"][-1] == item["less"][-1]  # same sentence frame, same punctuation


# --------------------------------------------------------------------------- loader


def test_limit_is_a_deterministic_prefix(suites: dict[str, Suite]) -> None:
    first = load_suite("general_knowledge", limit=10)
    assert first.items == suites["general_knowledge"].items[:10]
    assert first.sources == suites["general_knowledge"].sources[:10]
    assert load_suite("general_knowledge", limit=10).items == first.items
    assert len(load_suite("chat", limit=100_000)) == len(suites["chat"])


@pytest.mark.parametrize("limit", [0, -1, 1.5, True])
def test_bad_limit(limit: Any) -> None:
    with pytest.raises(ValueError, match="limit"):
        load_suite("chat", limit=limit)


def test_unknown_kind_argument() -> None:
    with pytest.raises(ValueError, match="multiple_choice"):
        load_suite("chat", kind="essay")


def test_unknown_name_or_missing_file() -> None:
    with pytest.raises(DataError, match="general_knowledge"):
        load_suite("no_such_suite")
    with pytest.raises(DataError, match="no such file"):
        load_suite("nowhere/suite.jsonl")


@pytest.mark.parametrize(
    ("rows", "kind"),
    [
        ([{"query": "Q?", "choices": ["a", "b"], "gold": 1}], "multiple_choice"),
        ([{"prompt": "P", "reference": "R"}], "generation"),
        ([{"prompt": "P", "answers": ["x", "y"], "check": "exact"}], "generation"),
        ([{"text": "T", "label": "positive"}], "classification"),
        ([{"text": "T", "label": 3}], "classification"),
        ([{"prompt": "P", "label": "benign"}], "safety"),
        ([{"more": "M", "less": "L", "category": "age"}], "bias"),
    ],
)
def test_kind_is_detected_from_keys(tmp_path: Path, rows: list[dict[str, Any]], kind: str) -> None:
    suite = load_suite(write_jsonl(tmp_path / "s.jsonl", rows))
    assert suite.kind == kind and suite.name == "s"
    assert any(set(keys) <= set(rows[0]) for keys in SUITE_KINDS[kind])


def test_extra_keys_are_kept(tmp_path: Path) -> None:
    row = {"id": "q1", "category": "x", "query": "Q?", "choices": ["a", "b"], "gold": 0}
    suite = load_suite(write_jsonl(tmp_path / "s.jsonl", [row]))
    assert suite.items == [row]


def test_kind_override(tmp_path: Path) -> None:
    # {prompt, label, answers} fits both safety and generation: detection refuses to guess
    path = write_jsonl(tmp_path / "s.jsonl", [{"prompt": "P", "label": "benign", "answers": ["x"]}])
    with pytest.raises(DataError, match="several suite kinds"):
        load_suite(path)
    assert load_suite(path, kind="generation").kind == "generation"
    assert load_suite(path, kind="safety").kind == "safety"
    with pytest.raises(DataError, match=r"s\.jsonl:1: missing key\(s\) 'more', 'less', 'category'"):
        load_suite(path, kind="bias")


def test_gold_out_of_range_names_file_and_line(tmp_path: Path) -> None:
    path = write_jsonl(
        tmp_path / "mc.jsonl",
        [
            {"query": "Q1?", "choices": ["a", "b", "c"], "gold": 2},
            {"query": "Q2?", "choices": ["a", "b", "c"], "gold": 3},
        ],
    )
    with pytest.raises(DataError) as err:
        load_suite(path)
    assert f"{path}:2" in str(err.value)
    assert "between 0 and 2" in str(err.value)
    # the bad row is past the limit: not read, not an error
    assert len(load_suite(path, limit=1)) == 1


@pytest.mark.parametrize(
    ("row", "message"),
    [
        ({"query": "Q?", "choices": ["a", "b"], "gold": "1"}, "'gold' must be a whole number"),
        ({"query": "Q?", "choices": ["a", "b"], "gold": 1.0}, "'gold' must be a whole number"),
        ({"query": "Q?", "choices": ["a", "b"], "gold": True}, "'gold' must be a whole number"),
        ({"query": "Q?", "choices": ["a", "b"], "gold": -1}, "between 0 and 1"),
        ({"query": "Q?", "choices": ["only"], "gold": 0}, "at least 2"),
        ({"query": "Q?", "choices": "a, b", "gold": 0}, "must be a list"),
        ({"query": "Q?", "choices": ["a", " "], "gold": 0}, r"choices\[1\] is empty"),
        ({"query": "Q?", "choices": ["a", 2], "gold": 0}, r"choices\[1\] must be a string"),
        ({"query": "  ", "choices": ["a", "b"], "gold": 0}, "'query' is empty"),
        ({"query": "Q?", "choices": ["a", "b"], "gold": None}, r"missing key\(s\) 'gold'"),
        ({"prompt": "P", "answers": []}, "at least one accepted answer"),
        ({"prompt": "P", "reference": ""}, "'reference' is empty"),
        ({"prompt": "P", "answers": ["x"], "check": "regex"}, "unknown check"),
        ({"text": "", "label": "x"}, "'text' is empty"),
        ({"text": "T", "label": ""}, "'label' must be"),
        ({"prompt": "P", "label": "unsafe"}, "unknown safety label 'unsafe'"),
        ({"more": "Same.", "less": "Same.", "category": "age"}, "same sentence"),
        ({"more": "M", "less": "L", "category": ""}, "'category' is empty"),
    ],
)
def test_bad_rows_name_file_and_line(tmp_path: Path, row: dict[str, Any], message: str) -> None:
    # the bad row comes second, after a good row of the same kind
    if "query" in row:
        good: dict[str, Any] = {"query": "Q?", "choices": ["a", "b"], "gold": 0}
    elif "prompt" in row:
        good = {"prompt": "ok", "label": "benign"} if "label" in row else {"prompt": "ok", "reference": "ok"}
    elif "text" in row:
        good = {"text": "ok", "label": "ok"}
    else:
        good = {"more": "A b.", "less": "C b.", "category": "age"}
    rows = [good, row]
    path = write_jsonl(tmp_path / "bad.jsonl", rows)
    with pytest.raises(DataError, match=message) as err:
        load_suite(path)
    assert str(err.value).startswith(f"{path}:2: ")


def test_empty_file(tmp_path: Path) -> None:
    path = tmp_path / "empty.jsonl"
    path.write_text("\n\n", encoding="utf-8")
    with pytest.raises(DataError, match="no rows"):
        load_suite(path)


def test_unknown_key_set(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "odd.jsonl", [{"question": "Q?", "options": ["a", "b"]}])
    with pytest.raises(DataError) as err:
        load_suite(path)
    message = str(err.value)
    assert message.startswith(f"{path}:1: cannot tell what kind of suite")
    assert "'question', 'options'" in message and "kind=" in message


def test_unreadable_file(tmp_path: Path) -> None:
    path = tmp_path / "broken.jsonl"
    path.write_text('{"query": "Q?", "choices": ["a", "b"], "gold": 0}\n{not json\n')
    with pytest.raises(DataError, match=r"broken\.jsonl:2: not valid JSON"):
        load_suite(path)


def test_csv_with_json_list_choices(tmp_path: Path) -> None:
    path = tmp_path / "mc.csv"
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["query", "choices", "gold", "category"])
        writer.writerow(["Question: 2+2?\nAnswer:", json.dumps(["3", "4", "5"]), "1", "maths"])
        writer.writerow(["Question: Sky?\nAnswer:", json.dumps(["blue", "green"]), "0", "x"])
    suite = load_suite(path)
    assert suite.kind == "multiple_choice" and suite.name == "mc"
    assert suite.items[0]["choices"] == ["3", "4", "5"] and suite.items[0]["gold"] == 1
    assert suite.sources == [f"{path}:2", f"{path}:4"]  # the quoted newline spans a line

    bad = tmp_path / "bad.csv"
    bad.write_text('query,choices,gold\nQ?,"a, b",0\n', encoding="utf-8")
    message = rf"{re.escape(str(bad))}:2: 'choices' must hold a JSON list"
    with pytest.raises(DataError, match=message):
        load_suite(bad)
    out_of_range = tmp_path / "oor.csv"
    out_of_range.write_text('query,choices,gold\nQ?,"[""a"", ""b""]",two\n', encoding="utf-8")
    with pytest.raises(DataError, match="'gold' must be a whole number"):
        load_suite(out_of_range)


def test_json_file(tmp_path: Path) -> None:
    path = tmp_path / "gen.json"
    path.write_text(
        json.dumps([{"prompt": "Hi?", "answers": ["hello"]}, {"prompt": "Bye?", "reference": "goodbye"}], indent=1)
    )
    suite = load_suite(str(path))
    assert suite.kind == "generation" and len(suite) == 2
    assert suite.sources[0].startswith(f"{path}:")


@pytest.mark.integration
def test_arc_easy_loads_as_multiple_choice() -> None:
    suite = load_suite(ARC_EASY)
    assert suite.kind == "multiple_choice" and suite.name == "arc_easy_test"
    assert len(suite) > 2000
    assert all(len(item["choices"]) == 4 for item in suite.items)
    assert load_suite(ARC_EASY, limit=5).items == suite.items[:5]


# --------------------------------------------------------------------------- column mapping and hf:


def _as_hf_arc(row: dict[str, Any]) -> dict[str, Any]:
    """An ARC row in the Hugging Face `allenai/ai2_arc` layout: nested choices, a letter key."""
    labels = ["A", "B", "C", "D", "E"][: len(row["choices"])]
    return {
        "id": f"q{len(row['query'])}",
        "question": row["query"],
        "choices": {"text": row["choices"], "label": labels},
        "answerKey": labels[row["gold"]],
    }


@pytest.mark.integration
def test_hf_dataset_by_name_maps_the_arc_layout_through_the_datasets_library(tmp_path: Path) -> None:
    """`hf:` goes through `datasets.load_dataset`; a local dataset folder keeps the test offline."""
    from tunewise.evaluation.suite import HF_PRESETS

    plain = load_suite(str(ARC_EASY), limit=40)
    folder = tmp_path / "arc_hf"
    folder.mkdir()
    write_jsonl(folder / "test.jsonl", [_as_hf_arc(item) for item in plain.items])

    for limit in (40, 7):  # 7 streams only the rows it needs
        suite = load_suite(f"hf:{folder}", limit=limit, columns=HF_PRESETS["allenai/ai2_arc"])
        assert suite.kind == "multiple_choice"
        assert len(suite) == limit
        for mapped, original in zip(suite.items, plain.items, strict=False):
            assert (mapped["query"], mapped["choices"], mapped["gold"]) == (
                original["query"],
                original["choices"],
                original["gold"],
            )
            assert "answerKey" not in mapped and "question" not in mapped and "id" in mapped
        assert suite.sources[3] == f"hf:{folder} row 3"


def test_columns_map_a_file_and_join_columns_into_choices(tmp_path: Path) -> None:
    path = write_jsonl(
        tmp_path / "piqa.jsonl",
        [
            {"goal": "Open a jar", "sol1": "twist the lid", "sol2": "shake it", "label": "0"},
            {"goal": "Dry socks", "sol1": "soak them", "sol2": "hang them up", "label": "1"},
        ],
    )
    suite = load_suite(path, columns={"query": "goal", "choices": "sol1,sol2", "gold": "label"})
    assert [it["choices"] for it in suite.items] == [["twist the lid", "shake it"], ["soak them", "hang them up"]]
    assert [it["gold"] for it in suite.items] == [0, 1]


def test_columns_naming_a_missing_column_or_label_says_where(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "s.jsonl", [_as_hf_arc({"query": "Q?", "choices": ["a", "b"], "gold": 1})])
    with pytest.raises(DataError, match=r"s\.jsonl:1: no column 'choices\.txt'"):
        load_suite(path, columns={"query": "question", "choices": "choices.txt", "gold": "answerKey"})
    bad = write_jsonl(
        tmp_path / "b.jsonl", [{**_as_hf_arc({"query": "Q?", "choices": ["a", "b"], "gold": 0}), "answerKey": "Z"}]
    )
    with pytest.raises(DataError, match=r"b\.jsonl:1: gold label 'Z' is not one of the choice labels"):
        load_suite(
            bad,
            columns={
                "query": "question",
                "choices": "choices.text",
                "gold": "answerKey",
                "gold_labels": "choices.label",
            },
        )


def test_an_unreachable_hf_dataset_is_a_data_error_naming_it(monkeypatch: pytest.MonkeyPatch) -> None:
    import datasets
    import huggingface_hub

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.setattr(datasets.config, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    with pytest.raises(
        DataError,
        match=r"hf:tunewise-test/no-such-suite@validation: could not load .*"
        r"split 'validation'.*export the rows to a \.jsonl",
    ):
        load_suite("hf:tunewise-test/no-such-suite@validation", limit=3)


def test_hf_names_parse_into_id_subset_and_split() -> None:
    from tunewise.evaluation.suite import parse_hf_name

    assert parse_hf_name("hf:allenai/ai2_arc:ARC-Easy@test") == ("allenai/ai2_arc", "ARC-Easy", "test")
    assert parse_hf_name("hf:cais/mmlu:all") == ("cais/mmlu", "all", "test")
    assert parse_hf_name("hf:squad@validation") == ("squad", None, "validation")
    with pytest.raises(DataError, match="hf:ID"):
        parse_hf_name("hf:")
