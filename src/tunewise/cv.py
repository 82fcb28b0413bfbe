"""K-fold cross-validation: K fine-tunes, each evaluated on the fold it never saw.

One train/eval split gives one number, and on a small dataset that number depends on which rows
happened to land in eval. Cross-validation trains K times, each time holding out a different
fifth (say) of the data, and reports every metric as mean ± standard deviation over the folds:
the spread says how much of a difference between two configs is luck of the split.

How the folds are built, top to bottom in `cross_validate`:

1. the training file is read as `train` reads it (`data.train`, `data.shape`, `data.columns`,
   `data.on_bad_rows`); `data.eval`, `data.test` and `data.split` are not used — the folds
   replace them;
2. near-duplicate rows are grouped (`tunewise.data.dedup`, MinHash over word 3-grams, verified
   Jaccard ≥ `dedup_threshold`), so a row and its near copy never sit on both sides of a fold:
   that would measure memory, not generalisation;
3. groups are dealt to folds largest first, each to the fold with the fewest rows so far (ties
   broken by a seeded shuffle, seed `data.split.seed`), which balances folds by row count;
4. fold i trains on the other K-1 folds and is evaluated on fold i. Each fold is an ordinary run
   directory (`fold-<i>/`, with its data files under `data/fold-<i>/`), so `tunewise eval` and
   `tunewise report` work on it as on any run.

Output, in `<output.dir>/<config stem>-cv-<timestamp>/` (or `<output.dir>/<output.name>/`):
`cv_config.yaml`, `cv_plan.json` (the fold of every row), `fold-<i>/`, and `cv_summary.json`
(per metric: mean, sample standard deviation, per-fold values). Re-running with `resume` skips
folds that finished, continues one that was interrupted from its checkpoint, and starts the rest.
"""

from __future__ import annotations

import gc
import json
import random
import shutil
import statistics
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml
from rich.table import Table

from tunewise.config import Config, SplitConfig
from tunewise.console import make_console
from tunewise.errors import ConfigError, TunewiseError
from tunewise.rundir import EvalSummary, RunDir, write_json, write_text

if TYPE_CHECKING:
    from tunewise.data import Example

__all__ = ["assign_folds", "config_differences", "cross_validate", "fold_metrics", "summarise_folds"]

console = make_console()

PLAN_FILE = RunDir.CV_PLAN
SUMMARY_FILE = RunDir.CV_SUMMARY
CONFIG_FILE = RunDir.CV_CONFIG


# --------------------------------------------------------------------------- folds


def assign_folds(groups: Sequence[int], folds: int, *, seed: int = 0) -> list[int]:
    """Deal rows to folds so that rows sharing a group id always share a fold.

    Groups are placed largest first, each into the fold holding the fewest rows so far (the
    lowest fold on a tie); groups of equal size are taken in a seeded random order. Fold sizes
    then differ by at most the size of the largest group.

    Args:
        groups: a group id per row, e.g. `near_duplicate_clusters` of the rows' texts.
        folds: how many folds, at least 2 and at most the number of groups.
        seed: seed of the order among groups of equal size.

    Returns:
        The fold (0 to folds-1) of each row.

    Raises:
        TunewiseError: `folds` below 2 or above the number of groups.
    """
    _check_folds(folds)
    members: dict[int, list[int]] = {}
    for row, group in enumerate(groups):
        members.setdefault(group, []).append(row)
    if folds > len(members):
        raise TunewiseError(
            f"--folds {folds}: the data has only {len(members)} groups of rows ({len(groups)} rows, near "
            f"duplicates kept together), and every fold needs at least one; use --folds {max(len(members), 2)} "
            f"or fewer" + (", or raise --dedup-threshold to group fewer rows" if len(members) < len(groups) else "")
        )
    order = list(members)
    random.Random(seed).shuffle(order)
    order.sort(key=lambda g: -len(members[g]))  # stable: the shuffle decides among equal sizes
    sizes = [0] * folds
    fold_of = [0] * len(groups)
    for group in order:
        target = min(range(folds), key=lambda f: (sizes[f], f))
        sizes[target] += len(members[group])
        for row in members[group]:
            fold_of[row] = target
    return fold_of


def _check_folds(folds: int) -> None:
    if folds < 2:
        raise TunewiseError(f"--folds {folds}: cross-validation needs at least 2 folds (5 is usual)")


# --------------------------------------------------------------------------- metrics


def fold_metrics(summary: Mapping[str, Any]) -> dict[str, float]:
    """The numbers of one fold's `eval_summary.json` that cross-validation averages.

    `eval_loss/<side>` and `perplexity/<side>` for base, tuned (and any other side the summary
    holds), `eval_loss/delta` (tuned - base), per suite result `suite/<name>/<metric>/base`,
    `.../tuned` and `.../delta` and, when the few-shot and retrieval baselines were scored,
    `baseline_loss/<variant>` and `baseline_loss/tuned_vs_<variant>` (tuned - variant).
    """
    return EvalSummary.from_dict(summary).metrics()


def summarise_folds(per_fold: Sequence[Mapping[str, float]]) -> dict[str, dict[str, Any]]:
    """Per metric: `mean`, `std` (sample standard deviation, ddof=1; None with one value) and
    `values` (one per fold, None where a fold lacks the metric), in first-seen metric order."""
    names: dict[str, None] = {}
    for metrics in per_fold:
        names.update(dict.fromkeys(metrics))
    out = {}
    for name in names:
        values = [metrics.get(name) for metrics in per_fold]
        present = [v for v in values if v is not None]
        out[name] = {
            "mean": statistics.fmean(present) if present else None,
            "std": statistics.stdev(present) if len(present) > 1 else None,
            "values": values,
        }
    return out


# --------------------------------------------------------------------------- the job


def cross_validate(
    config: Config,
    config_path: str | Path | None = None,
    *,
    folds: int = 5,
    dedup_threshold: float = 0.8,
    suites: bool = True,
    resume: str | Path | None = None,
) -> Path:
    """Train and evaluate once per fold; print and write mean ± std of every metric.

    Args:
        config: the run config; its training file is split into the folds.
        config_path: the config file, for the directory name and the resume hint.
        folds: K, at least 2.
        dedup_threshold: Jaccard similarity of word 3-grams from which rows count as near
            duplicates and are kept in one fold.
        suites: score `eval.suites` in every fold (False: eval loss and perplexity only).
        resume: an earlier cross-validation directory to continue; folds that finished are
            kept. Also continued without it when `output.name` names an existing one.

    Returns:
        The cross-validation directory.

    Raises:
        TunewiseError: bad `folds`, `dedup_threshold` or `resume`, or the data or config differ
            from those of the directory being resumed.
    """
    from tunewise.data import load_examples, write_rejects
    from tunewise.data.dedup import example_text, near_duplicate_clusters
    from tunewise.run import config_text

    _check_folds(folds)
    if not 0 < dedup_threshold <= 1:
        raise TunewiseError(
            f"--dedup-threshold {dedup_threshold}: must be above 0 and at most 1 "
            f"(the Jaccard similarity from which rows count as near duplicates)"
        )
    data = config.data
    if config.stages:
        raise ConfigError(
            [
                "stages: cross-validation folds one training set and trains once per fold; a "
                "sequential run cannot be folded. Cross-validate one stage at a time: a config "
                "without `stages:` whose data.train is that stage's file"
            ]
        )
    if data.datasets:
        raise ConfigError(
            [
                "data.datasets: cross-validation folds a single data.train file; a mixture of "
                "several datasets is not folded. Cross-validate each dataset on its own "
                "(data.train: its file), or merge them into one file first"
            ]
        )
    if not data.train:
        raise ConfigError(["data.train: no training file given; set `data.train: path/to/train.jsonl`"])
    ignored = [key for key, value in (("data.eval", data.eval), ("data.test", data.test)) if value]
    console.print(
        f"cross-validation: the {folds} folds of {data.train} replace "
        f"{', '.join([*ignored, 'data.split'])}; each fold is evaluated on the rows it did not train on"
    )

    examples, rejects = load_examples(data.train, shape=data.shape, columns=data.columns, on_bad_rows=data.on_bad_rows)
    seed = data.split.seed
    groups = near_duplicate_clusters([example_text(ex) for ex in examples], threshold=dedup_threshold, seed=seed)
    fold_of = assign_folds(groups, folds, seed=seed)
    plan = {
        "folds": folds,
        "dedup_threshold": dedup_threshold,
        "seed": seed,
        "data": str(data.train),
        "rows": [{"source": ex.source, "group": g, "fold": f + 1} for ex, g, f in zip(examples, groups, fold_of)],
    }
    sizes = [fold_of.count(f) for f in range(folds)]
    n_groups = len(set(groups))
    repeats = len(examples) - n_groups
    aside = f"; {len(rejects)} rows set aside (rejects.jsonl)" if rejects else ""
    console.print(
        f"{len(examples)} rows in {n_groups} groups ({repeats} row{'s' if repeats != 1 else ''} (nearly) "
        f"repeat another at Jaccard ≥ {dedup_threshold:g} and share its fold); fold sizes: "
        f"{', '.join(map(str, sizes))}{aside}"
    )

    _check_once(config, examples)
    cv_dir = _cv_dir(config, config_path, resume, plan)
    cv_dir.mkdir(parents=True, exist_ok=True)
    write_text(cv_dir / CONFIG_FILE, config_text(config))
    write_json(cv_dir / PLAN_FILE, plan)
    if rejects:
        write_rejects(rejects, cv_dir / RunDir.REJECTS)
    console.print(f"cross-validation directory: {cv_dir}")

    shape = "text" if examples[0].messages is None else "chat"
    per_fold: list[dict[str, float]] = []
    done: list[int] = []
    for i in range(1, folds + 1):
        train_ex = [ex for ex, f in zip(examples, fold_of) if f != i - 1]
        eval_ex = [ex for ex, f in zip(examples, fold_of) if f == i - 1]
        console.rule(f"fold {i}/{folds}: train on {len(train_ex)} rows, evaluate on {len(eval_ex)}")
        try:
            summary = _run_fold(config, config_path, cv_dir, i, shape, train_ex, eval_ex, suites=suites)
        except KeyboardInterrupt:
            kept = f"fold{'s' if len(done) > 1 else ''} {', '.join(map(str, done))} finished and kept; " if done else ""
            console.print(
                f"[yellow]Cross-validation stopped in fold {i}; {kept}continue with: tunewise cv "
                f"{config_path or 'CONFIG'} --folds {folds} --resume {cv_dir}[/]",
                highlight=False,
            )
            raise
        per_fold.append(fold_metrics(summary))
        done.append(i)

    metrics = summarise_folds(per_fold)
    _print_summary(metrics, folds)
    write_json(
        cv_dir / SUMMARY_FILE,
        {
            "folds": folds,
            "dedup_threshold": dedup_threshold,
            "seed": seed,
            "rows": len(examples),
            "groups": n_groups,
            "std": "sample standard deviation over folds (ddof=1)",
            "fold_runs": [
                {
                    "fold": i,
                    "run": RunDir(cv_dir).fold(i).name,
                    "train_rows": len(examples) - sizes[i - 1],
                    "eval_rows": sizes[i - 1],
                }
                for i in range(1, folds + 1)
            ],
            "metrics": metrics,
        },
    )
    console.print(f"cross-validation summary: {cv_dir / SUMMARY_FILE}")
    return cv_dir


def _check_once(config: Config, examples: Sequence[Example]) -> None:
    """The data check over all rows, before any fold trains (folds cannot leak: near duplicates
    share a fold); a blocking finding stops here rather than in fold 1."""
    from tunewise.data.check import check_data
    from tunewise.evaluation.suite import suite_texts
    from tunewise.run import report_check

    if config.data.check.enabled:
        report_check(check_data(examples, {}, config, suites=suite_texts(config)))


def _cv_dir(config: Config, config_path: str | Path | None, resume: str | Path | None, plan: dict[str, Any]) -> Path:
    """The directory to write into: the one being resumed (checked against this plan and config), or a new one."""
    base = Path(config.output.dir)
    if resume is not None:
        path = Path(resume)
        if not (path / PLAN_FILE).is_file():
            raise TunewiseError(
                f"--resume {path}: not a cross-validation directory (no {PLAN_FILE}); pass the "
                f"directory an earlier `tunewise cv` printed, or leave --resume out to start anew"
            )
    elif config.output.name:
        path = base / config.output.name
        if path.exists() and any(path.iterdir()) and not (path / PLAN_FILE).is_file():
            raise TunewiseError(
                f"{path} already exists and is not a cross-validation directory; choose another output.name"
            )
    else:
        return RunDir.new(base, None, config_path, kind="cv").path
    if (path / PLAN_FILE).is_file():
        _check_same_plan(path, plan, config)
        console.print(f"continuing the cross-validation in {path}: finished folds are kept")
    return path


def _check_same_plan(path: Path, plan: dict[str, Any], config: Config) -> None:
    earlier = json.loads((path / PLAN_FILE).read_text(encoding="utf-8"))
    if earlier != json.loads(json.dumps(plan)):
        changed = [
            f"{key} was {earlier.get(key)}"
            for key in ("folds", "dedup_threshold", "seed", "data")
            if earlier.get(key) != plan[key]
        ] or ["the rows of the training file changed"]
        raise TunewiseError(
            f"--resume {path}: its folds were built differently ({'; '.join(changed)}); "
            f"resume with the same --folds, --dedup-threshold, data.split.seed and data, or start "
            f"a new cross-validation without --resume"
        )
    saved = yaml.safe_load((path / CONFIG_FILE).read_text(encoding="utf-8"))
    differ = config_differences(saved, config.model_dump(mode="json"))
    if differ:
        raise TunewiseError(
            f"--resume {path}: the config differs from the one its finished folds were trained "
            f"with ({', '.join(differ[:5])}); averaging folds trained differently would mislead. "
            f"Use the same config and overrides, or start a new cross-validation"
        )


def config_differences(old: Any, new: Any, prefix: str = "") -> list[str]:
    """Where two configs (as JSON trees) differ in what a run measures: `key.path: old -> new` per leaf.

    `output` (where results go) and `train.resume` (whether a run continues) are not compared.
    """
    if prefix in ("output", "train.resume"):
        return []
    if isinstance(old, dict) and isinstance(new, dict):
        return [
            d
            for key in dict.fromkeys([*old, *new])
            for d in config_differences(old.get(key), new.get(key), f"{prefix}.{key}" if prefix else key)
        ]
    return [] if old == new else [f"{prefix}: {old!r} -> {new!r}"]


def _run_fold(
    config: Config,
    config_path: str | Path | None,
    cv_dir: Path,
    i: int,
    shape: str,
    train_ex: list[Example],
    eval_ex: list[Example],
    *,
    suites: bool,
) -> dict[str, Any]:
    """Train and evaluate fold i, or pick up where an earlier attempt stopped; return its eval summary."""
    from tunewise.run import Run, evaluate
    from tunewise.tracking import default_mlflow_uri
    from tunewise.training.loop import last_checkpoint

    run_dir = RunDir(cv_dir).fold(i)
    if run_dir.eval_summary.is_file():
        console.print(f"fold {i} finished earlier: kept ({run_dir.path})")
        return run_dir.read_eval_summary().sections
    if run_dir.is_trained():
        console.print(f"fold {i} trained earlier: evaluating it")
        return evaluate(run_dir.path)

    data_dir = RunDir(cv_dir).fold_data(i)
    data_dir.mkdir(parents=True, exist_ok=True)
    train_file, eval_file = data_dir / "train.jsonl", data_dir / "eval.jsonl"
    _write_rows(train_ex, train_file)
    _write_rows(eval_ex, eval_file)
    resume = last_checkpoint(run_dir.checkpoints) is not None
    if run_dir.exists() and not resume:
        shutil.rmtree(run_dir.path)  # a start that wrote nothing resumable

    fold_config = config.model_copy(
        update={
            "data": config.data.model_copy(
                update={
                    "train": str(train_file.resolve()),
                    "eval": str(eval_file.resolve()),
                    "test": None,
                    "shape": shape,
                    "columns": None,
                    "split": SplitConfig(eval=0.0, test=0.0, seed=config.data.split.seed),
                    "check": config.data.check.model_copy(update={"enabled": False}),
                }
            ),  # checked once, above
            "train": config.train.model_copy(update={"resume": resume}),
            "eval": config.eval if suites else config.eval.model_copy(update={"suites": []}),
            # Folds track into the same MLflow store as every other run of this output.dir.
            "output": config.output.model_copy(
                update={
                    "dir": str(cv_dir),
                    "name": run_dir.name,
                    "mlflow_uri": config.output.mlflow_uri or default_mlflow_uri(config.output.dir),
                }
            ),
        }
    )
    fold = Run(fold_config, config_path)
    fold.fit()
    fold.save()
    try:
        return fold.evaluate()  # the model and the rendered rows still in memory
    finally:
        del fold
        gc.collect()


def _write_rows(examples: Sequence[Example], path: Path) -> None:
    """Examples as JSONL a run reads back unchanged: chat rows or text rows, each with its original `file:line`."""
    with open(path, "w", encoding="utf-8") as f:
        for ex in examples:
            row = {"messages": list(ex.messages)} if ex.messages is not None else {"text": ex.text}
            f.write(json.dumps({**row, "source": ex.source}, ensure_ascii=False) + "\n")


def _print_summary(metrics: Mapping[str, Mapping[str, Any]], folds: int) -> None:
    table = Table(title=f"cross-validation over {folds} folds (mean ± sample std)")
    table.add_column("metric")
    table.add_column("mean ± std", justify="right")
    for i in range(1, folds + 1):
        table.add_column(f"fold {i}", justify="right")

    def fmt(value: float | None) -> str:
        return "-" if value is None else f"{value:.4g}"

    for name, m in metrics.items():
        spread = f"{fmt(m['mean'])} ± {fmt(m['std'])}" if m["std"] is not None else fmt(m["mean"])
        table.add_row(name, spread, *(fmt(v) for v in m["values"]))
    console.print(table)
