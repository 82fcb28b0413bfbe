"""Every method trains a few steps on the real default model, and the trainable-parameter shares
printed in docs/methods.md are the ones measured here (run with -s to see the table)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import torch

from tunewise.config import load_config

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
ALPACA = ROOT.parent / "shared" / "data" / "llamafactory_demo" / "alpaca_en_demo.json"

# label in docs/methods.md -> overrides. Each trains 2 steps of one real row each (max_length 128).
VARIANTS = {
    "full": ["method.type=full", "train.lr=1e-5"],
    "freeze": ["method.type=freeze"],
    "freeze + embeddings/head": ["method.type=freeze", "method.train_embeddings=true", "method.train_head=true"],
    "gradual_unfreeze": ["method.type=gradual_unfreeze", "method.every_steps=1"],
    "lora": ["method.type=lora"],
    "lora r=8 q_proj,v_proj": ["method.type=lora", "method.r=8", "method.target_modules=[q_proj,v_proj]"],
    "lora + dora": ["method.type=lora", "method.dora=true"],
    "qlora": ["method.type=qlora"],
    "prefix": ["method.type=prefix"],
    "prompt": ["method.type=prompt"],
    "ptuning": ["method.type=ptuning"],
    "ia3": ["method.type=ia3"],
}


def documented_shares() -> dict[str, tuple[int, int]]:
    """label -> (trainable, total) from the share table of docs/methods.md."""
    text = (ROOT / "docs" / "methods.md").read_text()
    rows = re.findall(r"^\| (.+?) \| [^|]* \| ([\d,]+) \| ([\d,]+) \| [\d.]+% \|", text, flags=re.M)
    return {label: (int(a.replace(",", "")), int(b.replace(",", ""))) for label, a, b in rows}


@pytest.fixture(scope="module")
def run_config(tmp_path_factory: pytest.TempPathFactory, default_model_dir: Path) -> Path:
    tmp = tmp_path_factory.mktemp("methods")
    examples = json.loads(ALPACA.read_text())[:4]  # real public rows
    (tmp / "train.jsonl").write_text("".join(json.dumps(e) + "\n" for e in examples))
    config = tmp / "methods.yaml"
    config.write_text(
        "data: {train: train.jsonl, split: {eval: 0.0}, max_length: 128, check: {enabled: false}}\n"
        "train: {max_steps: 2, lr: 0.0002, batch_size: 1, eval_every: 0, save_every: 1000, log_every: 1, "
        "warmup_ratio: 0.0, precision: fp32}\n"
        f"output: {{dir: {tmp / 'runs'}, tracking: []}}\n"
    )
    return config


@pytest.fixture(scope="module")
def measured() -> dict[str, tuple[int, int]]:
    found: dict[str, tuple[int, int]] = {}
    yield found
    width = max(map(len, found), default=10)
    print(f"\n{'method':{width}}  {'trainable':>12}  {'total':>12}  share")
    for label, (trainable, total) in found.items():
        print(f"{label:{width}}  {trainable:>12,}  {total:>12,}  {100 * trainable / total:.3f}%")


@pytest.mark.parametrize("label", list(VARIANTS))
def test_method_trains_on_the_default_model(run_config: Path, measured: dict, label: str) -> None:
    from tunewise.run import Run

    config = load_config(run_config, [*VARIANTS[label], f"output.name={re.sub(r'[^a-z0-9]+', '-', label)}"])
    trained = Run(config, run_config)
    trained.fit()
    trained.save()
    summary = json.loads((trained.run_dir / "train_summary.json").read_text())
    assert summary["steps"] == 2 and summary["train_loss"] is not None and summary["train_loss"] > 0
    measured[label] = (summary["trainable_parameters"], summary["total_parameters"])
    assert documented_shares().get(label) == measured[label], (
        f"docs/methods.md: the share table's row for {label} should read {measured[label]}"
    )
    adapter = trained.run_dir / "adapter"
    assert (adapter / "adapter_config.json").is_file() or (adapter / "tunewise_method.json").is_file()
    if config.method.type == "freeze" and not config.method.train_head:
        # The 28 lower blocks, the embeddings and the final norm are bit-identical to the base.
        from tunewise.models import load_model

        base = dict(load_model(config.model.name).named_parameters())
        tuned = dict(trained.model.named_parameters())
        frozen = [n for n in base if not n.startswith(("model.layers.28.", "model.layers.29."))]
        assert all(torch.equal(tuned[n], base[n]) for n in frozen)
        assert any(not torch.equal(tuned[n], base[n]) for n in base if n.startswith("model.layers.29."))
