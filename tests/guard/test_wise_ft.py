"""WiSE-FT: the interpolation's end points are exactly base and tuned for every method it supports,
LoRA's delta scales linearly, the α rule, the sweep leaves the model at the α chosen, and the
config refuses what it cannot interpolate."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch

from tunewise.config import FreezeConfig, FullConfig, IA3Config, LoraConfig, load_config
from tunewise.errors import ConfigError
from tunewise.guard.monitor import ProbeScores
from tunewise.guard.wise_ft import Interpolation, WisePoint, check_wise_ft, choose, sweep
from tunewise.methods import METHODS, as_base
from tunewise.testing import tiny_model, tiny_tokenizer

IDS = torch.tensor([[1, 40, 41, 42, 43, 44, 45, 2], [1, 50, 51, 52, 53, 54, 55, 2]])

METHOD_CONFIGS = {
    "lora": LoraConfig(r=4, alpha=8, dropout=0.0),
    "rslora": LoraConfig(r=4, alpha=8, dropout=0.0, rslora=True),
    "ia3": IA3Config(),
    "full": FullConfig(),
    "freeze": FreezeConfig(top_k=1),
}


def trained(method: str, seed: int = 0) -> torch.nn.Module:
    """A tiny model prepared by `method`, its trainable parameters moved as training would."""
    config = METHOD_CONFIGS[method]
    with torch.random.fork_rng(devices=[]):  # the adapter's random starting values: same seed, same model
        torch.manual_seed(seed)
        model = METHODS[config.type](tiny_model(seed=seed), config)
    g = torch.Generator().manual_seed(seed + 1)
    with torch.no_grad():
        for _, param in model.named_parameters():
            if param.requires_grad:
                param.add_(torch.randn(param.shape, generator=g) * 0.3)
    return model.eval()


def logits(model: torch.nn.Module) -> torch.Tensor:
    with torch.no_grad():
        return model(input_ids=IDS).logits


@pytest.mark.parametrize("method", sorted(METHOD_CONFIGS))
def test_alpha_zero_is_the_base_and_alpha_one_the_tuned_model_exactly(method: str) -> None:
    model = trained(method)
    tuned = logits(model)
    with as_base(model):
        base = logits(model)
    assert not torch.equal(base, tuned)  # training moved something
    interpolation = Interpolation(model)
    interpolation.set(0.0)
    assert torch.equal(logits(model), base)
    interpolation.set(0.5)
    halfway = logits(model)
    assert not torch.equal(halfway, base) and not torch.equal(halfway, tuned)
    interpolation.set(1.0)
    assert torch.equal(logits(model), tuned)
    # The base side stays the base whatever α the model is at.
    interpolation.set(0.3)
    with as_base(model):
        assert torch.equal(logits(model), base)


def test_lora_alpha_scales_the_adapter_delta_linearly() -> None:
    model = trained("lora")
    layer = model.base_model.model.model.layers[0].self_attn.q_proj
    x = torch.randn(3, layer.in_features, generator=torch.Generator().manual_seed(5))

    def delta() -> torch.Tensor:
        with torch.no_grad():
            with model.disable_adapter():
                base = layer(x)
            return layer(x) - base

    full = delta()
    interpolation = Interpolation(model)
    for alpha in (0.25, 0.5, 0.75):
        interpolation.set(alpha)
        torch.testing.assert_close(delta(), alpha * full, rtol=1e-5, atol=1e-6)
    # Only the B matrices move: the A matrices and every base weight are untouched.
    assert all(".lora_B." in name for name in interpolation._anchors)


def test_a_saved_lora_adapter_is_the_alpha_it_was_left_at(tmp_path: Path) -> None:
    from peft import PeftModel

    model = trained("lora")
    Interpolation(model).set(0.4)
    expected = logits(model)
    model.save_pretrained(tmp_path / "adapter")
    reloaded = PeftModel.from_pretrained(tiny_model(seed=0), tmp_path / "adapter").eval()
    torch.testing.assert_close(logits(reloaded), expected, rtol=0, atol=1e-6)


def point(alpha: float, loss: float | None, within: bool) -> WisePoint:
    return WisePoint(
        alpha=alpha,
        eval_loss=loss,
        scores={},
        deltas={},
        kl=None,
        breaches=[] if within else ["x"],
        within_budget=within,
        seconds=0.0,
    )


def test_the_rule_is_the_lowest_eval_loss_within_budget() -> None:
    points = [point(0.0, 3.0, True), point(0.5, 2.0, True), point(0.75, 1.5, False), point(1.0, 1.0, False)]
    chosen, reason = choose(points)
    assert chosen.alpha == 0.5 and "within every forgetting budget" in reason
    # Ties go to the larger α (more of the fine-tune for the same task score).
    assert choose([point(0.25, 2.0, True), point(0.5, 2.0, True)])[0].alpha == 0.5
    # With no budget breached, the best task score wins outright.
    assert choose([point(a, 3.0 - a, True) for a in (0.0, 0.5, 1.0)])[0].alpha == 1.0
    # Nothing within budget: the α closest to the base.
    chosen, reason = choose([point(0.5, 2.0, False), point(1.0, 1.0, False)])
    assert chosen.alpha == 0.5 and "no α" in reason


class AlphaProbe:
    """A forgetting probe whose general score falls as the model moves from base (0.8) towards the
    fine-tune, read off the interpolation's α: a constructed drop of 0.4·α."""

    def __init__(self) -> None:
        self.interpolation: Interpolation | None = None

    def measure(self, model: Any) -> ProbeScores:
        alpha = self.interpolation.alpha if self.interpolation else 1.0
        return ProbeScores({"chat": 0.8 - 0.4 * alpha}, kl=0.5 * alpha)

    def describe(self) -> dict[str, Any]:
        return {"chat": {}, "kl": {}}


def test_sweep_picks_by_the_rule_and_leaves_the_model_at_that_alpha(monkeypatch: pytest.MonkeyPatch) -> None:
    from tunewise.data import Rendered
    from tunewise.guard import wise_ft

    model = trained("lora")
    probe = AlphaProbe()
    real = wise_ft.Interpolation

    def tracked(m: Any) -> Interpolation:
        probe.interpolation = real(m)
        return probe.interpolation

    monkeypatch.setattr(wise_ft, "Interpolation", tracked)
    rows = [Rendered(f"rows:{i}", IDS[i % 2].tolist(), IDS[i % 2].tolist(), 8, 8, False, 0) for i in range(4)]
    # chat may drop 0.15 at most: α ≤ 0.375 is within budget; the KL budget allows α ≤ 0.4.
    record = sweep(
        model,
        tiny_tokenizer(),
        rows,
        [1.0, 0.0, 0.25, 0.5, 0.75],
        probe,
        ProbeScores({"chat": 0.8}, 0.0),
        {"chat": 0.15, "kl": 0.2},
        log=lambda _: None,
    )
    assert record["alphas"] == [0.0, 0.25, 0.5, 0.75, 1.0]
    within = {p["alpha"]: p["within_budget"] for p in record["points"]}
    assert within == {0.0: True, 0.25: True, 0.5: False, 0.75: False, 1.0: False}
    losses = {p["alpha"]: p["eval_loss"] for p in record["points"]}
    assert record["chosen"] == min((0.0, 0.25), key=lambda a: (losses[a], -a))
    # The model is left at the α chosen.
    expected = trained("lora")
    real(expected).set(record["chosen"])
    assert torch.equal(logits(model), logits(expected))


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["method.type=prompt"], "virtual tokens"),
        (["method.type=prefix"], "virtual tokens"),
        (["method.dora=true"], "DoRA"),
    ],
)
def test_wise_ft_refuses_methods_without_a_base_value(overrides: list[str], message: str) -> None:
    with pytest.raises(ConfigError) as err:
        load_config(None, ["data.train=t.jsonl", "guard.wise_ft.enabled=true", *overrides])
    assert "guard.wise_ft.enabled" in str(err.value) and message in str(err.value)


def test_wise_ft_alphas_must_lie_between_zero_and_one() -> None:
    with pytest.raises(ConfigError, match=r"guard\.wise_ft\.alphas"):
        load_config(None, ["data.train=t.jsonl", "guard.wise_ft.alphas=[0.5, 1.5]"])


def test_wise_ft_needs_eval_rows() -> None:
    config = load_config(None, ["data.train=t.jsonl", "guard.wise_ft.enabled=true"])
    with pytest.raises(ConfigError, match="no eval rows"):
        check_wise_ft(config, eval_rows=0)
    check_wise_ft(config, eval_rows=3)
