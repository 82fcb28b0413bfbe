"""Self-synthesized general data: the seed prompts, real greedy generation, the cache."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import torch
from guard_helpers import method_model, write_jsonl

from tunewise.config import Config
from tunewise.errors import DataError
from tunewise.evaluation.suite import suite_texts
from tunewise.guard.synth import model_fingerprint, read_prompts, synthesize
from tunewise.testing import tiny_model, tiny_tokenizer


def _answering(stops: bool) -> tuple[torch.nn.Module, str]:
    """A real tiny model wired so that its greedy answer to anything is one word, then the
    end-of-turn token (`stops`) — or that word forever. The attention and MLP outputs are zeroed,
    so the last hidden state is the input token's embedding, and the head maps embeddings to
    next tokens: any token -> WORD, WORD -> end of turn (or WORD again)."""
    tok = tiny_tokenizer()
    word = tok.encode("hello", add_special_tokens=False)[0]
    model = tiny_model(seed=0, tie_word_embeddings=False)
    with torch.no_grad():
        for layer in model.model.layers:
            layer.self_attn.o_proj.weight.zero_()
            layer.mlp.down_proj.weight.zero_()
        embed, head = model.model.embed_tokens.weight, model.lm_head.weight
        embed.zero_()
        embed[:, 0] = 1.0  # every token reads as direction 0 ...
        embed[word] = 0.0
        embed[word, 1] = 1.0  # ... but WORD reads as direction 1
        head.zero_()
        head[word, 0] = 1.0
        head[tok.eos_token_id if stops else word, 1] = 1.0
    return model, tok.decode([word]).strip()


def test_the_seed_set_is_varied_unique_and_shares_nothing_with_the_suites() -> None:
    prompts = read_prompts(None)
    assert len(prompts) >= 150
    assert len(set(prompts)) == len(prompts)
    suites = suite_texts(Config(eval={"suites": ["general_knowledge", "chat", "safety", "bias_pairs"]}))

    # No 6-word passage of any suite item appears in a seed prompt (stricter than the data check's 8).
    def grams(text: str) -> set[tuple[str, ...]]:
        words = re.findall(r"\w+", text.lower())
        return {tuple(words[i : i + 6]) for i in range(len(words) - 5)}

    seed_grams = set().union(*(grams(p) for p in prompts))
    shared = [t for _, texts in suites for t in texts if grams(t) & seed_grams]
    assert shared == []
    suite_prompts = {t.strip().lower() for _, texts in suites for t in texts}
    assert not suite_prompts & {p.lower() for p in prompts}
    assert read_prompts(None, limit=5) == prompts[:5]


def test_the_seed_set_shares_nothing_with_the_monitors_neutral_prompts() -> None:
    # The forgetting monitor measures KL to the base on its neutral prompts; replay must not train on them.
    from importlib import resources

    neutral_file = resources.files("tunewise.guard").joinpath("neutral_prompts.jsonl")
    if not neutral_file.is_file():
        pytest.skip("the monitor's neutral prompt set is not in this tree")
    neutral = [
        json.loads(line)["prompt"] for line in neutral_file.read_text(encoding="utf-8").splitlines() if line.strip()
    ]

    def grams(text: str) -> set[tuple[str, ...]]:
        words = re.findall(r"\w+", text.lower())
        return {tuple(words[i : i + 5]) for i in range(len(words) - 4)} or {tuple(words)}

    seed_grams = set().union(*(grams(p) for p in read_prompts(None)))
    assert [p for p in neutral if grams(p) & seed_grams] == []


def test_a_prompt_file_is_read_and_a_bad_row_named(tmp_path: Path) -> None:
    good = write_jsonl(tmp_path / "p.jsonl", [{"prompt": "Say hi."}, {"prompt": " Say bye. "}])
    assert read_prompts(str(good)) == ["Say hi.", "Say bye."]
    bad = write_jsonl(tmp_path / "bad.jsonl", [{"prompt": "ok"}, {"question": "no prompt"}])
    with pytest.raises(DataError, match=r"bad.jsonl:2.*prompt"):
        read_prompts(str(bad))


def test_finished_answers_train_their_end_of_turn_and_cut_off_ones_do_not(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tunewise.data import render_all
    from tunewise.guard.synth import mask_unfinished

    monkeypatch.setenv("TUNEWISE_HOME", str(tmp_path / "home"))
    tok = tiny_tokenizer()
    model, word = _answering(stops=True)
    done = synthesize(model, tok, ["Say hi.", "Name a colour."], max_new_tokens=4, batch_size=2, log=lambda _: None)
    assert done.dropped == 0 and done.unfinished == set()
    assert [ex.messages for ex in done.examples] == [
        ({"role": "user", "content": "Say hi."}, {"role": "assistant", "content": word}),
        ({"role": "user", "content": "Name a colour."}, {"role": "assistant", "content": word}),
    ]

    never, _ = _answering(stops=False)
    cut = synthesize(never, tok, ["Say hi.", "Name a colour."], max_new_tokens=3, batch_size=2, log=lambda _: None)
    assert cut.unfinished == {"self-synth:1", "self-synth:2"}
    assert all(ex.messages[-1]["content"].count(word) == 3 for ex in cut.examples)

    eot = tok.eos_token_id
    for synth, trains_end in ((done, True), (cut, False)):
        rows, _, _ = render_all(synth.examples, tok, max_length=256)
        masked = mask_unfinished(rows, synth.unfinished, eot)
        for before, row in zip(rows, masked):
            trained = [t for t, label in zip(row.input_ids, row.labels) if label != -100]
            assert (eot in trained) == trains_end
            assert trained.count(tok.encode(word, add_special_tokens=False)[0]) >= 1  # the answer still trains
            assert row.n_trained == sum(label != -100 for label in row.labels)
            assert before.n_trained - row.n_trained == (0 if trains_end else 1)


def test_cache_hits_skip_generation_and_follow_the_model(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TUNEWISE_HOME", str(tmp_path / "home"))
    tok = tiny_tokenizer()
    model, _ = _answering(stops=True)
    prompts = ["Say hi.", "Name a colour.", "Describe rain."]
    first = synthesize(model, tok, prompts, max_new_tokens=4, batch_size=2, log=lambda _: None)
    assert not first.cached and len(first.examples) == 3

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("generate ran although the answers are cached")

    monkeypatch.setattr(model, "generate", refuse)
    again = synthesize(model, tok, prompts, max_new_tokens=4, batch_size=2, log=lambda _: None)
    assert again.cached and again.examples == first.examples and again.cache == first.cache
    changed, _ = _answering(stops=True)
    with torch.no_grad():
        changed.model.norm.weight.mul_(2.0)  # same answers, but another model: another cache entry
    other = synthesize(changed, tok, prompts, max_new_tokens=4, batch_size=2, log=lambda _: None)
    assert not other.cached and other.cache != first.cache


def test_fingerprint_is_the_base_model_for_adapters_and_full_fine_tuning() -> None:
    base = model_fingerprint(tiny_model(seed=0))
    assert model_fingerprint(tiny_model(seed=1)) != base
    lora = method_model("lora", seed=7)
    assert model_fingerprint(lora) == base  # the adapter and its seed are not the base model
    full = method_model("full")
    with torch.no_grad():
        for p in full.parameters():
            p.add_(1.0)
    assert model_fingerprint(full) == base  # the kept originals are the base
    assert model_fingerprint(full, trainable=True) != model_fingerprint(method_model("full"), trainable=True)
