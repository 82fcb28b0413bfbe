"""Whole searches on a tiny random model: pruning happens and a re-run resumes the study; a trial
that fails is recorded as failed while the study completes; two worker processes share one SQLite
study with two objectives and a Pareto front; a bad space stops before any trial."""

from __future__ import annotations

import json
from pathlib import Path

import optuna
import pytest
import yaml
from typer.testing import CliRunner

from tunewise.config import Config, load_config
from tunewise.errors import ConfigError
from tunewise.tune import tune

FACTS = [
    ("What colour is the sky on a clear summer day?", "On a clear summer day the sky looks blue to us."),
    ("What do honey bees make in their hives?", "Honey bees make honey and wax inside their hives."),
    ("How many legs does a garden spider have?", "A garden spider has eight legs, like every spider."),
    ("What is water called when it is frozen solid?", "Frozen water is called ice and it floats on water."),
    ("Which star is the closest one to planet Earth?", "The Sun is the star closest to planet Earth."),
    ("What do dairy cows mostly eat on a farm?", "Dairy cows mostly eat grass, hay and silage."),
    ("Which gas do green plants take in from the air?", "Green plants take in carbon dioxide from the air."),
    ("What is the boiling point of water at sea level?", "Water boils at one hundred degrees Celsius at sea level."),
    ("How many days are there in a leap year?", "A leap year has three hundred and sixty six days."),
    ("What is the largest ocean on planet Earth?", "The Pacific is the largest ocean on planet Earth."),
    ("Which organ pumps blood around the human body?", "The heart pumps blood around the human body."),
    ("What do caterpillars turn into when they grow up?", "Caterpillars turn into butterflies or moths."),
]


# The forgetting monitor scores general suites at every eval during training: worth it in a real run,
# only slower here, where the evals during training exist for the pruner.
QUIET = "guard: {monitor: {enabled: false}}\n" if "guard" in Config.model_fields else ""


def write_config(tmp_path: Path, model_dir: Path, train: str, tune_section: str) -> Path:
    rows = [{"messages": [{"role": "user", "content": q}, {"role": "assistant", "content": a}]} for q, a in FACTS]
    (tmp_path / "train.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    config = tmp_path / "tiny.yaml"
    config.write_text(
        f"model: {{name: {model_dir}}}\n"
        "data: {train: train.jsonl, split: {eval: 0.25, seed: 3}, max_length: 128}\n"
        "method: {r: 4, alpha: 8, dropout: 0.0}\n"
        f"train: {{batch_size: 4, save_every: 100, log_every: 1, warmup_ratio: 0.0, precision: fp32, {train}}}\n"
        "eval: {generations: 0, bootstrap: 100, suites: [{name: general_knowledge, limit: 3}]}\n"
        f"output: {{dir: {tmp_path / 'runs'}, tracking: []}}\n" + QUIET + "tune:\n" + tune_section
    )
    return config


def trials_of(directory: Path) -> list[dict]:
    return json.loads((directory / "tune_summary.json").read_text())["trials"]


def test_pruning_happens_and_a_rerun_resumes_the_study(tmp_path: Path, tiny_model_dir: Path) -> None:
    path = write_config(
        tmp_path,
        tiny_model_dir,
        "max_steps: 4, lr: 0.01, eval_every: 1",
        "  space:\n    train.lr: {log_uniform: [1.0e-5, 1.0e-1]}\n    method.r: {choice: [2, 4, 8]}\n"
        "  sampler: random\n  pruner: median\n  startup_trials: 2\n",
    )
    config = load_config(path)
    directory = tune(config, path, trials=4)
    first = trials_of(directory)
    assert [t["number"] for t in first] == [0, 1, 2, 3]

    directory = tune(load_config(path), path, trials=6)  # the same command, a larger budget: two more trials
    trials = trials_of(directory)
    assert [t["number"] for t in trials] == list(range(6))
    assert [t["params"] for t in trials[:4]] == [t["params"] for t in first], "earlier trials kept as they were"
    states = [t["state"] for t in trials]
    assert states.count("PRUNED") >= 1, states
    assert states.count("COMPLETE") >= 2, states
    for t in trials:
        run = directory / t["run_dir"]
        assert (run / "config.yaml").is_file() and (run / "metrics.jsonl").is_file(), "every trial is a run directory"
        run_config = load_config(run / "config.yaml")
        assert (
            run_config.train.lr == pytest.approx(t["params"]["train.lr"])
            and run_config.method.r == t["params"]["method.r"]
        )
        if t["state"] == "PRUNED":
            # Stopped at the eval the pruner judged, before the planned 4 steps.
            assert (
                t["pruned_at"] < 4 and json.loads((run / "train_summary.json").read_text())["steps"] == t["pruned_at"]
            )
            assert not (run / "eval_summary.json").exists()
        else:
            assert (run / "eval_summary.json").is_file() and (run / "report.html").is_file()
            assert len(t["intermediate"]) == 4  # one report per eval during training

    # The best config is the best completed trial's, ready for `tunewise train`.
    best = min((t for t in trials if t["state"] == "COMPLETE"), key=lambda t: t["values"][0])
    best_config = load_config(directory / "best.yaml")
    assert best_config.train.lr == pytest.approx(best["params"]["train.lr"])
    assert best_config.output.name is None and best_config.tune.space == {}
    html = (directory / "report.html").read_text()
    assert "Parameter importance" in html and "pruned at step" in html and html.count("<tr>") >= 7
    assert (directory / "plots" / "history.png").is_file() and (directory / "plots" / "intermediate.png").is_file()

    directory = tune(load_config(path), path, trials=6)  # budget reached: nothing new runs
    assert len(trials_of(directory)) == 6


def test_a_failing_trial_is_recorded_and_the_study_completes(tmp_path: Path, tiny_model_dir: Path) -> None:
    # max_steps 2 leaves the step schedule's step_size 3 unreachable: that trial's training refuses to
    # start (a problem only visible at run time); the grid still runs its other value.
    path = write_config(
        tmp_path,
        tiny_model_dir,
        "max_steps: 4, lr: 0.01, eval_every: 0, scheduler: step, step_size: 3",
        "  space:\n    train.max_steps: {choice: [2, 4]}\n  sampler: grid\n  trials: 5\n",
    )
    directory = tune(load_config(path), path)
    trials = {t["params"]["train.max_steps"]: t for t in trials_of(directory)}
    assert len(trials) == 2, "the grid has two points and then the study stops"
    assert trials[2]["state"] == "FAIL" and "train.step_size" in trials[2]["error"]
    assert trials[4]["state"] == "COMPLETE" and trials[4]["values"]
    assert load_config(directory / "best.yaml").train.max_steps == 4
    assert "train.step_size" in (directory / "report.html").read_text()


def test_two_workers_share_one_sqlite_study_with_two_objectives(tmp_path: Path, tiny_model_dir: Path) -> None:
    path = write_config(
        tmp_path,
        tiny_model_dir,
        "max_steps: 2, lr: 0.01, eval_every: 0",
        "  space:\n    train.lr: {log_uniform: [1.0e-3, 1.0e-1]}\n"
        "  objectives: [eval_loss, forgetting]\n  sampler: random\n",
    )
    directory = tune(load_config(path), path, trials=4, workers=2)
    trials = trials_of(directory)
    assert 4 <= len(trials) <= 5  # a worker may start one trial while the other finishes the budget
    assert len({t["worker"] for t in trials}) == 2, "both processes ran trials"
    assert all(t["state"] == "COMPLETE" and len(t["values"]) == 2 for t in trials)
    study = optuna.load_study(study_name=directory.name, storage=f"sqlite:///{directory / 'study.db'}")
    assert len(study.trials) == len(trials)
    front = json.loads((directory / "tune_summary.json").read_text())["best"]
    assert front and {p.name for p in (directory / "pareto").iterdir()} == {f"trial-{n:04d}.yaml" for n in front}
    assert (directory / "plots" / "pareto.png").read_bytes().startswith(b"\x89PNG")
    assert "Pareto front" in (directory / "report.html").read_text()
    assert yaml.safe_load((directory / "best.yaml").read_text())["train"]["lr"] == pytest.approx(
        next(t for t in trials if t["number"] == front[0])["params"]["train.lr"]
    )


def test_a_bad_space_stops_before_any_trial_with_the_key_and_line(tmp_path: Path, tiny_model_dir: Path) -> None:
    from tunewise.cli import app

    path = write_config(
        tmp_path, tiny_model_dir, "max_steps: 2", "  space:\n    train.lrr: {log_uniform: [1.0e-5, 1.0e-3]}\n"
    )
    result = CliRunner().invoke(app, ["tune", str(path), "--trials", "2"])
    assert isinstance(result.exception, ConfigError)
    line = path.read_text().splitlines().index("    train.lrr: {log_uniform: [1.0e-5, 1.0e-3]}") + 1
    assert f"tune.space.train.lrr ({path}:{line}): not a config key" in str(result.exception)
    assert not (tmp_path / "runs").exists(), "nothing was written"
