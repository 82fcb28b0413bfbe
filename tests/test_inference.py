"""tunewise.inference: the one generation loop, eval mode, device lookup and log-probabilities."""

from __future__ import annotations

import copy
from typing import Any

import pytest
import torch

from tunewise.inference import (
    Generation,
    device_of,
    eval_mode,
    generate,
    generate_texts,
    sequence_logprobs,
    token_logprobs,
)
from tunewise.testing import tiny_model, tiny_tokenizer

CHATS = [
    [{"role": "user", "content": "hi"}],
    [{"role": "user", "content": "What is the capital of France? Tell me in one word."}],
    [{"role": "user", "content": "a b c"}],
    [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Tell me a story about cats and dogs."}],
]


def _varied_model() -> Any:
    # A wider weight spread than the default: greedy decoding then picks varied tokens, not one repeated
    # token, so a wrong slice or a wrong order would show in the text.
    return tiny_model(seed=0, initializer_range=0.2)


def _reference(model: Any, tok: Any, chat: list[dict[str, str]], max_new_tokens: int, **sampling: Any) -> list[int]:
    """transformers' own generate on one prompt alone (no padding): the new token ids."""
    text = tok.apply_chat_template(chat, add_generation_prompt=True, tokenize=False)
    enc = tok([text], return_tensors="pt", add_special_tokens=False)
    out = model.generate(
        **enc,
        max_new_tokens=max_new_tokens,
        pad_token_id=tok.pad_token_id,
        eos_token_id=tok.eos_token_id,
        **({"do_sample": False} | sampling),
    )
    return out[0, enc["input_ids"].shape[1] :].tolist()


def test_device_of_is_the_weights_device() -> None:
    assert device_of(tiny_model()) == torch.device("cpu")
    with pytest.raises(ValueError, match="no parameters"):
        device_of(torch.nn.ReLU())


def test_eval_mode_restores_mixed_flags_exactly() -> None:
    model = tiny_model()
    model.train()
    model.model.layers[0].eval()  # a part kept in eval while the rest trains
    before = {name: m.training for name, m in model.named_modules()}
    assert len(set(before.values())) == 2
    with eval_mode(model) as inside:
        assert inside is model
        assert not any(m.training for m in model.modules())
        assert not torch.is_grad_enabled()
    assert {name: m.training for name, m in model.named_modules()} == before
    assert torch.is_grad_enabled()


def test_eval_mode_restores_on_an_exception() -> None:
    model = tiny_model()
    model.train()
    with pytest.raises(RuntimeError, match="boom"), eval_mode(model):
        raise RuntimeError("boom")
    assert all(m.training for m in model.modules())


def test_eval_mode_autograd_choices() -> None:
    model = tiny_model()
    with eval_mode(model, autograd="inference_mode"):
        assert torch.is_inference_mode_enabled()
    with eval_mode(model, autograd="enabled"):
        assert torch.is_grad_enabled() and not model.training
        loss = model(input_ids=torch.tensor([[5, 6, 7]]), labels=torch.tensor([[5, 6, 7]])).loss
        loss.backward()  # gradients flow in eval mode
    assert model.lm_head.weight.grad is not None


@pytest.mark.parametrize("batch_size", [1, 3])
def test_greedy_generate_equals_transformers_generate(batch_size: int) -> None:
    model, tok = _varied_model(), tiny_tokenizer()
    expected = [tok.decode(_reference(model, tok, chat, 8), skip_special_tokens=True).strip() for chat in CHATS]
    assert len(set(expected)) > 1  # the check has teeth: the answers differ
    assert generate_texts(model, tok, CHATS, max_new_tokens=8, batch_size=batch_size) == expected


def test_text_prompts_are_used_as_they_are() -> None:
    model, tok = _varied_model(), tiny_tokenizer()
    rendered = [tok.apply_chat_template(c, add_generation_prompt=True, tokenize=False) for c in CHATS]
    assert generate_texts(model, tok, rendered, max_new_tokens=6) == generate_texts(model, tok, CHATS, max_new_tokens=6)


def test_sampling_is_transformers_sampling_with_the_same_seed() -> None:
    model, tok = _varied_model(), tiny_tokenizer()
    torch.manual_seed(7)
    expected = tok.decode(
        _reference(model, tok, CHATS[1], 10, do_sample=True, temperature=0.9, top_p=0.95), skip_special_tokens=True
    ).strip()
    torch.manual_seed(7)
    got = generate_texts(model, tok, CHATS[1:2], max_new_tokens=10, temperature=0.9, top_p=0.95)
    assert got == [expected]


def test_generation_stops_at_the_end_of_turn_token() -> None:
    model, tok = _varied_model(), tiny_tokenizer()
    ids = _reference(model, tok, CHATS[1], 8)
    assert tok.eos_token_id not in ids
    [cut] = generate(model, tok, CHATS[1:2], max_new_tokens=8)
    assert cut == Generation(text=tok.decode(ids, skip_special_tokens=True).strip(), finished=False)
    # Make the model's third token the end of turn: the reply stops there and counts as finished.
    stopping = copy.deepcopy(tok)
    stopping.eos_token = tok.convert_ids_to_tokens(ids[2])
    [done] = generate(model, stopping, CHATS[1:2], max_new_tokens=8)
    assert done.finished
    # Nothing after the end of turn (decoded as the tokenizer decodes it, with special tokens skipped).
    assert done.text == stopping.decode(ids[:3], skip_special_tokens=True).strip() != cut.text


def test_generate_restores_padding_side_and_modes() -> None:
    model, tok = _varied_model(), tiny_tokenizer()
    tok.padding_side = "right"
    model.train()
    seen: list[int] = []
    generate(model, tok, CHATS, max_new_tokens=2, batch_size=3, on_batch=seen.append)
    assert tok.padding_side == "right"
    assert all(m.training for m in model.modules())
    assert seen == [3, 1]


def test_token_logprobs_summed_are_the_loss_times_tokens() -> None:
    """-Σ log p over the trained tokens is exactly what a causal LM loss averages."""
    model = tiny_model()
    ids = torch.tensor([[3, 17, 40, 99, 12, 7, 250]])
    labels = ids.clone()
    labels[0, :3] = -100  # a prompt: not trained
    trained = int((labels[0, 1:] != -100).sum())
    with eval_mode(model):
        loss = float(model(input_ids=ids, labels=labels).loss)
        logprobs = token_logprobs(model, ids)
    assert logprobs.shape == (1, 6) and logprobs.dtype == torch.float32
    summed = float(logprobs[0][labels[0, 1:] != -100].sum())
    assert -summed == pytest.approx(loss * trained, rel=1e-5)


def test_sequence_logprobs_ignore_padding_and_order() -> None:
    model = tiny_model()
    seqs = [[5, 9, 40], [5, 9, 40, 77, 81, 3, 100, 4], [8, 8]]
    alone = [sequence_logprobs(model, [s], pad_id=0)[0] for s in seqs]
    together = sequence_logprobs(model, seqs, pad_id=0, batch_size=2)
    assert together == pytest.approx(alone, abs=1e-4)
    assert all(v < 0 for v in together)


def test_sequence_logprobs_count_only_scored_tokens() -> None:
    model = tiny_model()
    seq = [5, 9, 40, 77, 81]
    scored = [False, False, False, True, True]  # only the last two tokens (an "answer")
    [part] = sequence_logprobs(model, [seq], pad_id=0, scored=[scored])
    with eval_mode(model):
        every = token_logprobs(model, torch.tensor([seq]))[0]
    assert part == pytest.approx(float(every[2:].sum()), abs=1e-5)
