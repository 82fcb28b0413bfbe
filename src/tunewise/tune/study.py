"""A search's study: where it is stored, how it samples and prunes, and opening it.

`search.py` (running trials) and `report.py` (reading the results back) both open the study
through `open_study`; neither imports the other's internals.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any

from tunewise.config import Config, TuneConfig
from tunewise.errors import TunewiseError
from tunewise.extras import require
from tunewise.rundir import RunDir
from tunewise.tune.objectives import directions
from tunewise.tune.space import grid_space

if TYPE_CHECKING:
    import optuna

__all__ = [
    "BEST_FILE",
    "GRACE_S",
    "HEARTBEAT_S",
    "PARETO_DIR",
    "PLOTS_DIR",
    "REPORT_FILE",
    "STUDY_FILE",
    "SUMMARY_FILE",
    "Search",
    "import_optuna",
    "open_study",
    "pruner_name",
    "storage_url",
]

# The files of a search directory, beside its `trial-<n>/` run directories.
SUMMARY_FILE = "tune_summary.json"
BEST_FILE = "best.yaml"
"""The best trial's config (the first of the Pareto front with two objectives), ready for `tunewise train`."""
PARETO_DIR = "pareto"
"""With two objectives: `trial-<n>.yaml`, one config per trial on the Pareto front."""
STUDY_FILE = "study.db"
"""The default Optuna storage (SQLite), unless `tune.storage`."""
REPORT_FILE = RunDir.REPORT
"""The search's page, named as a run's report card is."""
PLOTS_DIR = RunDir.PLOTS
HEARTBEAT_S = 30
"""A running trial writes a heartbeat this often; one silent for GRACE_S is taken for dead and retried."""
GRACE_S = 120


@dataclass
class Search:
    """What every worker needs to run trials: plain data, so it crosses a process boundary."""

    config: dict[str, Any]
    """The resolved config (JSON-ready)."""
    config_path: str | None
    dir: str
    storage: str
    study_name: str
    worker: int = 0
    workers: int = 1

    @property
    def typed(self) -> Config:
        return Config.model_validate(self.config)


def storage_url(config: Config, directory: Path) -> str:
    """`tune.storage`, default `sqlite:///<search dir>/study.db`."""
    return config.tune.storage or f"sqlite:///{(directory.resolve() / STUDY_FILE).as_posix()}"


def _storage(url: str) -> optuna.storages.BaseStorage:
    optuna = import_optuna()
    from optuna.storages import RDBStorage, RetryHeartbeatStaleTrialCallback

    # SQLite lets one writer in at a time: wait for the lock instead of failing a worker.
    engine = {"connect_args": {"timeout": 60}} if url.startswith("sqlite") else {}
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            return RDBStorage(
                url,
                engine_kwargs=engine,
                heartbeat_interval=HEARTBEAT_S,
                grace_period=GRACE_S,
                heartbeat_stale_trial_callback=RetryHeartbeatStaleTrialCallback(max_retry=1),
            )
    except Exception as err:  # sqlalchemy: a malformed URL, a missing driver, a server that refuses
        raise TunewiseError(
            f"tune.storage: cannot open {url!r} ({type(err).__name__}: {err}); give a SQLAlchemy "
            f"URL such as sqlite:///path/study.db or postgresql://user:pass@host/db (its driver "
            f"installed), or leave tune.storage unset for a SQLite file in the search directory"
        ) from None


def pruner_name(tune: TuneConfig) -> str:
    """The pruner a search uses: `auto` is `median` with one objective, `none` with two."""
    if tune.pruner == "auto":
        return "median" if len(tune.objectives) == 1 else "none"
    return tune.pruner


def _sampler(config: Config, worker: int, workers: int) -> optuna.samplers.BaseSampler:
    optuna = import_optuna()

    tune = config.tune
    seed = tune.seed + worker
    if tune.sampler == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    if tune.sampler == "grid":
        return optuna.samplers.GridSampler(grid_space(config), seed=seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        # constant_liar: parallel workers do not all pick the point a running trial already explores.
        return optuna.samplers.TPESampler(seed=seed, n_startup_trials=tune.startup_trials, constant_liar=workers > 1)


def _pruner(config: Config) -> optuna.pruners.BasePruner:
    optuna = import_optuna()

    name = pruner_name(config.tune)
    if name == "median":
        return optuna.pruners.MedianPruner(n_startup_trials=config.tune.startup_trials, n_warmup_steps=0)
    if name == "successive_halving":
        # Rungs at eval_every, 3×, 9× ... steps: a trial is judged at each eval that reaches one.
        return optuna.pruners.SuccessiveHalvingPruner(min_resource=max(config.train.eval_every, 1), reduction_factor=3)
    return optuna.pruners.NopPruner()


def open_study(search: Search, *, create: bool = False) -> optuna.Study:
    """The study of a search, created when `create` (and checked to have the config's directions)."""
    optuna = import_optuna()

    config = search.typed
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    storage = _storage(search.storage)
    wanted = directions(config.tune.objectives)
    sampler, pruner = _sampler(config, search.worker, search.workers), _pruner(config)
    if create:
        try:
            study = optuna.create_study(
                storage=storage,
                study_name=search.study_name,
                directions=wanted,
                sampler=sampler,
                pruner=pruner,
                load_if_exists=True,
            )
        except ValueError as err:
            raise TunewiseError(f"study {search.study_name} in {search.storage}: {err}") from None
    else:
        study = optuna.load_study(study_name=search.study_name, storage=storage, sampler=sampler, pruner=pruner)
    have = [d.name.lower() for d in study.directions]
    if have != wanted:
        raise TunewiseError(
            f"study {search.study_name} ({search.storage}) was created to {' and '.join(have)}, "
            f"but tune.objectives ask to {' and '.join(wanted)}; keep the objectives, or set "
            f"tune.name to start a new search"
        )
    return study


def import_optuna() -> ModuleType:
    """Optuna, imported on first use; without it a `MissingExtraError` names `tunewise[tune]`."""
    return require("optuna", feature="tunewise tune (hyperparameter search)")
