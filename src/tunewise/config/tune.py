"""The `tune:` section: the hyperparameter search of `tunewise tune` (tunewise/tune/, docs/tune.md)."""

from __future__ import annotations

import difflib
from typing import Annotated, Any, Literal

from pydantic import ConfigDict, Field, model_serializer, model_validator

from tunewise.config._section import Section

__all__ = ["TUNE_KINDS", "TuneConfig", "TuneObjective", "TuneParam"]

TUNE_KINDS = ("uniform", "log_uniform", "int", "log_int", "choice")
"""The ways one `tune.space` entry can draw its values."""


class TuneParam(Section):
    """One dimension of `tune.space`: exactly one of `uniform`, `log_uniform`, `int`, `log_int`
    (each `[low, high]`, both included) or `choice` (a list), plus `step` for a grid of numbers."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True, validate_by_name=True, serialize_by_alias=True)

    uniform: tuple[float, float] | None = None
    log_uniform: tuple[Annotated[float, Field(gt=0)], Annotated[float, Field(gt=0)]] | None = None
    int_: tuple[int, int] | None = Field(default=None, alias="int")
    log_int: tuple[Annotated[int, Field(gt=0)], Annotated[int, Field(gt=0)]] | None = None
    choice: Annotated[list[Any], Field(min_length=1)] | None = None
    step: Annotated[float, Field(gt=0)] | None = None
    """uniform / int only: draw on the grid low, low+step, ... (needed by the grid sampler)."""

    @model_validator(mode="before")
    @classmethod
    def _one_kind(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            raise ValueError(
                f"expected one of {', '.join(TUNE_KINDS)} with its values, e.g. "
                f"{{log_uniform: [1.0e-5, 1.0e-3]}} or {{choice: [4, 8, 16]}} (got {data!r})"
            )
        data = {k: v for k, v in data.items() if v is not None}  # a dumped config writes the unset kinds as null
        unknown = [k for k in data if k not in (*TUNE_KINDS, "step")]
        if unknown:
            hint = difflib.get_close_matches(str(unknown[0]), TUNE_KINDS, n=1, cutoff=0.6)
            raise ValueError(
                f"unknown kind {unknown[0]!r}; "
                + (f"did you mean '{hint[0]}'? " if hint else "")
                + f"kinds: {', '.join(TUNE_KINDS)}"
            )
        kinds = [k for k in data if k in TUNE_KINDS]
        if len(kinds) != 1:
            raise ValueError(f"give exactly one of {', '.join(TUNE_KINDS)} (got {', '.join(kinds) or 'none'})")
        return data

    @model_validator(mode="after")
    def _bounds(self) -> TuneParam:
        bounds = self.uniform or self.log_uniform or self.int_ or self.log_int
        if bounds is not None and bounds[0] >= bounds[1]:
            raise ValueError(f"{self.kind}: low {bounds[0]} must be below high {bounds[1]}")
        if self.step is not None and self.kind not in ("uniform", "int"):
            raise ValueError(f"step works with uniform and int only, not {self.kind}")
        if self.kind == "int" and self.step is not None and self.step != int(self.step):
            raise ValueError(f"int: step {self.step} must be a whole number")
        return self

    @property
    def kind(self) -> str:
        return next(k for k in TUNE_KINDS if getattr(self, "int_" if k == "int" else k) is not None)

    @model_serializer(mode="wrap")
    def _only_what_is_set(self, handler: Any) -> dict[str, Any]:
        # `{log_uniform: [1e-05, 0.001]}` in the resolved config, as the user wrote it; not five nulls.
        return {k: v for k, v in handler(self).items() if v is not None}


class TuneObjective(Section):
    """One thing the search optimises."""

    metric: str = "eval_loss"
    """eval_loss | perplexity (tuned, eval rows) | forgetting (mean drop of the general suites vs base) |
    any metric of `cv_summary.json`'s naming, e.g. suite/<name>/<metric>/tuned (then set `direction`)."""
    direction: Literal["auto", "minimize", "maximize"] = "auto"
    """auto: minimize for eval_loss, perplexity and forgetting; other metrics need it set."""


class TuneConfig(Section):
    """`tunewise tune`: an Optuna search over any config keys; each trial is an ordinary run."""

    space: dict[str, TuneParam] = Field(default_factory=dict)
    """Dotted config key -> how to draw it, e.g. {train.lr: {log_uniform: [1.0e-5, 1.0e-3]}}."""
    objectives: Annotated[list[TuneObjective], Field(min_length=1, max_length=2)] = Field(
        default_factory=lambda: [TuneObjective()]
    )
    """One objective, or two (a Pareto front), e.g. [eval_loss, forgetting]; a plain string is a metric."""
    sampler: Literal["tpe", "random", "grid"] = "tpe"
    pruner: Literal["auto", "none", "median", "successive_halving"] = "auto"
    """Stop weak trials early on their evals during training; auto: median with one objective, none with two
    (Optuna prunes single-objective studies only)."""
    prune_metric: str = "eval_loss"
    """The eval metric reported to the pruner at every train.eval_every."""
    prune_mode: Literal["min", "max"] = "min"
    """min: lower prune_metric is better."""
    startup_trials: Annotated[int, Field(ge=0)] = 5
    """Trials drawn at random before TPE models the space; also trials finished before the pruner judges."""
    trials: Annotated[int, Field(gt=0)] = 20
    """Trials the study should hold in all (finished, pruned or failed); --trials overrides it."""
    timeout: Annotated[float, Field(gt=0)] | None = None
    """Stop starting trials after this many seconds; --timeout overrides it."""
    workers: Annotated[int, Field(gt=0)] = 1
    """Local worker processes sharing the study; --workers overrides it."""
    storage: str | None = None
    """SQLAlchemy URL of the study (e.g. postgresql://...); None: sqlite:///<search dir>/study.db."""
    name: str | None = None
    """The search directory under output.dir and the study name; None: <config name>-tune."""
    seed: int = 0
    """Seed of the sampler (worker i uses seed + i)."""

    @model_validator(mode="before")
    @classmethod
    def _names_as_objectives(cls, data: Any) -> Any:
        if isinstance(data, dict) and isinstance(data.get("objectives"), list):
            data = {**data, "objectives": [{"metric": o} if isinstance(o, str) else o for o in data["objectives"]]}
        return data
