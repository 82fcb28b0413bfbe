"""The verbs of the library and the CLI: `train`, `evaluate` and `run`, each a few phases of `Run`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tunewise.config import Config, SuiteConfig, load_config
from tunewise.console import make_console
from tunewise.errors import TunewiseError
from tunewise.run._run import Run, find_run_dir
from tunewise.rundir import RunDir
from tunewise.tasks import load_tokenizer_for, prepare_data, task_of

__all__ = ["evaluate", "run", "train"]

console = make_console()


def train(config: Config, config_path: str | Path | None = None) -> Path:
    """Fine-tune as configured and return the run directory.

    The directory holds `config.yaml` (resolved), `metrics.jsonl`, `checkpoints/`, `adapter/`
    (weights + tokenizer), `data_stats.json`, `train_summary.json` and, when rows were set aside,
    `rejects.jsonl` (`tunewise.rundir`). With `stages`, one such directory per stage inside the run
    directory returned, and the stages table (`tunewise.run.stages`; the full evaluation is `run`'s).
    """
    if config.stages:
        from tunewise.run.stages import run_stages

        return run_stages(config, config_path, evaluate=False)
    job = Run(config, config_path)
    job.fit()
    return job.save()


def _with_suites(config: Config, suites: list[str] | None, limit: int | None) -> Config:
    """Apply `--suite` (replaces the configured suites; paths relative to the cwd) and `--limit`."""
    chosen = config.eval.suites
    if suites is not None:
        chosen = [
            SuiteConfig(name=str(Path(s).resolve()) if Path(s).suffix and not s.startswith("hf:") else s)
            for s in suites
        ]
    if limit is not None:
        chosen = [s.model_copy(update={"limit": limit}) for s in chosen]
    return config.model_copy(update={"eval": config.eval.model_copy(update={"suites": chosen})})


def evaluate(
    target: str | Path | None = None,
    overrides: list[str] | None = None,
    *,
    suites: list[str] | None = None,
    limit: int | None = None,
) -> dict[str, Any]:
    """Score base and tuned side by side: eval loss on the run's eval rows, and every suite.

    Args:
        target: a run directory, a config (its newest run; the base model alone when it has no
            run yet), or None for the base model of the default config.
        suites: suite names or files replacing `eval.suites`.
        limit: score at most this many items of each suite.

    Writes `eval_summary.json` into the run directory (when there is one), prints the tables,
    and returns the summary.
    """
    from tunewise.methods import load_kwargs, load_tuned
    from tunewise.models import load_model

    run_dir: Path | None = None
    if target is not None and Path(target).is_dir():
        run_dir = Path(target)
        _not_a_stages_dir(RunDir(run_dir))
        config = load_config(_run_config(RunDir(run_dir)), overrides)
    elif target is not None:
        config = load_config(target, overrides)
        run_dir = find_run_dir(config, target, must_exist=True)
        if run_dir is None:
            console.print(f"no run of {target} in {config.output.dir}/ yet: scoring the base model alone")
    else:
        config = load_config(None, overrides)
    config = _with_suites(config, suites, limit)
    if run_dir is not None and not RunDir(run_dir).adapter.is_dir():
        raise TunewiseError(
            f"{run_dir} has no trained adapter yet (training unfinished?); finish it with "
            f"train.resume=true, then evaluate"
        )

    task = task_of(config)
    tokenizer = load_tokenizer_for(config)
    # A head is trained from the data's label set, so its data is needed even for the base alone.
    data = prepare_data(config, tokenizer) if run_dir is not None or task.head else None
    if task.head and run_dir is None:  # no trained head yet: the majority and prompting baselines alone
        return Run(config, target, tokenizer=tokenizer, data=data).evaluate()
    if run_dir is not None and data is not None:
        task.check_saved(run_dir, data)  # the saved head's labels must be the data's
    model = load_model(
        config.model.name,
        revision=config.model.revision,
        trust_remote_code=config.model.trust_remote_code,
        **(load_kwargs(config) if run_dir is not None else {}),
        **task.model_load_kwargs(data),
    )
    if run_dir is not None:
        model = load_tuned(model, RunDir(run_dir).adapter)  # base + the run's adapter or tuned weights
    return Run(config, target, model=model, tokenizer=tokenizer, data=data, run_dir=run_dir).evaluate()


def _not_a_stages_dir(path: RunDir) -> None:
    if path.is_stages():
        stages = sorted(p.name for p in path.path.iterdir() if (p / RunDir.CONFIG).is_file())
        raise TunewiseError(
            f"{path.path} is a sequential run (its stages table is {path.stages_summary}); evaluate "
            f"one of its stages: {', '.join(str(path / s) for s in stages) or '(none trained yet)'}"
        )


def _run_config(run_dir: RunDir) -> Path:
    if not run_dir.is_run():
        raise TunewiseError(
            f"{run_dir.path} is not a tunewise run directory (no config.yaml); "
            f"pass a run directory written by `tunewise train`, or a config file"
        )
    return run_dir.config


def run(config: Config, config_path: str | Path | None = None) -> Path:
    """The main job: prepare the data, train, evaluate base vs tuned, write the report card.

    Returns the run directory. With `stages`, every stage is trained and evaluated in turn and the
    stages table printed (`tunewise.run.stages`); the directory returned holds one run per stage.
    """
    if config.stages:
        from tunewise.run.stages import run_stages

        return run_stages(config, config_path)
    job = Run(config, config_path)
    job.fit()
    run_dir = job.save()
    # The freshly trained model and rendered rows are still in memory: no reload, no re-render.
    job.evaluate()
    job.report()
    return run_dir
