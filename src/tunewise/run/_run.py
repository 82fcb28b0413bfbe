"""`Run`: one fine-tune, phase by phase — preflight, fit, save, evaluate, report.

Everything a user can get wrong (config, files, rows, model name) is checked in `preflight`, before
the run directory exists, so a bad input never leaves a half-written run behind.
"""

from __future__ import annotations

import shutil
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from tunewise.config import Config
from tunewise.console import make_console
from tunewise.errors import TunewiseError
from tunewise.rundir import EvalSummary, RunDir, TrainSummary, is_writer, run_stem, write_text
from tunewise.tasks import (
    Prepared,
    Task,
    describe_data,
    load_tokenizer_for,
    prepare_data,
    task_of,
    write_task_files,
)

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase

    from tunewise.data.check import DataCheck
    from tunewise.guard.monitor import ForgettingMonitor
    from tunewise.guard.setup import GuardPlan
    from tunewise.tracking import Tracker

__all__ = ["Preflight", "Run", "check_prepared", "config_text", "find_run_dir", "new_run_dir", "report_check"]

console = make_console()


def _log(line: str) -> None:
    console.print(line, highlight=False)


def check_prepared(
    config: Config, data: Prepared, tokenizer: PreTrainedTokenizerBase | None = None
) -> DataCheck | None:
    """Run the data audit on prepared rows, print what it found, and stop on a blocking finding.

    With the `tokenizer`, answers are also measured in tokens (`too_short`). Returns None when
    `data.check.enabled` is false.
    """
    from tunewise.data.audit import token_counter
    from tunewise.data.check import check_data
    from tunewise.evaluation.suite import suite_texts

    if not config.data.check.enabled:
        return None
    # The rendered lengths are what training sees (chat template included, cut at data.max_length).
    lengths = {r.source: (r.n_tokens + r.n_dropped_tokens, r.truncated) for r in [*data.train, *data.eval, *data.test]}
    labels = None
    if data.classes:
        labels = {r.source: data.classes[r.labels[0]] for r in [*data.train, *data.eval, *data.test]}
    return report_check(
        check_data(
            data.train_examples,
            {"eval": data.eval_examples, "test": data.test_examples},
            config,
            suites=suite_texts(config),
            lengths=lengths,
            labels=labels,
            count_tokens=token_counter(tokenizer) if tokenizer is not None else None,
        )
    )


def report_check(check: DataCheck) -> DataCheck:
    """Print what the data audit found (a table); raise when a finding is listed in `data.check.block_on`."""
    from tunewise.data.audit import print_audit

    print_audit(check, console)
    if check.blocking:
        kinds = ", ".join(f.kind for f in check.blocking)
        raise TunewiseError(
            f"data audit: {kinds} found and data.check.block_on stops the run on it (see above). "
            f"Fix the data (`tunewise data clean`), or take {kinds} out of data.check.block_on to "
            f"train anyway."
        )
    return check


def find_run_dir(config: Config, config_path: str | Path | None, *, must_exist: bool) -> Path | None:
    """The run directory of `output.name`, or the newest run of this config when unnamed."""
    found = RunDir.newest(config.output.dir, config.output.name, config_path, must_exist=must_exist)
    return found.path if found is not None else None


def new_run_dir(config: Config, config_path: str | Path | None) -> Path:
    """The directory a new run of `config` writes into (not created yet).

    Raises:
        TunewiseError: `output.name` names a directory that already holds files.
    """
    found = RunDir.new(config.output.dir, config.output.name, config_path)
    if config.output.name and found.exists() and any(found.path.iterdir()):
        raise TunewiseError(
            f"run directory {found.path} already exists; continue it with train.resume=true, "
            f"or choose another output.name"
        )
    return found.path


def config_text(config: Config) -> str:
    """The resolved config (every default filled in) as YAML, ready to re-run: what `config.yaml` holds."""
    return yaml.safe_dump(config.model_dump(mode="json"), sort_keys=False)


@dataclass
class Preflight:
    """What `Run.preflight` found: all of it checked, nothing written."""

    run_dir: RunDir
    """Where the run will write (not created yet, unless it resumes)."""
    resume: bool
    tokenizer: PreTrainedTokenizerBase
    data: Prepared
    check: DataCheck | None
    """The data audit's findings; None when `data.check` is off, or the run resumes."""
    guard_plan: GuardPlan
    """The forgetting guard: its general rows read and checked, before the model loads."""
    monitor: ForgettingMonitor | None
    """The forgetting monitor with its suites and prompts loaded; None when off."""


class Run:
    """One fine-tune of one config, phase by phase.

        run = Run(config, "demo.yaml")
        run.preflight()   # every check; writes nothing, raises on bad input
        run.fit()         # trains; the run directory gets config, metrics, checkpoints, train summary
        run.save()        # adapter/ (weights + tokenizer) and the task's files
        run.evaluate()    # base vs tuned, eval_summary.json
        run.report()      # report.html and the verdict

    `tunewise.run.train` is preflight → fit → save, `tunewise.run.run` all five. `fit` runs
    `preflight` and `save` runs `fit` when they have not run yet; `evaluate` saves a model trained
    here first.

    Args:
        config: the run's config.
        config_path: its file, for the run directory's name and the hints printed.
        model: a model to continue from, already wrapped by its method (a later stage of a sequential
            run), or the model to evaluate (with `run_dir`).
        data: data prepared already (a sequential run prepares every stage's before the first trains);
            then `check` is its audit and preflight neither prepares nor audits again.
        check: the audit of `data`.
        tokenizer: the tokenizer, loaded already.
        run_dir: the directory of a run trained earlier, to evaluate `model` as its tuned model.
    """

    def __init__(
        self,
        config: Config,
        config_path: str | Path | None = None,
        *,
        model: Any = None,
        data: Prepared | None = None,
        check: DataCheck | None = None,
        tokenizer: PreTrainedTokenizerBase | None = None,
        run_dir: str | Path | None = None,
    ) -> None:
        self.config = config
        self.config_path = config_path
        self.model = model
        self.summary: TrainSummary | None = None
        """What `fit` did and what it cost, once it ran."""
        self.eval_summary: EvalSummary | None = None
        """What `evaluate` measured, once it ran."""
        self._data = data
        self._check = check
        self._tokenizer = tokenizer
        self._dir = RunDir(run_dir) if run_dir is not None else None
        self._found: Preflight | None = None
        self._tracker: Tracker | None = None
        self._fitted = False
        self._saved = run_dir is not None

    @property
    def task(self) -> Task:
        """The task kind of the config (`tunewise.tasks`)."""
        return task_of(self.config)

    @property
    def files(self) -> RunDir | None:
        """The run directory's files (`RunDir`): known after `preflight`, or given; None for a base
        model evaluated alone."""
        if self._dir is not None:
            return self._dir
        return self._found.run_dir if self._found is not None else None

    @property
    def run_dir(self) -> Path | None:
        """The run directory's path (see `files`)."""
        files = self.files
        return files.path if files is not None else None

    @property
    def tokenizer(self) -> PreTrainedTokenizerBase:
        """The tokenizer (loaded by `preflight` unless given)."""
        if self._tokenizer is None:
            self._tokenizer = load_tokenizer_for(self.config)
        return self._tokenizer

    @property
    def data(self) -> Prepared | None:
        """The prepared data (by `preflight` unless given)."""
        return self._data

    # ------------------------------------------------------------------ phases

    def preflight(self) -> Preflight:
        """Every check that can fail before training, in the order a run meets them; writes nothing.

        Resolves the run directory, loads the tokenizer, checks the method against the model's
        config.json, prepares the data and audits it (printing the audit and the data summary),
        checks the training settings, reads the forgetting guard's general rows, checks WiSE-FT and
        loads the forgetting monitor's suites. Runs once; later calls return the same result.

        Raises:
            ConfigError, DataError, TunewiseError: what is wrong, before anything is written.
        """
        if self._found is not None:
            return self._found
        if self.config.stages:  # one Run trains one run; the stages are several, in turn
            raise TunewiseError(
                "a config with stages is a sequential run: run it with tunewise.run.train or "
                "tunewise.run.run (tunewise.run.stages), which make one Run per stage"
            )
        from tunewise.guard.monitor import build_monitor
        from tunewise.guard.setup import plan_guard
        from tunewise.guard.wise_ft import check_wise_ft
        from tunewise.methods import check_method
        from tunewise.training.loop import check_training

        config = self.config
        resume = config.train.resume
        if resume:
            found = find_run_dir(config, self.config_path, must_exist=True)
            if found is None:
                raise TunewiseError(
                    f"train.resume=true but no earlier run of this config was found in "
                    f"{config.output.dir}/; start a fresh run without train.resume"
                )
            run_dir = RunDir(found)
        else:
            run_dir = RunDir(new_run_dir(config, self.config_path))

        tokenizer = self.tokenizer
        # What the model's shape decides (top_k, module names), from config.json.
        check_method(config, self.task.model_class())
        data, check = self._data, self._check
        if data is None:
            data = prepare_data(config, tokenizer)
            check = check_prepared(config, data, tokenizer) if not resume else None
        console.print(describe_data(config, data), highlight=False)
        check_training(config.train, train_rows=len(data.train), eval_rows=len(data.eval))
        guard_plan = plan_guard(config, tokenizer)  # guard: general data read and checked before the model loads
        check_wise_ft(config, eval_rows=len(data.eval))
        # The forgetting monitor (guard/monitor.py): its suites and prompts are loaded now, so a bad file fails early.
        monitor = build_monitor(config, tokenizer, run_dir.path, log=_log)
        self._data, self._check = data, check
        self._found = Preflight(
            run_dir=run_dir,
            resume=resume,
            tokenizer=tokenizer,
            data=data,
            check=check,
            guard_plan=guard_plan,
            monitor=monitor,
        )
        return self._found

    def fit(self, callbacks: list[Any] | None = None) -> TrainSummary:
        """Train (after `preflight`, run first if it has not): the run directory is created and gets
        config.yaml, data_stats.json, the audit and rejects, metrics.jsonl, checkpoints/ and
        train_summary.json; WiSE-FT, when configured, runs after the last step.

        Args:
            callbacks: more Trainer callbacks (`tunewise tune` passes its pruning and NaN guard).

        Raises:
            KeyboardInterrupt: training was stopped; its checkpoint is kept and the resume command printed.
        """
        from transformers import set_seed

        from tunewise.data import write_rejects
        from tunewise.guard.setup import build_guard
        from tunewise.guard.wise_ft import run_wise_ft
        from tunewise.methods import (
            METHODS,
            count_parameters,
            load_kwargs,
            training_callbacks,
        )
        from tunewise.models import load_model
        from tunewise.objectives import OBJECTIVES
        from tunewise.tracking import Tracker
        from tunewise.training.callbacks import TrackMetrics

        found = self.preflight()
        config, data, tokenizer, run_dir = self.config, found.data, found.tokenizer, found.run_dir
        model = self.model
        task = self.task
        if model is None:
            model = load_model(
                config.model.name,
                revision=config.model.revision,
                trust_remote_code=config.model.trust_remote_code,
                **load_kwargs(config),
                **task.model_load_kwargs(data),
            )  # a classification head for task classification
            # The method's new weights (adapters, heads) are drawn from the run's seed too: same seed, same run.
            set_seed(config.train.seed)
            model = METHODS[config.method.type](model, config.method)
            task.check_model(config, model)  # a classification head left frozen would stay random
        trainable, total = count_parameters(model)
        console.print(
            f"method: {config.method.type}, trainable parameters {trainable:,} of {total:,} "
            f"({100 * trainable / total:.2f}%)"
        )
        # The forgetting guard: replay rows mixed in, one loss term per regularizer (docs/forgetting.md).
        guard = build_guard(found.guard_plan, model, tokenizer, data.train, log=_log)

        fresh = not run_dir.exists()
        run_dir.mkdir()
        tracker: Tracker | None = None
        try:
            write_text(run_dir.config, config_text(config))
            run_dir.write_json(RunDir.DATA_STATS, {k: asdict(v) for k, v in data.stats.items()})
            if guard.info:
                run_dir.write_json(RunDir.REGULARIZE, guard.info)
            if data.rejects and is_writer():
                write_rejects(data.rejects, run_dir.rejects)
            if found.check is not None:
                run_dir.write_json(RunDir.AUDIT, found.check.to_dict())
            console.print(f"run directory: {run_dir.path}")
            # Tracking never stops a run: a tracker that fails is switched off with a warning.
            tracker = Tracker.open(
                config, run_dir.path, experiment=run_stem(self.config_path) if self.config_path else None
            )
            if tracker.describe():
                console.print(f"tracking: {tracker.describe()}", highlight=False)
            tracker.log_files(run_dir.config)
            result = OBJECTIVES[config.objective].fit(
                model,
                tokenizer,
                guard.rows,
                data.eval,
                config.train,
                run_dir.path,
                resume=found.resume,
                terms=guard.terms,
                callbacks=[
                    TrackMetrics(tracker),
                    *training_callbacks(model, config.method, log=console.print),
                    *(callbacks or []),
                ],
                monitors=[found.monitor] if found.monitor is not None else None,
                collator=task.collator(tokenizer.pad_token_id),
            )
        except BaseException as err:
            if tracker is not None:
                tracker.close("KILLED" if isinstance(err, KeyboardInterrupt) else "FAILED")
            # Nothing resumable was written: leave no half-made run directory behind.
            if fresh and not run_dir.checkpoints.exists():
                shutil.rmtree(run_dir.path, ignore_errors=True)
            raise

        summary = TrainSummary(
            **asdict(result),
            trainable_parameters=trainable,
            total_parameters=total,
            trainable_percent=100 * trainable / total,
            method=config.method.type,
        )
        run_dir.write_train_summary(summary)
        tracker.log_metrics(
            {
                f"cost/{key}": getattr(summary, key)
                for key in ("tokens_per_s", "wall_s", "peak_rss_mb", "tokens_seen", "trainable_parameters")
            },
            step=result.steps,
        )
        tracker.log_files(run_dir.train_summary)
        self.model, self.summary, self._tracker, self._fitted = model, summary, tracker, True
        if result.interrupted:
            tracker.close("KILLED")
            console.print(
                f"[yellow]Stopped at step {result.steps}; checkpoint saved in {result.checkpoint}.[/]\n"
                f"Continue with: tunewise train {self.config_path or 'CONFIG'} train.resume=true "
                f"output.name={run_dir.name}"
            )
            raise KeyboardInterrupt
        if result.stopped_early_at is not None:
            console.print(
                f"early stopping at step {result.stopped_early_at}: {config.train.early_stopping.metric} "
                f"stopped improving; the saved adapter is the best checkpoint, {result.best_checkpoint} "
                f"({result.best_metric})",
                highlight=False,
            )
        # WiSE-FT (guard.wise_ft): the model is left at the α chosen, and saved so.
        run_wise_ft(
            config,
            model,
            tokenizer,
            data.eval,
            run_dir.path,
            found.monitor,
            tracker=tracker,
            step=result.steps,
            log=_log,
        )
        return summary

    def save(self) -> Path:
        """Save the trained model (after `fit`, run first if it has not): `adapter/` with the adapter
        or changed weights and the tokenizer, and the task's files (labels.json, mixture.json).

        Returns:
            The run directory.
        """
        from tunewise.methods import save_tuned

        if not self._fitted:
            self.fit()
        found = self.preflight()
        run_dir, summary = found.run_dir, self.summary
        assert summary is not None and self._tracker is not None, "fit() ran"
        if is_writer():
            # An adapter, or the changed weights (see methods/weights.py).
            save_tuned(self.model, run_dir.adapter, self.config.method.type)
            found.tokenizer.save_pretrained(run_dir.adapter)
        write_task_files(run_dir.path, self.config, found.data)  # labels.json (classification), mixture.json
        self._tracker.close("FINISHED")
        self._saved = True
        console.print(
            f"trained {summary.steps} steps in {summary.wall_s:.0f}s "
            f"({summary.tokens_per_s:.0f} tokens/s, peak memory {summary.peak_rss_mb:.0f} MB); "
            f"adapter saved to {run_dir.adapter}"
        )
        return run_dir.path

    def evaluate(self) -> dict[str, Any]:
        """Score base and tuned side by side as the task does (eval loss, generations, suites, the
        cheaper alternatives; accuracy and F1 for a classifier), print the tables, and write
        `eval_summary.json` into the run directory.

        What is scored: the model trained by this `Run`; or the `model` given with the `run_dir` it
        was trained in; or, with neither a run directory nor training, the base `model` alone (a
        classifier without a model: its baselines alone).

        Returns:
            The eval summary, as `eval_summary.json` holds it.
        """
        from tunewise.tracking import log_eval

        if self._found is not None and not self._saved:
            self.save()  # trained here: the adapter is saved before it is scored
        run_dir = self.files if self._saved else None
        sections = self.task.evaluate(
            self.config, run_dir.path if run_dir else None, self.model, self.tokenizer, self._data
        )
        summary = EvalSummary(sections)
        if run_dir is not None:
            path = run_dir.write_eval_summary(summary)
            console.print(f"eval summary: {path}")
            log_eval(self.config, run_dir.path, sections)  # the measurements; the schema version is no metric
        self.eval_summary = summary
        return summary.to_dict()

    def report(self) -> Path:
        """Write the report card (`report.html`), log it to the trackers and print the verdict.

        Returns:
            The report's path.
        """
        from tunewise.report import build_report, verdict
        from tunewise.tracking import log_report

        run_dir = self.run_dir
        if run_dir is None:
            raise TunewiseError("no run directory to report on: train the run first")
        report = build_report(run_dir)
        log_report(run_dir, self.config)
        for line in verdict(run_dir):
            console.print(line, highlight=False)
        console.print(f"report card: {report}")
        return report
