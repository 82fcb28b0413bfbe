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
    return subprocess.run([sys.executable, "-m", "tunewise.cli", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=600)


def test_train_honours_max_steps_override_on_the_default_model(tmp_path: Path, default_model_dir: Path) -> None:
    done = tunewise("train", str(DEMO), "train.max_steps=3", "train.eval_every=0", "train.log_every=1",
                    f"output.dir={tmp_path}", "output.name=smoke", cwd=tmp_path)
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
