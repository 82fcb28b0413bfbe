"""The KL-to-base term in training: zero at the start, logged, and it holds the model near the base."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from guard_helpers import fit_rows, method_model, rows

from tunewise.guard import base_logits, next_token_mask, token_kl
from tunewise.guard.regularizers import KLToBase
from tunewise.training.collate import PadCollator


def _batch(data: list) -> dict[str, torch.Tensor]:
    return PadCollator(pad_id=2)([{"input_ids": r.input_ids, "labels": r.labels} for r in data])


@pytest.mark.parametrize("on", ["batch", "general", "both"])
def test_kl_term_is_zero_before_training_and_has_a_gradient(on: str) -> None:
    model = method_model("full")
    model.train()
    inputs = _batch(rows(4))
    term = KLToBase(1.0, on=on, general=rows(5, seed=9), batch_size=2, pad_id=2)
    outputs = model(**inputs)
    assert float(term(model, inputs, outputs)) == pytest.approx(0.0, abs=1e-6)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.05)
    outputs = model(**inputs)
    value = term(model, inputs, outputs)
    assert float(value) > 0
    value.backward()
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in model.parameters())


def test_general_batches_cycle_through_every_row() -> None:
    general = rows(5, seed=9)
    term = KLToBase(1.0, on="general", general=general, batch_size=2, pad_id=2, seed=1)
    seen = []
    for _ in range(5):  # 10 draws = two passes over the 5 rows
        batch = term._general_batch(torch.device("cpu"))
        seen += [tuple(ids) for ids in batch["input_ids"].tolist()]
    counts = {tuple(r.input_ids): seen.count(tuple(r.input_ids)) for r in general}
    assert set(counts.values()) == {2}
    with pytest.raises(ValueError, match="general rows"):
        KLToBase(1.0, on="general", general=[])


def test_kl_in_training_is_logged_and_keeps_the_model_nearer_the_base(tmp_path: Path) -> None:
    data, general = rows(8), rows(4, seed=3)
    probe = _batch(general)
    drift = {}
    for weight in (0.0, 20.0):
        model = method_model("full")
        terms = [KLToBase(weight, on="general", general=general, batch_size=4, pad_id=2)] if weight else []
        records = fit_rows(tmp_path, model, data, terms=terms, max_steps=6, lr=1e-2)
        if weight:
            logged = [r for r in records if "loss" in r]
            assert logged and all("loss/kl" in r for r in logged)
            assert all(r["loss"] == pytest.approx(r["loss/task"] + r["loss/kl"], rel=1e-4) for r in logged)
        model.eval()
        with torch.no_grad():
            tuned = model(input_ids=probe["input_ids"], attention_mask=probe["attention_mask"]).logits
        drift[weight] = float(token_kl(tuned, base_logits(model, probe), next_token_mask(probe)))
    assert drift[20.0] < 0.5 * drift[0.0]
