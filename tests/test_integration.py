"""The CLI on the real default model and the shipped demo config, as a user runs it."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DEMO = ROOT / "examples" / "demo.yaml"

pytestmark = pytest.mark.integration


def tunewise(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src"), "NO_COLOR": "1", "COLUMNS": "200"}
    return subprocess.run(
        [sys.executable, "-m", "tunewise.cli", *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=600
    )


def test_train_honours_max_steps_override_on_the_default_model(tmp_path: Path, default_model_dir: Path) -> None:
    done = tunewise(
        "train",
        str(DEMO),
        "train.max_steps=3",
        "train.eval_every=0",
        "train.log_every=1",
        f"output.dir={tmp_path}",
        "output.name=smoke",
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    run_dir = tmp_path / "smoke"
    summary = json.loads((run_dir / "train_summary.json").read_text())
    assert summary["steps"] == 3
    assert summary["trainable_parameters"] < 0.1 * summary["total_parameters"]
    assert "trainable parameters" in done.stdout
    steps = [json.loads(line)["step"] for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert steps[-1] == 3
    assert (run_dir / "adapter" / "adapter_model.safetensors").is_file()
    assert (run_dir / "config.yaml").read_text().count("max_steps: 3") == 1


def test_data_preview_shows_the_loss_mask(tmp_path: Path, default_model_dir: Path) -> None:
    done = tunewise("data", "preview", str(DEMO), "-n", "2", cwd=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    rows = "\n".join(line for line in done.stdout.splitlines() if not line.startswith("legend:"))
    trained = re.findall(r"⟦(.*?)⟧", rows, flags=re.S)
    assert trained, done.stdout
    # Each trained span is an assistant answer ending with the end-of-turn token; prompts are not trained.
    assert len(trained) == 2 and all(span.endswith("<|im_end|>") for span in trained)
    assert not any("<|im_start|>" in span for span in trained)
    assert "truncat" in done.stdout.lower()


def test_models_list_shows_the_default_alias(tmp_path: Path, default_model_dir: Path) -> None:
    done = tunewise("models", "list", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "smollm2-135m-instruct" in done.stdout and "ready" in done.stdout


def test_unknown_model_name_is_one_clear_error(tmp_path: Path) -> None:
    done = tunewise("train", str(DEMO), "model.name=./no-such-model-dir", f"output.dir={tmp_path}/runs", cwd=tmp_path)
    assert done.returncode == 2
    assert "no-such-model-dir" in done.stderr and "Traceback" not in done.stderr
    assert not (tmp_path / "runs").exists()


ARC_EASY = ROOT.parent / "shared" / "data" / "arc" / "arc_easy_test.jsonl"


def test_eval_of_the_base_model_on_arc_easy_lands_near_its_known_score(tmp_path: Path, default_model_dir: Path) -> None:
    done = tunewise("eval", "--suite", str(ARC_EASY), "--limit", "300", cwd=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    row = re.search(
        r"arc_easy_test[\s│|]+task[\s│|]+acc_norm[\s│|]+300[\s│|]+([\d.]+) \[([\d.]+), ([\d.]+)\]", done.stdout
    )
    assert row, done.stdout
    value, low, high = map(float, row.groups())
    assert 0.36 <= value <= 0.56, f"base SmolLM2-135M scores about 0.46 on ARC-Easy, got {value}"
    assert low < value < high and high - low < 0.15


def test_run_on_the_demo_config_writes_a_report_that_renders_and_is_listed(
    tmp_path: Path, default_model_dir: Path, headless_chromium
) -> None:
    """`tunewise run` on the shipped demo config (shortened) as a user runs it, then the report in a
    real browser with every section, and `tunewise runs` listing the run."""
    from tunewise.report import SECTIONS

    runs = tmp_path / "runs"
    suites = (
        "[{name: general_knowledge, limit: 24}, {name: chat, limit: 6}, {name: safety, limit: 8}, "
        "{name: bias_pairs, limit: 8}]"
    )
    done = tunewise(
        "run",
        str(DEMO),
        "train.max_steps=6",
        "train.eval_every=2",
        "train.log_every=1",
        "train.save_every=3",
        "eval.limit=12",
        "eval.generations=2",
        "eval.max_new_tokens=24",
        f"eval.suites={suites}",
        f"output.dir={runs}",
        "output.name=demo-smoke",
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    run_dir = runs / "demo-smoke"
    for name in (
        "config.yaml",
        "metrics.jsonl",
        "audit.json",
        "train_summary.json",
        "eval_summary.json",
        "report.html",
        "tracking.json",
    ):
        assert (run_dir / name).is_file(), name
    assert (runs / "mlflow.db").is_file()
    assert "report card:" in done.stdout and "step 6/6" in done.stdout

    dom = headless_chromium("--dump-dom", (run_dir / "report.html").as_uri()).stdout
    for section in SECTIONS:
        assert f'id="{section.id}"' in dom, section.id
        assert section.heading in dom, section.heading
    plots = sorted(p.name for p in (run_dir / "plots").glob("*.png"))
    assert {"learning_curves.png", "general_deltas.png", "baselines.png"} <= set(plots), plots
    assert dom.count('src="data:image/png;base64,') == len(plots)
    assert "not measured" not in dom.split('id="summary"')[0], "the verdict should have every measurement"

    listed = tunewise("runs", str(runs), "--json", cwd=tmp_path)
    assert listed.returncode == 0, listed.stderr
    (entry,) = [e for e in json.loads(listed.stdout)["runs"] if e["name"] == "demo-smoke"]
    summary = json.loads((run_dir / "eval_summary.json").read_text())
    assert entry["steps"] == 6
    assert entry["eval_loss_tuned"] == pytest.approx(summary["tuned"]["loss"])
    assert entry["report"] == str(run_dir / "report.html")
    table = tunewise("runs", str(runs), cwd=tmp_path)
    assert table.returncode == 0 and "demo-smoke" in table.stdout
