"""Train and eval end to end on a tiny random model: run directory contents, overrides, Ctrl-C and
resume, base-vs-tuned invariants, and bad input that leaves nothing behind."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from tunewise.config import load_config
from tunewise.errors import DataError, TunewiseError
from tunewise.run import Run, evaluate, train

FACTS = [
    ("What colour is the sky on a clear day?", "The sky is blue."),
    ("What do bees make?", "Bees make honey."),
    ("How many legs does a spider have?", "A spider has eight legs."),
    ("What is frozen water called?", "Frozen water is called ice."),
    ("Which star is closest to Earth?", "The Sun is the closest star."),
    ("What do cows drink?", "Cows drink water."),
]


def trained_run(config, config_path):
    """Train and save one run through the public API; the `Run` keeps the model, tokenizer and data."""
    job = Run(config, config_path)
    job.fit()
    job.save()
    return job


def chat_rows(n: int = 24) -> list[dict]:
    rows = []
    for i in range(n):
        q, a = FACTS[i % len(FACTS)]
        rows.append({"messages": [{"role": "user", "content": q}, {"role": "assistant", "content": a}]})
    return rows


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


@pytest.fixture()
def run_config(tmp_path: Path, tiny_model_dir: Path) -> Path:
    write_jsonl(tmp_path / "train.jsonl", chat_rows())
    config = tmp_path / "tiny.yaml"
    config.write_text(
        f"model: {{name: {tiny_model_dir}}}\n"
        "data: {train: train.jsonl, split: {eval: 0.25}, max_length: 128}\n"
        "method: {r: 4, alpha: 8, dropout: 0.0}\n"
        "train: {max_steps: 8, lr: 0.01, batch_size: 4, eval_every: 4, save_every: 4, log_every: 1, "
        "warmup_ratio: 0.0, precision: fp32}\n"
        "eval: {generations: 2, max_new_tokens: 8, suites: []}\n"
        f"output: {{dir: {tmp_path / 'runs'}}}\n"
    )
    return config


def test_train_writes_a_complete_run_directory(run_config: Path, tiny_model_dir: Path) -> None:
    run_dir = train(load_config(run_config), run_config)
    assert run_dir.parent == run_config.parent / "runs" and run_dir.name.startswith("tiny-")
    resolved = load_config(run_dir / "config.yaml")
    assert resolved == load_config(run_config)

    records = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    losses = [r["loss"] for r in records if "loss" in r]
    assert records[-1]["step"] == 8 and [r["step"] for r in records if "eval_loss" in r] == [4, 8]
    assert losses[-1] < losses[0], "the training loss should fall on six repeated facts"

    summary = json.loads((run_dir / "train_summary.json").read_text())
    assert summary["steps"] == 8 and summary["tokens_seen"] > 0
    assert 0 < summary["trainable_parameters"] < summary["total_parameters"]

    adapter = load_file(run_dir / "adapter" / "adapter_model.safetensors")
    assert adapter and all("lora_" in name for name in adapter)
    assert (run_dir / "adapter" / "tokenizer_config.json").is_file()


def test_lora_training_leaves_every_base_weight_bit_identical(run_config: Path, tiny_model_dir: Path) -> None:
    trained = trained_run(load_config(run_config, ["train.max_steps=4"]), run_config)
    on_disk = load_file(tiny_model_dir / "model.safetensors")
    base = {
        name.removeprefix("base_model.model.").replace(".base_layer", ""): p
        for name, p in trained.model.named_parameters()
        if "lora_" not in name
    }
    assert set(on_disk) <= set(base)
    assert all(torch.equal(base[name], weight) for name, weight in on_disk.items())
    changed = [n for n, p in trained.model.named_parameters() if "lora_B" in n and p.abs().sum() > 0]
    assert changed, "the LoRA B matrices start at zero and must have moved"


def test_override_sets_the_step_count(run_config: Path) -> None:
    run_dir = train(load_config(run_config, ["train.max_steps=3", "output.name=short"]), run_config)
    assert run_dir.name == "short"
    assert json.loads((run_dir / "train_summary.json").read_text())["steps"] == 3


def test_eval_compares_base_and_tuned_on_the_same_rows(run_config: Path) -> None:
    run_dir = train(load_config(run_config), run_config)
    summary = evaluate(run_dir)
    assert summary == json.loads((run_dir / "eval_summary.json").read_text())
    assert summary["base"]["tokens"] == summary["tuned"]["tokens"] > 0
    assert summary["tuned"]["loss"] < summary["base"]["loss"]
    assert len(summary["generations"]) == 2
    assert {"prompt", "reference", "base", "tuned"} <= set(summary["generations"][0])
    # Evaluating a config finds its newest run.
    assert evaluate(run_config)["tuned"]["loss"] == pytest.approx(summary["tuned"]["loss"])


def test_base_side_is_the_untouched_base_model(run_config: Path, tiny_model_dir: Path) -> None:
    """The base numbers come from the adapter switched off, which must equal the plain base model."""
    from peft import PeftModel

    from tunewise.data import load_examples, render_all
    from tunewise.evaluation.compare import loss_on, side
    from tunewise.models import load_model, load_tokenizer

    run_dir = train(load_config(run_config), run_config)
    tokenizer = load_tokenizer(str(tiny_model_dir))
    examples, _ = load_examples(run_config.parent / "train.jsonl")
    rows, _, _ = render_all(examples, tokenizer, train_on="all_assistant", max_length=128)
    plain = loss_on(load_model(str(tiny_model_dir)), rows, pad_id=tokenizer.pad_token_id, batch_size=4)
    tuned_model = PeftModel.from_pretrained(load_model(str(tiny_model_dir)), run_dir / "adapter")
    with side(tuned_model, "base") as base:
        switched_off = loss_on(base, rows, pad_id=tokenizer.pad_token_id, batch_size=4)
    with side(tuned_model, "tuned") as tuned:
        trained = loss_on(tuned, rows, pad_id=tokenizer.pad_token_id, batch_size=4)
    assert switched_off.loss == pytest.approx(plain.loss, rel=1e-6)
    assert trained.loss < plain.loss


def test_bad_data_fails_before_a_run_directory_exists(tmp_path: Path, run_config: Path) -> None:
    rows = chat_rows(6)
    rows[3] = {"messages": [{"role": "user", "content": "no answer here"}]}
    write_jsonl(tmp_path / "train.jsonl", rows)
    with pytest.raises(DataError, match=r"train\.jsonl:4"):
        train(load_config(run_config), run_config)
    assert not (tmp_path / "runs").exists()


def test_skip_bad_rows_writes_rejects(tmp_path: Path, run_config: Path) -> None:
    rows = chat_rows(12)
    rows[3] = {"messages": [{"role": "user", "content": "no answer here"}]}
    write_jsonl(tmp_path / "train.jsonl", rows)
    run_dir = train(load_config(run_config, ["data.on_bad_rows=skip", "train.max_steps=1"]), run_config)
    rejects = [json.loads(line) for line in (run_dir / "rejects.jsonl").read_text().splitlines()]
    assert len(rejects) == 1 and rejects[0]["source"].endswith("train.jsonl:4")
    assert "assistant" in rejects[0]["reason"]


def test_missing_model_fails_before_a_run_directory_exists(tmp_path: Path, run_config: Path) -> None:
    with pytest.raises(TunewiseError, match="not found|does not exist|no model"):
        train(load_config(run_config, [f"model.name={tmp_path / 'no-such-model'}"]), run_config)
    assert not (tmp_path / "runs").exists()


def _cli(*args: str, **kwargs) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1] / "src")}
    return subprocess.Popen(
        [sys.executable, "-m", "tunewise.cli", *args],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        **kwargs,
    )


def test_ctrl_c_saves_a_checkpoint_and_resume_continues(run_config: Path) -> None:
    runs = run_config.parent / "runs"
    proc = _cli(
        "train",
        str(run_config),
        "train.max_steps=400",
        "train.save_every=1000",
        "train.eval_every=0",
        "output.name=interrupted",
    )
    metrics = runs / "interrupted" / "metrics.jsonl"
    deadline = time.monotonic() + 120
    while not (metrics.exists() and metrics.read_text().count("\n") >= 3):
        assert proc.poll() is None, proc.stdout.read()
        assert time.monotonic() < deadline, "training never logged"
        time.sleep(0.2)
    proc.send_signal(signal.SIGINT)
    out, _ = proc.communicate(timeout=120)
    assert proc.returncode == 130, out
    assert "train.resume=true" in out
    checkpoints = sorted((runs / "interrupted" / "checkpoints").glob("checkpoint-*"))
    assert len(checkpoints) == 1
    stopped_at = int(checkpoints[0].name.split("-")[1])
    assert 0 < stopped_at < 400
    assert not (runs / "interrupted" / "adapter").exists()

    resumed = _cli(
        "train",
        str(run_config),
        f"train.max_steps={stopped_at + 3}",
        "train.save_every=1000",
        "train.eval_every=0",
        "train.resume=true",
        "output.name=interrupted",
    )
    out, _ = resumed.communicate(timeout=300)
    assert resumed.returncode == 0, out
    summary = json.loads((runs / "interrupted" / "train_summary.json").read_text())
    assert summary["steps"] == stopped_at + 3
    steps = [json.loads(line)["step"] for line in metrics.read_text().splitlines()]
    assert steps == sorted(steps) and steps[-1] == stopped_at + 3, "metrics.jsonl tells one story"
    assert (runs / "interrupted" / "adapter" / "adapter_model.safetensors").is_file()


def test_cli_reports_two_mistakes_at_once_and_exits_nonzero(tmp_path: Path, run_config: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(run_config.read_text() + "extra_section: {a: 1}\n")
    proc = _cli("train", str(bad), "train.lrr=0.1")
    out, _ = proc.communicate(timeout=120)
    assert proc.returncode == 2
    assert "2 problems" in out and "extra_section" in out and "did you mean 'lr'" in out
    assert "Traceback" not in out
    assert not (tmp_path / "runs").exists()


def test_cli_init_writes_a_valid_starter(tmp_path: Path) -> None:
    target = tmp_path / "starter.yaml"
    proc = _cli("init", str(target))
    out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 0, out
    assert load_config(target).model.name == "smollm2-135m-instruct"
    again = _cli("init", str(target))
    out, _ = again.communicate(timeout=60)
    assert again.returncode == 2 and "--force" in out


def test_run_trains_then_compares_with_the_model_in_memory(run_config: Path) -> None:
    from tunewise.run import run

    run_dir = run(load_config(run_config, ["train.max_steps=4"]), run_config)
    summary = json.loads((run_dir / "eval_summary.json").read_text())
    assert summary["tuned"]["loss"] < summary["base"]["loss"]
    # The in-memory comparison equals a fresh evaluation of the saved adapter.
    assert evaluate(run_dir)["tuned"]["loss"] == pytest.approx(summary["tuned"]["loss"], rel=1e-5)


def test_mixed_precision_training_leaves_no_autocast_behind(run_config: Path) -> None:
    """bf16 training wraps forward in autocast in place; the model handed on must be unwrapped,
    or the in-memory eval of `run` would score in bf16 while `tunewise eval` scores in fp32."""
    trained = trained_run(load_config(run_config, ["train.max_steps=2", "train.precision=bf16"]), run_config)
    assert "_original_forward" not in vars(trained.model)
    batch = torch.tensor([[5, 6, 7, 8]])
    with torch.no_grad():
        logits = trained.model(input_ids=batch).logits
        with torch.autocast("cpu", dtype=torch.bfloat16):
            autocast_logits = trained.model(input_ids=batch).logits
    assert logits.dtype == torch.float32
    assert not torch.equal(logits, autocast_logits.float()), "the plain forward must not run in bf16"
