"""Few-shot and retrieval baselines: what goes in the prompt, and that every variant scores the same answers."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tunewise.config import BaselinesConfig, EvalConfig, LoraConfig, load_config
from tunewise.data import IGNORE_INDEX, Example, render_all
from tunewise.errors import ConfigError
from tunewise.evaluation.baselines import BM25Index, ShotPool, build_row_variants, prompt_text, score_eval_rows
from tunewise.evaluation.compare import loss_on
from tunewise.evaluation.suite_eval import evaluate_suites
from tunewise.methods import apply_lora
from tunewise.testing import tiny_model, tiny_tokenizer


def chat(source: str, *turns: str, system: str | None = None) -> Example:
    roles = ["user", "assistant"] * len(turns)
    messages = [{"role": r, "content": t} for r, t in zip(roles, turns)]
    if system is not None:
        messages.insert(0, {"role": "system", "content": system})
    return Example(source=source, messages=tuple(messages))


TRAIN = [
    chat(f"train.jsonl:{i}", f"What is the capital of country {i}?", f"The capital is city {i}.") for i in range(1, 13)
]
EVAL = [
    chat("eval.jsonl:1", "Which city is the capital of country 3?", "It is city 3."),
    chat("eval.jsonl:2", "Name a colour.", "Blue.", "And another one?", "Green.", system="Be brief."),
    chat("eval.jsonl:3", "Which city is the capital of country 11?", "City 11."),
]


def scored_tokens(row) -> list[int]:
    return [t for t, label in zip(row.input_ids, row.labels) if label != IGNORE_INDEX]


def test_bm25_returns_the_planted_neighbour_nearest_first() -> None:
    docs = [f"a question about topic {w} and some filler words" for w in ("apples", "rivers", "trains", "clouds")]
    docs.insert(2, "Which element has the symbol He? Helium, a noble gas.")
    index = BM25Index(docs)
    assert index.nearest(["the symbol He"], k=3)[0][0] == 2
    assert index.nearest(["trains"], k=1) == [[3]]
    # Excluded documents are never returned, and k still holds when enough remain.
    assert 2 not in index.nearest(["the symbol He"], k=3, exclude=[{2}])[0]
    assert len(index.nearest(["the symbol He"], k=3, exclude=[{2}])[0]) == 3
    # A query with no word in common still gets k documents; k beyond the index gets them all.
    assert len(index.nearest(["???"], k=2)[0]) == 2
    assert sorted(index.nearest(["rivers"], k=50)[0]) == [0, 1, 2, 3, 4]


def test_retrieval_query_is_the_prompt_never_the_answer() -> None:
    row = chat("x:1", "first question", "first answer", "second question", "second answer")
    assert prompt_text(row.messages) == "first question\nsecond question"


def test_few_shot_prompt_holds_k_training_examples_as_earlier_chat_turns_and_is_seeded() -> None:
    tok = tiny_tokenizer()
    pool = ShotPool(TRAIN, BaselinesConfig(few_shot=3, retrieval=0, seed=7))
    variants = build_row_variants(EVAL, pool, tok, train_on="all_assistant")
    assert set(variants.rows) == {"zero_shot", "few_shot"} and len(variants) == 3
    train_turns = {(m["role"], m["content"]) for ex in TRAIN for m in ex.messages}
    shots = None
    for zero, shot in zip(variants.examples["zero_shot"], variants.examples["few_shot"]):
        own = list(zero.messages)
        head = own[:1] if own[0]["role"] == "system" else []
        messages = list(shot.messages)
        assert messages[: len(head)] == head and messages[-(len(own) - len(head)) :] == own[len(head) :]
        context = messages[len(head) : len(messages) - (len(own) - len(head))]
        assert [m["role"] for m in context] == ["user", "assistant"] * 3
        assert all((m["role"], m["content"]) in train_turns for m in context)
        shots = shots or context
        assert context == shots  # the same examples in front of every row: one fixed prompt
    assert variants.shots["few_shot"] == [3, 3, 3]
    again = build_row_variants(
        EVAL, ShotPool(TRAIN, BaselinesConfig(few_shot=3, retrieval=0, seed=7)), tok, train_on="all_assistant"
    )
    assert again.examples["few_shot"] == variants.examples["few_shot"]
    other = build_row_variants(
        EVAL, ShotPool(TRAIN, BaselinesConfig(few_shot=3, retrieval=0, seed=8)), tok, train_on="all_assistant"
    )
    assert other.examples["few_shot"] != variants.examples["few_shot"]


def test_retrieval_puts_the_nearest_example_last_next_to_the_question() -> None:
    variants = build_row_variants(
        EVAL, ShotPool(TRAIN, BaselinesConfig(few_shot=0, retrieval=2)), tiny_tokenizer(), train_on="all_assistant"
    )
    first = variants.examples["retrieval"][0].messages
    assert first[-3]["content"] == "The capital is city 3." and first[-2]["content"].startswith("Which city")


@pytest.mark.parametrize("train_on", ["all_assistant", "last_assistant", "everything"])
def test_every_variant_scores_exactly_the_same_answer_tokens(train_on: str) -> None:
    tok = tiny_tokenizer()
    variants = build_row_variants(
        EVAL, ShotPool(TRAIN, BaselinesConfig(few_shot=3, retrieval=3)), tok, train_on=train_on
    )
    assert not variants.left_out
    for i in range(len(variants)):
        zero = variants.rows["zero_shot"][i]
        for name in ("few_shot", "retrieval"):
            row = variants.rows[name][i]
            assert scored_tokens(row) == scored_tokens(zero), (name, i)
            assert row.n_trained == zero.n_trained and row.n_tokens > zero.n_tokens
    # The zero-shot rows score what `compare` scores, for the usual settings.
    if train_on != "everything":
        plain, _, _ = render_all(EVAL, tok, train_on=train_on)
        assert [scored_tokens(r) for r in plain] == [scored_tokens(r) for r in variants.rows["zero_shot"]]
    # The two-turn row keeps both of its answers under all_assistant, only the last under last_assistant.
    answers = tok.decode(scored_tokens(variants.rows["few_shot"][1]))
    assert ("Blue." in answers) == (train_on != "last_assistant") and "Green." in answers
    assert "The capital is" not in answers  # the examples' answers are context, never scored


def test_the_eval_row_itself_is_never_put_in_its_prompt() -> None:
    # The eval row also sits in the training data (same file:line, and an exact copy on another line):
    # it would be the nearest neighbour and is in every few-shot draw when k is the whole pool.
    row = chat("data.jsonl:5", "Which city is the capital of country 99?", "It is city 99.")
    copy = Example(source="data.jsonl:40", messages=row.messages)
    train = [*TRAIN, row, copy]
    pool = ShotPool(train, BaselinesConfig(few_shot=len(train), retrieval=len(train)))
    variants = build_row_variants([row], pool, tiny_tokenizer(), train_on="all_assistant")
    for name in ("few_shot", "retrieval"):
        context = variants.examples[name][0].messages[:-2]
        assert "It is city 99." not in [m["content"] for m in context], name
        assert variants.shots[name] == [len(TRAIN)]


def test_k_beyond_the_training_set_is_clamped_with_a_note() -> None:
    pool = ShotPool(TRAIN[:2], BaselinesConfig(few_shot=5, retrieval=1))
    assert pool.k == {"few_shot": 2, "retrieval": 1}
    assert pool.notes == ["eval.baselines.few_shot=5 but the training data has 2 chat rows: using 2"]
    text_only = ShotPool([Example(source="t:1", text="plain text")], BaselinesConfig())
    assert text_only.variants == () and len(text_only.notes) == 2 and "no chat rows" in text_only.notes[0]


def test_a_prompt_too_long_for_the_model_drops_the_farthest_examples() -> None:
    tok = tiny_tokenizer()
    pool = ShotPool(TRAIN, BaselinesConfig(few_shot=0, retrieval=6))
    full = build_row_variants(EVAL[:1], pool, tok, train_on="all_assistant")
    zero_len, full_len = full.rows["zero_shot"][0].n_tokens, full.rows["retrieval"][0].n_tokens
    limit = (zero_len + full_len) // 2
    cut = build_row_variants(EVAL[:1], pool, tok, train_on="all_assistant", max_tokens=limit)
    assert 0 < cut.shots["retrieval"][0] < 6 and cut.rows["retrieval"][0].n_tokens <= limit
    # The nearest example (last, next to the question) is the one kept longest.
    assert cut.examples["retrieval"][0].messages[-3] == full.examples["retrieval"][0].messages[-3]
    assert scored_tokens(cut.rows["retrieval"][0]) == scored_tokens(full.rows["zero_shot"][0])


def test_scores_have_intervals_and_an_untrained_adapter_ties_with_the_base() -> None:
    """LoRA starts with B = 0: tuned == base exactly, and base matches `compare`'s loss on the same rows."""
    tok = tiny_tokenizer()
    model = apply_lora(tiny_model(), LoraConfig(r=4))
    pool = ShotPool(TRAIN, BaselinesConfig())
    result = score_eval_rows(
        model,
        tok,
        EVAL,
        pool,
        train_on="all_assistant",
        batch_size=2,
        generations=2,
        max_new_tokens=3,
        bootstrap=200,
        log=lambda _: None,
    )
    assert result is not None and result["rows"] == 3 and result["left_out"] == 0
    assert list(result["variants"]) == ["base", "few_shot", "retrieval", "tuned"]
    assert result["variants"]["tuned"]["loss"] == result["variants"]["base"]["loss"]
    assert result["tuned_vs"]["base"] == {"value": 0.0, "low": 0.0, "high": 0.0, "p_value": 1.0}
    for name in ("few_shot", "retrieval"):
        loss = result["variants"][name]["loss"]
        assert loss["low"] <= loss["value"] <= loss["high"] and result["variants"][name]["examples"] == 3
        d = result["tuned_vs"][name]
        assert d["value"] == pytest.approx(result["variants"]["tuned"]["loss"]["value"] - loss["value"])
    rows, _, _ = render_all(EVAL, tok)
    assert result["variants"]["base"]["loss"]["value"] == pytest.approx(
        loss_on(model, rows, pad_id=tok.pad_token_id, batch_size=2).loss, rel=1e-5
    )
    assert result["tokens"] == sum(r.n_trained for r in rows)
    assert [s["prompt"] for s in result["samples"]] == ["Which city is the capital of country 3?", "And another one?"]
    assert all("few_shot" in s and "retrieval" in s for s in result["samples"])
    json.dumps(result)


def test_task_suites_get_the_baselines_and_other_suites_do_not(tmp_path: Path) -> None:
    mc = tmp_path / "capitals_mc.jsonl"
    mc.write_text(
        "".join(
            json.dumps({"query": f"Capital of country {i}?", "choices": [f"city {i}", "city 0"], "gold": 0}) + "\n"
            for i in range(1, 5)
        )
    )
    gen = tmp_path / "capitals_gen.jsonl"
    gen.write_text(
        "".join(
            json.dumps({"prompt": f"Capital of country {i}?", "answers": [f"city {i}"]}) + "\n" for i in range(1, 4)
        )
    )
    config = EvalConfig(
        suites=[str(mc), str(gen), {"name": "general_knowledge", "limit": 4}],
        max_new_tokens=3,
        batch_size=4,
        bootstrap=200,
    )
    model = apply_lora(tiny_model(), LoraConfig(r=4))
    lines: list[str] = []
    results = evaluate_suites(
        model, tiny_tokenizer(), config, log=lines.append, pool=ShotPool(TRAIN, BaselinesConfig())
    )
    by_name = {r.name: r for r in results}
    assert "baselines" not in by_name["general_knowledge"].extra
    for name, metric in (("capitals_mc", "acc_norm"), ("capitals_gen", "contains")):
        block = by_name[name].extra["baselines"]
        assert block["metric"] == metric and list(block["variants"]) == ["base", "few_shot", "retrieval", "tuned"]
        assert set(block["tuned_vs"]) == {"base", "few_shot", "retrieval"}
        assert block["variants"]["few_shot"]["examples"] == 3
        assert block["variants"]["tuned"]["value"] == block["variants"]["base"]["value"]
    assert any("3 retrieved training examples" in line for line in lines)
    json.dumps([r.to_dict() for r in results])


def test_bad_baseline_settings_name_their_keys(tmp_path: Path) -> None:
    config = tmp_path / "c.yaml"
    config.write_text("eval:\n  baselines:\n    few_shot: -1\n    retrieval: three\n    fewshot: 2\n")
    with pytest.raises(ConfigError) as err:
        load_config(config)
    text = str(err.value)
    assert "eval.baselines.few_shot (" in text and "greater than or equal to 0" in text
    assert "eval.baselines.retrieval (" in text
    assert "eval.baselines.fewshot" in text and "did you mean 'few_shot'" in text
    assert load_config(
        None, ["eval.baselines.few_shot=0", "eval.baselines.retrieval=5"]
    ).eval.baselines == BaselinesConfig(few_shot=0, retrieval=5)


def test_eval_writes_the_baselines_and_the_report_answers_the_question(tmp_path: Path, tiny_model_dir: Path) -> None:
    from tunewise.report import build_report
    from tunewise.run import evaluate, train

    rows = [
        {
            "messages": [
                {"role": "user", "content": f"What is the capital of country {i}?"},
                {"role": "assistant", "content": f"The capital is city {i}."},
            ]
        }
        for i in range(24)
    ]
    (tmp_path / "train.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (tmp_path / "task.jsonl").write_text(
        "".join(
            json.dumps({"query": f"Capital of country {i}?", "choices": [f"city {i}", "city 99"], "gold": 0}) + "\n"
            for i in range(4)
        )
    )
    config = tmp_path / "tiny.yaml"
    config.write_text(
        f"model: {{name: {tiny_model_dir}}}\n"
        "data: {train: train.jsonl, split: {eval: 0.25}, max_length: 128}\n"
        "method: {r: 4, alpha: 8, dropout: 0.0}\n"
        "train: {max_steps: 2, batch_size: 4, eval_every: 0, save_every: 2, precision: fp32}\n"
        "eval: {generations: 1, max_new_tokens: 4, bootstrap: 200, suites: [task.jsonl],\n"
        "       baselines: {few_shot: 2, retrieval: 30}}\n"
        f"output: {{dir: {tmp_path / 'runs'}, tracking: []}}\n"
    )
    run_dir = train(load_config(config), config)
    summary = evaluate(run_dir)
    block = json.loads((run_dir / "eval_summary.json").read_text())["baselines"]
    assert block == summary["baselines"]
    assert block["few_shot"]["k"] == 2 and block["retrieval"]["k"] == 18  # 18 training rows: clamped, with a note
    assert block["notes"] == ["eval.baselines.retrieval=30 but the training data has 18 chat rows: using 18"]
    assert block["eval_rows"]["rows"] == 6 and len(block["eval_rows"]["samples"]) == 1
    assert [s["name"] for s in block["suites"]] == ["task"]
    assert "baselines" not in summary["suites"][0]["extra"]  # kept in one place
    page = build_report(run_dir).read_text(encoding="utf-8")
    section = page.split('<section id="baselines">')[1].split("</section>")[0]
    assert "not measured" not in section and "Task suite task" in section and "could not be rendered" not in page
    # Turned off: no baselines key, and the report says how to measure them.
    assert "baselines" not in evaluate(run_dir, ["eval.baselines.few_shot=0", "eval.baselines.retrieval=0"])


def test_zero_shot_losses_scored_by_compare_are_reused_only_for_identical_rows() -> None:
    tok = tiny_tokenizer()
    model = tiny_model()
    pool = ShotPool(TRAIN, BaselinesConfig(few_shot=1, retrieval=0))
    kwargs = dict(
        train_on="all_assistant", batch_size=2, generations=0, max_new_tokens=2, bootstrap=100, log=lambda _: None
    )
    rows, _, _ = render_all(EVAL, tok)
    marked = {
        "base": [(2.0 * r.n_trained, r.n_trained) for r in rows],
        "tuned": [(1.0 * r.n_trained, r.n_trained) for r in rows],
    }
    reused = score_eval_rows(model, tok, EVAL, pool, scored=(rows, marked), **kwargs)
    assert reused["variants"]["base"]["loss"]["value"] == 2.0 and reused["variants"]["tuned"]["loss"]["value"] == 1.0
    # Rows cut by data.max_length score fewer tokens: computed afresh, never mixed in.
    cut, _, _ = render_all(EVAL, tok, max_length=20)
    fresh = score_eval_rows(model, tok, EVAL, pool, scored=(cut, marked), **kwargs)
    assert fresh["variants"]["base"]["loss"]["value"] != 2.0
    plain = score_eval_rows(model, tok, EVAL, pool, **kwargs)
    assert fresh["variants"]["base"]["loss"] == plain["variants"]["base"]["loss"]
