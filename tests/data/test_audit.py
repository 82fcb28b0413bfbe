"""The data audit: planted problems are found exactly, with their file:line; clean data has no findings."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tunewise.config import CheckConfig, Config
from tunewise.data.audit import AUDIT_KINDS, audit_files
from tunewise.errors import DataError
from tunewise.report import build_report

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
    "geysers",
    "lagoons",
    "fjords",
    "dunes",
]


def words(texts: list[str]) -> list[int]:
    """A whitespace 'tokenizer': lengths the tests can count by eye."""
    return [len(t.split()) for t in texts]


def alpaca(question: str, answer: str) -> dict:
    return {"instruction": question, "input": "", "output": answer}


def distinct(n: int = 32) -> list[dict]:
    rows = []
    for t in TOPICS:
        rows.append(
            alpaca(
                f"Tell me one fact about {t}, please, in a short sentence.",
                f"Here is a fact about {t}: scientists measure them carefully every single year.",
            )
        )
        rows.append(
            alpaca(
                f"How would you describe {t} to a child who has never seen them?",
                f"Picture {t} as something the planet makes slowly, changing over many long centuries.",
            )
        )
    return rows[:n]


def write_jsonl(path: Path, rows: list[dict]) -> str:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return str(path)


def audit_section(run_dir: Path, saved: object) -> str:
    """The report card's summary section of a run directory holding only a config and this audit.json."""
    run_dir.mkdir()
    (run_dir / "config.yaml").write_text("model: {name: tiny}\n", encoding="utf-8")
    (run_dir / "audit.json").write_text(json.dumps(saved), encoding="utf-8")
    page = build_report(run_dir).read_text(encoding="utf-8")
    return page[page.index('<section id="summary">') :].split("</section>", 1)[0]


def settings(**kw) -> CheckConfig:
    return CheckConfig(**{"toxicity": False, **kw})


def kinds(audit) -> dict:
    return {f.kind: f for f in audit.findings}


def test_clean_data_has_no_findings(tmp_path: Path) -> None:
    train = write_jsonl(tmp_path / "train.jsonl", distinct())
    audit = audit_files({"train": [train]}, settings(toxicity=True), count_tokens=words, max_length=1024)
    assert audit.findings == [] and audit.rows == {"train": 32}
    assert audit.tokens["max"] >= audit.tokens["p95"] >= audit.tokens["p50"] > 0


def test_planted_duplicates_leaks_and_contamination_are_found_exactly(tmp_path: Path) -> None:
    rows = distinct()
    exact = alpaca(rows[3]["instruction"].upper(), rows[3]["output"].upper())  # equal after case folding
    near = alpaca(rows[6]["instruction"], rows[6]["output"].replace("single year", "single year, too"))
    train = write_jsonl(tmp_path / "train.jsonl", [*rows[:24], exact, near])
    eval_rows = [rows[24], rows[5], alpaca(rows[9]["instruction"], rows[9]["output"] + " Really.")]
    ev = write_jsonl(tmp_path / "eval.jsonl", eval_rows)
    suites = [("quiz", ["Here is a fact about tides: scientists measure them carefully", "What is blue?"])]
    audit = audit_files({"train": [train], "eval": [ev]}, settings(), count_tokens=words, suites=suites)
    found = kinds(audit)
    assert set(found) == {"duplicates", "eval_leakage", "contamination"}
    dup = found["duplicates"]
    assert dup.count == 2 and dup.detail == {"exact": 1, "near": 1, "clusters": 2}
    assert [e.replace(f"{tmp_path}/", "") for e in dup.examples] == [
        "train.jsonl:25 repeats train.jsonl:4",
        "train.jsonl:26 repeats train.jsonl:7",
    ]
    leak = found["eval_leakage"]
    assert leak.count == 2
    assert [e.replace(f"{tmp_path}/", "") for e in leak.examples] == [
        "eval.jsonl:2 repeats train.jsonl:6",
        "eval.jsonl:3 repeats train.jsonl:10",
    ]
    assert found["contamination"].count == 1 and found["contamination"].detail["per_suite"] == {"quiz": 1}
    assert found["contamination"].examples[0].endswith("train.jsonl:3")  # the row that holds the item


def test_planted_pii_and_secrets_are_counted_by_kind(tmp_path: Path) -> None:
    rows = distinct(20)
    rows[2]["output"] += " Mail ana@example.org or call +44 20 7946 0958."
    rows[5]["input"] = "My card is 4111 1111 1111 1111 and my IBAN DE89370400440532013000."
    rows[9]["output"] += " Connect to 10.0.0.12 with key AKIAIOSFODNN7EXAMPLE."
    audit = audit_files({"train": [write_jsonl(tmp_path / "t.jsonl", rows)]}, settings(), count_tokens=words)
    found = kinds(audit)
    assert found["pii"].count == 3
    assert found["pii"].detail["kinds"] == {"email": 1, "phone": 1, "credit_card": 1, "iban": 1, "ip_address": 1}
    assert found["secrets"].count == 1 and found["secrets"].examples[0].endswith("t.jsonl:10: AKIAIOSFODNN7EXAMPLE")


def test_lengths_repetition_non_text_and_format(tmp_path: Path) -> None:
    rows = distinct(20)
    rows[1]["output"] = "..."  # empty: no word
    rows[2]["output"] = "Yes"  # 1 token < min_tokens 2
    rows[3]["output"] = " ".join(["word"] * 60)  # long, and one repeated 2-gram
    rows[4]["output"] = "0x1f 0x2e 0x3d 0x4c | 12.5 | 13.75 | 99.01 | 1024 | 2048 | 4096 |"
    rows[5] = {"messages": [{"role": "assistant", "content": "hi"}]}  # another schema in an alpaca file
    train = write_jsonl(tmp_path / "t.jsonl", rows)
    audit = audit_files({"train": [train]}, settings(max_tokens=50), count_tokens=words, max_length=40)
    found = kinds(audit)
    assert found["empty"].count == 1 and found["empty"].examples[0].startswith(f"{train}:2:")
    assert found["too_short"].count == 1 and f"{train}:3:" in found["too_short"].examples[0]
    assert found["too_long"].count == 1 and found["truncated"].count == 1
    assert found["repetition"].count == 1 and f"{train}:4:" in found["repetition"].examples[0]
    assert found["non_text"].count == 1 and f"{train}:5:" in found["non_text"].examples[0]
    assert found["format"].count == 1
    assert found["format"].examples == [
        f"{train}:6: missing key `instruction` (read as alpaca, like the file's first "
        "rows; its keys (messages) are those of chat rows: mixed schemas)"
    ]


def test_toxicity_uses_the_bundled_classifier(tmp_path: Path) -> None:
    rows = distinct(10)
    rows[4]["output"] = "Shut up, you stupid fucking idiot."
    audit = audit_files(
        {"train": [write_jsonl(tmp_path / "t.jsonl", rows)]}, settings(toxicity=True), count_tokens=words
    )
    assert [f.kind for f in audit.findings] == ["toxicity"]
    assert audit.findings[0].count == 1 and "t.jsonl:5 (" in audit.findings[0].examples[0]


def test_label_balance_and_demographic_terms_per_label(tmp_path: Path) -> None:
    rows = [
        {"text": f"The {t} movie was {how} and the cast was great.", "label": "pos"}
        for t in TOPICS
        for how in ("wonderful", "moving")
    ]
    rows += [
        {"text": f"The women in the {t} story were {how} and she bored me.", "label": "neg"}
        for t in TOPICS[:12]
        for how in ("dull", "flat")
    ]
    ev = write_jsonl(tmp_path / "e.jsonl", [{"text": "A new odd label here", "label": "meh"}])
    audit = audit_files(
        {"train": [write_jsonl(tmp_path / "c.jsonl", rows)], "eval": [ev]}, settings(), count_tokens=words
    )
    found = kinds(audit)
    assert set(found) == {"label_imbalance", "demographic_imbalance"}
    labels = found["label_imbalance"]
    assert labels.detail == {"train": {"pos": 32, "neg": 24}, "eval": {"meh": 1}}
    assert "'meh' never occur in training" in labels.message and "×" not in labels.message  # 32/24 < 3
    demo = found["demographic_imbalance"]
    assert demo.examples == [
        "label neg: gender terms female 48 vs male 0",
        "rows mentioning gender/female are 0% label 'pos' (all rows: 57%; 24 rows)",
        "rows mentioning gender/female are 100% label 'neg' (all rows: 43%; 24 rows)",
    ]
    assert demo.detail["mentions"]["label neg"] == {"gender/female": 48}


def test_label_imbalance_fires_at_the_ratio(tmp_path: Path) -> None:
    rows = [{"text": f"Row {i} about {TOPICS[i % 16]} number {i}", "label": "a" if i < 30 else "b"} for i in range(40)]
    found = kinds(audit_files({"train": [write_jsonl(tmp_path / "c.jsonl", rows)]}, settings(), count_tokens=words))
    assert "training label 'a' has 30 rows, 3.0× the 10 of 'b'" in found["label_imbalance"].message


def test_preference_pairs_identical_and_length_bias(tmp_path: Path) -> None:
    rows = [
        {
            "prompt": f"Question {i} about {TOPICS[i % 16]}?",
            "chosen": f"A long and careful answer number {i}.",
            "rejected": "Short.",
        }
        for i in range(24)
    ]
    rows[3]["rejected"] = rows[3]["chosen"]
    audit = audit_files({"train": [write_jsonl(tmp_path / "p.jsonl", rows)]}, settings(), count_tokens=words)
    bias = kinds(audit)["preference_bias"]
    assert bias.count == 1 and "same chosen and rejected" in bias.message and "longer one in 100% of 23" in bias.message


def test_chat_roles_and_blocking_kinds(tmp_path: Path) -> None:
    rows = [
        {"messages": [{"role": "user", "content": f"Hi about {t}"}, {"role": "assistant", "content": f"Hello, {t}!"}]}
        for t in TOPICS
    ]
    rows.append({"messages": [{"role": "assistant", "content": "I start"}, {"role": "user", "content": "wrong"}]})
    audit = audit_files(
        {"train": [write_jsonl(tmp_path / "c.jsonl", rows)]}, settings(block_on=["format"]), count_tokens=words
    )
    assert [f.kind for f in audit.blocking] == ["format"]
    assert "message 1 is 'assistant' where 'user' was expected" in audit.findings[0].examples[0]


def test_bad_input_is_reported_with_file_and_line(tmp_path: Path) -> None:
    bad = tmp_path / "bad.jsonl"
    bad.write_bytes(b'{"text": "ok"}\n{"text": "caf\xe9"}\n')
    with pytest.raises(DataError, match=rf"{bad}:2: not UTF-8 text \(byte 0xe9 at column 14\)"):
        audit_files({"train": [str(bad)]}, settings())
    broken = tmp_path / "broken.jsonl"
    broken.write_text('{"text": "ok"}\n{"text": \n', encoding="utf-8")
    with pytest.raises(DataError, match=rf"{broken}:2: not valid JSON"):
        audit_files({"train": [str(broken)]}, settings())
    with pytest.raises(DataError, match="no such file"):
        audit_files({"train": [str(tmp_path / "missing.jsonl")]}, settings())


def test_audit_json_and_html_section(tmp_path: Path) -> None:
    rows = [*distinct(10), distinct(10)[0]]
    audit = audit_files(
        {"train": [write_jsonl(tmp_path / "t.jsonl", rows)]}, settings(block_on=["duplicates"]), count_tokens=words
    )
    saved = json.loads(audit.write(tmp_path / "audit.json").read_text())
    assert saved["findings"][0]["kind"] == "duplicates" and saved["rows"] == {"train": 11}
    html = audit_section(tmp_path / "run", saved)
    assert "<b>Data audit</b>" in html and "duplicates <b>(blocks)</b>" in html and "t.jsonl:11 repeats" in html
    assert "Nothing found" in audit_section(tmp_path / "clean", {**saved, "findings": []})
    damaged = audit_section(tmp_path / "damaged", {"rows": "garbage", "findings": [{"kind": 3}, "x"]})
    assert "<b>Data audit</b>" in damaged and "could not be rendered" not in damaged  # a damaged file costs nothing


def test_every_kind_can_block() -> None:
    assert set(AUDIT_KINDS) == set(CheckConfig.model_fields["block_on"].annotation.__args__[0].__args__)
    Config(data={"check": {"block_on": list(AUDIT_KINDS)}})


def test_rows_stream_through_the_audit_in_batches() -> None:
    """Memory stays bounded: rows are looked at a batch at a time, never all held at once."""
    import weakref

    from tunewise.data.audit import _BATCH, Item, Source, audit

    alive = {"now": 0, "max": 0}

    def gone() -> None:
        alive["now"] -= 1

    def items():
        for i in range(5 * _BATCH):
            item = Item(
                f"big.jsonl:{i + 1}",
                text=f"row {i} says {i * 7} and {i * 13} plainly, {i % 97} times",
                roles={"user": "q", "assistant": f"answer {i}"},
                answer=f"answer {i}",
            )
            alive["now"] += 1
            alive["max"] = max(alive["max"], alive["now"])
            weakref.finalize(item, gone)
            yield item

    result = audit([Source("train", items)], settings())
    assert result.rows == {"train": 5 * _BATCH}
    assert alive["max"] <= 2 * _BATCH + 1  # the batch being read and the one before it, at most


def test_the_report_card_reads_audit_json(tmp_path: Path) -> None:
    from tunewise.report import PITFALLS, load_run

    def pitfalls(run) -> list[str]:
        return [rule.name for rule in PITFALLS if rule.check(run)]

    rows = distinct(20)
    rows[3]["output"] += " Mail ana@example.org."
    rows[5]["output"] += " key AKIAIOSFODNN7EXAMPLE"
    audit = audit_files({"train": [write_jsonl(tmp_path / "t.jsonl", rows)]}, settings(), count_tokens=words)
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / "config.yaml").write_text("model: {name: x}\n")
    audit.write(run_dir / "audit.json")
    run = load_run(run_dir)
    assert [f["kind"] for f in run.data_check["findings"]] == ["pii", "secrets"]
    # PII is listed in the data section; a secret also fires the 'data problems' pitfall.
    assert "data problems" in pitfalls(run)
    (run_dir / "audit.json").write_text(json.dumps({**audit.to_dict(), "findings": [audit.to_dict()["findings"][0]]}))
    assert "data problems" not in pitfalls(load_run(run_dir))


def test_the_console_table_prints_rows_as_written() -> None:
    from rich.console import Console

    from tunewise.data.audit import Audit, Finding, print_audit

    console = Console(record=True, width=200)
    print_audit(
        Audit(
            rows={"train": 3},
            threshold=0.8,
            block_on=["pii"],
            findings=[Finding("pii", 1, "1 row [sic]", ["a.jsonl:1: [INST] hi [/b] there"])],
        ),
        console,
    )
    text = console.export_text()
    assert "pii" in text and "(blocks)" in text and "1 row [sic]" in text and "[INST] hi [/b] there" in text


@pytest.mark.parametrize(
    ("name", "content", "line"),
    [
        ("bad.json", b'[\n  {"text": "ok"},\n  {"text": "caf\xe9"}\n]\n', 3),
        ("bad.csv", b"text,label\nok,1\nfine,0\ncaf\xe9,1\n", 4),
    ],
)
def test_non_utf8_is_reported_with_its_line_in_every_format(
    tmp_path: Path, name: str, content: bytes, line: int
) -> None:
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(DataError, match=rf"{path}:{line}: not UTF-8 text \(byte 0xe9"):
        audit_files({"train": [str(path)]}, settings())
