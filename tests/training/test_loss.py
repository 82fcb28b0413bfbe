"""The label-only, chunked loss equals the model's own loss, gradients included."""

from __future__ import annotations

import pytest
import torch
from fitting import Probe, lora_model, run, train_config
from torch.nn import functional as F

from tunewise.testing import tiny_model
from tunewise.training.collate import PadCollator
from tunewise.training.loss import causal_lm_loss, chunked_cross_entropy


@pytest.mark.parametrize("chunk", [1, 7, 64])
@pytest.mark.parametrize("with_bias", [False, True])
def test_chunked_cross_entropy_equals_cross_entropy(chunk: int, with_bias: bool) -> None:
    g = torch.Generator().manual_seed(0)
    hidden = torch.randn(23, 16, generator=g, requires_grad=True)
    weight = torch.randn(50, 16, generator=g, requires_grad=True)
    bias = torch.randn(50, generator=g, requires_grad=True) if with_bias else None
    targets = torch.randint(0, 50, (23,), generator=g)

    expected = F.cross_entropy(F.linear(hidden, weight, bias), targets, reduction="sum")
    wanted = torch.autograd.grad(expected * 0.5, [hidden, weight, *([bias] if with_bias else [])])
    got = chunked_cross_entropy(hidden, weight, targets, bias, chunk=chunk)
    grads = torch.autograd.grad(got * 0.5, [hidden, weight, *([bias] if with_bias else [])])

    torch.testing.assert_close(got, expected)
    for a, b in zip(grads, wanted, strict=True):
        torch.testing.assert_close(a, b)


def test_chunked_cross_entropy_under_bf16_autocast_matches_a_bf16_head() -> None:
    g = torch.Generator().manual_seed(1)
    hidden = torch.randn(40, 32, generator=g)
    weight = torch.randn(300, 32, generator=g) * 0.2
    targets = torch.randint(0, 300, (40,), generator=g)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        expected = F.cross_entropy(F.linear(hidden, weight).float(), targets, reduction="sum")
        got = chunked_cross_entropy(hidden, weight, targets, chunk=16)
    assert got.dtype == torch.float32
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-4)


def _batch() -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(2)
    rows = []
    for n in (6, 14, 9):
        ids = torch.randint(3, 400, (n,), generator=g).tolist()
        rows.append({"input_ids": ids, "labels": [-100] * 4 + ids[4:]})
    return PadCollator(pad_id=2)(rows)


def test_causal_lm_loss_equals_the_model_loss() -> None:
    model = lora_model(seed=5).train()
    params = [p for p in model.parameters() if p.requires_grad]
    batch = _batch()
    expected = model(**batch).loss
    wanted = torch.autograd.grad(expected, params)
    got, count = causal_lm_loss(model, batch)
    grads = torch.autograd.grad(got, params)
    assert count == int((batch["labels"][:, 1:] != -100).sum())
    torch.testing.assert_close(got, expected)
    for a, b in zip(grads, wanted, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-7)
    # Normalised by the accumulated batch's trained tokens, as transformers does with num_items_in_batch.
    torch.testing.assert_close(
        causal_lm_loss(model, batch, num_items_in_batch=40)[0], model(**batch, num_items_in_batch=40).loss
    )


def test_untrained_positions_get_no_gradient() -> None:
    model = tiny_model(seed=6)
    batch = _batch()
    seen: dict[str, torch.Tensor] = {}

    def keep(module: torch.nn.Module, args: tuple, out: torch.Tensor) -> None:
        out.retain_grad()
        seen["h"] = out

    handle = model.model.norm.register_forward_hook(keep)
    try:
        loss, _ = causal_lm_loss(model, batch)
        loss.backward()
    finally:
        handle.remove()
    grad = seen["h"].grad
    trained_next = torch.zeros(batch["labels"].shape, dtype=torch.bool)
    trained_next[:, :-1] = batch["labels"][:, 1:] != -100
    assert grad[~trained_next].abs().max() == 0  # prompt, padding and last positions: exactly nothing
    assert grad[trained_next].abs().amax(-1).min() > 0


def test_fit_loss_is_the_same_with_the_fast_path(tmp_path) -> None:
    # A (weight 0) loss term reads the model's outputs, so it turns the fast path off: padded
    # batches and the model's own loss. One batch holds every row, so order cannot differ.
    from tunewise.data import Rendered

    g = torch.Generator().manual_seed(7)
    rows = []
    for i, n in enumerate((5, 17, 9, 12)):
        ids = torch.randint(3, 400, (n,), generator=g).tolist()
        labels = [-100] * 3 + ids[3:]
        rows.append(Rendered(f"r:{i}", ids, labels, n, n - 3, False, 0))
    train = train_config(max_steps=2, batch_size=4)
    fast, fast_log = run(tmp_path, train, model=lora_model(seed=8), rows=rows)
    slow, slow_log = run(
        tmp_path, train, model=lora_model(seed=8), rows=rows, terms=[Probe(lambda m, i, o: "labels" in i)]
    )
    fast_losses = [r["loss"] for r in fast_log if "loss" in r]
    slow_losses = [r["loss/task"] for r in slow_log if "loss/task" in r]
    assert len(fast_losses) == len(slow_losses) == 2
    assert fast_losses == pytest.approx(slow_losses, rel=1e-4)
    assert fast.tokens_seen == slow.tokens_seen == 2 * sum(r.n_tokens for r in rows)
