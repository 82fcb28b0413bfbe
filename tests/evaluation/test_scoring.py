"""Multiple-choice scoring: the fast path equals the naive reference, and the conventions hold."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from tunewise.errors import DataError
from tunewise.evaluation import scoring
from tunewise.evaluation.scoring import (
    EncodedItem,
    ItemScore,
    MCItem,
    encode_item,
    mc_accuracy,
    score_multiple_choice,
    score_naive,
)
from tunewise.testing import tiny_model, tiny_tokenizer

ARC_EASY = Path(__file__).resolve().parents[3] / "shared" / "data" / "arc" / "arc_easy_test.jsonl"

# Different numbers of choices (2 to 5), short and long queries, one-token and many-token choices
# side by side, an empty query (its context is the lone BOS token) and a one-token query.
ITEMS = [
    {
        "query": "Question: What is the capital of France?",
        "choices": ["Paris", "London", "Berlin", "the city of lights, on the river Seine, up north"],
        "gold": 0,
    },
    {"query": "Water boils at", "choices": ["100 degrees Celsius at sea level", "0"], "gold": 0},
    {"query": "Q", "choices": ["a", "The quick brown fox jumps over the lazy dog. " * 3], "gold": 1},
    {"query": "", "choices": ["hello", "world", "!"], "gold": 1},
    {
        "query": 'Translate the following sentence into French: "Good morning, how are you today?" '
        "Please answer the question in one sentence. Thank you!",
        "choices": ["Bonjour", "Bonsoir, comment allez-vous", "Salut", "Merci", "Au revoir mon ami"],
        "gold": 0,
    },
    {"query": "List three colors:", "choices": ["red, green, blue", "one, two, three"], "gold": 0},
]


@pytest.fixture(scope="module")
def model():
    return tiny_model(seed=0)


@pytest.fixture(scope="module")
def tokenizer():
    return tiny_tokenizer()


@pytest.fixture(scope="module")
def naive(model, tokenizer) -> list[ItemScore]:
    return score_naive(model, tokenizer, ITEMS)


def _max_diff(a: list[ItemScore], b: list[ItemScore]) -> float:
    return max(abs(x - y) for sa, sb in zip(a, b) for x, y in zip(sa.logliks, sb.logliks))


@pytest.mark.parametrize("batch_size", [1, 2, 4, 100])
def test_fast_equals_naive(model, tokenizer, naive, batch_size):
    fast = score_multiple_choice(model, tokenizer, ITEMS, batch_size=batch_size, progress=False)
    assert len(fast) == len(ITEMS)
    assert _max_diff(naive, fast) < 1e-4
    for n, f in zip(naive, fast):
        assert (f.num_tokens, f.num_chars, f.gold) == (n.num_tokens, n.num_chars, n.gold)
        assert (f.pred_raw, f.pred_norm) == (n.pred_raw, n.pred_norm)


def test_choices_of_very_different_token_lengths(tokenizer, naive):
    counts = naive[2].num_tokens
    assert min(counts) == 1 and max(counts) > 20


def test_all_contexts_one_token(model, tokenizer):
    # No context pass at all (nothing to cache): the choice pass alone must still be right.
    items = [
        {"query": "", "choices": ["hello", "the sea"], "gold": 0},
        {"query": "Q", "choices": ["a", "b c d"], "gold": 1},
    ]
    fast = score_multiple_choice(model, tokenizer, items, batch_size=2, progress=False)
    assert _max_diff(score_naive(model, tokenizer, items), fast) < 1e-4


def test_padding_does_not_change_results(model, tokenizer):
    short = {"query": "Wat", "choices": ["er", "the sea"], "gold": 0}
    longer = [
        {
            "query": "Explain why the sky is blue. " * (4 + i),
            "choices": ["Because of scattering. " * (1 + i), "No."],
            "gold": 0,
        }
        for i in range(3)
    ]
    alone = score_multiple_choice(model, tokenizer, [short], batch_size=1, progress=False)[0]
    batched = score_multiple_choice(model, tokenizer, [*longer, short], batch_size=8, progress=False)[-1]
    assert max(abs(a - b) for a, b in zip(alone.logliks, batched.logliks)) < 1e-5


def test_one_forward_pass_per_batch(model, tokenizer):
    calls = []
    handle = model.register_forward_hook(lambda *_: calls.append(1))
    try:
        score_multiple_choice(model, tokenizer, ITEMS, batch_size=2, progress=False)
    finally:
        handle.remove()
    # 3 batches of 2 items (contexts and all choices together), plus the one plain pass that
    # checks the first batch.
    assert len(calls) == 3 + 1


@pytest.mark.parametrize("score_batch", [scoring._score_batch_packed, scoring._score_batch_cached])
def test_both_batch_paths_equal_naive(model, tokenizer, naive, score_batch):
    encoded = [encode_item(tokenizer, row) for row in ITEMS]
    with torch.inference_mode():
        for size in (1, len(encoded)):
            batches = [encoded[i : i + size] for i in range(0, len(encoded), size)]
            got = [values for batch in batches for values in score_batch(model, batch)]
            for score, values in zip(naive, got):
                assert max(abs(a - b) for a, b in zip(score.logliks, values)) < 1e-4


def _wrong(model, batch):
    return [[-1.0] * len(item.continuations) for item in batch]


def _refuses(model, batch):
    raise ValueError("this model takes no 4D mask")


@pytest.mark.parametrize("broken", [_wrong, _refuses])
def test_falls_back_to_the_cache_path_when_packing_fails(model, tokenizer, naive, monkeypatch, caplog, broken):
    monkeypatch.setattr(scoring, "_score_batch_packed", broken)
    fast = score_multiple_choice(model, tokenizer, ITEMS, batch_size=2, progress=False)
    assert _max_diff(naive, fast) < 1e-4
    assert "KV-cache path" in caplog.text


def test_eager_attention_packs_too(tokenizer, naive):
    eager = tiny_model(seed=0, attn_implementation="eager")
    assert eager.config._attn_implementation == "eager"
    fast = score_multiple_choice(eager, tokenizer, ITEMS, batch_size=3, progress=False)
    assert _max_diff(naive, fast) < 1e-4


def test_falls_back_when_attention_takes_no_custom_mask(tokenizer, monkeypatch):
    model = tiny_model(seed=0)
    monkeypatch.setattr(model.config, "_attn_implementation", "flash_attention_2", raising=False)
    assert not scoring._packing_supported(model)


def test_logliks_are_log_probabilities(naive):
    for score in naive:
        assert all(ll <= 0.0 for ll in score.logliks)
        assert all(torch.isfinite(torch.tensor(score.logliks)))


def test_acc_norm_divides_by_characters_not_tokens():
    item = EncodedItem(context=(5,), continuations=((1,) * 10, (2,)), num_chars=(5, 20), gold=1)
    score = ItemScore.from_logliks([-10.0, -12.0], item)
    # raw: -10 > -12; per character: -2 < -0.6; per token it would be -1 > -12.
    assert (score.pred_raw, score.pred_norm) == (0, 1)
    assert (score.correct_raw, score.correct_norm) == (False, True)
    assert score.num_tokens == (10, 1)


def test_char_counts_include_the_delimiter(tokenizer):
    item = encode_item(tokenizer, {"query": "Question: Why?", "choices": ["ab", "abcd"], "gold": 0})
    assert item.num_chars == (3, 5)


def test_continuation_is_the_tail_of_the_whole_encoding(tokenizer):
    query, choice = "What is the capital of France?", "The capital of France is Paris."
    item = encode_item(tokenizer, MCItem(query, (choice,), 0))
    whole = tokenizer(query + " " + choice, add_special_tokens=False).input_ids
    assert list(item.context) == tokenizer(query, add_special_tokens=False).input_ids
    assert list(item.context + item.continuations[0]) == whole


def test_boundary_merge_falls_back_to_encoding_the_continuation_alone(tokenizer):
    # "Fr" + "ance" merges into one token across the boundary in this tokenizer.
    encode = lambda s: tokenizer(s, add_special_tokens=False).input_ids  # noqa: E731
    query, choice = "The capital of Fr", "ance"
    whole, ctx = encode(query + choice), encode(query)
    assert whole[: len(ctx)] != ctx  # the premise of this test
    item = encode_item(tokenizer, MCItem(query, (choice,), 0), delimiter="")
    assert list(item.context) == ctx
    assert list(item.continuations[0]) == encode(choice)


def test_trailing_whitespace_moves_to_the_continuation(tokenizer):
    item = encode_item(tokenizer, MCItem("Answer: ", ("blue",), 0), delimiter="")
    encode = lambda s: tokenizer(s, add_special_tokens=False).input_ids  # noqa: E731
    assert list(item.context) == encode("Answer:")
    assert list(item.continuations[0]) == encode(" blue")
    assert item.num_chars == (5,)


def test_empty_query_uses_bos_as_context(tokenizer):
    item = encode_item(tokenizer, MCItem("", ("hello",), 0))
    assert item.context == (tokenizer.bos_token_id,)


def test_long_context_is_cut_from_the_left(tokenizer):
    item = encode_item(tokenizer, MCItem("The sea. " * 200, ("blue",), 0), max_length=64)
    assert len(item.context) + max(map(len, item.continuations)) <= 64
    full = encode_item(tokenizer, MCItem("The sea. " * 200, ("blue",), 0))
    assert item.context == full.context[-len(item.context) :]


@pytest.mark.parametrize(
    ("row", "message"),
    [
        ({"query": "q", "choices": ["a"]}, "lacks gold"),
        ({"query": "q", "choices": [], "gold": 0}, "non-empty list"),
        ({"query": "q", "choices": ["a", ""], "gold": 0}, "non-empty list"),
        ({"query": "q", "choices": ["a", "b"], "gold": 2}, "gold must be an index"),
        ({"query": 3, "choices": ["a"], "gold": 0}, "query must be a string"),
    ],
)
def test_malformed_items_name_the_item(model, tokenizer, row, message):
    with pytest.raises(DataError, match=message) as info:
        score_multiple_choice(model, tokenizer, [ITEMS[0], row], progress=False)
    assert "item 1" in str(info.value)


def test_training_mode_is_restored(tokenizer):
    model = tiny_model(seed=1).train()
    score_multiple_choice(model, tokenizer, ITEMS[:2], progress=False)
    assert model.training


def test_mc_accuracy():
    item = EncodedItem(context=(1,), continuations=((1,), (2,)), num_chars=(2, 2), gold=0)
    scores = [ItemScore.from_logliks([-1.0, -2.0], item), ItemScore.from_logliks([-2.0, -1.0], item)]
    result = mc_accuracy(scores)
    assert result["acc"] == result["acc_norm"] == 0.5
    assert result["n"] == 2
    assert result["acc_stderr"] == pytest.approx(0.5)


@pytest.mark.integration
def test_arc_easy_on_the_default_model(default_model_dir):
    from tunewise.models import load_model, load_tokenizer

    with ARC_EASY.open(encoding="utf-8") as fh:
        items = [json.loads(line) for _, line in zip(range(60), fh)]
    model = load_model(str(default_model_dir))
    tokenizer = load_tokenizer(str(default_model_dir))
    fast = score_multiple_choice(model, tokenizer, items, progress=False)
    naive = score_naive(model, tokenizer, items)
    assert [(s.pred_raw, s.pred_norm) for s in fast] == [(s.pred_raw, s.pred_norm) for s in naive]
    assert _max_diff(naive, fast) < 1e-3
    accuracy = mc_accuracy(fast)
    assert 0.3 <= accuracy["acc"] <= 0.65
    assert 0.3 <= accuracy["acc_norm"] <= 0.65
