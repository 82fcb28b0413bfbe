"""EWC and L2-SP: zero at the anchor, quadratic in the displacement, the right anchor per method."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from guard_helpers import fit_rows, method_model, rows

from tunewise.guard.ewc import EWC, anchors, estimate_fisher, fisher_for, trainable_parameters
from tunewise.guard.regularizers import L2SP


def _displace(
    params: dict[str, torch.nn.Parameter],
    anchor: dict[str, torch.Tensor],
    direction: dict[str, torch.Tensor],
    scale: float,
) -> None:
    with torch.no_grad():
        for name, param in params.items():
            param.copy_(anchor[name] + scale * direction[name])


@pytest.mark.parametrize("kind", ["full", "freeze", "lora"])
def test_ewc_is_zero_at_the_anchor_and_grows_quadratically(kind: str) -> None:
    model = method_model(kind, **({"top_k": 1} if kind == "freeze" else {}))
    params = trainable_parameters(model)
    anchor = anchors(model, params)
    fisher = estimate_fisher(model, rows(6), params, pad_id=2)
    ewc = EWC(1.0, params, anchor, fisher)
    assert float(ewc(model, {}, None)) == 0.0

    g = torch.Generator().manual_seed(3)
    direction = {n: torch.randn(p.shape, generator=g) * 0.01 for n, p in params.items()}
    _displace(params, anchor, direction, 1.0)
    once = float(ewc(model, {}, None))
    _displace(params, anchor, direction, 2.0)
    twice = float(ewc(model, {}, None))
    assert once > 0
    assert twice == pytest.approx(4 * once, rel=1e-4)


def test_fisher_is_nonnegative_with_mean_one_and_leaves_no_gradient_behind() -> None:
    model = method_model("full")
    params = trainable_parameters(model)
    fisher = estimate_fisher(model, rows(4), params, pad_id=2)
    values = torch.cat([f.reshape(-1) for f in fisher.values()])
    assert (values >= 0).all()
    assert float(values.mean()) == pytest.approx(1.0, rel=1e-4)
    assert all(p.grad is None for p in params.values())
    assert not model.training  # tiny_model is in eval mode; the mode is restored


def test_fisher_weighs_the_parameters_the_data_uses() -> None:
    # Rows that only use tokens 3..40: embedding rows of tokens never seen get no Fisher at all.
    model = method_model("full")
    params = trainable_parameters(model)
    fisher = estimate_fisher(model, rows(4, high=40), params, pad_id=2)
    embed = fisher["model.embed_tokens.weight"]
    # Tied embeddings: the output side gives every row some gradient, but the input side adds to
    # the rows actually read, which therefore weigh more on average.
    assert float(embed[3:40].mean()) > float(embed[100:].mean())


def test_adapter_anchor_is_its_starting_value_and_lora_a_has_no_fisher_at_init() -> None:
    model = method_model("lora", r=4, alpha=8, dropout=0.0)
    params = trainable_parameters(model)
    assert params and all("lora_" in n for n in params)
    anchor = anchors(model, params)
    for name, param in params.items():
        assert torch.equal(anchor[name], param.detach())
        assert anchor[name].data_ptr() != param.data_ptr()  # a copy: training must not move the anchor
    fisher = estimate_fisher(model, rows(4), params, pad_id=2)
    a_mass = sum(float(f.sum()) for n, f in fisher.items() if "lora_A" in n)
    b_mass = sum(float(f.sum()) for n, f in fisher.items() if "lora_B" in n)
    assert a_mass == 0.0  # B starts at zero, so A's gradient is zero
    assert b_mass > 0


def test_full_anchor_is_the_kept_base_value_without_a_copy() -> None:
    from tunewise.methods.weights import originals

    model = method_model("full")
    params = trainable_parameters(model)
    anchor = anchors(model, params)
    kept = originals(model)
    assert kept is not None
    for name in params:
        assert anchor[name].data_ptr() == kept[name].data_ptr()


def test_l2sp_is_the_squared_distance_to_the_start() -> None:
    model = method_model("freeze", top_k=1)
    params = trainable_parameters(model)
    anchor = anchors(model, params)
    l2sp = L2SP(1.0, params, anchor)
    assert float(l2sp(model, {}, None)) == 0.0
    g = torch.Generator().manual_seed(4)
    direction = {n: torch.randn(p.shape, generator=g) for n, p in params.items()}
    _displace(params, anchor, direction, 0.5)
    expected = sum(float((0.5 * d).pow(2).sum()) for d in direction.values())
    assert float(l2sp(model, {}, None)) == pytest.approx(expected, rel=1e-4)
    _displace(params, anchor, direction, 1.0)
    assert float(l2sp(model, {}, None)) == pytest.approx(4 * expected, rel=1e-4)


def test_fisher_is_cached_per_model_and_rows(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TUNEWISE_HOME", str(tmp_path / "home"))
    model = method_model("freeze", top_k=1)
    params = trainable_parameters(model)
    first, cached = fisher_for(model, rows(3), params, pad_id=2, log=lambda _: None)
    assert not cached
    again, cached = fisher_for(model, rows(3), params, pad_id=2, log=lambda _: None)
    assert cached
    assert all(torch.equal(first[n], again[n]) for n in params)
    _, cached = fisher_for(model, rows(3, seed=1), params, pad_id=2, log=lambda _: None)
    assert not cached  # other rows, another estimate
    assert len(list((tmp_path / "home" / "guard" / "fisher").glob("*.safetensors"))) == 2


def test_ewc_in_training_pulls_towards_the_anchor(tmp_path: Path) -> None:
    data = rows(8)
    distances = {}
    for weight in (0.0, 1000.0):
        model = method_model("freeze", top_k=1)
        params = trainable_parameters(model)
        anchor = anchors(model, params)
        fisher = estimate_fisher(model, rows(4, seed=5), params, pad_id=2)
        records = fit_rows(
            tmp_path, model, data, terms=[EWC(weight, params, anchor, fisher)] if weight else [], max_steps=4, lr=0.05
        )
        if weight:
            logged = [r for r in records if "loss" in r]
            assert all("loss/ewc" in r and "loss/task" in r for r in logged)
            assert all(r["loss"] == pytest.approx(r["loss/task"] + r["loss/ewc"], rel=1e-4) for r in logged)
        distances[weight] = sum(float(((p.detach() - anchor[n]) ** 2).sum()) for n, p in params.items())
    assert distances[1000.0] < distances[0.0]
