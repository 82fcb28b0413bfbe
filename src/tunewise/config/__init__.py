"""The run config: one pydantic model per section, YAML in, `key.sub=value` overrides on top.

Precedence is defaults < YAML < overrides. Validation collects *every* problem before it
reports, each with its key path, the file and line it came from, and — for an unknown key — the
closest known key. Paths written in the YAML file are relative to that file; paths given as
overrides are relative to the current directory (where the user typed them).

Where things live:

- one module per section: `model`, `data`, `method`, `train`, `eval`, `guard` (the forgetting guard,
  with its monitor as `guard.monitor`), `output`, `tune`;
- `root`: the `Config` that composes them, and the rules that span sections;
- `loader`: YAML and overrides in (duplicate keys, path anchoring), the resolved config out;
- `_render`: pydantic's validation errors as `ConfigError` lines with key, file:line and suggestion.
"""

from __future__ import annotations

from tunewise.config._render import describe_error
from tunewise.config.data import CheckConfig, CleanConfig, DataConfig, DatasetConfig, MixingConfig, SplitConfig
from tunewise.config.eval import BaselinesConfig, EvalConfig, SuiteConfig, suite_key
from tunewise.config.guard import GuardConfig, MonitorConfig, WiseFTConfig
from tunewise.config.loader import dump_config, key_lines, load_config, parse_overrides
from tunewise.config.method import (
    METHOD_CONFIGS,
    FreezeConfig,
    FullConfig,
    GradualUnfreezeConfig,
    IA3Config,
    LoraConfig,
    MethodConfig,
    PrefixConfig,
    PromptConfig,
    PTuningConfig,
    QLoraConfig,
)
from tunewise.config.model import ModelConfig
from tunewise.config.output import OutputConfig
from tunewise.config.root import Config, Objective, StageConfig, Task, resolve_stage
from tunewise.config.train import EarlyStoppingConfig, PenaltyConfig, TrainConfig
from tunewise.config.tune import TuneConfig, TuneObjective, TuneParam

__all__ = [
    "METHOD_CONFIGS",
    "BaselinesConfig",
    "CheckConfig",
    "CleanConfig",
    "Config",
    "DataConfig",
    "DatasetConfig",
    "EarlyStoppingConfig",
    "EvalConfig",
    "FreezeConfig",
    "FullConfig",
    "GradualUnfreezeConfig",
    "GuardConfig",
    "IA3Config",
    "LoraConfig",
    "MethodConfig",
    "MixingConfig",
    "ModelConfig",
    "MonitorConfig",
    "Objective",
    "OutputConfig",
    "PTuningConfig",
    "PenaltyConfig",
    "PrefixConfig",
    "PromptConfig",
    "QLoraConfig",
    "SplitConfig",
    "StageConfig",
    "SuiteConfig",
    "Task",
    "TrainConfig",
    "TuneConfig",
    "TuneObjective",
    "TuneParam",
    "WiseFTConfig",
    "describe_error",
    "dump_config",
    "key_lines",
    "load_config",
    "parse_overrides",
    "resolve_stage",
    "suite_key",
]
