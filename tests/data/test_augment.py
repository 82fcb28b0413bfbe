"""`tunewise data augment`: EDA keeps labels and answers, is seeded, marks provenance; model ops
through injected and real tiny generators; bad input named by file and line."""

from __future__ import annotations

import json
import random
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from tunewise.cli import app
from tunewise.data import load_examples
from tunewise.data.augment import (
    EDA_OPS,
    EdaParams,
    Thesaurus,
    augment_file,
    augment_rows,
    eda,
    rejects_path,
)
from tunewise.data.io import read_rows
from tunewise.errors import DataError, TunewiseError

REVIEWS = [
    ("The movie was great and the actors gave a wonderful performance.", "positive"),
    ("A terrible, boring film with a confusing story and a predictable ending.", "negative"),
    ("I love the music, the beautiful scenes and the clever writer.", "positive"),
    ("The plot is dull and the characters are stupid; a disappointing mess.", "negative"),
    ("Quick, funny and surprisingly moving, this picture is a joy to watch.", "positive"),
    ("An ugly, painful experience: I hated every minute of this movie.", "negative"),
]


def write_jsonl(path: Path, rows: list[dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


@pytest.fixture()
def reviews(tmp_path: Path) -> Path:
    return write_jsonl(tmp_path / "reviews.jsonl", [{"text": t, "label": label} for t, label in REVIEWS])


# --------------------------------------------------------------------------- EDA on texts


SENTENCE = "The quick movie was great, and the actors gave a wonderful performance.\nI would watch it again!"


def test_swap_keeps_the_words_and_the_whitespace() -> None:
    out = eda(SENTENCE, "swap", random.Random(3), EdaParams(alpha_rs=0.3))
    assert out != SENTENCE
    assert sorted(out.split()) == sorted(SENTENCE.split())
    assert out.count("\n") == 1 and out.count(" ") == SENTENCE.count(" ")


def test_delete_keeps_a_subsequence_and_at_least_one_word() -> None:
    out = eda(SENTENCE, "delete", random.Random(1), EdaParams(p_rd=0.3))
    words, kept = SENTENCE.split(), out.split()
    assert 0 < len(kept) < len(words)
    it = iter(words)
    assert all(w in it for w in kept)  # in order
    everything = eda(SENTENCE, "delete", random.Random(1), EdaParams(p_rd=1.0))
    assert len(everything.split()) == 1
    assert eda("alone", "delete", random.Random(0), EdaParams(p_rd=1.0)) == "alone"


def test_synonym_replacement_uses_the_thesaurus_and_keeps_case_and_punctuation() -> None:
    thesaurus = Thesaurus([["great", "excellent"], ["movie", "film"], ["actors", "performers"]])
    out = eda("The Movie was great, said the actors.", "synonym", random.Random(0), EdaParams(alpha_sr=1.0), thesaurus)
    assert out == "The Film was excellent, said the performers."


def test_insertion_adds_only_synonyms_of_words_in_the_text() -> None:
    thesaurus = Thesaurus([["great", "excellent", "superb"], ["film", "movie"]])
    out = eda("a great film", "insert", random.Random(5), EdaParams(alpha_ri=1.0), thesaurus)
    added = Counter(out.split()) - Counter(["a", "great", "film"])
    assert sum(added.values()) == 3  # round(1.0 * 3 words)
    assert set(added) <= {"excellent", "superb", "movie"}
    assert not out.endswith(" ") and not out.startswith(" ")


def test_thesaurus_handles_plurals_case_and_unknown_words() -> None:
    thesaurus = Thesaurus.load()
    assert "films" in [s.lower() for s in thesaurus.synonyms("Movies")]
    assert all(s[0].isupper() for s in thesaurus.synonyms("Great"))
    assert thesaurus.synonyms("the") == [] and thesaurus.synonyms("xylophonist") == []
    # Sentiment never crosses over: no negative word among great's synonyms and vice versa.
    assert not {"bad", "awful", "terrible", "poor"} & set(thesaurus.synonyms("great"))
    assert not {"good", "great", "excellent", "awesome"} & set(thesaurus.synonyms("terrible"))


def test_a_bad_thesaurus_line_is_named(tmp_path: Path) -> None:
    bad = tmp_path / "thes.txt"
    bad.write_text("# mine\nbig, large\nlonely\n", encoding="utf-8")
    with pytest.raises(DataError, match=r"thes.txt:3: a thesaurus line must list two or more"):
        Thesaurus.load(bad)


# --------------------------------------------------------------------------- whole files


def test_eda_preserves_labels_and_marks_provenance(reviews: Path, tmp_path: Path) -> None:
    out = tmp_path / "aug.jsonl"
    result = augment_file(reviews, out, ops=EDA_OPS, num_aug=2, seed=7)
    rows = read_jsonl(out)
    by_source = {f"{reviews}:{i}": label for i, (_, label) in enumerate(REVIEWS, start=1)}
    originals = [r for r in rows if r["provenance"]["op"] == "original"]
    new = [r for r in rows if r["provenance"]["op"] != "original"]
    assert len(originals) == len(REVIEWS)
    assert len(new) == sum(result.made.values()) > 0
    # Every attempt is accounted for: written or rejected with a reason.
    assert len(new) + len(result.rejects) == len(REVIEWS) * len(EDA_OPS) * 2
    for row in new:
        p = row["provenance"]
        assert p["source"] in by_source and p["op"] in EDA_OPS and p["seed"] == 7
        assert p["variant"] in (0, 1) and p["fields"] == ["text"] and len(p["params"]) == 1
        assert row["label"] == by_source[p["source"]]  # the label is never touched
        assert set(row) == {"text", "label", "provenance"}
    assert rejects_path(out).exists()


def test_eda_is_deterministic_under_a_seed(reviews: Path, tmp_path: Path) -> None:
    a, b, c = tmp_path / "a.jsonl", tmp_path / "b.jsonl", tmp_path / "c.jsonl"
    augment_file(reviews, a, seed=3, num_aug=2)
    augment_file(reviews, b, seed=3, num_aug=2)
    augment_file(reviews, c, seed=4, num_aug=2)
    assert a.read_bytes() == b.read_bytes()
    assert a.read_bytes() != c.read_bytes()


def test_chat_rows_change_only_user_turns(tmp_path: Path) -> None:
    chats = [
        {
            "messages": [
                {"role": "system", "content": "Be a great and helpful assistant."},
                {"role": "user", "content": t},
                {"role": "assistant", "content": f"This review is {label}, a great answer."},
            ]
        }
        for t, label in REVIEWS
    ]
    path = write_jsonl(tmp_path / "chat.jsonl", chats)
    result = augment_rows(list(read_rows(path)), ops=EDA_OPS, num_aug=1, seed=0, keep_originals=False)
    assert result.rows
    changed_user = 0
    for row in result.rows:
        source = chats[int(row["provenance"]["source"].rsplit(":", 1)[1]) - 1]["messages"]
        assert row["messages"][0] == source[0] and row["messages"][2] == source[2]
        changed_user += row["messages"][1]["content"] != source[1]["content"]
        assert row["provenance"]["fields"] == ["messages.1.content"]
    assert changed_user == len(result.rows)
    # Asked for, assistant turns are edited too.
    both = augment_rows(list(read_rows(path)), ops=["swap"], roles=["user", "assistant"], keep_originals=False)
    assert any(r["messages"][2] != chats[0]["messages"][2] for r in both.rows)


def test_alpaca_output_is_never_edited_and_output_loads_for_training(tmp_path: Path) -> None:
    rows = [
        {
            "instruction": "Describe the movie in one great sentence.",
            "input": "A quick and funny film.",
            "output": "A great movie.",
        },
        {"instruction": "Explain why the story is boring.", "input": "", "output": "The plot is dull."},
    ]
    path = write_jsonl(tmp_path / "alpaca.jsonl", rows)
    out = tmp_path / "alpaca_aug.jsonl"
    augment_file(path, out, ops=["synonym", "swap"], num_aug=2)
    written = read_jsonl(out)
    for row in written:
        line = int(row["provenance"]["source"].rsplit(":", 1)[1])
        assert row["output"] == rows[line - 1]["output"]
    examples, rejects = load_examples(out)  # ready for data.train: same shape as the input
    assert len(examples) == len(written) and not rejects


def test_csv_in_csv_out(tmp_path: Path) -> None:
    path = tmp_path / "reviews.csv"
    path.write_text("text,label\n" + "".join(f'"{t}",{label}\n' for t, label in REVIEWS), encoding="utf-8")
    out = tmp_path / "out.csv"
    augment_file(path, out, ops=["synonym"])
    rows = list(read_rows(out))
    assert all(json.loads(r.data["provenance"])["op"] in ("original", "synonym") for r in rows)
    assert sorted(r.data["label"] for r in rows if json.loads(r.data["provenance"])["op"] == "original") == sorted(
        label for _, label in REVIEWS
    )


def test_unchanged_variants_are_rejected_with_a_reason(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "x.jsonl", [{"text": "zyx qwv"}])
    result = augment_rows(list(read_rows(path)), ops=["synonym"], keep_originals=False)
    assert result.rows == [] and len(result.rejects) == 1
    assert result.rejects[0]["reason"] == "unchanged: no word of the text has a synonym in the thesaurus"


# --------------------------------------------------------------------------- model operations


def test_paraphrase_and_backtranslation_with_an_injected_generator(reviews: Path) -> None:
    calls: list[str] = []

    def fake(conversations: Any) -> list[str]:
        replies = []
        for c in conversations:
            prompt = c[-1]["content"]
            calls.append(prompt)
            text = prompt.split("Text: ", 1)[1]
            if prompt.startswith("Rewrite"):
                replies.append("" if "terrible" in text else f"Rewritten text: In other words, {text}")
            elif "into German" in prompt:
                replies.append(f"[de] {text}")
            else:
                replies.append(text.replace("[de] ", "") + " Indeed.")
        return replies

    rows = list(read_rows(reviews))
    result = augment_rows(
        rows,
        ops=["paraphrase", "backtranslate"],
        generator=fake,
        model_name="fake",
        pivot="German",
        keep_originals=False,
    )
    para = [r for r in result.rows if r["provenance"]["op"] == "paraphrase"]
    back = [r for r in result.rows if r["provenance"]["op"] == "backtranslate"]
    assert len(para) == len(REVIEWS) - 1 and len(back) == len(REVIEWS)
    assert para[0]["text"] == f"In other words, {REVIEWS[0][0]}"  # the "Rewritten text:" label is cut
    assert [r["reason"] for r in result.rejects] == ["text: the model replied with nothing"]
    assert back[0]["text"] == REVIEWS[0][0] + " Indeed."
    assert back[0]["provenance"]["pivot_text"] == [f"[de] {REVIEWS[0][0]}"]
    assert back[0]["provenance"]["params"] == {"model": "fake", "pivot": "German"}
    for r in result.rows:  # labels stay with their rows
        assert r["label"] == REVIEWS[int(r["provenance"]["source"].rsplit(":", 1)[1]) - 1][1]
    assert len(calls) == len(REVIEWS) * 3


def test_model_ops_on_a_real_tiny_model(tiny_model_dir: Path, reviews: Path) -> None:
    from tunewise.data import ModelGenerator

    generator = ModelGenerator(name=str(tiny_model_dir), max_new_tokens=12, seed=0)
    rows = list(read_rows(reviews))[:2]
    first = augment_rows(rows, ops=["paraphrase", "backtranslate"], generator=generator, keep_originals=False)
    # Whatever a random model says, every attempt is written or rejected, and labels stay.
    assert len(first.rows) + len(first.rejects) == 4
    assert all(r["label"] in ("positive", "negative") for r in first.rows)
    generator.reseed(0)
    again = augment_rows(rows, ops=["paraphrase", "backtranslate"], generator=generator, keep_originals=False)
    assert again.rows == first.rows and again.rejects == first.rejects


def test_model_ops_need_a_generator(reviews: Path) -> None:
    with pytest.raises(TunewiseError, match="need a generation model"):
        augment_rows(list(read_rows(reviews)), ops=["paraphrase"])
    with pytest.raises(TunewiseError, match="unknown operation 'shuffle'"):
        augment_rows(list(read_rows(reviews)), ops=["shuffle"])


# --------------------------------------------------------------------------- bad input


def test_non_utf8_bytes_are_named_by_line(tmp_path: Path) -> None:
    path = tmp_path / "latin1.jsonl"
    path.write_bytes(b'{"text": "fine", "label": "a"}\n{"text": "caf\xe9", "label": "b"}\n')
    with pytest.raises(DataError, match=r"latin1.jsonl:2: not UTF-8 text \(byte 0xe9 at column 14"):
        augment_file(path, tmp_path / "out.jsonl")


def test_mixed_schemas_are_named_by_line(tmp_path: Path) -> None:
    path = write_jsonl(
        tmp_path / "mixed.jsonl", [{"text": "a great film", "label": "pos"}, {"instruction": "Say hi", "output": "Hi"}]
    )
    with pytest.raises(DataError, match=r"mixed.jsonl:2: mixed schemas .*/mixed.jsonl:1 looks like 'text'"):
        augment_file(path, tmp_path / "out.jsonl")


def test_a_non_text_field_and_an_invalid_line_are_named(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "num.jsonl", [{"text": "a great film"}, {"text": 42}])
    with pytest.raises(DataError, match=r"num.jsonl:2: `text` must be text, not a number"):
        augment_file(path, tmp_path / "out.jsonl")
    broken = tmp_path / "broken.jsonl"
    broken.write_text('{"text": "ok"}\n{"text": \n', encoding="utf-8")
    with pytest.raises(DataError, match=r"broken.jsonl:2: not valid JSON"):
        augment_file(broken, tmp_path / "out.jsonl")
    with pytest.raises(DataError, match=r"no field 'body'"):
        augment_file(path, tmp_path / "out.jsonl", fields=["body"])


def test_cli_augment(reviews: Path, tmp_path: Path) -> None:
    out = tmp_path / "cli.jsonl"
    result = CliRunner().invoke(
        app,
        ["data", "augment", str(reviews), "--out", str(out), "--ops", "synonym,swap", "--num-aug", "2", "--seed", "1"],
    )
    assert result.exit_code == 0, result.output
    assert f"{len(REVIEWS)} rows in" in result.output
    rows = read_jsonl(out)
    assert len(rows) - len(REVIEWS) + len(read_jsonl(rejects_path(out))) == len(REVIEWS) * 2 * 2


@pytest.mark.integration
def test_backtranslation_on_the_default_model(default_model_dir: Path, tmp_path: Path) -> None:
    from tunewise.data import ModelGenerator

    rows = [{"text": "The film was wonderful and the music was beautiful.", "label": "positive"}]
    path = write_jsonl(tmp_path / "one.jsonl", rows)
    generator = ModelGenerator(name=str(default_model_dir), max_new_tokens=24, temperature=0, seed=0)
    result = augment_rows(
        list(read_rows(path)), ops=["backtranslate", "synonym"], generator=generator, keep_originals=False
    )
    assert len(result.rows) + len(result.rejects) == 2
    back = next(
        r
        for r in result.rows + [x["row"] | {"provenance": x["provenance"]} for x in result.rejects]
        if r["provenance"]["op"] == "backtranslate"
    )
    assert back["label"] == "positive" and back["provenance"]["pivot_text"][0].strip()


def test_a_row_with_nothing_to_edit_is_reported_for_every_attempt(tmp_path: Path) -> None:
    path = write_jsonl(
        tmp_path / "c.jsonl",
        [
            {"messages": [{"role": "user", "content": "a great film"}, {"role": "assistant", "content": "yes"}]},
            {"messages": [{"role": "system", "content": "s"}, {"role": "assistant", "content": "only me"}]},
        ],
    )

    def echo(conversations: Any) -> list[str]:
        return ["In other words: " + c[-1]["content"].split("Text: ", 1)[1] for c in conversations]

    result = augment_rows(
        list(read_rows(path)), ops=["synonym", "paraphrase"], generator=echo, num_aug=2, keep_originals=False
    )
    second = [r for r in result.rejects if r["source"].endswith(":2")]
    assert len(second) == 4 and all(r["reason"].startswith("nothing to edit: no user turn") for r in second)
    assert len(result.rows) + len(result.rejects) == 2 * 2 * 2
