"""`tunewise tune CONFIG`: an Optuna study over `tune.space`, each trial an ordinary run.

Top to bottom, `tune()`:

1. checks the space against the config schema and the objectives (`space.py`, `objectives.py`),
   reads and checks the data once, and prints the estimated cost of one trial (`tunewise plan`);
2. opens the study: `sqlite:///<search dir>/study.db` by default or `tune.storage` (any SQLAlchemy
   URL), named after the search directory; an existing study of that name is continued;
3. runs trials — in this process, or in `--workers N` local processes sharing the study. A trial
   draws its values, trains (`tunewise.run.Run.fit`, the evals during training reported to the
   pruner), evaluates base vs tuned (`Run.evaluate`) and writes its report card, in the run
   directory `<search dir>/trial-<n>/`. A trial that raises (bad combination, out of memory,
   NaN loss) is recorded as failed and the study goes on;
4. prints the trials and the best trial (one objective) or the Pareto front (two), writes the best
   config as YAML ready for `tunewise train`, `tune_summary.json`, and the search report
   (`report.py`: trials table, parameter importances, Pareto or history plot).

Re-running the same command continues the study: `--trials` is the number of trials the study
should hold in all, so finished ones count. A trial stopped by Ctrl-C is run again with the same
values; a worker that died without a word is found by its missing heartbeat and its trial retried.
"""

from __future__ import annotations

import contextlib
import gc
import multiprocessing
import os
import shutil
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml
from pydantic import ValidationError

from tunewise.config import Config, describe_error, dump_config, key_lines
from tunewise.console import make_console
from tunewise.errors import ConfigError, TunewiseError
from tunewise.rundir import write_json
from tunewise.tune.objectives import check_objectives, directions, objective_values, trial_metrics
from tunewise.tune.space import apply_params, check_space, sample_params
from tunewise.tune.study import SUMMARY_FILE, Search, import_optuna, open_study, pruner_name, storage_url

if TYPE_CHECKING:
    import optuna

__all__ = ["CONFIG_FILE", "SUMMARY_FILE", "Search", "open_study", "search_dir", "trial_config", "tune"]

console = make_console()

CONFIG_FILE = "tune_config.yaml"
TRIAL_FILE = "trial.json"


def search_dir(config: Config, config_path: str | Path | None) -> Path:
    """`<output.dir>/<tune.name>`, default `<output.dir>/<config name>-tune`: the same on every re-run."""
    name = config.tune.name or f"{Path(config_path).stem if config_path else 'run'}-tune"
    return Path(config.output.dir) / name


def trial_config(base: Config, params: dict[str, Any], run_dir: Path) -> Config:
    """The config a trial runs: the base with the trial's values, writing into `run_dir`.

    The data check ran once before the search, and the cheaper-alternative baselines (few-shot,
    retrieval) score the base model alone — the same in every trial — so trials skip both.

    Raises:
        ConfigError: the values drawn make an invalid config together (the trial fails).
    """
    from tunewise.tracking import default_mlflow_uri

    try:
        config = apply_params(base, params)
    except ValidationError as err:
        raise ConfigError(
            [describe_error(e) for e in err.errors()],
            "this trial's values (" + ", ".join(f"{k}={v!r}" for k, v in params.items()) + ")",
        ) from None
    return config.model_copy(
        update={
            "data": config.data.model_copy(update={"check": config.data.check.model_copy(update={"enabled": False})}),
            "train": config.train.model_copy(update={"resume": False}),
            "eval": config.eval.model_copy(
                update={"baselines": config.eval.baselines.model_copy(update={"few_shot": 0, "retrieval": 0})}
            ),
            "output": config.output.model_copy(
                update={
                    "dir": str(run_dir.parent),
                    "name": run_dir.name,
                    "mlflow_uri": base.output.mlflow_uri or default_mlflow_uri(base.output.dir),
                }
            ),
        }
    )


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def _run_trial(trial: optuna.Trial, search: Search, base: Config) -> float | list[float]:
    """One trial: draw, train (pruner and NaN guard watching), evaluate, score."""
    import optuna

    from tunewise.report import build_report
    from tunewise.run import Run
    from tunewise.tune.callbacks import TrialCallback

    tune = base.tune
    run_dir = Path(search.dir) / f"trial-{trial.number:04d}"
    trial.set_user_attr("run_dir", run_dir.name)
    trial.set_user_attr("worker", os.getpid())
    params = sample_params(trial, base)
    trial.set_user_attr("params", params)  # as the config takes them (Optuna keeps a list choice as JSON text)
    console.rule(f"trial {trial.number}: " + ", ".join(f"{k}={_fmt(v)}" for k, v in params.items()))
    record: dict[str, Any] = {"number": trial.number, "params": params, "state": "RUNNING"}
    job = None
    try:
        config = trial_config(base, params, run_dir)
        if run_dir.exists():
            shutil.rmtree(run_dir)  # trial numbers are unique in a study: this is a leftover of a deleted one
        first = trial.study.directions[0].name.lower()
        sign = 1.0 if (tune.prune_mode == "min") == (first == "minimize") else -1.0
        prunes = len(tune.objectives) == 1 and pruner_name(tune) != "none"
        guard = TrialCallback(trial if prunes else None, tune.prune_metric, sign)
        job = Run(config, search.config_path)
        job.fit(callbacks=[guard])
        trained_dir = job.save()
        if guard.diverged_at is not None:
            raise TunewiseError(
                f"the training loss became {guard.diverged_value} at step {guard.diverged_at} "
                f"(diverged; a lower train.lr or a smaller max_grad_norm may help)"
            )
        if guard.pruned_at is not None:
            record.update(state="PRUNED", pruned_at=guard.pruned_at, reported=guard.reported)
            trial.set_user_attr("pruned_at", guard.pruned_at)
            console.print(
                f"trial {trial.number} pruned at step {guard.pruned_at}: its {tune.prune_metric} "
                f"{guard.reported[-1][1]:.4f} trails the other trials'",
                highlight=False,
            )
            raise optuna.TrialPruned(f"pruned at step {guard.pruned_at}")
        summary = job.evaluate()
        build_report(trained_dir)
        metrics = trial_metrics(summary)
        trial.set_user_attr("metrics", metrics)
        values = objective_values(summary, tune.objectives)
        record.update(state="COMPLETE", values=values, reported=guard.reported)
        console.print(
            f"trial {trial.number}: " + ", ".join(f"{o.metric} {v:.4f}" for o, v in zip(tune.objectives, values)),
            highlight=False,
        )
        return values if len(values) > 1 else values[0]
    except optuna.TrialPruned:
        raise
    except KeyboardInterrupt:
        trial.set_user_attr("interrupted", True)
        record.update(state="FAIL", error="interrupted (Ctrl-C); run again to retry it with the same values")
        raise
    except Exception as err:
        reason = str(err) if isinstance(err, TunewiseError) else f"{type(err).__name__}: {err}"
        trial.set_user_attr("error", reason[:2000])
        record.update(state="FAIL", error=reason)
        console.print(f"[red]trial {trial.number} failed:[/] {reason}", highlight=False)
        raise
    finally:
        if run_dir.is_dir():
            write_json(run_dir / TRIAL_FILE, record)
        del job  # the next trial loads its own model (Optuna collects garbage after each trial)


def _counted(study: optuna.Study) -> int:
    """Trials that use up the budget: finished ones (an interrupted trial is retried, so it does not
    count) and those running or queued."""
    from optuna.trial import TrialState

    return sum(
        1
        for t in study.get_trials(deepcopy=False)
        if t.state in (TrialState.COMPLETE, TrialState.PRUNED, TrialState.RUNNING, TrialState.WAITING)
        or (t.state == TrialState.FAIL and not t.user_attrs.get("interrupted"))
    )


class _Budget:
    """Stop this worker once the study holds `total` trials (other workers' running ones included)."""

    def __init__(self, total: int) -> None:
        self.total = total

    def __call__(self, study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
        if _counted(study) >= self.total:
            study.stop()


def _optimize(search: Search, trials: int, timeout: float | None) -> None:
    """Run trials in this process until the study holds `trials` trials or `timeout` passes."""
    # torch, transformers' Trainer, peft: imported before the freeze below (a spawned worker starts bare).
    import tunewise.methods
    import tunewise.run
    import tunewise.training.loop  # noqa: F401

    base = search.typed
    study = open_study(search)
    remaining = trials - _counted(study)
    if remaining <= 0:
        return
    # Garbage is collected after every trial, so one trial's model never lingers into the next. The
    # objects alive now (the imported libraries) live as long as the process: frozen, the collector
    # skips them, and a collection takes milliseconds instead of seconds.
    gc.freeze()
    try:
        study.optimize(
            lambda trial: _run_trial(trial, search, base),
            n_trials=remaining,
            timeout=timeout,
            callbacks=[_Budget(trials)],
            catch=(Exception,),
            gc_after_trial=True,
        )
    finally:
        gc.unfreeze()  # a library caller's own objects are collectable again afterwards


def _worker(search: Search, trials: int, timeout: float | None) -> None:
    """Entry point of a worker process (spawned: a fresh interpreter, no forked torch state)."""
    import torch

    # The cores are shared among the workers: more threads than cores only adds contention.
    torch.set_num_threads(max(1, (os.cpu_count() or 1) // search.workers))
    with contextlib.suppress(KeyboardInterrupt):  # the parent reports the interruption once
        _optimize(search, trials, timeout)


def _retry_interrupted(study: optuna.Study) -> int:
    """Queue the values of each trial stopped by Ctrl-C again (once); return how many."""
    from optuna.trial import TrialState

    trials = study.get_trials(deepcopy=False)
    retried = {t.user_attrs.get("retry_of") for t in trials}
    queued = 0
    for t in trials:
        if t.state == TrialState.FAIL and t.user_attrs.get("interrupted") and t.number not in retried:
            study.enqueue_trial(t.params, user_attrs={"retry_of": t.number}, skip_if_exists=False)
            queued += 1
    return queued


def _check_resumable(directory: Path, config: Config) -> None:
    """A search continues only with the config its trials were run with (the budget may change)."""
    from tunewise.cv import config_differences

    saved_file = directory / CONFIG_FILE
    if not saved_file.is_file():
        return
    saved = yaml.safe_load(saved_file.read_text(encoding="utf-8")) or {}
    now = config.model_dump(mode="json")
    for tree in (saved, now):
        tree.pop("output", None)
        tree.get("train", {}).pop("resume", None)
        for key in ("trials", "timeout", "workers"):
            tree.get("tune", {}).pop(key, None)
    differ = config_differences(saved, now)
    if differ:
        raise TunewiseError(
            f"{directory} holds a search run with another config ({', '.join(differ[:5])}); "
            f"trials of different searches would be compared as one. Use the same config, or set "
            f"tune.name to start a new search"
        )


def _estimate(config: Config, trials: int, timeout: float | None) -> None:
    from tunewise.plan import plan
    from tunewise.report.formatting import format_duration as _duration
    from tunewise.report.formatting import format_megabytes as _megabytes

    try:
        estimate = plan(config)
    except ConfigError as err:  # the config's own values may not run, the searched ones may: the trials tell
        console.print(f"[yellow]no cost estimate: the config as written does not run: {err}[/]", highlight=False)
        return
    per_trial = estimate.time_s
    peak = estimate.peak_bytes
    cost = (
        f"training ~{_duration(per_trial)} ({estimate.steps} steps, {estimate.tokens_to_train:,} tokens)"
        if per_trial
        else "training time unknown"
    )
    memory = f", peak memory ~{_megabytes(peak / 2**20)}" if peak else ""
    total = (
        f"; {trials} more trial{'s' if trials > 1 else ''} ≈ {_duration(per_trial * trials)} of training"
        if per_trial
        else ""
    )
    console.print(
        f"estimated cost per trial ({config.method.type}, the config's own values of the searched keys; "
        f"`tunewise plan`): {cost}{memory}, plus the evaluation{total}"
        + (f"; --timeout {timeout:g}s stops starting trials after that" if timeout else ""),
        highlight=False,
    )
    if estimate.fits is False:
        console.print(
            "[yellow]the estimated peak memory exceeds what is available: trials may fail out of "
            "memory (run `tunewise plan` for what to change)[/]"
        )


def tune(
    config: Config,
    config_path: str | Path | None = None,
    *,
    trials: int | None = None,
    timeout: float | None = None,
    workers: int | None = None,
) -> Path:
    """Search `tune.space` with Optuna and return the search directory.

    Args:
        config: the run config with its `tune` section; each trial changes the keys of `tune.space`.
        config_path: the config file, for the directory name and the lines of error messages.
        trials: trials the study should hold in all (default `tune.trials`); finished ones count.
        timeout: stop starting trials after this many seconds (default `tune.timeout`).
        workers: local worker processes sharing the study (default `tune.workers`).

    Returns:
        The search directory: `study.db` (unless `tune.storage`), `trial-<n>/` run directories,
        `best.yaml`, `tune_summary.json`, `report.html` and `plots/`.

    Raises:
        MissingExtraError: Optuna is not installed (`pip install 'tunewise[tune]'`).
        ConfigError: the space or objectives are invalid (before any trial runs).
        TunewiseError: the data or storage are unusable, or the directory holds another search.
    """
    from tunewise.run import check_prepared, load_tokenizer_for, prepare_data
    from tunewise.tune.report import write_results

    import_optuna()  # before any work: without the `tune` extra, say so at once
    tune_cfg = config.tune
    trials = trials if trials is not None else tune_cfg.trials
    timeout = timeout if timeout is not None else tune_cfg.timeout
    workers = workers if workers is not None else tune_cfg.workers
    for flag, value in (("--trials", trials), ("--workers", workers)):
        if value < 1:
            raise TunewiseError(f"{flag} {value}: must be at least 1")
    if timeout is not None and timeout <= 0:
        raise TunewiseError(f"--timeout {timeout}: must be a positive number of seconds")
    if config.stages:
        raise ConfigError(["stages: a search trains one run per trial; tune one stage's config at a time"])
    lines, source = {}, None
    if config_path is not None and Path(config_path).is_file():
        lines, source = key_lines(Path(config_path).read_text(encoding="utf-8")), str(config_path)
    check_space(config, lines, source)
    check_objectives(config)

    directory = search_dir(config, config_path)
    _check_resumable(directory, config)
    # The data is the same for every trial: read and check it once, before any trial starts.
    check_prepared(config, prepare_data(config, load_tokenizer_for(config)))

    directory.mkdir(parents=True, exist_ok=True)
    search = Search(
        config=config.model_dump(mode="json"),
        config_path=str(config_path) if config_path else None,
        dir=str(directory.resolve()),
        storage=storage_url(config, directory),
        study_name=directory.name,
        workers=workers,
    )
    study = open_study(search, create=True)
    dump_config(config, directory / CONFIG_FILE)
    done = _counted(study)
    if study.trials:
        console.print(f"continuing study {search.study_name} ({len(study.trials)} trials so far)")
    queued = _retry_interrupted(study)
    if queued:
        console.print(
            f"{queued} trial{'s' if queued > 1 else ''} stopped by Ctrl-C will run again with the same values"
        )
    console.print(
        f"search directory: {directory}\nstudy: {search.study_name} in {search.storage}\n"
        f"objectives: {', '.join(f'{o.metric} ({d})' for o, d in zip(tune_cfg.objectives, directions(tune_cfg.objectives)))}; "
        f"sampler {tune_cfg.sampler}, pruner {pruner_name(tune_cfg)}; {workers} worker"
        f"{'s' if workers > 1 else ''}",
        highlight=False,
    )
    if done >= trials:
        console.print(f"the study already holds {done} trials (--trials {trials}); raise --trials to run more")
    else:
        _estimate(config, trials - done, timeout)
        started = time.monotonic()
        try:
            if workers == 1:
                _optimize(search, trials, timeout)
            else:
                _run_workers(search, trials, timeout, workers)
        except KeyboardInterrupt:
            console.print(
                f"[yellow]Search stopped after {time.monotonic() - started:.0f}s; finished trials are kept "
                f"in the study. Continue with the same command: tunewise tune {config_path or 'CONFIG'}[/]"
            )
            write_results(search)
            raise
    return write_results(search)


def _run_workers(search: Search, trials: int, timeout: float | None, workers: int) -> None:
    """Run `workers` processes on the study and wait for all of them."""
    from dataclasses import replace

    context = multiprocessing.get_context("spawn")
    processes = [
        context.Process(target=_worker, args=(replace(search, worker=i), trials, timeout), name=f"tunewise-tune-{i}")
        for i in range(workers)
    ]
    for process in processes:
        process.start()
    try:
        for process in processes:
            process.join()
    except KeyboardInterrupt:
        for process in processes:  # they got the Ctrl-C too and are saving their trial
            process.join(timeout=120)
        raise
    failed = [f"{p.name} (exit code {p.exitcode})" for p in processes if p.exitcode]
    if failed:
        raise TunewiseError(
            f"worker processes ended with an error: {', '.join(failed)} (see their output above); "
            f"the finished trials are in the study — run the same command to continue"
        )
