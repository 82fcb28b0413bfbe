"""Methods through the whole run on a tiny model: what `adapter/` holds, and the base-vs-tuned
comparison made in memory right after training equal to a fresh `evaluate(run_dir)`."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from tunewise.config import load_config
from tunewise.evaluation.compare import loss_on, side
from tunewise.models import load_model
from tunewise.run import Run, evaluate

FACTS = [
    ("What do bees make?", "Bees make honey."),
    ("What colour is the sky?", "The sky is blue."),
    ("How many legs does a spider have?", "A spider has eight legs."),
]


def trained_run(config, config_path):
    """Train and save one run through the public API; the `Run` keeps the model, tokenizer and data."""
    job = Run(config, config_path)
    job.fit()
    job.save()
    return job


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from tunewise.testing import save_tiny_model

    return save_tiny_model(tmp_path_factory.mktemp("tiny4"), num_hidden_layers=4)


@pytest.fixture()
def run_config(tmp_path: Path, model_dir: Path) -> Path:
    rows = [{"messages": [{"role": "user", "content": q}, {"role": "assistant", "content": a}]} for q, a in FACTS] * 6
    (tmp_path / "train.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    config = tmp_path / "tiny.yaml"
    config.write_text(
        f"model: {{name: {model_dir}}}\n"
        "data: {train: train.jsonl, split: {eval: 0.25}, max_length: 64, check: {enabled: false}}\n"
        "train: {max_steps: 4, lr: 0.01, batch_size: 4, eval_every: 0, save_every: 100, log_every: 1, "
        "warmup_ratio: 0.0, precision: fp32}\n"
        "eval: {generations: 2, max_new_tokens: 6, suites: [], baselines: {few_shot: 0, retrieval: 0}}\n"
        f"output: {{dir: {tmp_path / 'runs'}, tracking: []}}\n"
    )
    return config


@pytest.mark.parametrize(
    ("name", "overrides"),
    [
        ("full", ["method.type=full", "train.lr=0.001"]),
        ("freeze", ["method.type=freeze", "method.top_k=1"]),
        ("prompt", ["method.type=prompt", "method.num_virtual_tokens=4", "train.lr=0.1"]),
    ],
)
def test_in_memory_comparison_equals_a_fresh_evaluate(run_config: Path, name: str, overrides: list[str]) -> None:
    config = load_config(run_config, overrides)
    trained = trained_run(config, run_config)
    in_memory = trained.evaluate()
    fresh = evaluate(trained.run_dir)
    assert fresh["base"] == in_memory["base"] and fresh["tuned"] == in_memory["tuned"]
    assert fresh["generations"] == in_memory["generations"]
    assert in_memory["tuned"]["loss"] < in_memory["base"]["loss"]
    summary = json.loads((trained.run_dir / "train_summary.json").read_text())
    assert summary["method"] == name and 0 < summary["trainable_percent"] <= 100


def test_freeze_saves_only_the_changed_tensors_and_base_is_the_plain_model(run_config: Path, model_dir: Path) -> None:
    trained = trained_run(load_config(run_config, ["method.type=freeze", "method.top_k=1"]), run_config)
    adapter = trained.run_dir / "adapter"
    saved = load_file(adapter / "tuned_parameters.safetensors")
    assert set(saved) == {n for n, _ in trained.model.named_parameters() if n.startswith("model.layers.3.")}
    manifest = json.loads((adapter / "tunewise_method.json").read_text())
    assert manifest["type"] == "freeze" and manifest["weights"] == "tuned_parameters.safetensors"
    rows, pad = trained.data.eval, trained.tokenizer.pad_token_id
    plain = loss_on(load_model(str(model_dir)), rows, pad_id=pad, batch_size=4)
    with side(trained.model, "base") as base:
        assert loss_on(base, rows, pad_id=pad, batch_size=4) == plain


def test_full_saves_a_model_that_loads_on_its_own(run_config: Path) -> None:
    trained = trained_run(load_config(run_config, ["method.type=full", "train.lr=0.001"]), run_config)
    alone = load_model(str(trained.run_dir / "adapter"))
    tuned = dict(trained.model.named_parameters())
    assert all(torch.equal(p, tuned[n]) for n, p in alone.named_parameters())
    assert json.loads((trained.run_dir / "adapter" / "tunewise_method.json").read_text())["weights"] == "model"


def test_qlora_in_memory_comparison_equals_a_fresh_evaluate(run_config: Path, tmp_path: Path) -> None:
    """bitsandbytes' CPU inference shortcut (bf16, taken only without gradients) would make the two differ."""
    from tunewise.testing import save_tiny_model

    # bitsandbytes quantizes in blocks of 64 inputs: the tiny model needs a hidden size of 64.
    model_dir = save_tiny_model(tmp_path / "tiny64", num_hidden_layers=2, hidden_size=64, intermediate_size=128)
    config = load_config(run_config, ["method.type=qlora", "method.r=4", f"model.name={model_dir}"])
    trained = trained_run(config, run_config)
    in_memory = trained.evaluate()
    fresh = evaluate(trained.run_dir)
    assert fresh["base"] == in_memory["base"] and fresh["tuned"] == in_memory["tuned"]
    assert in_memory["tuned"]["loss"] < in_memory["base"]["loss"]
