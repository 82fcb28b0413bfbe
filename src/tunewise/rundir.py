"""The run directory: every file name in it, how new ones are named, and how files are written.

One place owns the layout of a run directory, so that the writer (`tunewise.run`), the readers
(`tunewise.report`, `tunewise runs`, `tunewise cv`, `tunewise tune`) and the docs cannot drift apart:

    <output.dir>/<config stem>-<YYYYmmdd-HHMMSS>/   (or <output.dir>/<output.name>/)
      config.yaml          the resolved config, ready to re-run
      metrics.jsonl        one line per logged step and eval
      checkpoints/         resumable Trainer checkpoints
      adapter/             the adapter (or changed weights) and the tokenizer
      data_stats.json      rows and tokens per split
      audit.json           the data audit's findings (when data.check ran)
      rejects.jsonl        rows set aside, with their reason (when any)
      regularize.json      the forgetting guard's setup (when one is configured)
      forgetting.json      the forgetting monitor's probes (when enabled)
      wise_ft.json         the WiSE-FT sweep (when enabled)
      labels.json          the label set of a classification head
      mixture.json         the multi-task mixture drawn
      train_summary.json   steps, losses, cost (`TrainSummary`)
      eval_summary.json    base vs tuned (`EvalSummary`)
      tracking.json        the experiment trackers' run ids
      report.html, plots/  the report card

Writes are atomic: a file is written to a temporary file in the same directory, flushed to disk
and renamed over the target, so a crash leaves either the old file or the new one, never half of
one. Only one process writes: `is_writer()` decides which (rank 0 of a multi-process run).
"""

from __future__ import annotations

import contextlib
import json
import os
import stat
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import IO, Any

__all__ = [
    "EVAL_SCHEMA_VERSION",
    "TRAIN_SCHEMA_VERSION",
    "EvalSummary",
    "RunDir",
    "TrainSummary",
    "is_writer",
    "new_dir_path",
    "run_stem",
    "write_bytes",
    "write_json",
    "write_text",
]

TRAIN_SCHEMA_VERSION = 1
"""The version of `train_summary.json`'s layout; raised when a key changes meaning or goes away."""
EVAL_SCHEMA_VERSION = 1
"""The version of `eval_summary.json`'s layout; raised when a key changes meaning or goes away."""

_RANK_VARIABLES = ("RANK", "LOCAL_RANK")


def is_writer() -> bool:
    """Whether this process writes the run's files: rank 0 of a multi-process run, or the only process.

    The launchers (torchrun, accelerate, deepspeed) set `RANK` (global rank) and `LOCAL_RANK`;
    `RANK` decides when both are set. Without either, the process runs alone and writes.
    """
    for variable in _RANK_VARIABLES:
        value = os.environ.get(variable, "").strip()
        if value:
            return int(value) == 0
    return True


def _umask() -> int:
    umask = os.umask(0)  # the only way to read it: set it, then straight back
    os.umask(umask)
    return umask


# Read once, at import: setting the umask, even for an instant, is not safe while other threads create files.
_NEW_FILE_MODE = 0o666 & ~_umask()


def _mode_for(path: Path) -> int:
    """The permission bits of the file about to replace `path`: its own when it exists, else those a
    new file gets (0666 less the umask)."""
    try:
        return stat.S_IMODE(path.stat().st_mode)
    except FileNotFoundError:
        return _NEW_FILE_MODE


@contextlib.contextmanager
def _atomic(path: Path, mode: str = "w") -> Iterator[IO[Any]]:
    """A file object (text for mode `w`, bytes for `wb`) writing to a temporary file beside `path`,
    renamed over it when the block ends without an error (removed when it raises, leaving `path` as it was)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, mode, encoding=None if "b" in mode else "utf-8") as f:
            yield f
            f.flush()
            os.fsync(f.fileno())  # on disk before the rename makes it the file
        # mkstemp makes the file private (0600); give it the mode a plain write would have.
        os.chmod(tmp, _mode_for(path))
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def write_text(path: str | Path, text: str) -> Path:
    """Write `text` to `path` atomically (nothing when this process is not the writer); return the path."""
    path = Path(path)
    if is_writer():
        with _atomic(path) as f:
            f.write(text)
    return path


def write_bytes(path: str | Path, data: bytes) -> Path:
    """Write `data` (a PNG, an encoded page) to `path` atomically (nothing when this process is not the
    writer); return the path."""
    path = Path(path)
    if is_writer():
        with _atomic(path, "wb") as f:
            f.write(data)
    return path


def write_json(
    path: str | Path, payload: Any, *, default: Callable[[Any], Any] | None = str, ensure_ascii: bool = True
) -> Path:
    """Write `payload` as indented JSON plus a newline to `path`, atomically (nothing when this process
    is not the writer); return the path.

    Args:
        default: how values JSON cannot hold are written (`str` by default); None raises on them.
        ensure_ascii: escape non-ASCII characters (`json.dump`'s default); False writes them as UTF-8.

    Raises:
        TypeError, ValueError: the payload cannot be serialised; the file at `path` is left unchanged.
    """
    path = Path(path)
    if is_writer():
        with _atomic(path) as f:
            json.dump(payload, f, indent=2, default=default, ensure_ascii=ensure_ascii)
            f.write("\n")
    return path


def run_stem(config_path: str | Path | None) -> str:
    """The name new run directories of a config start with: the config file's stem, or `run`."""
    return Path(config_path).stem if config_path else "run"


def new_dir_path(base: str | Path, prefix: str) -> Path:
    """`<base>/<prefix>-<YYYYmmdd-HHMMSS>`, or with `-2`, `-3`, ... appended while that is taken."""
    base = Path(base)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    path, n = base / f"{prefix}-{stamp}", 1
    while path.exists():
        n += 1
        path = base / f"{prefix}-{stamp}-{n}"
    return path


@dataclass
class TrainSummary:
    """`train_summary.json`: what training did and what it cost."""

    steps: int
    interrupted: bool
    train_loss: float | None
    tokens_seen: int
    wall_s: float
    tokens_per_s: float
    peak_rss_mb: float
    checkpoint: str | None
    """The last checkpoint written."""
    best_checkpoint: str | None = None
    """With early stopping: the checkpoint whose weights the model holds (and the saved adapter)."""
    best_metric: float | None = None
    stopped_early_at: int | None = None
    """The step at which early stopping ended the run; None when it ran to the end."""
    cpu_s: float = 0.0
    """CPU time of the process while training (all threads)."""
    trainable_parameters: int = 0
    total_parameters: int = 0
    trainable_percent: float = 0.0
    method: str = ""
    """`method.type`."""
    schema_version: int = TRAIN_SCHEMA_VERSION

    def to_dict(self) -> dict[str, Any]:
        """The summary as `train_summary.json` holds it."""
        return asdict(self)

    @classmethod
    def from_dict(cls, payload: Mapping[str, Any]) -> TrainSummary:
        """Read a summary; keys it does not know (a newer writer's) are ignored, and files from before
        the schema version was written count as version 1."""
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in payload.items() if k in known})


@dataclass
class EvalSummary:
    """`eval_summary.json`: base vs tuned, as the task scored them.

    The sections depend on the task and the config, so the summary keeps them as written
    (`sections`) and reads the common ones through properties. Sections of a language-model task:
    `base`, `tuned` (loss, perplexity, rows, tokens), `delta_loss`, `generations`, `suites`,
    `baselines`, `datasets` (multi-task); of a classifier: `classification`, `suites`, `baselines`.
    """

    sections: dict[str, Any]
    schema_version: int = EVAL_SCHEMA_VERSION

    def to_dict(self) -> dict[str, Any]:
        """The summary as `eval_summary.json` holds it."""
        return {**self.sections, "schema_version": self.schema_version}

    @classmethod
    def from_dict(cls, payload: Mapping[str, Any]) -> EvalSummary:
        """Read a summary (files from before the schema version was written count as version 1)."""
        sections = dict(payload)
        version = sections.pop("schema_version", 1)
        return cls(sections, version if isinstance(version, int) else 1)

    @property
    def base(self) -> dict[str, Any] | None:
        """Base model on the eval rows: loss, perplexity, rows, tokens (language-model tasks)."""
        return self.sections.get("base")

    @property
    def tuned(self) -> dict[str, Any] | None:
        """Tuned model on the eval rows (None when only the base was scored)."""
        return self.sections.get("tuned")

    @property
    def suites(self) -> list[dict[str, Any]]:
        """One result per suite: name, role, metric, base, tuned, delta (intervals)."""
        return list(self.sections.get("suites") or [])

    def metrics(self) -> dict[str, float]:
        """The summary's numbers as flat names, the ones cross-validation averages and a search scores.

        `eval_loss/<side>` and `perplexity/<side>` for base, tuned (and any other side the summary
        holds), `eval_loss/delta` (tuned - base), per suite result `suite/<name>/<metric>/base`,
        `.../tuned` and `.../delta` and, when the few-shot and retrieval baselines were scored,
        `baseline_loss/<variant>` and `baseline_loss/tuned_vs_<variant>` (tuned - variant).
        """
        summary = self.sections
        loss: dict[str, float] = {}
        perplexity: dict[str, float] = {}
        for side, value in summary.items():
            if isinstance(value, dict) and "loss" in value:
                loss[f"eval_loss/{side}"] = float(value["loss"])
                if "perplexity" in value:
                    perplexity[f"perplexity/{side}"] = float(value["perplexity"])
        if "delta_loss" in summary:
            loss["eval_loss/delta"] = float(summary["delta_loss"])
        out = {**loss, **perplexity}
        # The cheaper alternatives (few-shot, retrieval), when scored: their loss is on the answer
        # tokens every variant shares, a different token set from eval_loss, so it gets its own name.
        baselines = summary.get("baselines")
        rows = baselines.get("eval_rows") if isinstance(baselines, dict) else None
        if isinstance(rows, dict):
            for part, prefix in (("variants", "baseline_loss/"), ("tuned_vs", "baseline_loss/tuned_vs_")):
                entries = rows.get(part)
                for name, entry in entries.items() if isinstance(entries, dict) else ():
                    value = entry.get("loss", entry) if isinstance(entry, dict) else None
                    if isinstance(value, dict) and isinstance(value.get("value"), (int, float)):
                        out[f"{prefix}{name}"] = float(value["value"])
        for result in self.suites:
            for part in ("base", "tuned", "delta"):
                interval = result.get(part)
                if isinstance(interval, dict) and interval.get("value") is not None:
                    out[f"suite/{result['name']}/{result['metric']}/{part}"] = float(interval["value"])
        return out


class RunDir:
    """The files of one run directory, by name; see the module docstring for the layout.

    Example:
        >>> RunDir("runs/demo-20250101-120000").train_summary
        PosixPath('runs/demo-20250101-120000/train_summary.json')
    """

    CONFIG = "config.yaml"
    METRICS = "metrics.jsonl"
    CHECKPOINTS = "checkpoints"
    ADAPTER = "adapter"
    DATA_STATS = "data_stats.json"
    AUDIT = "audit.json"
    LEGACY_AUDIT = "data_check.json"
    """What `audit.json` was called before; still read."""
    REJECTS = "rejects.jsonl"
    REGULARIZE = "regularize.json"
    FORGETTING = "forgetting.json"
    WISE_FT = "wise_ft.json"
    LABELS = "labels.json"
    MIXTURE = "mixture.json"
    TRAIN_SUMMARY = "train_summary.json"
    EVAL_SUMMARY = "eval_summary.json"
    TRACKING = "tracking.json"
    TENSORBOARD = "tensorboard"
    REPORT = "report.html"
    PLOTS = "plots"
    # A sequential run's top directory (`tunewise.run.stages`) holds these beside one run per stage.
    STAGES_CONFIG = "stages_config.yaml"
    STAGES_SUMMARY = "stages_summary.json"
    # A cross-validation directory (`tunewise.cv`): these beside `fold-<i>/` runs and `data/fold-<i>/`.
    CV_CONFIG = "cv_config.yaml"
    CV_PLAN = "cv_plan.json"
    CV_SUMMARY = "cv_summary.json"

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)

    def __repr__(self) -> str:
        return f"RunDir({str(self.path)!r})"

    def __truediv__(self, name: str) -> Path:
        return self.path / name

    @property
    def name(self) -> str:
        """The directory's own name (`output.name`, or `<stem>-<timestamp>`)."""
        return self.path.name

    def exists(self) -> bool:
        """Whether the directory exists."""
        return self.path.exists()

    def is_run(self) -> bool:
        """Whether this is a run directory: one holding `config.yaml` (a cv or stages directory does not)."""
        return self.config.is_file()

    def is_trained(self) -> bool:
        """Whether training finished and saved its adapter (and train summary)."""
        return self.adapter.is_dir() and self.train_summary.is_file()

    def is_stages(self) -> bool:
        """Whether this is the top directory of a sequential run."""
        return self.stages_config.is_file()

    def mkdir(self) -> None:
        """Create the directory (and its parents) when this process is the writer."""
        if is_writer():
            self.path.mkdir(parents=True, exist_ok=True)

    # The files, one property each.

    @property
    def config(self) -> Path:
        return self.path / self.CONFIG

    @property
    def metrics(self) -> Path:
        return self.path / self.METRICS

    @property
    def checkpoints(self) -> Path:
        return self.path / self.CHECKPOINTS

    @property
    def adapter(self) -> Path:
        return self.path / self.ADAPTER

    @property
    def data_stats(self) -> Path:
        return self.path / self.DATA_STATS

    @property
    def audit(self) -> Path:
        return self.path / self.AUDIT

    @property
    def rejects(self) -> Path:
        return self.path / self.REJECTS

    @property
    def regularize(self) -> Path:
        return self.path / self.REGULARIZE

    @property
    def forgetting(self) -> Path:
        return self.path / self.FORGETTING

    @property
    def wise_ft(self) -> Path:
        return self.path / self.WISE_FT

    @property
    def labels(self) -> Path:
        return self.path / self.LABELS

    @property
    def mixture(self) -> Path:
        return self.path / self.MIXTURE

    @property
    def train_summary(self) -> Path:
        return self.path / self.TRAIN_SUMMARY

    @property
    def eval_summary(self) -> Path:
        return self.path / self.EVAL_SUMMARY

    @property
    def tracking(self) -> Path:
        return self.path / self.TRACKING

    @property
    def tensorboard(self) -> Path:
        return self.path / self.TENSORBOARD

    @property
    def report(self) -> Path:
        return self.path / self.REPORT

    @property
    def plots(self) -> Path:
        return self.path / self.PLOTS

    @property
    def stages_config(self) -> Path:
        return self.path / self.STAGES_CONFIG

    @property
    def stages_summary(self) -> Path:
        return self.path / self.STAGES_SUMMARY

    @property
    def cv_config(self) -> Path:
        return self.path / self.CV_CONFIG

    @property
    def cv_plan(self) -> Path:
        return self.path / self.CV_PLAN

    @property
    def cv_summary(self) -> Path:
        return self.path / self.CV_SUMMARY

    def fold(self, i: int) -> RunDir:
        """Fold `i`'s run directory inside a cross-validation directory (`fold-<i>`)."""
        return RunDir(self.path / f"fold-{i}")

    def fold_data(self, i: int) -> Path:
        """Where fold `i`'s train and eval files are written inside a cross-validation directory."""
        return self.path / "data" / f"fold-{i}"

    def stage(self, index: int, name: str) -> RunDir:
        """Stage `index`'s (0-based) run directory inside a sequential run: `1-general`, `2-medical`, ..."""
        return RunDir(self.path / self.stage_name(index, name))

    @staticmethod
    def stage_name(index: int, name: str) -> str:
        """The subdirectory name of stage `index` (0-based): `1-general`, `2-medical`, ..."""
        return f"{index + 1}-{name}"

    def write_train_summary(self, summary: TrainSummary) -> Path:
        """Write `train_summary.json`, atomically."""
        return write_json(self.train_summary, summary.to_dict())

    def read_train_summary(self) -> TrainSummary:
        """Read `train_summary.json`."""
        return TrainSummary.from_dict(self.read_json(self.TRAIN_SUMMARY))

    def write_eval_summary(self, summary: EvalSummary | Mapping[str, Any]) -> Path:
        """Write `eval_summary.json` (with its schema version), atomically."""
        typed = summary if isinstance(summary, EvalSummary) else EvalSummary(dict(summary))
        return write_json(self.eval_summary, typed.to_dict())

    def read_eval_summary(self) -> EvalSummary:
        """Read `eval_summary.json`."""
        return EvalSummary.from_dict(self.read_json(self.EVAL_SUMMARY))

    def read_json(self, name: str) -> Any:
        """The JSON file `name` of this directory, parsed."""
        return json.loads((self.path / name).read_text(encoding="utf-8"))

    def write_json(self, name: str, payload: Any, *, default: Callable[[Any], Any] | None = str) -> Path:
        """Write `payload` to the file `name` of this directory, atomically (see `write_json`)."""
        return write_json(self.path / name, payload, default=default)

    def write_text(self, name: str, text: str) -> Path:
        """Write `text` to the file `name` of this directory, atomically (see `write_text`)."""
        return write_text(self.path / name, text)

    # Naming.

    @classmethod
    def new(cls, output_dir: str | Path, name: str | None, config_path: str | Path | None, *, kind: str = "") -> RunDir:
        """The directory a new run writes into (not created yet).

        Args:
            output_dir: `output.dir`.
            name: `output.name`; None names it `<config stem>[-<kind>]-<timestamp>`.
            config_path: the config file, whose stem starts the name.
            kind: a word after the stem (`cv` for cross-validation directories), so that
                `RunDir.newest` never takes them for runs.
        """
        if name:
            return cls(Path(output_dir) / name)
        prefix = run_stem(config_path) + (f"-{kind}" if kind else "")
        return cls(new_dir_path(output_dir, prefix))

    @classmethod
    def newest(
        cls, output_dir: str | Path, name: str | None, config_path: str | Path | None, *, must_exist: bool
    ) -> RunDir | None:
        """The run directory of `output.name`, or the newest run of this config when unnamed.

        Only run directories count (they hold `config.yaml`): `tunewise cv` writes
        `<stem>-cv-<timestamp>/` beside them.
        """
        base = Path(output_dir)
        if name:
            path = base / name
            return cls(path) if path.exists() or not must_exist else None
        runs = sorted(p for p in base.glob(f"{run_stem(config_path)}-*") if (p / cls.CONFIG).is_file())
        return cls(runs[-1]) if runs else None
