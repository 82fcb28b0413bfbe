"""The run config: one pydantic model per section, YAML in, `key.sub=value` overrides on top.

Precedence is defaults < YAML < overrides. Validation collects *every* problem before it
reports, each with its key path, the file and line it came from, and — for an unknown key — the
closest known key. Paths written in the YAML file are relative to that file; paths given as
overrides are relative to the current directory (where the user typed them).
"""

from __future__ import annotations

import difflib
from pathlib import Path
from typing import Annotated, Any, Literal, get_args, get_origin

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from tunewise.errors import ConfigError

__all__ = [
    "CheckConfig",
    "BaselinesConfig",
    "Config",
    "DataConfig",
    "EvalConfig",
    "LoraConfig",
    "ModelConfig",
    "OutputConfig",
    "SplitConfig",
    "SuiteConfig",
    "TrainConfig",
    "dump_config",
    "load_config",
    "parse_overrides",
]


class Section(BaseModel):
    # A typo must be an error, never a silently ignored key.
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class ModelConfig(Section):
    """Which base model to fine-tune."""

    name: str = "smollm2-135m-instruct"
    """An alias (`tunewise models list`), a local directory, or a Hugging Face model id."""
    revision: str | None = None
    trust_remote_code: bool = False
    """Run code shipped with a hub model. Off unless you trust the model's authors."""
    chat_template: str | None = None
    """None uses the tokenizer's own; or a named template (chatml, llama3, mistral, zephyr) or a .jinja file."""


class SplitConfig(Section):
    """How to carve eval/test rows out of the training file when no separate file is given."""

    eval: Annotated[float, Field(ge=0.0, lt=1.0)] = 0.1
    test: Annotated[float, Field(ge=0.0, lt=1.0)] = 0.0
    seed: int = 0

    @model_validator(mode="after")
    def _fractions_leave_training_rows(self) -> SplitConfig:
        if self.eval + self.test >= 1.0:
            raise ValueError(f"eval + test = {self.eval + self.test:g} leaves no training rows; keep it below 1")
        return self


Shape = Literal["auto", "chat", "alpaca", "sharegpt", "prompt_completion", "text"]


CheckKind = Literal["duplicates", "eval_leakage", "test_leakage", "contamination"]


class CheckConfig(Section):
    """The data check before training: duplicates, leakage into eval/test, suite contamination."""

    enabled: bool = True
    near_duplicate_threshold: Annotated[float, Field(gt=0.0, le=1.0)] = 0.8
    """Estimated Jaccard similarity of word 3-gram sets at which two rows count as near duplicates."""
    contamination_ngram: Annotated[int, Field(ge=4)] = 8
    """An eval-suite item sharing this many consecutive words with a training row is contaminated."""
    block_on: list[CheckKind] = Field(default_factory=list)
    """Findings that stop the run before training (exit 2), e.g. [eval_leakage, contamination]."""


class DataConfig(Section):
    """Where the data is and how it becomes training tokens."""

    train: str | None = None
    """Training file: .jsonl, .json, .csv, .parquet, or a directory saved by `datasets`."""
    eval: str | None = None
    """Eval file; when absent, `split.eval` of the training rows (seeded) is held out."""
    test: str | None = None
    """Test file; when absent, `split.test` of the training rows is held out."""
    shape: Shape = "auto"
    columns: dict[str, str] | None = None
    """Rename columns before shape detection, e.g. {question: prompt, answer: completion}."""
    split: SplitConfig = Field(default_factory=SplitConfig)
    max_length: Annotated[int, Field(gt=0)] = 1024
    train_on: Literal["all_assistant", "last_assistant", "everything"] = "all_assistant"
    on_bad_rows: Literal["error", "skip"] = "error"
    """`skip` writes each bad row with its reason to rejects.jsonl in the run directory."""
    check: CheckConfig = Field(default_factory=CheckConfig)


class LoraConfig(Section):
    """LoRA adapters through PEFT."""

    type: Literal["lora"] = "lora"
    r: Annotated[int, Field(gt=0)] = 16
    alpha: Annotated[float, Field(gt=0)] = 32
    dropout: Annotated[float, Field(ge=0.0, lt=1.0)] = 0.05
    target_modules: str | list[str] = "all-linear"


class TrainConfig(Section):
    """The optimisation loop."""

    epochs: Annotated[float, Field(gt=0)] = 1.0
    max_steps: Annotated[int, Field(gt=0)] | None = None
    """Stop after this many optimizer steps (overrides `epochs`)."""
    lr: Annotated[float, Field(gt=0)] = 2e-4
    scheduler: Literal["linear", "cosine", "cosine_with_restarts", "constant", "constant_with_warmup"] = "cosine"
    warmup_ratio: Annotated[float, Field(ge=0.0, lt=1.0)] = 0.05
    warmup_steps: Annotated[int, Field(ge=0)] | None = None
    """When set, used instead of `warmup_ratio`."""
    batch_size: Annotated[int, Field(gt=0)] = 8
    grad_accum: Annotated[int, Field(gt=0)] = 1
    weight_decay: Annotated[float, Field(ge=0.0)] = 0.0
    max_grad_norm: Annotated[float, Field(ge=0.0)] = 1.0
    precision: Literal["auto", "fp32", "bf16", "fp16"] = "auto"
    """auto: bf16 autocast where the hardware supports it (recent CPUs, Ampere+ GPUs), else fp32."""
    gradient_checkpointing: bool = False
    seed: int = 42
    eval_every: Annotated[int, Field(ge=0)] = 50
    """Evaluate every N optimizer steps; 0 evaluates only at the end."""
    save_every: Annotated[int, Field(gt=0)] = 100
    save_total_limit: Annotated[int, Field(gt=0)] = 2
    log_every: Annotated[int, Field(gt=0)] = 5
    resume: bool = False
    """Continue from the last checkpoint of the run directory (`output.name`, or the latest run of this config)."""


SuiteRole = Literal["auto", "task", "general", "safety", "bias"]


class SuiteConfig(Section):
    """One evaluation suite: a built-in name or a file, and what its score means."""

    name: str
    """Built-in (general_knowledge, chat, safety, bias_pairs), a .jsonl/.json/.csv file, or hf:ID[:SUBSET][@SPLIT]."""
    role: SuiteRole = "auto"
    """general = forgetting probe, task = what the fine-tune is for; auto: from the built-in name, else task."""
    limit: Annotated[int, Field(gt=0)] | None = None
    """Score only the first N items (None: all)."""
    metric: str | None = None
    """Generation suites: contains, exact_match, rougeL, bleu, ... (default: contains for `answers`, rougeL for `reference`)."""
    columns: dict[str, str] | None = None
    """Suite key -> column of the file or dataset (dotted for nested fields); hf: presets need none."""


def _default_suites() -> list[SuiteConfig]:
    return [SuiteConfig(name=n) for n in ("general_knowledge", "chat", "safety", "bias_pairs")]


class BaselinesConfig(Section):
    """The base model given training examples in its prompt: was fine-tuning worth it?

    Both apply to the task measurements only (the eval rows and `task` suites), never to the
    general, safety or bias suites.
    """

    few_shot: Annotated[int, Field(ge=0)] = 3
    """k training examples drawn at random (the same for every row) as earlier chat turns; 0 = off."""
    retrieval: Annotated[int, Field(ge=0)] = 3
    """k training examples nearest to each prompt by BM25, as earlier chat turns; 0 = off."""
    seed: int = 0
    """Seed of the few-shot draw."""


class EvalConfig(Section):
    """What `tunewise eval` and the end of `tunewise run` measure, base and tuned side by side."""

    suites: list[SuiteConfig] = Field(default_factory=_default_suites)
    """Suites scored for base and tuned; a plain string is a suite name. [] scores none."""
    bootstrap: Annotated[int, Field(ge=100)] = 1000
    """Bootstrap resamples behind every confidence interval."""
    confidence: Annotated[float, Field(gt=0.5, lt=1.0)] = 0.95

    @model_validator(mode="before")
    @classmethod
    def _names_as_suites(cls, data: Any) -> Any:
        if isinstance(data, dict) and isinstance(data.get("suites"), list):
            data = {**data, "suites": [{"name": s} if isinstance(s, str) else s for s in data["suites"]]}
        return data

    limit: Annotated[int, Field(gt=0)] | None = None
    """Score at most this many eval rows (None: all)."""
    batch_size: Annotated[int, Field(gt=0)] = 8
    generations: Annotated[int, Field(ge=0)] = 4
    """How many eval prompts to answer by greedy generation, base and tuned."""
    max_new_tokens: Annotated[int, Field(gt=0)] = 64
    baselines: BaselinesConfig = Field(default_factory=BaselinesConfig)
    """Cheaper alternatives to fine-tuning, scored on the same task measurements as base and tuned."""


class OutputConfig(Section):
    """Where the run directory goes, and which experiment trackers get a copy of the run."""

    dir: str = "runs"
    name: str | None = None
    """Run directory name; default `<config name>-<timestamp>`."""
    tracking: list[Literal["mlflow", "tensorboard"]] = Field(default_factory=lambda: ["mlflow"])
    """Experiment trackers fed while training and evaluating; [] turns tracking off."""
    mlflow_uri: str | None = None
    """MLflow tracking URI; None: `sqlite:///<output.dir>/mlflow.db` (absolute), nothing to start."""


class Config(Section):
    """A whole run, one section per concern."""

    model: ModelConfig = Field(default_factory=ModelConfig)
    data: DataConfig = Field(default_factory=DataConfig)
    method: LoraConfig = Field(default_factory=LoraConfig)
    train: TrainConfig = Field(default_factory=TrainConfig)
    eval: EvalConfig = Field(default_factory=EvalConfig)
    output: OutputConfig = Field(default_factory=OutputConfig)


# Keys whose values are file paths: relative ones are anchored where they were written.
_PATH_KEYS = (("data", "train"), ("data", "eval"), ("data", "test"))


def parse_overrides(overrides: list[str]) -> tuple[dict[str, Any], list[str]]:
    """Turn `key.sub=value` arguments into a nested dict; values are parsed as YAML scalars.

    Returns:
        The nested dict and a list of problems (malformed arguments), reported with the rest.
    """
    nested: dict[str, Any] = {}
    problems: list[str] = []
    for arg in overrides:
        key, sep, raw = arg.partition("=")
        key = key.strip()
        if not sep or not key or any(not part for part in key.split(".")):
            problems.append(f"override {arg!r}: expected key.sub=value, e.g. train.max_steps=5")
            continue
        try:
            value = yaml.safe_load(raw) if raw.strip() else ""
        except yaml.YAMLError:
            value = raw  # an unparseable value is a plain string; the schema judges it
        if isinstance(value, str):
            # YAML 1.1 reads `1e-4` as a string; a user typing it means a number.
            try:
                value = float(value) if value.strip().lower() not in ("nan", "inf", "-inf", "infinity") else value
            except ValueError:
                pass
        parts = key.split(".")
        node = nested
        for part in parts[:-1]:
            child = node.setdefault(part, {})
            if not isinstance(child, dict):
                problems.append(f"override {arg!r}: {part} was already set to a value, not a section")
                break
            node = child
        else:
            node[parts[-1]] = value
    return nested, problems


def _merge(base: dict[str, Any], top: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in top.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = value
    return out


def _key_lines(text: str) -> dict[tuple[str, ...], int]:
    """Map each key path in a YAML document to its 1-based line, for error messages."""
    lines: dict[tuple[str, ...], int] = {}

    def walk(node: yaml.Node, path: tuple[str, ...]) -> None:
        if isinstance(node, yaml.MappingNode):
            for key_node, value_node in node.value:
                key = (*path, str(key_node.value))
                lines[key] = key_node.start_mark.line + 1
                walk(value_node, key)
        elif isinstance(node, yaml.SequenceNode):
            for i, item in enumerate(node.value):
                lines[(*path, str(i))] = item.start_mark.line + 1
                walk(item, (*path, str(i)))

    root = yaml.compose(text)
    if root is not None:
        walk(root, ())
    return lines


_SUITE_FILE_SUFFIXES = (".jsonl", ".json", ".csv")


def _anchored(value: str, base: Path) -> str:
    path = Path(value).expanduser()
    return str(path if path.is_absolute() else (base / path).resolve())


def _anchor_paths(raw: dict[str, Any], base: Path) -> None:
    for section, key in _PATH_KEYS:
        block = raw.get(section)
        if isinstance(block, dict) and isinstance(block.get(key), str):
            block[key] = _anchored(block[key], base)
    suites = raw.get("eval", {}).get("suites") if isinstance(raw.get("eval"), dict) else None
    for i, suite in enumerate(suites if isinstance(suites, list) else []):
        name = suite.get("name") if isinstance(suite, dict) else suite
        if isinstance(name, str) and name.endswith(_SUITE_FILE_SUFFIXES):
            anchored = _anchored(name, base)
            suites[i] = {**suite, "name": anchored} if isinstance(suite, dict) else anchored


def _fields_at(loc: tuple[Any, ...]) -> list[str]:
    """The known keys of the section that `loc` (a pydantic error location) points into."""
    model: type[BaseModel] = Config
    for part in loc:
        if isinstance(part, int) or str(part).isdigit():
            continue  # a list index: stay on the list's item model
        field = model.model_fields.get(str(part))
        annotation = getattr(field, "annotation", None)
        if get_origin(annotation) is list:
            annotation = get_args(annotation)[0]
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            model = annotation
        else:
            break
    return list(model.model_fields)


def _describe(error: dict[str, Any], lines: dict[tuple[str, ...], int], source: str | None,
              override_keys: set[tuple[str, ...]]) -> str:
    loc = tuple(str(p) for p in error["loc"])
    key = ".".join(loc) or "(top level)"
    if loc in override_keys:
        where = " (command-line override)"
    elif loc in lines and source:
        where = f" ({source}:{lines[loc]})"
    else:
        where = ""
    if error["type"] == "extra_forbidden":
        known = _fields_at(loc[:-1])
        hint = difflib.get_close_matches(loc[-1], known, n=1, cutoff=0.6)
        suggestion = f"did you mean '{hint[0]}'?" if hint else f"known keys here: {', '.join(known)}"
        return f"{key}{where}: unknown key; {suggestion}"
    if error["type"] == "value_error":
        message = str(error["msg"]).removeprefix("Value error, ")
        return message if not loc or message.startswith(key) else f"{key}{where}: {message}"
    got = error.get("input")
    shown = "" if isinstance(got, dict) else f" (got {got!r})"
    return f"{key}{where}: {error['msg']}{shown}"


def _flatten_keys(tree: dict[str, Any], prefix: tuple[str, ...] = ()) -> set[tuple[str, ...]]:
    keys: set[tuple[str, ...]] = set()
    for key, value in tree.items():
        keys.add((*prefix, key))
        if isinstance(value, dict):
            keys |= _flatten_keys(value, (*prefix, key))
    return keys


def load_config(path: str | Path | None = None, overrides: list[str] | None = None) -> Config:
    """Build the typed config: defaults, then the YAML file, then `key.sub=value` overrides.

    Args:
        path: a YAML file, or None for defaults plus overrides only.
        overrides: arguments like `train.max_steps=5`; values are parsed as YAML scalars.

    Raises:
        ConfigError: listing every problem at once, each with its key path and origin.
    """
    raw: dict[str, Any] = {}
    lines: dict[tuple[str, ...], int] = {}
    source = str(path) if path is not None else None
    if path is not None:
        file = Path(path)
        if not file.is_file():
            raise ConfigError([f"config file not found: {file} (run `tunewise init {file}` to write a starter config)"])
        text = file.read_text(encoding="utf-8")
        try:
            loaded = yaml.safe_load(text)
            lines = _key_lines(text)
        except yaml.YAMLError as err:
            mark = getattr(err, "problem_mark", None)
            at = f":{mark.line + 1}:{mark.column + 1}" if mark else ""
            reason = getattr(err, "problem", None) or str(err)
            raise ConfigError([f"{file}{at}: not valid YAML: {reason}"]) from None
        if loaded is None:
            loaded = {}
        if not isinstance(loaded, dict):
            raise ConfigError([f"{file}: the top level must be a mapping of sections (model:, data:, ...), "
                               f"not a {type(loaded).__name__}"])
        raw = loaded
        _anchor_paths(raw, file.resolve().parent)

    nested, problems = parse_overrides(list(overrides or []))
    _anchor_paths(nested, Path.cwd())
    merged = _merge(raw, nested)
    try:
        config = Config.model_validate(merged)
    except ValidationError as err:
        override_keys = _flatten_keys(nested)
        problems += [_describe(e, lines, source, override_keys) for e in err.errors()]
        config = None
    if problems:
        raise ConfigError(problems, source)
    assert config is not None
    return config


def dump_config(config: Config, path: str | Path) -> None:
    """Write the resolved config (every default filled in) as YAML, ready to re-run."""
    Path(path).write_text(yaml.safe_dump(config.model_dump(mode="json"), sort_keys=False), encoding="utf-8")
