"""Experiment tracking on a tiny random model: what lands in the SQLite MLflow store and in the
TensorBoard event files must be exactly what the run directory holds, resume must continue the
same MLflow run, and a broken store must never stop training."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any, ClassVar

import pytest

from tunewise.config import load_config
from tunewise.tracking import Tracker, eval_metrics, flatten_config, metric_name

ROWS = [
    ("What colour is the sky on a clear day?", "The sky is blue."),
    ("What do bees make?", "Bees make honey."),
    ("How many legs does a spider have?", "A spider has eight legs."),
    ("What is frozen water called?", "Frozen water is called ice."),
]


@pytest.fixture()
def run_config(tmp_path: Path, tiny_model_dir: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    # Run from the temporary folder: nothing (an `mlruns/`) may appear in the current directory.
    monkeypatch.chdir(tmp_path)
    rows = [{"messages": [{"role": "user", "content": q}, {"role": "assistant", "content": a}]} for q, a in ROWS * 4]
    (tmp_path / "train.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    config = tmp_path / "tiny.yaml"
    config.write_text(
        f"model: {{name: {tiny_model_dir}}}\n"
        "data: {train: train.jsonl, split: {eval: 0.25}, max_length: 128}\n"
        "method: {r: 4, alpha: 8, dropout: 0.0}\n"
        "train: {max_steps: 4, lr: 0.01, batch_size: 4, eval_every: 2, save_every: 4, log_every: 1, "
        "warmup_ratio: 0.0, precision: fp32}\n"
        "eval: {generations: 0, suites: []}\n"
        f"output: {{dir: {tmp_path / 'runs'}}}\n"
    )
    return config


def _metrics(run_dir: Path, key: str) -> list[tuple[int, float]]:
    records = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    return [(r["step"], r[key]) for r in records if key in r]


def _client(runs: Path):
    from mlflow import MlflowClient

    return MlflowClient(tracking_uri=f"sqlite:///{runs / 'mlflow.db'}")


def _history(client, run_id: str, key: str) -> list[tuple[int, float]]:
    return [
        (m.step, m.value) for m in sorted(client.get_metric_history(run_id, key), key=lambda m: (m.step, m.timestamp))
    ]


def _same(got: list[tuple[int, float]], want: list[tuple[int, float]], rel: float = 1e-12) -> bool:
    """Same steps in the same order, and the same values (TensorBoard stores float32: rel=1e-6)."""
    return [s for s, _ in got] == [s for s, _ in want] and [v for _, v in got] == pytest.approx(
        [v for _, v in want], rel=rel
    )


# --- Names and values (no model) ---


def test_names_follow_one_scheme_and_are_valid_mlflow_keys() -> None:
    from mlflow.utils.validation import validate_param_and_metric_name

    assert metric_name("loss") == "train/loss" and metric_name("eval_loss") == "eval/loss"
    assert metric_name("learning_rate") == "train/learning_rate"
    summary = {
        "base": {"loss": 2.0, "perplexity": 7.39, "tokens": 10},
        "tuned": {"loss": 1.5, "perplexity": 4.48},
        "delta_loss": -0.5,
        "generations": [],
        "suites": [
            {
                "name": "my task (v2)",
                "role": "task",
                "metric": "exact_match",
                "base": {"value": 0.25, "low": 0.1, "high": 0.4},
                "tuned": {"value": 0.5, "low": 0.3, "high": 0.7},
                "delta": {"value": 0.25, "low": 0.05, "high": 0.45, "p_value": 0.01},
            },
            {"name": "bias_pairs", "role": "bias", "metric": "preference", "base": None, "tuned": None, "delta": None},
        ],
    }
    metrics = eval_metrics(summary)
    assert metrics == {
        "compare/base_loss": 2.0,
        "compare/base_perplexity": 7.39,
        "compare/tuned_loss": 1.5,
        "compare/tuned_perplexity": 4.48,
        "compare/delta_loss": -0.5,
        "suite/my task _v2_/base": 0.25,
        "suite/my task _v2_/tuned": 0.5,
        "suite/my task _v2_/delta": 0.25,
        "suite/my task _v2_/delta_low": 0.05,
        "suite/my task _v2_/delta_high": 0.45,
        "suite/my task _v2_/p_value": 0.01,
    }
    assert all(validate_param_and_metric_name(name) for name in metrics)


def test_params_are_the_flattened_config(run_config: Path) -> None:
    config = load_config(run_config)
    flat = flatten_config(config)
    assert flat["train.lr"] == "0.01" and flat["method.r"] == "4" and flat["model.name"] == config.model.name
    assert flat["output.tracking"] == '["mlflow"]' and flat["output.mlflow_uri"] == "null"
    assert json.loads(flat["eval.suites"]) == []


class _Exploding:
    name = "exploding"
    state: ClassVar[dict[str, Any]] = {}

    def __init__(self) -> None:
        self.closed = 0

    def describe(self) -> str:
        return "exploding"

    def log_metrics(self, metrics: dict, step: int) -> None:
        raise RuntimeError("database is locked")

    def close(self, status: str | None) -> None:
        self.closed += 1


class _Recording(_Exploding):
    name = "recording"

    def __init__(self) -> None:
        super().__init__()
        self.logged: list[tuple[dict, int]] = []

    def log_metrics(self, metrics: dict, step: int) -> None:
        self.logged.append((metrics, step))


def _warnings(caplog: pytest.LogCaptureFixture, err: str) -> str:
    # To stderr, or to the `tunewise` logger when the application configured logging (pytest does).
    return caplog.text + err


def test_a_failing_tracker_is_dropped_with_one_warning_and_the_others_go_on(tmp_path: Path, capsys, caplog) -> None:
    bad, good = _Exploding(), _Recording()
    tracker = Tracker(tmp_path, [bad, good])
    for step in (1, 2, 3):
        tracker.log_metrics({"train/loss": 1.0 / step, "train/note": "text", "train/nan": float("nan")}, step)
    said = _warnings(caplog, capsys.readouterr().err)
    assert said.count("tracking stopped") == 1 and "database is locked" in said and "exploding" in said
    assert [step for _, step in good.logged] == [1, 2, 3]
    assert good.logged[0][0] == {"train/loss": 1.0}, "only finite numbers are logged"
    assert bad.closed == 1 and tracker.backends == [good]


# --- A tiny training run, end to end ---


def test_mlflow_holds_the_params_curves_eval_numbers_and_files(run_config: Path, capfd) -> None:
    from tunewise.run import run

    config = load_config(run_config)
    run_dir = run(config, run_config)
    out, err = capfd.readouterr()
    runs = run_dir.parent
    assert (runs / "mlflow.db").is_file() and not (run_config.parent / "mlruns").exists()
    assert "Creating initial MLflow database tables" not in out + err and "View run" not in out + err

    client = _client(runs)
    experiment = client.get_experiment_by_name("tiny")
    [found] = client.search_runs([experiment.experiment_id])
    run_id = found.info.run_id
    assert json.loads((run_dir / "tracking.json").read_text())["mlflow"]["run_id"] == run_id
    assert found.info.status == "FINISHED" and found.info.run_name == run_dir.name
    assert found.data.tags["tunewise.run_dir"] == str(run_dir.resolve())
    assert found.data.tags["tunewise.method"] == "lora"

    # Params: the resolved config, key by key.
    assert found.data.params == flatten_config(config)
    assert found.data.params["train.lr"] == "0.01" and found.data.params["method.r"] == "4"

    # Curves: every step of metrics.jsonl, same values.
    assert _same(_history(client, run_id, "train/loss"), _metrics(run_dir, "loss"))
    assert _same(_history(client, run_id, "eval/loss"), _metrics(run_dir, "eval_loss"))
    assert [s for s, _ in _history(client, run_id, "eval/loss")] == [2, 4]
    assert len(_history(client, run_id, "train/epoch")) == 4, "one point per step, not one per log"

    # Eval headline numbers, at the last training step.
    summary = json.loads((run_dir / "eval_summary.json").read_text())
    metrics = found.data.metrics
    assert metrics["compare/base_loss"] == pytest.approx(summary["base"]["loss"])
    assert metrics["compare/tuned_loss"] == pytest.approx(summary["tuned"]["loss"])
    assert metrics["compare/tuned_perplexity"] == pytest.approx(summary["tuned"]["perplexity"])
    assert _same(_history(client, run_id, "compare/delta_loss"), [(4, summary["delta_loss"])])
    train_summary = json.loads((run_dir / "train_summary.json").read_text())
    assert metrics["cost/tokens_per_s"] == pytest.approx(train_summary["tokens_per_s"])

    # Files: under <output.dir>/mlartifacts, byte for byte.
    assert found.info.artifact_uri == (runs / "mlartifacts" / run_id / "artifacts").as_uri()
    names = {a.path for a in client.list_artifacts(run_id)}
    assert names == {"config.yaml", "train_summary.json", "eval_summary.json", "report.html"}
    for name in names:
        assert (runs / "mlartifacts" / run_id / "artifacts" / name).read_bytes() == (run_dir / name).read_bytes()


def test_resume_continues_the_same_mlflow_run_and_tensorboard_agrees(run_config: Path) -> None:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    from tunewise.run import train

    both = ["output.tracking=[mlflow, tensorboard]", "output.name=resumed"]
    run_dir = train(load_config(run_config, [*both, "train.max_steps=6"]), run_config)
    # A crash after step 6 was logged but before its checkpoint: resume starts again from step 4.
    shutil.rmtree(run_dir / "checkpoints" / "checkpoint-6")
    first_id = json.loads((run_dir / "tracking.json").read_text())["mlflow"]["run_id"]
    train(load_config(run_config, [*both, "train.max_steps=8", "train.resume=true"]), run_config)

    logged = _metrics(run_dir, "loss")
    assert [s for s, _ in logged] == list(range(1, 9))
    client = _client(run_dir.parent)
    [found] = client.search_runs([client.get_experiment_by_name("tiny").experiment_id])
    assert found.info.run_id == first_id and found.info.status == "FINISHED"
    assert found.data.params["train.max_steps"] == "6" and found.data.tags["override.train.max_steps"] == "8"
    assert found.data.tags["tunewise.resumed_from_step"] == "4"
    latest = dict(_history(client, first_id, "train/loss"))  # steps 5 and 6 twice: the later value counts
    assert _same(sorted(latest.items()), logged)

    events = EventAccumulator(str(run_dir / "tensorboard"))
    events.Reload()
    # TensorBoard hides what was logged after the checkpoint, as metrics.jsonl drops those lines.
    assert _same([(e.step, e.value) for e in events.Scalars("train/loss")], logged, rel=1e-6)
    assert _same([(e.step, e.value) for e in events.Scalars("eval/loss")], _metrics(run_dir, "eval_loss"), rel=1e-6)


def test_tracking_off_writes_no_database(run_config: Path) -> None:
    from tunewise.run import train

    run_dir = train(load_config(run_config, ["output.tracking=[]", "train.max_steps=2"]), run_config)
    runs = run_dir.parent
    assert sorted(p.name for p in runs.iterdir()) == [run_dir.name]
    assert not (run_dir / "tracking.json").exists() and not (run_dir / "tensorboard").exists()


@pytest.mark.parametrize(
    "uri", ["sqlite:///{tmp}/a-file/mlflow.db", "nosuchstore://nowhere"], ids=["sqlite-under-a-file", "unknown-scheme"]
)
def test_a_broken_store_warns_once_and_the_run_finishes(run_config: Path, uri: str, capfd, caplog) -> None:
    from tunewise.run import run

    (run_config.parent / "a-file").write_text("not a folder")
    uri = uri.format(tmp=run_config.parent)
    run_dir = run(load_config(run_config, [f"output.mlflow_uri={uri}", "train.max_steps=1"]), run_config)
    out, err = capfd.readouterr()
    assert (run_dir / "adapter").is_dir() and (run_dir / "eval_summary.json").is_file()
    assert (run_dir / "report.html").is_file()
    said = _warnings(caplog, err)
    assert said.count("mlflow tracking is off") == 1, said  # train, eval and report: one warning
    assert "Traceback" not in out + err
    assert not (run_dir / "tracking.json").exists()
