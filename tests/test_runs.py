"""`tunewise runs`: the numbers listed are the ones in each run directory, newest first; folders
that are not runs are skipped with a note; a missing folder or a plain file is a clear error."""

from __future__ import annotations

import io
import json
import sys
from pathlib import Path

import pytest
from rich.console import Console
from typer.testing import CliRunner

from tunewise.cli import app, main
from tunewise.config import Config, dump_config, load_config
from tunewise.runs import find_runs, print_runs


def _interval(value: float, low: float, high: float, p: float | None = None) -> dict:
    return {"value": value, "low": low, "high": high, **({"p_value": p} if p is not None else {})}


def _suite(name: str, role: str, base: float, tuned: float, low: float, high: float) -> dict:
    return {
        "name": name,
        "role": role,
        "metric": "accuracy",
        "higher_is_better": True,
        "n": 200,
        "base": _interval(base, base - 0.05, base + 0.05),
        "tuned": _interval(tuned, tuned - 0.05, tuned + 0.05),
        "delta": _interval(tuned - base, low, high, 0.01),
    }


def _run(
    folder: Path,
    name: str,
    *,
    steps: int = 10,
    interrupted: bool | None = False,
    evaluated: bool = False,
    report: bool = False,
) -> Path:
    """A run directory as `tunewise train`/`eval`/`report` leave it (without the weights)."""
    run_dir = folder / name
    run_dir.mkdir(parents=True)
    dump_config(Config(data={"train": "train.jsonl"}), run_dir / "config.yaml")
    (run_dir / "metrics.jsonl").write_text(
        "".join(json.dumps({"step": s, "loss": 2.0 - s / 10}) + "\n" for s in range(1, steps + 1))
    )
    if interrupted is not None:  # None: still training, no summary yet
        (run_dir / "train_summary.json").write_text(
            json.dumps({"steps": steps, "interrupted": interrupted, "tokens_per_s": 1234.5, "tokens_seen": 9000})
        )
    if evaluated:
        (run_dir / "eval_summary.json").write_text(
            json.dumps(
                {
                    "base": {"loss": 2.5, "perplexity": 12.18},
                    "tuned": {"loss": 1.25, "perplexity": 3.49},
                    "delta_loss": -1.25,
                    "suites": [
                        _suite("general_knowledge", "general", 0.60, 0.50, -0.15, -0.05),  # a significant drop
                        _suite("my_task", "task", 0.40, 0.42, -0.03, 0.07),
                    ],
                }
            )
        )  # noise-sized
    if report:
        (run_dir / "report.html").write_text("<html></html>")
    return run_dir


@pytest.fixture()
def runs_folder(tmp_path: Path) -> Path:
    folder = tmp_path / "runs"
    _run(folder, "demo-20250102-090000", evaluated=True, report=True)
    _run(folder, "demo-20250103-090000", steps=3, interrupted=True)
    _run(folder, "demo-20250104-090000", steps=4, interrupted=None)
    oldest = _run(folder, "demo-20250101-090000")
    (oldest / "tracking.json").write_text(json.dumps({"mlflow": {"run_id": "0123abcd"}}))
    (folder / "notes").mkdir()
    _run(folder / "demo-cv-20250105-090000", "fold-1")
    (folder / "mlartifacts").mkdir()  # the trackers' own entries are no runs, and no news
    (folder / "mlflow.db").write_bytes(b"")
    return folder


def test_json_lists_every_run_newest_first_with_its_numbers(runs_folder: Path) -> None:
    result = CliRunner().invoke(app, ["runs", str(runs_folder), "--json"])
    assert result.exit_code == 0, result.output
    listed = json.loads(result.output)
    runs = {r["name"]: r for r in listed["runs"]}
    assert [r["name"] for r in listed["runs"]] == [f"demo-2025010{d}-090000" for d in (4, 3, 2, 1)]
    assert [r["status"] for r in listed["runs"]] == ["training", "interrupted", "evaluated", "finished"]
    assert [r["steps"] for r in listed["runs"]] == [4, 3, 10, 10]  # training: the last logged step

    evaluated = runs["demo-20250102-090000"]
    assert (evaluated["eval_loss_base"], evaluated["eval_loss_tuned"]) == (2.5, 1.25)
    assert evaluated["tokens_per_s"] == 1234.5 and evaluated["method"] == "lora"
    assert [(s["name"], s["role"], s["judgement"]) for s in evaluated["suites"]] == [
        ("my_task", "task", "neutral"),
        ("general_knowledge", "general", "bad"),
    ]
    assert evaluated["suites"][1]["delta"] == pytest.approx(-0.10)
    assert evaluated["pitfalls"] == ["forgetting"]
    assert evaluated["report"] == str(runs_folder / "demo-20250102-090000" / "report.html")
    assert evaluated["started"] == "2025-01-02 09:00:00" and evaluated["mlflow_run_id"] is None
    assert runs["demo-20250103-090000"]["pitfalls"] == ["interrupted run"]
    assert runs["demo-20250101-090000"]["mlflow_run_id"] == "0123abcd"
    assert runs["demo-20250104-090000"]["eval_loss_base"] is None and runs["demo-20250104-090000"]["report"] is None

    cv = runs_folder / "demo-cv-20250105-090000"
    assert listed["skipped"] == [
        {"path": str(cv), "reason": f"a folder of 1 run; list with `tunewise runs {cv}`"},
        {"path": str(runs_folder / "notes"), "reason": "not a run directory (no config.yaml)"},
    ]


def test_the_table_fits_80_columns_and_keeps_names_and_numbers_whole(runs_folder: Path) -> None:
    rows, skipped = find_runs(runs_folder)
    out = io.StringIO()
    print_runs(rows, skipped, runs_folder, Console(file=out, width=80, color_system=None))
    text = out.getvalue()
    table = text[: text.index("skipped")]
    assert max(len(line) for line in table.splitlines()) <= 80
    for whole in (
        "demo-20250102-090000",
        "2.500",
        "→ 1.250",
        "-0.100",
        "general_knowledge*",
        "forgetting",
        "interrupted run",
        "1234 tok/s",
        "report.html",
    ):
        assert whole in text, whole
    assert text.index("demo-20250104-090000") < text.index("demo-20250101-090000")
    assert f"skipped {runs_folder / 'notes'}:" in text and "mlartifacts" not in text


def test_a_config_lists_its_output_dir_and_a_run_dir_lists_itself(runs_folder: Path, tmp_path: Path) -> None:
    config = tmp_path / "demo.yaml"
    config.write_text(f"data: {{train: t.jsonl}}\noutput: {{dir: {runs_folder}}}\n")
    result = CliRunner().invoke(app, ["runs", str(config), "--json"])
    assert result.exit_code == 0, result.output
    assert len(json.loads(result.output)["runs"]) == 4
    result = CliRunner().invoke(app, ["runs", str(runs_folder / "demo-20250101-090000"), "--json"])
    assert [r["name"] for r in json.loads(result.output)["runs"]] == ["demo-20250101-090000"]


@pytest.mark.parametrize(
    "target, message",
    [
        ("missing", "no such folder"),
        ("runs/mlflow.db", "is a file, not a folder of runs"),
    ],
)
def test_a_missing_folder_or_a_file_is_a_clear_error(
    runs_folder: Path, target: str, message: str, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    monkeypatch.chdir(runs_folder.parent)
    monkeypatch.setattr(sys, "argv", ["tunewise", "runs", target])
    with pytest.raises(SystemExit) as exit_:
        main()
    err = capsys.readouterr().err
    assert exit_.value.code == 2 and message in err and target in err and "Traceback" not in err


def test_a_trained_and_evaluated_run_is_listed_with_its_own_numbers(
    tmp_path: Path, tiny_model_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tunewise.run import evaluate, train

    monkeypatch.chdir(tmp_path)
    rows = [
        {
            "messages": [
                {"role": "user", "content": f"Question {i}?"},
                {"role": "assistant", "content": f"Answer {i % 3}."},
            ]
        }
        for i in range(12)
    ]
    (tmp_path / "train.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (tmp_path / "tiny.yaml").write_text(
        f"model: {{name: {tiny_model_dir}}}\n"
        "data: {train: train.jsonl, split: {eval: 0.25}, max_length: 128}\n"
        "method: {r: 4, alpha: 8}\n"
        "train: {max_steps: 3, lr: 0.01, batch_size: 4, eval_every: 0, log_every: 1, precision: fp32}\n"
        "eval: {generations: 0, suites: []}\n"
        "output: {tracking: []}\n"
    )  # listing needs no tracker: it reads the run directory
    config = load_config(tmp_path / "tiny.yaml")
    run_dir = train(config, tmp_path / "tiny.yaml")
    summary = evaluate(run_dir)

    result = CliRunner().invoke(app, ["runs", "--json"])  # default folder: runs/
    assert result.exit_code == 0, result.output
    [listed] = json.loads(result.output)["runs"]
    trained = json.loads((run_dir / "train_summary.json").read_text())
    assert listed["name"] == run_dir.name and listed["status"] == "evaluated" and listed["steps"] == 3
    assert listed["eval_loss_base"] == summary["base"]["loss"] and listed["eval_loss_tuned"] == summary["tuned"]["loss"]
    assert listed["tokens_per_s"] == trained["tokens_per_s"] and listed["mlflow_run_id"] is None
