"""Suites scored for base and tuned: structure, pairing invariants and bad input."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tunewise.config import EvalConfig, LoraConfig
from tunewise.errors import ConfigError, DataError
from tunewise.evaluation.suite_eval import evaluate_suites, sentence_logliks
from tunewise.methods import apply_lora
from tunewise.testing import tiny_model, tiny_tokenizer

BUILTINS = ["general_knowledge", "chat", "safety", "bias_pairs"]


def eval_config(**kw) -> EvalConfig:
    suites = kw.pop("suites", [{"name": n, "limit": 6} for n in BUILTINS])
    return EvalConfig(suites=suites, max_new_tokens=4, batch_size=4, bootstrap=200, **kw)


def test_untrained_adapter_scores_exactly_like_the_base() -> None:
    """LoRA starts with B = 0, so tuned == base on every item and every delta is exactly 0."""
    model = apply_lora(tiny_model(), LoraConfig(r=4))
    results = evaluate_suites(model, tiny_tokenizer(), eval_config(), log=lambda _: None)
    names = {r.name for r in results}
    assert {"general_knowledge", "chat", "bias_pairs"} <= names and names & {"safety:harmful", "safety:benign"}
    for r in results:
        assert r.tuned == r.base, r.name
        assert r.delta["value"] == 0 and r.delta["low"] == 0 and r.delta["high"] == 0, r.name
        assert 0 <= r.base["low"] <= r.base["value"] <= r.base["high"] <= 1
    roles = {r.name: r.role for r in results}
    assert roles["general_knowledge"] == roles["chat"] == "general" and roles["bias_pairs"] == "bias"
    json.dumps([r.to_dict() for r in results])  # the summary file must be able to hold them


def test_base_only_has_no_tuned_side() -> None:
    results = evaluate_suites(
        tiny_model(),
        tiny_tokenizer(),
        eval_config(suites=[{"name": "general_knowledge", "limit": 8}]),
        sides=("base",),
        log=lambda _: None,
    )
    assert len(results) == 1 and results[0].tuned is None and results[0].delta is None
    assert results[0].n == 8 and results[0].metric == "acc_norm"


def test_user_suite_file_is_a_task_suite_with_its_metric(tmp_path: Path) -> None:
    path = tmp_path / "qa.jsonl"
    path.write_text("".join(json.dumps({"prompt": f"Say {w}.", "reference": w}) + "\n" for w in ("yes", "no", "maybe")))
    results = evaluate_suites(
        tiny_model(),
        tiny_tokenizer(),
        eval_config(suites=[{"name": str(path), "metric": "exact_match"}]),
        sides=("base",),
        log=lambda _: None,
    )
    assert results[0].role == "task" and results[0].metric == "exact_match" and results[0].n == 3
    assert len(results[0].extra["samples"]) == 3


def test_unknown_metric_is_a_config_error_with_suggestion(tmp_path: Path) -> None:
    path = tmp_path / "qa.jsonl"
    path.write_text(json.dumps({"prompt": "Say yes.", "reference": "yes"}) + "\n")
    with pytest.raises(ConfigError, match="did you mean"):
        evaluate_suites(
            tiny_model(),
            tiny_tokenizer(),
            eval_config(suites=[{"name": str(path), "metric": "exact_mach"}]),
            log=lambda _: None,
        )


def test_bad_suite_file_names_the_line(tmp_path: Path) -> None:
    path = tmp_path / "mc.jsonl"
    path.write_text(
        json.dumps({"query": "Q?", "choices": ["a", "b"], "gold": 0})
        + "\n"
        + json.dumps({"query": "Q2?", "choices": ["a", "b"], "gold": 5})
        + "\n"
    )
    with pytest.raises(DataError, match=r"mc\.jsonl:2"):
        evaluate_suites(tiny_model(), tiny_tokenizer(), eval_config(suites=[str(path)]), log=lambda _: None)


def test_sentence_logliks_ignore_padding() -> None:
    model, tok = tiny_model(), tiny_tokenizer()
    short, long = "The cat sat.", "The cat sat on the mat while the dog slept in the warm sun all day."
    alone = sentence_logliks(model, tok, [short])[0]
    batched = sentence_logliks(model, tok, [short, long])[0]
    assert alone == pytest.approx(batched, abs=1e-4)
    assert alone < 0
