"""Experiment tracking: a copy of each run in MLflow (by default) and TensorBoard (on request).

MLflow gets the flattened config as params, the training curves step by step, the eval headline
numbers (base/tuned loss and perplexity, every suite's base/tuned/delta) and the run's files
(`config.yaml`, `train_summary.json`, `eval_summary.json`, `report.html`) as artifacts. Its
default store is `sqlite:///<output.dir>/mlflow.db` with artifacts in `<output.dir>/mlartifacts/`:
a real database, nothing to start. TensorBoard gets the same curves as event files in
`<run dir>/tensorboard/`.

The run directory stays the record (the report and `tunewise runs` read it, never a tracker), so
a tracker that fails never stops a run: it is switched off with one warning naming the reason.
`tracking.json` in the run directory keeps the MLflow run id: a resumed training, a later
`tunewise eval` and `tunewise report` log into the same MLflow run rather than a new one.

MLflow and TensorBoard are the `tracking` extra (`pip install 'tunewise[tracking]'`). Without it a
configured tracker is switched off the same way, the warning names the extra, and `tracking.json`
notes it under `off` (tracker → why), so the run directory says it was not tracked and why.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import re
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from tunewise.extras import MissingExtraError, require
from tunewise.rundir import RunDir, write_json

if TYPE_CHECKING:
    from tunewise.config import Config

__all__ = [
    "MLFLOW_ARTIFACTS",
    "MLFLOW_STORE",
    "TRACKERS",
    "TRACKER_FOLDERS",
    "TRACKING_FILE",
    "Tracker",
    "default_mlflow_uri",
    "eval_metrics",
    "flatten_config",
    "log_eval",
    "log_report",
    "metric_name",
    "mlflow_run_id",
]

TRACKING_FILE = RunDir.TRACKING
"""Where a run directory keeps what each tracker needs to find its run again (and, under `off`, the
trackers switched off because their extra is not installed)."""
MLFLOW_STORE = "mlflow.db"
"""The default MLflow store, in the runs folder (`output.dir`)."""
MLFLOW_ARTIFACTS = "mlartifacts"
"""Where the default MLflow store keeps artifacts, beside `MLFLOW_STORE`."""
TRACKER_FOLDERS = frozenset({MLFLOW_ARTIFACTS, "mlruns", RunDir.TENSORBOARD})
"""Folders the trackers may write into a runs folder (`mlruns/`: MLflow's file store); never run directories."""

DEFAULT_EXPERIMENT = "tunewise"
"""The MLflow experiment of runs started without a config file (otherwise: the file's stem)."""

_log = logging.getLogger(__name__)

# (tracker, store) pairs that failed in this process: warned about once, never retried (a broken
# MLflow store can cost seconds of retries per attempt, and `tunewise run` opens it three times).
_broken: set[str] = set()


# --- Names and values ---


def metric_name(key: str) -> str:
    """The tracker name of a Trainer log key: `loss` → `train/loss`, `eval_loss` → `eval/loss`,
    `train_runtime` → `train/runtime`."""
    if key.startswith("eval_"):
        return _clean(f"eval/{key.removeprefix('eval_')}")
    return _clean(f"train/{key.removeprefix('train_')}")


def _clean(name: str) -> str:
    # MLflow accepts letters, digits, `_ - . / :` and spaces, and no `..` or leading `/`.
    name = re.sub(r"[^\w.\-/: ]", "_", name)
    name = re.sub(r"/{2,}", "/", name).replace("..", "_").strip("/")
    return name or "_"


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value) if math.isfinite(value) else None


def flatten_config(config: Config) -> dict[str, str]:
    """The resolved config as `section.key` → text, e.g. `train.lr` → `0.0002`, `method.r` → `16`.

    Strings stay as they are; everything else (numbers, booleans, null, lists) is written as JSON.
    """
    flat: dict[str, str] = {}

    def walk(node: Mapping[str, Any], prefix: str) -> None:
        for key, value in node.items():
            if isinstance(value, dict):
                walk(value, f"{prefix}{key}.")
            else:
                flat[f"{prefix}{key}"] = value if isinstance(value, str) else json.dumps(value, separators=(",", ":"))

    walk(config.model_dump(mode="json"), "")
    return flat


def eval_metrics(summary: Mapping[str, Any]) -> dict[str, float]:
    """The headline numbers of an `eval_summary.json` as tracker metrics.

    `compare/<side>_loss` and `compare/<side>_perplexity` for base, tuned (and any other side the
    summary holds), `compare/delta_loss`, and for every suite `suite/<name>/base`, `.../tuned`,
    `.../delta`, `.../delta_low`, `.../delta_high`, `.../p_value`.
    """
    found: dict[str, Any] = {}
    for key, value in summary.items():
        if isinstance(value, dict):
            for measure in ("loss", "perplexity"):
                found[f"compare/{key}_{measure}"] = value.get(measure)
        elif key != "suites":
            found[f"compare/{key}"] = value
    # The cheaper alternatives (few-shot, retrieval), when they were scored: their eval loss.
    baselines = summary.get("baselines")
    rows = baselines.get("eval_rows") if isinstance(baselines, dict) else None
    variants = rows.get("variants") if isinstance(rows, dict) else None
    for variant, result in (variants or {}).items() if isinstance(variants, dict) else ():
        loss = result.get("loss") if isinstance(result, dict) else None
        found[f"baseline/{variant}_loss"] = loss.get("value") if isinstance(loss, dict) else loss
    seen: set[str] = set()
    for suite in summary.get("suites") or []:
        if not isinstance(suite, dict):
            continue
        name = _clean(str(suite.get("name", "suite")))
        if name in seen:  # the same suite scored twice with different metrics
            name = _clean(f"{name}-{suite.get('metric', len(seen))}")
        seen.add(name)
        for part in ("base", "tuned", "delta"):
            interval = suite.get(part)
            if isinstance(interval, dict):
                found[f"suite/{name}/{part}"] = interval.get("value")
        delta = suite.get("delta")
        if not isinstance(delta, dict):
            delta = {}
        for bound in ("low", "high"):
            found[f"suite/{name}/delta_{bound}"] = delta.get(bound)
        found[f"suite/{name}/p_value"] = delta.get("p_value")
    return {_clean(key): number for key, value in found.items() if (number := _number(value)) is not None}


def default_mlflow_uri(output_dir: str | Path) -> str:
    """`sqlite:///<absolute output dir>/mlflow.db`: the MLflow store when `output.mlflow_uri` is unset."""
    return f"sqlite:///{(Path(output_dir).resolve() / MLFLOW_STORE).as_posix()}"


# --- MLflow ---


def _import_mlflow() -> Any:
    # MLflow sends usage telemetry unless told not to; tunewise makes no network call it was not
    # asked for. An explicit MLFLOW_DISABLE_TELEMETRY=false from the user is respected.
    if "MLFLOW_DISABLE_TELEMETRY" not in os.environ:
        os.environ["MLFLOW_DISABLE_TELEMETRY"] = "true"
        if sys.modules.get("mlflow") is not None:  # imported earlier with telemetry on: switch it off now
            from mlflow.telemetry import set_telemetry_client

            set_telemetry_client()
    return require("mlflow", feature="MLflow tracking (output.tracking)")


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """Keep MLflow's INFO lines ("Creating initial MLflow database tables...") off the console."""
    loggers = [logging.getLogger(name) for name in ("mlflow", "alembic")]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(max(logger.getEffectiveLevel(), logging.WARNING))
    try:
        yield
    finally:
        for logger, level in zip(loggers, levels):
            logger.setLevel(level)


def _sqlite_path(uri: str) -> Path | None:
    if not uri.startswith("sqlite:///"):
        return None
    path = uri.removeprefix("sqlite:///").split("?", 1)[0]
    return None if path in ("", ":memory:") else Path(path)


def _check_sqlite(uri: str) -> None:
    """Fail fast on an unusable SQLite path: MLflow would retry it for about a minute and a half."""
    path = _sqlite_path(uri)
    if path is None:
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.exists() and not (path.is_file() and os.access(path, os.R_OK | os.W_OK)):
        raise OSError(f"{path} is not a writable file")
    if not path.exists() and not os.access(path.parent, os.W_OK):
        raise OSError(f"cannot create {path}: {path.parent} is not writable")


class _MLflow:
    """One MLflow run per run directory, found again through `tracking.json`."""

    name = "mlflow"

    def __init__(self, config: Config, run_dir: Path, experiment: str | None, saved: dict[str, Any]) -> None:
        self.uri = config.output.mlflow_uri or saved.get("tracking_uri") or default_mlflow_uri(run_dir.parent)
        _check_sqlite(self.uri)
        mlflow = _import_mlflow()
        from mlflow.entities import Metric, Param, RunTag
        from mlflow.exceptions import MlflowException

        self._Metric, self._Param, self._RunTag, self._Error = Metric, Param, RunTag, MlflowException
        self.client = mlflow.MlflowClient(tracking_uri=self.uri)
        self.experiment = experiment or saved.get("experiment") or DEFAULT_EXPERIMENT
        self.created = False
        run = self._saved_run(saved) if saved.get("tracking_uri") == self.uri else None
        if run is None:
            self.experiment_id = self._experiment_id(self.experiment)
            run = self.client.create_run(
                self.experiment_id,
                run_name=run_dir.name,
                tags={
                    "tunewise.run_dir": str(run_dir.resolve()),
                    "tunewise.model": config.model.name,
                    "tunewise.method": config.method.type,
                },
            )
            self.created = True
        else:
            self.experiment_id = run.info.experiment_id
            self.experiment = saved.get("experiment", self.experiment)
        self.run_id: str = run.info.run_id
        self._log_params(flatten_config(config), run.data.params)

    def _saved_run(self, saved: dict[str, Any]) -> Any:
        if not saved.get("run_id"):
            return None
        try:
            run = self.client.get_run(saved["run_id"])
        except self._Error:
            return None  # deleted from the store: start a new MLflow run
        return run if run.info.lifecycle_stage == "active" else None

    def _experiment_id(self, name: str) -> str:
        found = self.client.get_experiment_by_name(name)
        if found is None:
            path = _sqlite_path(self.uri)
            # Beside a local database, not MLflow's default `./mlruns` in whatever the cwd is.
            location = (path.resolve().parent / MLFLOW_ARTIFACTS).as_uri() if path is not None else None
            try:
                return self.client.create_experiment(name, artifact_location=location)
            except self._Error:
                found = self.client.get_experiment_by_name(name)  # created by another process meanwhile
                if found is None:
                    raise
        if found.lifecycle_stage != "active":
            raise RuntimeError(
                f"MLflow experiment {name!r} is deleted; restore it with `mlflow experiments "
                f"restore --experiment-id {found.experiment_id}` (and the same tracking URI)"
            )
        return str(found.experiment_id)

    def _log_params(self, flat: dict[str, str], existing: Mapping[str, str]) -> None:
        from mlflow.utils.validation import MAX_PARAM_VAL_LENGTH, MAX_PARAMS_TAGS_PER_BATCH

        # MLflow params never change; a value overridden later (train.max_steps on resume,
        # eval.suites from --suite) is kept as an `override.<key>` tag.
        params = [self._Param(k, v[:MAX_PARAM_VAL_LENGTH]) for k, v in flat.items() if k not in existing]
        tags = [
            self._RunTag(f"override.{k}", v[:MAX_PARAM_VAL_LENGTH])
            for k, v in flat.items()
            if k in existing and existing[k] != v[:MAX_PARAM_VAL_LENGTH]
        ]
        for items, field in ((params, "params"), (tags, "tags")):
            for i in range(0, len(items), MAX_PARAMS_TAGS_PER_BATCH):
                self.client.log_batch(self.run_id, **{field: items[i : i + MAX_PARAMS_TAGS_PER_BATCH]})

    @property
    def state(self) -> dict[str, Any]:
        return {
            "tracking_uri": self.uri,
            "experiment": self.experiment,
            "experiment_id": self.experiment_id,
            "run_id": self.run_id,
        }

    def describe(self) -> str:
        return f"MLflow run {self.run_id[:8]} (experiment {self.experiment!r}) in {self.uri}"

    def begin_training(self, step: int) -> None:
        if not self.created:
            self.client.update_run(self.run_id, status="RUNNING")
        if step:
            self.client.set_tag(self.run_id, "tunewise.resumed_from_step", str(step))

    def log_metrics(self, metrics: dict[str, float], step: int) -> None:
        stamp = int(time.time() * 1000)
        self.client.log_batch(self.run_id, metrics=[self._Metric(k, v, stamp, step) for k, v in metrics.items()])

    def log_files(self, paths: list[Path]) -> None:
        for path in paths:
            self.client.log_artifact(self.run_id, str(path))

    def close(self, status: str | None) -> None:
        if status is not None or self.created:
            self.client.set_terminated(self.run_id, status or "FINISHED")


# --- TensorBoard ---


class _TensorBoard:
    """Event files in `<run dir>/tensorboard/`: the same curves, for `tensorboard --logdir`."""

    name = "tensorboard"

    def __init__(self, config: Config, run_dir: Path, experiment: str | None, saved: dict[str, Any]) -> None:
        # torch's writer needs the tensorboard package; without it, say which extra installs it.
        require("tensorboard", feature="TensorBoard tracking (output.tracking)")
        from torch.utils.tensorboard import SummaryWriter

        self._SummaryWriter = SummaryWriter
        self.log_dir = RunDir(run_dir).tensorboard
        self._writer: Any = None

    @property
    def state(self) -> dict[str, Any]:
        return {"log_dir": str(self.log_dir.resolve())}

    def describe(self) -> str:
        return f"TensorBoard {self.log_dir}"

    def _open(self, purge_step: int | None = None) -> Any:
        if self._writer is None:
            self._writer = self._SummaryWriter(str(self.log_dir), purge_step=purge_step, flush_secs=10)
        return self._writer

    def begin_training(self, step: int) -> None:
        # A resumed run hides what was logged after its checkpoint, as metrics.jsonl drops those lines.
        self.close(None)
        self._open(purge_step=step + 1 if step else None)

    def log_metrics(self, metrics: dict[str, float], step: int) -> None:
        writer = self._open()
        for key, value in metrics.items():
            writer.add_scalar(key, value, step)

    def log_files(self, paths: list[Path]) -> None:
        pass  # TensorBoard has no place for files

    def close(self, status: str | None) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None


class _Backend(Protocol):
    name: str

    @property
    def state(self) -> dict[str, Any]: ...
    def describe(self) -> str: ...
    def begin_training(self, step: int) -> None: ...
    def log_metrics(self, metrics: dict[str, float], step: int) -> None: ...
    def log_files(self, paths: list[Path]) -> None: ...
    def close(self, status: str | None) -> None: ...


TRACKERS: dict[str, Callable[[Config, Path, str | None, dict[str, Any]], _Backend]] = {
    "mlflow": _MLflow,
    "tensorboard": _TensorBoard,
}
"""`output.tracking` names → their tracker; docs/tracking.md describes each."""


# --- The trackers of one run ---


def _warn(message: str) -> None:
    if logging.getLogger("tunewise").hasHandlers():
        _log.warning(message)
    else:
        print(f"tunewise: warning: {message}", file=sys.stderr, flush=True)


def _reason(err: BaseException) -> str:
    if isinstance(err, MissingExtraError):  # its message already says what is missing and what to install
        return str(err)
    text = str(err).strip().splitlines()
    first = text[0] if text else ""
    return f"{type(err).__name__}: {first[:300]}" if first else type(err).__name__


class Tracker:
    """The trackers of one run directory (`output.tracking`), each call safe.

    A tracker that raises is dropped with one warning; the others, and the run, go on.

    Example:
        >>> tracker = Tracker.open(config, run_dir, experiment="demo")
        >>> tracker.log_metrics({"train/loss": 1.2}, step=5)
        >>> tracker.close("FINISHED")
    """

    def __init__(self, run_dir: Path, backends: list[_Backend]) -> None:
        self.run_dir = run_dir
        self.backends = backends

    @classmethod
    def open(cls, config: Config, run_dir: str | Path, *, experiment: str | None = None) -> Tracker:
        """Find (through `tracking.json`) or start this run's run in every configured tracker.

        Args:
            config: its `output.tracking` and `output.mlflow_uri` choose the trackers; the
                flattened config is logged as MLflow params.
            run_dir: the run directory; it must exist.
            experiment: the MLflow experiment of a new MLflow run (default: the saved one, else
                `tunewise`).
        """
        run_dir = Path(run_dir)
        saved = _read_saved(run_dir)
        backends: list[_Backend] = []
        off: dict[str, str] = {}
        if "mlflow" in config.output.tracking:
            # Importing MLflow sets up its loggers; do it before `_quiet()` turns them down. A
            # failing import is reported below, when the tracker is made.
            with contextlib.suppress(Exception):
                _import_mlflow()
        for name in dict.fromkeys(config.output.tracking):
            key = f"{name}:{config.output.mlflow_uri or run_dir.parent.resolve()}"
            if key in _broken:
                continue
            try:
                with _quiet():
                    entry = saved.get(name)
                    backends.append(
                        TRACKERS[name](config, run_dir, experiment, entry if isinstance(entry, dict) else {})
                    )
            except Exception as err:  # tracking must never stop a run
                _broken.add(key)
                _warn(
                    f"{name} tracking is off for this run ({_reason(err)}); training and evaluation go on, "
                    f"everything is still in {run_dir}"
                )
                if isinstance(err, MissingExtraError):
                    off[name] = str(err)
        tracker = cls(run_dir, backends)
        was_off = saved.get("off")
        if not isinstance(was_off, dict):
            was_off = {}
        # A tracker that works now, or is no longer configured, is no longer off; one whose extra is
        # missing is noted in the run.
        working = {b.name for b in backends}
        still_off = {k: v for k, v in was_off.items() if k in config.output.tracking and k not in working} | off
        if backends or off:
            state = {k: v for k, v in saved.items() if k != "off"} | {b.name: b.state for b in backends}
            tracker._save(state | ({"off": still_off} if still_off else {}))
        return tracker

    def _save(self, state: dict[str, Any]) -> None:
        try:
            write_json(RunDir(self.run_dir).tracking, state, default=None)
        except OSError as err:
            _warn(
                f"could not write {RunDir(self.run_dir).tracking} ({_reason(err)}); a later eval will start a "
                f"new tracker run"
            )

    def _each(self, method: str, *args: Any) -> None:
        for backend in list(self.backends):
            try:
                with _quiet():
                    getattr(backend, method)(*args)
            except Exception as err:  # tracking must never stop a run
                self.backends.remove(backend)
                _warn(
                    f"{backend.name} tracking stopped ({_reason(err)}); the run goes on, everything is still "
                    f"in {self.run_dir}"
                )
                with contextlib.suppress(Exception), _quiet():
                    backend.close("FAILED" if method != "close" else None)

    def describe(self) -> str | None:
        """One line saying where the run is tracked, or None when it is not."""
        return "; ".join(b.describe() for b in self.backends) or None

    def begin_training(self, step: int) -> None:
        """Training (re)starts at `step` (0, or the checkpoint it resumes from)."""
        self._each("begin_training", step)

    def log_metrics(self, metrics: Mapping[str, Any], step: int) -> None:
        """Log the finite numbers of `metrics` (tracker names, e.g. `train/loss`) at `step`."""
        clean = {_clean(k): number for k, v in metrics.items() if (number := _number(v)) is not None}
        if clean:
            self._each("log_metrics", clean, step)

    def log_files(self, *paths: Path) -> None:
        """Attach the files that exist (MLflow artifacts; TensorBoard ignores files)."""
        present = [Path(p) for p in paths if Path(p).is_file()]
        if present:
            self._each("log_files", present)

    def close(self, status: str | None = None) -> None:
        """End this process's use of the trackers.

        Args:
            status: the MLflow run status to record (`FINISHED`, `KILLED`, `FAILED`); None leaves
                it as it is (after an eval or a report of a run trained earlier).
        """
        self._each("close", status)
        self.backends = []


def _read_saved(run_dir: Path) -> dict[str, Any]:
    try:
        saved = json.loads(RunDir(run_dir).tracking.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return saved if isinstance(saved, dict) else {}


def mlflow_run_id(run_dir: str | Path) -> str | None:
    """The MLflow run id of a run directory (from `tracking.json`), or None when it is not tracked."""
    entry = _read_saved(Path(run_dir)).get("mlflow")
    run_id = entry.get("run_id") if isinstance(entry, dict) else None
    return run_id if isinstance(run_id, str) else None


def _trained_steps(run_dir: Path) -> int:
    try:
        steps = json.loads(RunDir(run_dir).train_summary.read_text(encoding="utf-8")).get("steps")
    except (OSError, ValueError, AttributeError):
        return 0
    return steps if isinstance(steps, int) else 0


def log_eval(config: Config, run_dir: Path, summary: Mapping[str, Any]) -> None:
    """Send an evaluation's headline numbers and `eval_summary.json` to the run's trackers.

    The numbers are logged at the run's last training step, so they sit at the end of its curves.
    """
    if not config.output.tracking:
        return
    tracker = Tracker.open(config, run_dir)
    tracker.log_metrics(eval_metrics(summary), step=_trained_steps(run_dir))
    tracker.log_files(RunDir(run_dir).eval_summary)
    tracker.close()


def log_report(run_dir: str | Path, config: Config | None = None) -> None:
    """Attach `report.html` to the run's MLflow run.

    Args:
        config: the run's config; None reads it from `run_dir/config.yaml` (a run whose config
            cannot be read is not tracked, silently: the report itself is what matters).
    """
    from tunewise.config import load_config
    from tunewise.errors import TunewiseError

    run_dir = Path(run_dir)
    if config is None:
        try:
            config = load_config(RunDir(run_dir).config)
        except TunewiseError:
            return
    if not config.output.tracking:
        return
    tracker = Tracker.open(config, run_dir)
    tracker.log_files(RunDir(run_dir).report)
    tracker.close()
