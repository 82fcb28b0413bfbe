"""The forgetting probes and WiSE-FT on the real default model (short: a few items of each probe)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from tunewise.config import LoraConfig, MonitorConfig
from tunewise.guard.monitor import Probe
from tunewise.guard.wise_ft import Interpolation
from tunewise.methods import METHODS, as_base

pytestmark = pytest.mark.integration

ARC = Path(__file__).resolve().parents[3] / "shared" / "data" / "arc" / "arc_easy_test.jsonl"


def test_probes_and_wise_ft_on_the_default_model(default_model_dir: Path) -> None:
    from tunewise.models import load_model, load_tokenizer

    tokenizer = load_tokenizer("smollm2-135m-instruct")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        model = METHODS["lora"](load_model("smollm2-135m-instruct"), LoraConfig(r=4, alpha=8, dropout=0.0))
    # Generation dominates the cost on a CPU: two chat items and two neutral prompts, four tokens each.
    config = MonitorConfig(
        enabled=True,
        suites=["general_knowledge", {"name": "chat", "limit": 2}, str(ARC)],
        limit=4,
        kl_limit=2,
        max_new_tokens=4,
    )
    probe = Probe(config, tokenizer, batch_size=4)
    base = probe.measure_base(model)
    assert set(base.values) == {"general_knowledge", "chat", "arc_easy_test"} and base.kl == 0.0
    assert len(probe._kl_rows) == 2
    # LoRA starts as a no-op: the "tuned" model scores exactly as the base, KL 0.
    same = probe.measure(model)
    assert same.values == base.values and same.kl == 0.0
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for name, param in model.named_parameters():
            if "lora_B" in name:
                param.copy_(torch.randn(param.shape, generator=g) * 0.02)
    moved = probe.measure(model)
    assert moved.kl is not None and moved.kl > 0

    ids = tokenizer("The capital of France is", return_tensors="pt").input_ids
    with torch.no_grad():
        tuned = model(input_ids=ids).logits
        with as_base(model):
            base_logits = model(input_ids=ids).logits
        interpolation = Interpolation(model)
        interpolation.set(0.0)
        assert torch.equal(model(input_ids=ids).logits, base_logits)
        interpolation.set(1.0)
        assert torch.equal(model(input_ids=ids).logits, tuned)
