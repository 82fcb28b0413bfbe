"""K-fold cross-validation on a tiny random model: folds keep near duplicates together and
partition the rows, the summary is the mean ± sample std of the fold files, an interrupted
cross-validation resumes without redoing finished folds, and bad --folds is refused up front."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tunewise.config import OutputConfig, load_config
from tunewise.cv import assign_folds, cross_validate, fold_metrics, summarise_folds
from tunewise.data.dedup import jaccard
from tunewise.errors import TunewiseError

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
# Near copies (first word changed) and an exact copy up to case: each must share its original's fold.
COPIES = {12: (0, ("What", "Which")), 13: (3, ("What", "So what")), 14: (7, ("What", "Tell me")), 15: (9, None)}


def chat(question: str, answer: str) -> dict:
    return {"messages": [{"role": "user", "content": question}, {"role": "assistant", "content": answer}]}


def rows() -> list[dict]:
    out = [chat(q, a) for q, a in FACTS]
    for _, (original, change) in sorted(COPIES.items()):
        q, a = FACTS[original]
        out.append(chat(q.replace(*change), a) if change else chat(q.upper(), a.upper()))
    return out


# Tracking (MLflow) has nothing to do with folds and only slows the test down.
QUIET = ["output.tracking=[]"] if "tracking" in OutputConfig.model_fields else []


@pytest.fixture()
def cv_config(tmp_path: Path, tiny_model_dir: Path) -> Path:
    (tmp_path / "train.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows()))
    config = tmp_path / "tiny.yaml"
    config.write_text(
        f"model: {{name: {tiny_model_dir}}}\n"
        "data: {train: train.jsonl, split: {eval: 0.25, seed: 3}, max_length: 128}\n"
        "method: {r: 4, alpha: 8, dropout: 0.0}\n"
        "train: {max_steps: 2, lr: 0.01, batch_size: 4, eval_every: 0, save_every: 100, log_every: 1, "
        "warmup_ratio: 0.0, precision: fp32}\n"
        "eval: {generations: 0, bootstrap: 100, suites: [{name: general_knowledge, limit: 3}]}\n"
        f"output: {{dir: {tmp_path / 'runs'}}}\n"
    )
    return config


# --------------------------------------------------------------------------- fold assignment (fast)


def test_folds_partition_rows_keep_groups_together_and_balance() -> None:
    groups = [0, 0, 0, 3, 4, 4, 6, 7, 8, 9, 9, 11, 12, 13, 14, 15, 16, 17, 18, 18]
    for folds in (2, 3, 5):
        fold_of = assign_folds(groups, folds, seed=1)
        assert sorted(set(fold_of)) == list(range(folds)), "every fold gets rows"
        for g in set(groups):
            assert len({f for f, h in zip(fold_of, groups) if h == g}) == 1, f"group {g} split"
        sizes = [fold_of.count(f) for f in range(folds)]
        assert sum(sizes) == len(groups)
        assert max(sizes) - min(sizes) <= 3, f"largest group has 3 rows; sizes {sizes}"
        assert assign_folds(groups, folds, seed=1) == fold_of, "deterministic for a seed"


def test_the_seed_changes_which_equal_groups_go_where() -> None:
    singles = list(range(30))
    assert assign_folds(singles, 3, seed=0) != assign_folds(singles, 3, seed=1)
    assert sorted(assign_folds(singles, 3, seed=0).count(f) for f in range(3)) == [10, 10, 10]


@pytest.mark.parametrize("folds", [1, 0, -2])
def test_fewer_than_two_folds_is_refused(folds: int) -> None:
    with pytest.raises(TunewiseError, match=f"--folds {folds}: .*at least 2"):
        assign_folds([0, 1, 2], folds)


def test_more_folds_than_groups_is_refused() -> None:
    with pytest.raises(TunewiseError, match=r"--folds 4: .*only 3 groups.*--folds 3 or fewer"):
        assign_folds([0, 0, 2, 3], 4)


def test_summary_is_mean_and_sample_std() -> None:
    per_fold = [{"a": 1.0, "b": 2.0}, {"a": 2.0}, {"a": 4.5, "b": 4.0}]
    out = summarise_folds(per_fold)
    assert out["a"]["values"] == [1.0, 2.0, 4.5] and out["a"]["mean"] == pytest.approx(2.5)
    assert out["a"]["std"] == pytest.approx(((1.5**2 + 0.5**2 + 2**2) / 2) ** 0.5)
    assert out["b"] == {"mean": 3.0, "std": pytest.approx(2**0.5), "values": [2.0, None, 4.0]}


def test_fold_metrics_reads_losses_and_suites() -> None:
    summary = {
        "base": {"loss": 2.0, "perplexity": 7.4},
        "tuned": {"loss": 1.5, "perplexity": 4.5},
        "delta_loss": -0.5,
        "generations": [],
        "suites": [
            {
                "name": "gk",
                "metric": "acc_norm",
                "base": {"value": 0.25, "low": 0, "high": 1},
                "tuned": {"value": 0.5, "low": 0, "high": 1},
                "delta": {"value": 0.25},
            }
        ],
        # Baselines score answer tokens only: their own names, never mixed into eval_loss/*.
        "baselines": {
            "few_shot": {"k": 3},
            "eval_rows": {
                "variants": {
                    "base": {"loss": {"value": 2.1}},
                    "few_shot": {"loss": {"value": 1.8}},
                    "tuned": {"loss": {"value": 1.6}},
                },
                "tuned_vs": {"few_shot": {"value": -0.2, "low": -0.3, "high": -0.1}},
            },
        },
    }
    assert list(fold_metrics(summary).items()) == [
        ("eval_loss/base", 2.0),
        ("eval_loss/tuned", 1.5),
        ("eval_loss/delta", -0.5),
        ("perplexity/base", 7.4),
        ("perplexity/tuned", 4.5),
        ("baseline_loss/base", 2.1),
        ("baseline_loss/few_shot", 1.8),
        ("baseline_loss/tuned", 1.6),
        ("baseline_loss/tuned_vs_few_shot", -0.2),
        ("suite/gk/acc_norm/base", 0.25),
        ("suite/gk/acc_norm/tuned", 0.5),
        ("suite/gk/acc_norm/delta", 0.25),
    ]


# --------------------------------------------------------------------------- end to end (tiny model)


def test_cross_validation_end_to_end(cv_config: Path) -> None:
    from tunewise.run import find_run_dir

    config = load_config(cv_config, QUIET)
    cv_dir = cross_validate(config, cv_config, folds=3)
    assert cv_dir.parent == cv_config.parent / "runs" and cv_dir.name.startswith("tiny-cv-")

    plan = json.loads((cv_dir / "cv_plan.json").read_text())
    sources = [r["source"] for r in plan["rows"]]
    assert len(sources) == len(set(sources)) == len(rows()), "every row is in exactly one fold"
    fold_of = {int(s.rsplit(":", 1)[1]) - 1: r["fold"] for s, r in zip(sources, plan["rows"])}
    texts = [" ".join(m["content"] for m in r["messages"]) for r in rows()]
    for copy, (original, _) in COPIES.items():
        assert jaccard(texts[copy], texts[original]) >= 0.8
        assert fold_of[copy] == fold_of[original], f"row {copy} is a near copy of row {original}"
    sizes = [list(fold_of.values()).count(f) for f in (1, 2, 3)]
    assert max(sizes) - min(sizes) <= 2 and sum(sizes) == 16

    summary = json.loads((cv_dir / "cv_summary.json").read_text())
    evals = [json.loads((cv_dir / f"fold-{i}" / "eval_summary.json").read_text()) for i in (1, 2, 3)]
    for i, ev in enumerate(evals, 1):
        # Each fold evaluated on exactly its own rows and trained on all the others.
        data = cv_dir / "data" / f"fold-{i}"
        held_out = [json.loads(line)["source"] for line in (data / "eval.jsonl").read_text().splitlines()]
        trained = [json.loads(line)["source"] for line in (data / "train.jsonl").read_text().splitlines()]
        assert sorted(held_out) == sorted(s for s, r in zip(sources, plan["rows"]) if r["fold"] == i)
        assert sorted(held_out + trained) == sorted(sources)
        assert ev["base"]["rows"] == len(held_out) == summary["fold_runs"][i - 1]["eval_rows"]
        resolved = load_config(cv_dir / f"fold-{i}" / "config.yaml")
        assert resolved.data.eval == str((data / "eval.jsonl").resolve()) and resolved.data.test is None
    for key, read in (
        ("eval_loss/tuned", lambda e: e["tuned"]["loss"]),
        ("eval_loss/base", lambda e: e["base"]["loss"]),
        ("eval_loss/delta", lambda e: e["delta_loss"]),
        ("perplexity/tuned", lambda e: e["tuned"]["perplexity"]),
        ("suite/general_knowledge/acc_norm/tuned", lambda e: e["suites"][0]["tuned"]["value"]),
        ("suite/general_knowledge/acc_norm/delta", lambda e: e["suites"][0]["delta"]["value"]),
    ):
        values = [read(e) for e in evals]
        mean = sum(values) / 3
        assert summary["metrics"][key]["values"] == pytest.approx(values)
        assert summary["metrics"][key]["mean"] == pytest.approx(mean)
        assert summary["metrics"][key]["std"] == pytest.approx((sum((v - mean) ** 2 for v in values) / 2) ** 0.5)
    assert summary["metrics"]["suite/general_knowledge/acc_norm/base"]["std"] == pytest.approx(0.0), (
        "the base model is the same in every fold"
    )
    # A cross-validation directory is not a run: `tunewise eval CONFIG` must not pick it.
    assert find_run_dir(config, cv_config, must_exist=True) is None


def test_interrupted_cross_validation_resumes_without_redoing_finished_folds(
    cv_config: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tunewise.run import Run

    config = load_config(cv_config, [*QUIET, "eval.suites=[]", "output.name=cv"])
    real_evaluate, real_fit = Run.evaluate, Run.fit
    trainings: list[str] = []

    def ctrl_c_in_fold_2_eval(self: Run) -> dict:
        if self.run_dir is not None and self.run_dir.name == "fold-2":
            raise KeyboardInterrupt
        return real_evaluate(self)

    def counting_fit(self: Run, *args, **kwargs):
        trainings.append(self.config.output.name)
        return real_fit(self, *args, **kwargs)

    monkeypatch.setattr(Run, "fit", counting_fit)
    monkeypatch.setattr(Run, "evaluate", ctrl_c_in_fold_2_eval)
    with pytest.raises(KeyboardInterrupt):
        cross_validate(config, cv_config, folds=2)
    cv_dir = cv_config.parent / "runs" / "cv"
    assert (cv_dir / "fold-1" / "eval_summary.json").is_file(), "the finished fold stays usable"
    assert (cv_dir / "fold-2" / "adapter").is_dir() and not (cv_dir / "fold-2" / "eval_summary.json").exists()
    assert not (cv_dir / "cv_summary.json").exists()
    assert trainings == ["fold-1", "fold-2"]

    monkeypatch.setattr(Run, "evaluate", real_evaluate)
    finished = (cv_dir / "fold-1" / "eval_summary.json").stat().st_mtime_ns
    # The same output.name continues it; so would --resume DIR.
    assert cross_validate(config, cv_config, folds=2) == cv_dir
    assert trainings == ["fold-1", "fold-2"], "no fold was trained again"
    assert (cv_dir / "fold-1" / "eval_summary.json").stat().st_mtime_ns == finished
    assert (cv_dir / "fold-2" / "eval_summary.json").is_file()
    summary = json.loads((cv_dir / "cv_summary.json").read_text())
    assert len(summary["metrics"]["eval_loss/tuned"]["values"]) == 2

    # Resuming with other settings would average folds that measured different things.
    with pytest.raises(TunewiseError, match=r"--resume .*folds was 2"):
        cross_validate(config, cv_config, folds=3, resume=cv_dir)
    with pytest.raises(TunewiseError, match=r"config differs.*train\.lr"):
        cross_validate(
            load_config(cv_config, [*QUIET, "eval.suites=[]", "train.lr=0.5"]), cv_config, folds=2, resume=cv_dir
        )

    # The CLI on the finished directory: nothing left to train, the table is printed again.
    from tunewise.cli import app

    result = CliRunner().invoke(
        app, ["cv", str(cv_config), *QUIET, "eval.suites=[]", "output.name=cv", "--folds", "2", "--resume", str(cv_dir)]
    )
    assert result.exit_code == 0, result.output
    assert trainings == ["fold-1", "fold-2"]


def _cli(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1] / "src")}
    return subprocess.run(
        [sys.executable, "-m", "tunewise.cli", *args], env=env, capture_output=True, text=True, timeout=120
    )


def test_cli_refuses_bad_folds_before_writing_anything(cv_config: Path) -> None:
    proc = _cli("cv", str(cv_config), "--folds", "1")
    assert proc.returncode == 2 and "--folds 1" in proc.stderr and "Traceback" not in proc.stderr
    proc = _cli("cv", str(cv_config), "--folds", "40")
    assert proc.returncode == 2 and "--folds 40" in proc.stderr and "--folds 12 or fewer" in proc.stderr
    assert not (cv_config.parent / "runs").exists()


@pytest.mark.parametrize(
    ("extra", "key"),
    [
        ("stages: [{name: one, data: {train: train.jsonl}}, {name: two, data: {train: train.jsonl}}]\n", "stages"),
        ("data: {datasets: [{name: a, train: train.jsonl}, {name: b, train: train.jsonl}]}\n", "data.datasets"),
    ],
)
def test_runs_that_cannot_be_folded_are_refused_by_key(tmp_path: Path, cv_config: Path, extra: str, key: str) -> None:
    text = cv_config.read_text()
    if extra.startswith("data:"):
        text = "\n".join(line for line in text.splitlines() if not line.startswith("data:")) + "\n"
    (tmp_path / "bad.yaml").write_text(text + extra)
    with pytest.raises(TunewiseError) as err:
        cross_validate(load_config(tmp_path / "bad.yaml"), folds=2)
    assert key in str(err.value)
    assert not (tmp_path / "runs").exists()
