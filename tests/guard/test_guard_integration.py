"""The guards on the real default model: self-synthesized replay, EWC and KL in a few real steps."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tunewise.config import load_config
from tunewise.run import train

pytestmark = pytest.mark.integration

SST2 = Path(__file__).resolve().parents[3] / "shared" / "data" / "sst2" / "stsa.binary.train"


def test_replay_self_ewc_and_kl_train_on_the_default_model(
    tmp_path: Path, default_model_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Guard caches in a fresh home: the base model really answers the seed prompts here.
    monkeypatch.setenv("TUNEWISE_HOME", str(tmp_path / "home"))
    lines = SST2.read_text(encoding="utf-8").splitlines()[:12]
    rows = [
        {
            "messages": [
                {"role": "user", "content": f"Sentiment of this review: {line[2:]}"},
                {"role": "assistant", "content": "positive" if line[0] == "1" else "negative"},
            ]
        }
        for line in lines
    ]
    (tmp_path / "train.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    # Short answers keep the test quick; the seed set's own prompts ask for longer ones.
    prompts = [
        "In one short sentence, what is a good breakfast?",
        "Say hello to a new neighbour in one sentence.",
        "In one sentence, why do people take walks?",
        "Name one colour of the sky in a few words.",
    ]
    (tmp_path / "prompts.jsonl").write_text("".join(json.dumps({"prompt": p}) + "\n" for p in prompts))
    config = tmp_path / "guard.yaml"
    config.write_text(
        f"model: {{name: {default_model_dir}}}\n"
        "data: {train: train.jsonl, split: {eval: 0.0}, max_length: 192, check: {enabled: false}}\n"
        "method: {type: lora, r: 4, alpha: 8, dropout: 0.0}\n"
        "train: {max_steps: 2, lr: 0.001, batch_size: 2, eval_every: 0, log_every: 1, warmup_ratio: 0.0, "
        "precision: fp32}\n"
        "guard:\n"
        "  general: self\n"
        "  synth: {prompts: prompts.jsonl, max_new_tokens: 48, batch_size: 4}\n"
        "  replay: {ratio: 0.25}\n"
        "  ewc: {weight: 1.0, samples: 2}\n"
        "  kl: {weight: 1.0, on: batch}\n"
        f"output: {{dir: {tmp_path / 'runs'}, tracking: []}}\n"
    )
    run_dir = train(load_config(config), config)

    info = json.loads((run_dir / "regularize.json").read_text())
    assert info["general"]["source"] == "self" and info["general"]["answers"] >= 1
    assert Path(info["general"]["cache"]).is_file()
    assert info["replay"]["replay_rows"] == 4
    records = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    logged = [r for r in records if "loss/task" in r]
    assert logged and all({"loss/ewc", "loss/kl"} <= set(r) for r in logged)
    # The first step starts at the base model (LoRA's B is zero): nothing to penalise yet.
    assert logged[0]["loss/kl"] == pytest.approx(0.0, abs=1e-4)
    synthesized = [json.loads(line) for line in Path(info["general"]["cache"]).read_text().splitlines()]
    assert all(r["answer"] for r in synthesized if r["finished"])
