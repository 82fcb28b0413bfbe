"""The `output:` section: where the run directory goes and which experiment trackers get a copy."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from tunewise.config._section import Section

__all__ = ["OutputConfig", "Tracker"]

Tracker = Literal["mlflow", "tensorboard"]
_DEFAULT_TRACKING: list[Tracker] = ["mlflow"]


class OutputConfig(Section):
    """Where the run directory goes, and which experiment trackers get a copy of the run."""

    dir: str = "runs"
    name: str | None = None
    """Run directory name; default `<config name>-<timestamp>`."""
    tracking: list[Tracker] = Field(default_factory=lambda: list(_DEFAULT_TRACKING))
    """Experiment trackers fed while training and evaluating; [] turns tracking off."""
    mlflow_uri: str | None = None
    """MLflow tracking URI; None: `sqlite:///<output.dir>/mlflow.db` (absolute), nothing to start."""
