"""The forgetting monitor and WiSE-FT end to end on a tiny model (train → forgetting.json,
wise_ft.json, metrics, saved weights) and in the report card (the forgetting curve, the action)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import torch

from tunewise.config import load_config
from tunewise.report import build_report
from tunewise.run import train

FACTS = [
    ("What colour is the sky?", "The sky is blue."),
    ("What do bees make?", "Bees make honey."),
    ("How many legs does a spider have?", "Eight."),
    ("What is frozen water?", "Ice."),
]


@pytest.fixture()
def config_file(tmp_path: Path, tiny_model_dir: Path) -> Path:
    rows = [{"messages": [{"role": "user", "content": q}, {"role": "assistant", "content": a}]} for q, a in FACTS * 6]
    (tmp_path / "train.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    path = tmp_path / "run.yaml"
    path.write_text(
        f"model: {{name: {tiny_model_dir}}}\n"
        "data: {train: train.jsonl, split: {eval: 0.25}, max_length: 96}\n"
        "method: {r: 4, alpha: 8, dropout: 0.0}\n"
        "train: {max_steps: 6, lr: 0.05, batch_size: 4, eval_every: 2, save_every: 100, log_every: 1, "
        "warmup_ratio: 0.0, precision: fp32}\n"
        "eval: {generations: 0, suites: [], batch_size: 4}\n"
        "guard:\n"
        "  monitor: {enabled: true, limit: 4, kl_limit: 3, max_new_tokens: 4, budgets: {kl: 0.0}, action: rollback}\n"
        "  wise_ft: {enabled: true, alphas: [0.0, 0.5, 1.0]}\n"
        f"output: {{dir: {tmp_path / 'runs'}, tracking: []}}\n"
    )
    return path


def test_train_monitors_rolls_back_sweeps_alpha_and_reports(config_file: Path) -> None:
    from peft import PeftModel

    from tunewise.models import load_model

    config = load_config(config_file)
    run_dir = train(config, config_file)
    # A KL budget of 0 is breached as soon as the adapter moves: every eval is over budget, so the
    # rollback restores the starting weights (LoRA's B = 0, the base model).
    record = json.loads((run_dir / "forgetting.json").read_text())
    assert [p["step"] for p in record["points"]] == [2, 4, 6]
    assert all(p["kl"] > 0 for p in record["points"]) and len(record["fired"]) == 3
    assert record["rollback"]["step"] == 0 and record["rollback"]["restored"]
    metrics = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    evals = [m for m in metrics if "eval_loss" in m]
    assert all(
        {"eval_general/general_knowledge_delta", "eval_general/chat", "eval_kl_to_base"} <= set(m) for m in evals
    )
    # WiSE-FT ran on the rolled-back model: every α is the base model, all within the KL budget of 0.
    wise = json.loads((run_dir / "wise_ft.json").read_text())
    assert wise["alphas"] == [0.0, 0.5, 1.0] and all(p["kl"] == 0.0 and p["within_budget"] for p in wise["points"])
    assert len({p["eval_loss"] for p in wise["points"]}) == 1
    # The saved adapter is the base model's behaviour.
    tuned = PeftModel.from_pretrained(load_model(config.model.name), run_dir / "adapter").eval()
    ids = torch.tensor([[1, 40, 41, 42, 43, 2]])
    with torch.no_grad():
        with tuned.disable_adapter():
            base = tuned(input_ids=ids).logits
        assert torch.equal(tuned(input_ids=ids).logits, base)

    page = build_report(run_dir).read_text(encoding="utf-8")
    general = re.search(r'<section id="general">(.*?)</section>', page, re.S).group(1)
    assert "forgetting monitor" in general and "Action fired: rollback" in general
    assert "restored the weights of step 0" in general
    assert 'alt="task eval loss, general scores and KL to base' in general and "WiSE-FT" in general
    assert (run_dir / "plots" / "forgetting_curve.png").read_bytes()[:4] == b"\x89PNG"


def test_report_notes_a_stop_and_draws_the_curve_from_the_record(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / "config.yaml").write_text("model: {name: m}\nmethod: {type: lora}\n")
    points = [
        {
            "step": s,
            "eval_loss": 2.0 - 0.1 * s,
            "scores": {"chat": 0.6 - 0.05 * s},
            "deltas": {},
            "kl": 0.02 * s,
            "breaches": [],
            "seconds": 1.0,
        }
        for s in (10, 20, 30)
    ]
    (run_dir / "forgetting.json").write_text(
        json.dumps(
            {
                "suites": {},
                "budgets": {"chat": 0.1, "kl": 0.5},
                "action": "stop",
                "base": {"chat": 0.6},
                "base_kl": 0.0,
                "points": points,
                "fired": [{"step": 30, "action": "stop", "breaches": [{"key": "chat", "value": 0.15, "budget": 0.1}]}],
                "stopped_at": 30,
                "rollback": None,
            }
        )
    )
    page = build_report(run_dir).read_text(encoding="utf-8")
    assert "Action fired: stop" in page and "training ended at step 30" in page
    assert "Budget breached at 1 eval(s), first at step 30" in page
    assert (run_dir / "plots" / "forgetting_curve.png").is_file()
    # A run without the monitor keeps its report as before: no curve, no stale PNG.
    (run_dir / "forgetting.json").unlink()
    page = build_report(run_dir).read_text(encoding="utf-8")
    assert "forgetting monitor" not in page and not (run_dir / "plots" / "forgetting_curve.png").exists()
