"""The root `Config`, one field per section, and the rules that span sections.

A section's own rules live with its model; the rules here need two sections or more (the task with
the data, the method with WiSE-FT, ...). They run after every section validated, and report all
their problems at once, each at the key the user wrote.
"""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import Field, ValidationError, model_validator
from pydantic_core import InitErrorDetails

from tunewise.config._merge import merge
from tunewise.config._section import Section
from tunewise.config.data import DataConfig
from tunewise.config.eval import EvalConfig, suite_key
from tunewise.config.guard import GuardConfig
from tunewise.config.method import LoraConfig, MethodConfig
from tunewise.config.model import ModelConfig
from tunewise.config.output import OutputConfig
from tunewise.config.train import TrainConfig
from tunewise.config.tune import TuneConfig

__all__ = ["Config", "Objective", "StageConfig", "Task", "resolve_stage"]

Task = Literal["chat", "completion", "classification"]
"""What a run trains (tunewise.tasks.TASKS holds the code)."""

Objective = Literal["sft"]
"""How a run trains: the loss it minimises (tunewise.objectives.OBJECTIVES holds the code)."""


def _guard_problems(guard: GuardConfig, task: str) -> list[tuple[tuple[Any, ...], str]]:
    """Regularizers the task cannot use, by key (the guard code is tunewise/guard/)."""
    found: list[tuple[tuple[Any, ...], str]] = []
    on = [
        ("replay", "ratio", guard.replay.ratio),
        ("ewc", "weight", guard.ewc.weight),
        ("kl", "weight", guard.kl.weight),
    ]
    if task == "classification":
        for name, key, value in on:
            if value > 0:
                found.append(
                    (
                        ("guard", name, key),
                        f"guard.{name} works on a language model's "
                        f"next-token predictions; a classification head has none — use guard.l2sp",
                    )
                )
    elif task == "completion" and guard.general == "self" and guard.needs_general:
        found.append(
            (
                ("guard", "general"),
                "self-synthesized rows are chat answers and task completion trains "
                "on plain text; set guard.general to a plain-text file {text}",
            )
        )
    return found


class StageConfig(Section):
    """One stage of a sequential fine-tune: overrides of the `data` and `train` sections.

    A stage that sets any of data.train/eval/test/datasets replaces all four (the others are unset);
    every other key it does not set is taken from the top-level section.
    """

    name: str
    """Names the stage's run subdirectory and its column in the stages table."""
    data: dict[str, Any] = Field(default_factory=dict, json_schema_extra={"section": "data"})
    train: dict[str, Any] = Field(default_factory=dict, json_schema_extra={"section": "train"})


class Config(Section):
    """A whole run, one section per concern."""

    task: Task = "chat"
    """chat (assistant turns), completion (plain text, every token) or classification (a head on {text, label})."""
    objective: Objective = "sft"
    """The training objective: sft (supervised fine-tuning on the rendered rows); any method combines with it."""
    model: ModelConfig = Field(default_factory=ModelConfig)
    data: DataConfig = Field(default_factory=DataConfig)
    method: MethodConfig = Field(default_factory=LoraConfig)
    train: TrainConfig = Field(default_factory=TrainConfig)
    guard: GuardConfig = Field(default_factory=GuardConfig)
    """The forgetting guard: replay, ewc, kl, l2sp, wise_ft after training, and the forgetting monitor during
    training (guard.monitor: general probes, KL to base, budgets and action) (docs/forgetting.md)."""
    eval: EvalConfig = Field(default_factory=EvalConfig)
    output: OutputConfig = Field(default_factory=OutputConfig)
    stages: list[StageConfig] = Field(default_factory=list)
    """Sequential fine-tuning: each stage trains on from the previous one's weights (see docs/tasks.md)."""
    tune: TuneConfig = Field(default_factory=TuneConfig)
    """`tunewise tune`: the hyperparameter search (docs/tune.md); other commands ignore it."""

    @model_validator(mode="after")
    def _task_fits(self) -> Config:
        # Combinations that cannot work are reported here, before any file is read or model loaded.
        if self.task == "classification" and "suites" not in self.eval.model_fields_set:
            self.eval.suites = []  # the built-in suites score a language model, which a classifier is not
        if self.task == "classification" and "enabled" not in self.guard.monitor.model_fields_set:
            self.guard.monitor.enabled = False  # so does the forgetting monitor
        found = _task_problems(self) + _guard_monitor_problems(self)
        if found:
            raise ValidationError.from_exception_data(
                "Config",
                [
                    InitErrorDetails(type="value_error", loc=loc, input={}, ctx={"error": ValueError(message)})
                    if isinstance(message, str)
                    else message
                    for loc, message in found
                ],
            )
        return self


# Methods WiSE-FT cannot interpolate: virtual tokens have no base value to move towards.
_NO_WISE_FT = ("prefix", "prompt", "ptuning")


def _guard_monitor_problems(config: Config) -> list[tuple[tuple[Any, ...], str]]:
    """What is wrong with the forgetting monitor (`guard.monitor`), alone or with the rest of the config,
    and with WiSE-FT (`guard.wise_ft`), which the method must be able to interpolate."""
    monitor = config.guard.monitor
    at = ("guard", "monitor")
    found: list[tuple[tuple[Any, ...], str]] = []
    keys = [suite_key(s.name) for s in monitor.suites]
    for i, suite in enumerate(monitor.suites):
        if suite.role not in ("auto", "general"):
            found.append(
                (
                    (*at, "suites", i, "role"),
                    f"the monitor's suites are general probes; remove "
                    f"role: {suite.role} (task suites belong in eval.suites)",
                )
            )
        if keys.index(keys[i]) != i:
            found.append(((*at, "suites", i), f"two suites go by the name {keys[i]}; keep one"))
    for key in monitor.budgets:
        if key == "kl":
            if not monitor.kl:
                found.append(
                    (
                        (*at, "budgets", key),
                        "the KL is not measured (guard.monitor.kl is false); set "
                        "guard.monitor.kl: true or remove the budget",
                    )
                )
        elif key not in keys:
            found.append(
                (
                    (*at, "budgets", key),
                    f"no such suite in guard.monitor.suites "
                    f"({', '.join(keys) or 'none'}); add it to guard.monitor.suites "
                    f"or remove the budget",
                )
            )
    if monitor.action != "warn" and not monitor.budgets:
        found.append(
            (
                (*at, "action"),
                f"{monitor.action} acts when a budget is breached, and "
                f"guard.monitor.budgets is empty; set e.g. "
                f"guard.monitor.budgets: {{chat: 0.1, kl: 0.2}}",
            )
        )
    if not monitor.enabled and (monitor.action != "warn" or monitor.budgets):
        found.append(
            (
                (*at, "enabled"),
                "guard.monitor.budgets and guard.monitor.action need the monitor; set guard.monitor.enabled: true",
            )
        )
    if monitor.enabled and monitor.action != "warn" and config.train.eval_every == 0:
        found.append(
            (
                (*at, "action"),
                f"{monitor.action} acts at the evals during training, and "
                f"train.eval_every is 0 (none while training); set train.eval_every above 0",
            )
        )
    lm = config.task != "classification"
    if monitor.enabled and not lm:
        found.append(
            (
                (*at, "enabled"),
                "the monitor scores a language model, and a classification run trains a "
                "head; set guard.monitor.enabled: false",
            )
        )
    if config.guard.wise_ft.enabled:
        method = config.method.type
        why = None
        if not lm:
            why = "a classification head has no base value to interpolate towards; set guard.wise_ft.enabled: false"
        elif method in _NO_WISE_FT:
            why = f"method.type {method} adds virtual tokens, which have no base value to interpolate towards"
        elif getattr(config.method, "dora", False):
            why = "DoRA learns a magnitude whose starting value is not kept, so α=0 would not be the base model"
        elif config.stages:
            why = "WiSE-FT interpolates one fine-tune with its base; with stages, run it on a single stage"
        if why:
            found.append(
                (
                    ("guard", "wise_ft", "enabled"),
                    f"{why} (WiSE-FT works with full, freeze, gradual_unfreeze, lora, qlora and ia3)",
                )
            )
    return found


_FILE_KEYS = ("train", "eval", "test", "datasets")
_LM_SUITES = ("general_knowledge", "chat", "safety", "bias_pairs")


def resolve_stage(config: Config, index: int) -> Config:
    """The config stage `index` runs with: the top-level sections with the stage's overrides on top.

    Raises:
        ValidationError: the merged sections are invalid (locations are those of the merged config).
    """
    stage = config.stages[index]
    data = config.data.model_dump()
    if any(key in stage.data for key in _FILE_KEYS):
        data.update(train=None, eval=None, test=None, datasets=[])
    merged = {
        **config.model_dump(exclude={"stages"}),
        "data": merge(data, stage.data),
        "train": merge(config.train.model_dump(), stage.train),
        "stages": [],
    }
    return Config.model_validate(merged)


def _data_problems(data: DataConfig, task: str, at: tuple[Any, ...]) -> list[tuple[tuple[Any, ...], str]]:
    found: list[tuple[tuple[Any, ...], str]] = []
    if data.datasets:
        if data.train:
            found.append(
                ((*at, "datasets"), "give either data.train (one dataset) or data.datasets (a mixture), not both")
            )
        for key in ("eval", "test"):
            if getattr(data, key):
                found.append(
                    (
                        (*at, key),
                        f"with data.datasets, each dataset names its own eval file "
                        f"(datasets[].eval) and data.split holds out the rest; remove data.{key}",
                    )
                )
        names = [d.name for d in data.datasets]
        repeated = sorted({n for n in names if names.count(n) > 1})
        if repeated:
            found.append(((*at, "datasets"), f"dataset names must be unique; {', '.join(repeated)} repeated"))
        weighted = [d.name for d in data.datasets if d.weight is not None]
        missing = [d.name for d in data.datasets if d.weight is None]
        if data.mixing.strategy == "weights" and missing:
            found.append(
                (
                    (*at, "datasets"),
                    f"mixing.strategy weights needs a weight on every dataset; "
                    f"{', '.join(missing)} {'has' if len(missing) == 1 else 'have'} none",
                )
            )
        if data.mixing.strategy == "temperature" and weighted:
            found.append(
                (
                    (*at, "mixing", "strategy"),
                    f"datasets {', '.join(weighted)} have weights, which only "
                    f"mixing.strategy: weights uses; set it, or remove the weights "
                    f"(temperature sampling weighs datasets by their sizes)",
                )
            )
    if task == "completion" and data.shape not in ("auto", "text"):
        found.append(
            (
                (*at, "shape"),
                f"task completion trains on plain text (shape text); shape {data.shape} is "
                f"chat data — set task: chat, or leave data.shape at auto",
            )
        )
    if task == "chat" and data.shape == "text":
        found.append(
            (
                (*at, "shape"),
                "plain text is trained with task: completion (continued pre-training, every "
                "token trained); set task: completion",
            )
        )
    if task == "classification":
        if data.shape != "auto":
            found.append(
                (
                    (*at, "shape"),
                    "task classification reads {text, label} rows, which have no shape to set; "
                    "remove data.shape (map other column names with data.columns)",
                )
            )
        if data.datasets:
            found.append(((*at, "datasets"), "task classification trains one head on one dataset; give data.train"))
    elif data.label_names:
        found.append(((*at, "label_names"), f"only task: classification has labels (task is {task})"))
    return found


def _task_problems(config: Config) -> list[tuple[tuple[Any, ...], Any]]:
    found: list[tuple[tuple[Any, ...], Any]] = []
    if not config.stages:
        # With stages the top-level data only lends defaults; each stage's merged data is checked below.
        found += _data_problems(config.data, config.task, ("data",))
    found += _guard_problems(config.guard, config.task)
    if config.task == "classification":
        for i, suite in enumerate(config.eval.suites):
            if suite.name in _LM_SUITES or suite.name.startswith("hf:"):
                found.append(
                    (
                        ("eval", "suites", i),
                        f"{suite.name} scores a language model; a classification run "
                        f"scores {{text, label}} suites with its head — remove it",
                    )
                )
        if config.stages:
            found.append(
                (
                    ("stages",),
                    "stages train language-model tasks (chat, completion) one after another; "
                    "task classification runs one stage",
                )
            )
        return found
    names = [stage.name for stage in config.stages]
    for i, stage in enumerate(config.stages):
        if names.count(stage.name) > 1:
            found.append((("stages", i, "name"), f"stage names must be unique; {stage.name} is used twice"))
        if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]*", stage.name):
            found.append(
                (
                    ("stages", i, "name"),
                    f"{stage.name!r} names the stage's directory: use letters, digits, "
                    f"'.', '_' and '-', starting with a letter or digit",
                )
            )
        try:
            resolved = resolve_stage(config, i)
        except ValidationError as err:
            # The merged sections' errors, placed where the user wrote the stage.
            found += [
                (loc, InitErrorDetails(type=e["type"], loc=loc, input=e.get("input"), ctx=e.get("ctx", {})))
                for e in err.errors()
                for loc in [("stages", i, *e["loc"])]
            ]
            continue
        found += _data_problems(resolved.data, config.task, ("stages", i, "data"))
        if not (resolved.data.train or resolved.data.datasets):
            found.append(
                (
                    ("stages", i, "data"),
                    f"stage {stage.name} has no training data: set its data.train "
                    f"(or data.datasets), or a top-level data.train for every stage",
                )
            )
    if config.stages and config.train.resume:
        found.append((("train", "resume"), "resuming a sequential run is not supported yet; start it again"))
    return found
