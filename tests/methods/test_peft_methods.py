"""The PEFT methods on a tiny model: only the method's own new parameters train and all of them
move, every base weight stays bit-identical (checked against a fresh copy of the base), and the
loss falls. QLoRA runs for real: a 4-bit NF4 base through bitsandbytes on this CPU."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
from tuning import method, row_loss, rows, train_method

from tunewise.config import load_config
from tunewise.methods import METHODS, as_base, count_parameters, load_kwargs
from tunewise.models import load_model
from tunewise.testing import save_tiny_model, tiny_model


def base_weights(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """The frozen parameters of a PEFT model's base, under their names in the plain model."""
    return {
        n.replace(".base_layer", ""): p for n, p in model.get_base_model().named_parameters() if not p.requires_grad
    }


def assert_base_untouched(model: torch.nn.Module, pristine: torch.nn.Module) -> None:
    plain = dict(pristine.named_parameters())
    base = base_weights(model)
    assert set(plain) <= set(base)
    assert all(torch.equal(base[n], plain[n]) for n in plain), "a base weight moved"


CASES = {
    # method settings, learning rate, what every trainable parameter's name contains
    "lora": (dict(type="lora", r=4, alpha=8, dropout=0.0), 1e-2, ("lora_A", "lora_B")),
    "rslora": (dict(type="lora", r=4, alpha=8, dropout=0.0, rslora=True), 1e-2, ("lora_A", "lora_B")),
    "dora": (
        dict(type="lora", r=4, alpha=8, dropout=0.0, dora=True),
        1e-2,
        ("lora_A", "lora_B", "lora_magnitude_vector"),
    ),
    "prefix": (dict(type="prefix", num_virtual_tokens=4), 3e-2, ("prompt_encoder",)),
    "prompt": (dict(type="prompt", num_virtual_tokens=4), 1e-1, ("prompt_encoder",)),
    "ptuning": (dict(type="ptuning", num_virtual_tokens=4, encoder_hidden_size=16), 1e-2, ("prompt_encoder",)),
    "ia3": (dict(type="ia3"), 5e-2, ("ia3_l",)),
}


@pytest.mark.parametrize("case", list(CASES))
def test_only_the_method_parameters_train(tmp_path: Path, case: str) -> None:
    settings, lr, marks = CASES[case]
    run = train_method(tmp_path, method(**settings), lr=lr)
    assert run.trainable and all(any(m in n for m in marks) for n in run.trainable)
    assert {m for m in marks if any(m in n for n in run.trainable)} == set(marks)
    assert run.changed() == run.trainable, "every trainable tensor moved and nothing else did"
    assert_base_untouched(run.model, tiny_model(seed=0, num_hidden_layers=4))
    assert run.loss_after < run.loss_before


def test_rslora_scales_by_the_square_root_of_the_rank() -> None:
    plain = METHODS["lora"](tiny_model(seed=0), method(type="lora", r=4, alpha=8))
    stable = METHODS["lora"](tiny_model(seed=0), method(type="lora", r=4, alpha=8, rslora=True))
    q = "base_model.model.model.layers.0.self_attn.q_proj"
    assert plain.get_submodule(q).scaling["default"] == 8 / 4
    assert stable.get_submodule(q).scaling["default"] == 8 / math.sqrt(4)


def test_ia3_feedforward_modules_among_explicit_targets() -> None:
    model = METHODS["ia3"](tiny_model(seed=0), method(type="ia3", target_modules=["v_proj", "down_proj"]))
    config = model.peft_config["default"]
    assert set(config.target_modules) == {"v_proj", "down_proj"} and set(config.feedforward_modules) == {"down_proj"}


@pytest.mark.parametrize("case", ["prompt", "ptuning"])
def test_virtual_tokens_leave_one_logit_per_input_token(case: str) -> None:
    settings, _, _ = CASES[case]
    model = METHODS[case](tiny_model(seed=0), method(**settings))
    ids = torch.tensor([rows(1)[0].input_ids])
    with torch.no_grad():
        assert model(input_ids=ids).logits.shape[1] == ids.shape[1]
        with as_base(model):
            assert torch.equal(model(input_ids=ids).logits, tiny_model(seed=0)(input_ids=ids).logits)


def test_qlora_trains_adapters_on_a_4bit_nf4_base(tmp_path: Path) -> None:
    # bitsandbytes quantizes in blocks of 64 inputs: the tiny model needs a hidden size of 64.
    shape = dict(num_hidden_layers=2, hidden_size=64, intermediate_size=128)
    model_dir = save_tiny_model(tmp_path / "tiny64", **shape)
    config = load_config(
        None,
        [
            f"model.name={model_dir}",
            "method.type=qlora",
            "method.r=4",
            "method.alpha=8",
            "method.dropout=0.0",
            "train.precision=fp32",
        ],
    )
    model = load_model(config.model.name, **load_kwargs(config))
    linear = model.get_submodule("model.layers.0.self_attn.q_proj")
    assert type(linear).__name__ == "Linear4bit" and linear.weight.quant_type == "nf4"
    assert linear.weight.dtype == torch.uint8, "the base weights are stored packed, 4 bits each"
    quantized = {n: p.detach().clone() for n, p in model.named_parameters()}
    run = train_method(tmp_path, config.method, model=model, lr=1e-2)
    assert run.trainable and all("lora_" in n for n in run.trainable)
    assert run.changed() == run.trainable
    base = base_weights(run.model)
    assert all(torch.equal(base[n], quantized[n]) for n in quantized), "a 4-bit base weight moved"
    assert run.loss_after < run.loss_before
    trainable, total = count_parameters(run.model)
    assert total == sum(p.numel() for p in tiny_model(seed=0, **shape).parameters()) + trainable, (
        "4-bit weights count as the weights they pack"
    )
    with as_base(run.model):
        assert row_loss(run.model, rows()) == pytest.approx(run.loss_before, rel=1e-6)
