"""KL to the base model: invariants of `token_kl` and where `base_logits` gets the base model from."""

from __future__ import annotations

import copy

import pytest
import torch

from tunewise.config import FullConfig
from tunewise.guard import base_logits, next_token_mask, token_kl
from tunewise.methods import apply_full
from tunewise.testing import tiny_model


def _batch(seed: int = 0, batch: int = 3, length: int = 9) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(3, 400, (batch, length), generator=g)
    labels = ids.clone()
    labels[:, :3] = -100  # a prompt that takes no loss
    attention = torch.ones_like(ids)
    attention[0, -2:] = 0  # padding at the end of the first row
    labels[0, -2:] = -100
    return {"input_ids": ids, "attention_mask": attention, "labels": labels}


def _lora(model: torch.nn.Module, seed: int = 1) -> torch.nn.Module:
    from peft import LoraConfig, get_peft_model

    peft = get_peft_model(model, LoraConfig(r=4, lora_alpha=8, lora_dropout=0.0, target_modules="all-linear"))
    # PEFT starts B at zero (the adapter is a no-op); make it a real update.
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, param in peft.named_parameters():
            if "lora_B" in name:
                param.copy_(torch.randn(param.shape, generator=g) * 0.5)
    return peft


def test_kl_of_a_model_to_itself_is_zero() -> None:
    model, inputs = tiny_model(seed=0), _batch()
    with torch.no_grad():
        logits = model(input_ids=inputs["input_ids"], attention_mask=inputs["attention_mask"]).logits
    value = token_kl(logits, logits.clone(), next_token_mask(inputs))
    assert value.dtype == torch.float32
    assert float(value) == pytest.approx(0.0, abs=1e-6)
    assert float(token_kl(logits, logits, None, temperature=2.0)) == pytest.approx(0.0, abs=1e-6)


def test_kl_is_positive_asymmetric_and_matches_the_definition() -> None:
    g = torch.Generator().manual_seed(0)
    tuned, base = torch.randn(2, 5, 11, generator=g), torch.randn(2, 5, 11, generator=g)
    mask = torch.tensor([[1, 1, 0, 1, 0], [0, 1, 1, 1, 1]], dtype=torch.bool)
    p, log_p, log_q = base.softmax(-1), base.log_softmax(-1), tuned.log_softmax(-1)
    expected = (p * (log_p - log_q)).sum(-1)[mask].mean()
    assert float(token_kl(tuned, base, mask)) == pytest.approx(float(expected), rel=1e-5)
    assert float(token_kl(tuned, base, mask)) > 0
    assert float(token_kl(base, tuned, mask)) != pytest.approx(float(expected), rel=1e-3)  # KL(base ‖ tuned)


def test_chunking_changes_neither_value_nor_gradient() -> None:
    g = torch.Generator().manual_seed(1)
    base = torch.randn(3, 7, 13, generator=g)
    tuned_a = torch.randn(3, 7, 13, generator=g).requires_grad_(True)
    tuned_b = tuned_a.detach().clone().requires_grad_(True)
    whole = token_kl(tuned_a, base, None, temperature=2.0, chunk=10_000)
    parts = token_kl(tuned_b, base, None, temperature=2.0, chunk=4)
    whole.backward()
    parts.backward()
    assert float(parts) == pytest.approx(float(whole), rel=1e-5)
    assert torch.allclose(tuned_a.grad, tuned_b.grad, atol=1e-6)


def test_bf16_logits_are_measured_in_fp32() -> None:
    g = torch.Generator().manual_seed(2)
    tuned, base = torch.randn(1, 4, 9, generator=g), torch.randn(1, 4, 9, generator=g)
    value = token_kl(tuned.bfloat16(), base.bfloat16())
    assert value.dtype == torch.float32
    assert float(value) == pytest.approx(float(token_kl(tuned.bfloat16().float(), base.bfloat16().float())), rel=1e-5)


def test_no_counted_position_gives_zero_and_bad_shapes_are_refused() -> None:
    logits = torch.randn(2, 3, 5, requires_grad=True)
    zero = token_kl(logits, logits.detach() + 1, torch.zeros(2, 3, dtype=torch.bool))
    assert float(zero) == 0.0
    zero.backward()  # still in the graph: a batch with nothing to compare does not break training
    with pytest.raises(ValueError, match="mask shape"):
        token_kl(logits, logits, torch.ones(2, 4, dtype=torch.bool))
    with pytest.raises(ValueError, match="differ in shape"):
        token_kl(logits, logits[:, :2])


def test_next_token_mask_follows_the_trained_labels() -> None:
    inputs = _batch()
    mask = next_token_mask(inputs)
    # Position t counts when label t+1 is trained: prompt labels 0..2 are -100, so t = 2 is the first.
    assert mask[1].tolist() == [False, False, True, True, True, True, True, True, False]
    assert mask[0].tolist() == [False, False, True, True, True, True, False, False, False]
    no_labels = next_token_mask({"input_ids": inputs["input_ids"], "attention_mask": inputs["attention_mask"]})
    assert no_labels[0].tolist() == [True] * 6 + [False] * 3


def test_disabling_the_adapter_reproduces_the_base_logits_exactly() -> None:
    base_model, inputs = tiny_model(seed=0), _batch()
    with torch.no_grad():
        expected = base_model(input_ids=inputs["input_ids"], attention_mask=inputs["attention_mask"]).logits
    tuned = _lora(copy.deepcopy(base_model))
    tuned.train()
    with torch.no_grad():
        tuned_logits = tuned(input_ids=inputs["input_ids"], attention_mask=inputs["attention_mask"]).logits
    assert not torch.allclose(tuned_logits, expected, atol=1e-3)  # the adapter does change the model
    got = base_logits(tuned, inputs)
    assert torch.allclose(got, expected, atol=1e-6)
    assert tuned.training  # the mode is restored
    # ... and the adapter is back on afterwards.
    with torch.no_grad():
        again = tuned(input_ids=inputs["input_ids"], attention_mask=inputs["attention_mask"]).logits
    assert torch.allclose(again, tuned_logits, atol=1e-6)


def test_full_fine_tuning_gets_the_base_from_the_kept_originals_and_gradients_stay_right() -> None:
    inputs = _batch()
    frozen = tiny_model(seed=0)  # a separate copy of the base, the reference
    model = apply_full(tiny_model(seed=0), FullConfig())
    with torch.no_grad():
        for param in model.parameters():
            param.add_(torch.randn_like(param) * 0.05)
    model.train()
    twin = copy.deepcopy(model)

    out = model(input_ids=inputs["input_ids"], attention_mask=inputs["attention_mask"])
    kl = token_kl(out.logits, base_logits(model, inputs), next_token_mask(inputs))
    kl.backward()

    with torch.no_grad():
        reference = frozen(input_ids=inputs["input_ids"], attention_mask=inputs["attention_mask"]).logits
    out_twin = twin(input_ids=inputs["input_ids"], attention_mask=inputs["attention_mask"])
    kl_twin = token_kl(out_twin.logits, reference, next_token_mask(inputs))
    kl_twin.backward()

    assert float(kl) > 0
    assert float(kl) == pytest.approx(float(kl_twin), rel=1e-5)
    for (name, p), q in zip(model.named_parameters(), twin.parameters(), strict=True):
        assert torch.allclose(p.grad, q.grad, atol=1e-6), name
    # The trained values are back in place after the base pass.
    for p, q in zip(model.parameters(), twin.parameters(), strict=True):
        assert torch.equal(p.detach(), q.detach())
