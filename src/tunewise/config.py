"""The run config: one pydantic model per section, YAML in, `key.sub=value` overrides on top.

Precedence is defaults < YAML < overrides. Validation collects *every* problem before it
reports, each with its key path, the file and line it came from, and — for an unknown key — the
closest known key. Paths written in the YAML file are relative to that file; paths given as
overrides are relative to the current directory (where the user typed them).
"""

from __future__ import annotations

import difflib
import re
from pathlib import Path
from typing import Annotated, Any, Literal, Union, get_args, get_origin

import yaml
from pydantic import (BaseModel, ConfigDict, Discriminator, Field, Tag, ValidationError, ValidationInfo,
                      field_validator, model_validator)

from tunewise.errors import ConfigError

__all__ = [
    "CheckConfig",
    "BaselinesConfig",
    "Config",
    "DataConfig",
    "DatasetConfig",
    "EarlyStoppingConfig",
    "EvalConfig",
    "FreezeConfig",
    "FullConfig",
    "GradualUnfreezeConfig",
    "IA3Config",
    "LoraConfig",
    "METHOD_CONFIGS",
    "MixingConfig",
    "MethodConfig",
    "PTuningConfig",
    "PrefixConfig",
    "PromptConfig",
    "QLoraConfig",
    "ModelConfig",
    "OutputConfig",
    "PenaltyConfig",
    "SplitConfig",
    "StageConfig",
    "SuiteConfig",
    "Task",
    "TrainConfig",
    "dump_config",
    "load_config",
    "parse_overrides",
    "resolve_stage",
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


Task = Literal["chat", "completion", "classification"]


class DatasetConfig(Section):
    """One dataset of a multi-task mixture (`data.datasets`)."""

    name: Annotated[str, Field(min_length=1)]
    """Shown in logs, eval_summary.json and the report."""
    train: str
    """Training file, any format `data.train` takes."""
    eval: str | None = None
    """Eval file; when absent, `data.split` holds out rows of this dataset's training file."""
    weight: Annotated[float, Field(gt=0)] | None = None
    """Sampling weight under `mixing.strategy: weights` (normalised over the datasets)."""


class MixingConfig(Section):
    """How training rows are drawn from `data.datasets`."""

    strategy: Literal["temperature", "weights"] = "temperature"
    """temperature: p_i ∝ n_i^(1/T) (T5/mT5); weights: p_i ∝ datasets[i].weight."""
    temperature: Annotated[float, Field(gt=0)] = 1.0
    """1 samples in proportion to size (plain concatenation); higher flattens towards uniform."""
    seed: int = 0
    """Seed of the draw."""


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
    datasets: list[DatasetConfig] = Field(default_factory=list)
    """Multi-task: several datasets mixed by `mixing`, each evaluated on its own (instead of `train`)."""
    mixing: MixingConfig = Field(default_factory=MixingConfig)
    label_names: dict[str, str] | None = None
    """task classification: words for the labels of the file, e.g. {0: negative, 1: positive}; used by the
    zero-shot baseline's prompt and in reports."""

    @field_validator("label_names", mode="before")
    @classmethod
    def _labels_as_text(cls, value: Any) -> Any:
        # YAML reads `{0: negative}` with an int key; labels are compared as text everywhere.
        return {str(k): v for k, v in value.items()} if isinstance(value, dict) else value


# --- method: how much of the model a fine-tune changes. One class per `method.type`; the keys
# of one method are errors under another (with the reason), never silently ignored.


class FullConfig(Section):
    """Full fine-tuning: every weight of the model trains."""

    type: Literal["full"] = "full"


class FreezeConfig(Section):
    """Partial fine-tuning: only the top `top_k` transformer blocks (and modules matched by name) train."""

    type: Literal["freeze"] = "freeze"
    top_k: Annotated[int, Field(ge=0)] = 2
    """Train the k transformer blocks nearest the output; 0 picks none by position (use `modules`)."""
    modules: list[str] = Field(default_factory=list)
    """Also train every parameter whose name, or the name of a module holding it, matches one of
    these globs (e.g. `model.layers.*.mlp`, `*norm*`)."""
    train_embeddings: bool = False
    """Also train the input embeddings."""
    train_head: bool = False
    """Also train the output head: the unembedding and the final norm before it."""

    @model_validator(mode="after")
    def _something_trains(self) -> FreezeConfig:
        if not (self.top_k or self.modules or self.train_embeddings or self.train_head):
            raise ValueError("method: nothing would train; set method.top_k above 0, method.modules, "
                             "method.train_embeddings or method.train_head")
        return self


class GradualUnfreezeConfig(Section):
    """ULMFiT-style gradual unfreezing: the top block group trains first, the next group down joins
    every `every_steps` optimizer steps (or `every_epochs` epochs) until all blocks train."""

    type: Literal["gradual_unfreeze"] = "gradual_unfreeze"
    group_size: Annotated[int, Field(gt=0)] = 2
    """Transformer blocks per group."""
    every_steps: Annotated[int, Field(gt=0)] | None = 50
    """Unfreeze the next group down every this many optimizer steps."""
    every_epochs: Annotated[float, Field(gt=0)] | None = None
    """Or every this many epochs (fractions allowed); setting it clears `every_steps`."""
    train_embeddings: bool = False
    """The input embeddings join as the last group, after every block."""
    train_head: bool = False
    """The output head (unembedding + final norm) trains from the start with the top group."""

    @model_validator(mode="before")
    @classmethod
    def _epochs_replace_steps(cls, data: Any) -> Any:
        # `every_epochs: 1` alone means per epoch, not "per epoch and also every 50 steps".
        if isinstance(data, dict) and data.get("every_epochs") is not None and "every_steps" not in data:
            data = {**data, "every_steps": None}
        return data

    @model_validator(mode="after")
    def _one_schedule(self) -> GradualUnfreezeConfig:
        if (self.every_steps is None) == (self.every_epochs is None):
            raise ValueError("method: set exactly one of method.every_steps and method.every_epochs "
                             f"(got every_steps={self.every_steps}, every_epochs={self.every_epochs})")
        return self


class LoraConfig(Section):
    """LoRA adapters through PEFT: low-rank updates beside frozen base weights."""

    type: Literal["lora"] = "lora"
    r: Annotated[int, Field(gt=0)] = 16
    alpha: Annotated[float, Field(gt=0)] = 32
    dropout: Annotated[float, Field(ge=0.0, lt=1.0)] = 0.05
    target_modules: str | list[str] = "all-linear"
    """`all-linear`, a list of module names (matched as name suffixes), or one regex over full names."""
    rslora: bool = False
    """Rank-stabilised scaling alpha/sqrt(r) instead of alpha/r (better at high ranks)."""
    dora: bool = False
    """DoRA: learn each weight's magnitude apart from the low-rank direction update."""


class QLoraConfig(LoraConfig):
    """QLoRA: LoRA on a base model quantized to 4-bit NF4 at load (bitsandbytes)."""

    type: Literal["qlora"] = "qlora"  # type: ignore[assignment]
    double_quant: bool = True
    """Quantize the quantization constants too (saves ~0.4 bit per weight)."""


class PrefixConfig(Section):
    """Prefix tuning through PEFT: trained key/value vectors prepended at every layer."""

    type: Literal["prefix"] = "prefix"
    num_virtual_tokens: Annotated[int, Field(gt=0)] = 20
    projection: bool = False
    """Produce the prefixes through a two-layer MLP (more parameters, often steadier training)."""


class PromptConfig(Section):
    """Prompt tuning through PEFT: trained embeddings (soft prompt) prepended to the input."""

    type: Literal["prompt"] = "prompt"
    num_virtual_tokens: Annotated[int, Field(gt=0)] = 20
    init_text: str | None = None
    """Start the soft prompt from this text's token embeddings (e.g. a task instruction); None: random."""


class PTuningConfig(Section):
    """P-tuning through PEFT: virtual token embeddings produced by a small trained encoder."""

    type: Literal["ptuning"] = "ptuning"
    num_virtual_tokens: Annotated[int, Field(gt=0)] = 20
    encoder: Literal["mlp", "lstm"] = "mlp"
    encoder_hidden_size: Annotated[int, Field(gt=0)] = 128


class IA3Config(Section):
    """(IA)³ through PEFT: learned vectors rescaling chosen activations; the fewest parameters."""

    type: Literal["ia3"] = "ia3"
    target_modules: list[str] | None = None
    """Modules whose activations are rescaled; None: PEFT's choice for the architecture
    (Llama: k_proj, v_proj, down_proj)."""
    feedforward_modules: list[str] | None = None
    """Those of `target_modules` rescaled on their input (feed-forward); None: the architecture's
    (Llama: down_proj) among the targets."""

    @model_validator(mode="after")
    def _feedforward_among_targets(self) -> IA3Config:
        if self.feedforward_modules is not None:
            if self.target_modules is None:
                raise ValueError("method.feedforward_modules needs method.target_modules too (it must be a subset)")
            extra = sorted(set(self.feedforward_modules) - set(self.target_modules))
            if extra:
                raise ValueError(f"method.feedforward_modules: {', '.join(extra)} not in method.target_modules; "
                                 f"feed-forward modules must be targets too")
        return self


METHOD_CONFIGS: dict[str, type[Section]] = {
    "full": FullConfig, "freeze": FreezeConfig, "gradual_unfreeze": GradualUnfreezeConfig, "lora": LoraConfig,
    "qlora": QLoraConfig, "prefix": PrefixConfig, "prompt": PromptConfig, "ptuning": PTuningConfig, "ia3": IA3Config,
}
"""method.type -> its config class (tunewise.methods.METHODS holds the code, in the same order)."""


def _method_type(value: Any) -> Any:
    # No `type` key means LoRA, the default: `method: {r: 8}` keeps working.
    return value.get("type", "lora") if isinstance(value, dict) else getattr(value, "type", None)


MethodConfig = Annotated[
    Union[tuple(Annotated[cls, Tag(name)] for name, cls in METHOD_CONFIGS.items())],  # noqa: UP007
    Discriminator(_method_type),
]
"""One of the method configs, chosen by `method.type`."""


class PenaltyConfig(Section):
    """An explicit penalty on the trainable parameters, added to the loss as its own logged term."""

    l1: Annotated[float, Field(ge=0.0)] = 0.0
    """Weight of Σ|w| over the trainable parameters (logged as `loss/l1`)."""
    l2: Annotated[float, Field(ge=0.0)] = 0.0
    """Weight of Σw² over the trainable parameters (logged as `loss/l2`)."""


class EarlyStoppingConfig(Section):
    """Stop when an eval metric stops improving; the best checkpoint becomes the final model."""

    enabled: bool = False
    metric: str = "eval_loss"
    """Any metric logged at eval time (`eval_` is prepended when missing)."""
    patience: Annotated[int, Field(gt=0)] = 3
    """Evals in a row without an improvement larger than `min_delta` before stopping."""
    min_delta: Annotated[float, Field(ge=0.0)] = 0.0
    """Smallest change of the metric that counts as an improvement."""
    mode: Literal["min", "max"] = "min"
    """min: lower is better (losses); max: higher is better (accuracy)."""


Scheduler = Literal["linear", "cosine", "cosine_with_restarts", "constant", "constant_with_warmup", "step",
                    "exponential"]


class TrainConfig(Section):
    """The optimisation loop."""

    # Defaults too go through the validators below: `scheduler: step` without `step_size` is an error.
    model_config = ConfigDict(extra="forbid", validate_assignment=True, validate_default=True)

    epochs: Annotated[float, Field(gt=0)] = 1.0
    max_steps: Annotated[int, Field(gt=0)] | None = None
    """Stop after this many optimizer steps (overrides `epochs`)."""
    lr: Annotated[float, Field(gt=0)] = 2e-4
    optimizer: Literal["adamw", "adafactor", "sgd"] = "adamw"
    betas: tuple[Annotated[float, Field(ge=0.0, lt=1.0)], Annotated[float, Field(ge=0.0, lt=1.0)]] = (0.9, 0.999)
    """AdamW's moment decay rates."""
    eps: Annotated[float, Field(gt=0)] = 1e-8
    """AdamW's epsilon."""
    momentum: Annotated[float, Field(ge=0.0, lt=1.0)] = 0.0
    """SGD momentum (0: plain SGD, no optimizer state)."""
    scheduler: Scheduler = "cosine"
    num_cycles: Annotated[int, Field(gt=0)] = 1
    """cosine_with_restarts: how many cosine cycles (hard restarts) over the run."""
    step_size: Annotated[int, Field(gt=0)] | None = None
    """step: multiply the learning rate by `gamma` every this many optimizer steps after warmup."""
    gamma: Annotated[float, Field(gt=0.0, le=1.0)] | None = None
    """step: the factor every `step_size` steps (default 0.1); exponential: the factor every step (required)."""
    warmup_ratio: Annotated[float, Field(ge=0.0, lt=1.0)] = 0.05
    warmup_steps: Annotated[int, Field(ge=0)] | None = None
    """When set, used instead of `warmup_ratio`."""
    batch_size: Annotated[int, Field(gt=0)] = 8
    grad_accum: Annotated[int, Field(gt=0)] = 1
    weight_decay: Annotated[float, Field(ge=0.0)] = 0.0
    max_grad_norm: Annotated[float, Field(ge=0.0)] = 1.0
    dropout: Annotated[float, Field(ge=0.0, lt=1.0)] | None = None
    """Set the base model's dropout (attention/hidden/residual, where the architecture has it); None keeps it."""
    penalty: PenaltyConfig = Field(default_factory=PenaltyConfig)
    early_stopping: EarlyStoppingConfig = Field(default_factory=EarlyStoppingConfig)
    """Stop on a stalled eval metric and keep the best checkpoint (off unless `enabled`)."""
    neftune_alpha: Annotated[float, Field(gt=0.0)] | None = None
    """NEFTune: uniform noise of scale alpha/sqrt(tokens × hidden) on the input embeddings while training."""
    precision: Literal["auto", "fp32", "bf16", "fp16"] = "auto"
    """auto: bf16 autocast where the hardware supports it (recent CPUs, Ampere+ GPUs), else fp32."""
    gradient_checkpointing: bool = False
    seed: int = 42
    deterministic: bool = False
    """Also force deterministic kernels (torch.use_deterministic_algorithms); slower, for exact GPU repeats."""
    eval_every: Annotated[int, Field(ge=0)] = 50
    """Evaluate every N optimizer steps; 0 evaluates only at the end."""
    save_every: Annotated[int, Field(gt=0)] = 100
    save_total_limit: Annotated[int, Field(gt=0)] = 2
    log_every: Annotated[int, Field(gt=0)] = 5
    resume: bool = False
    """Continue from the last checkpoint of the run directory (`output.name`, or the latest run of this config)."""

    # Settings that only one optimizer or schedule reads are errors anywhere else: a user who set
    # them expected an effect they would not get. One validator per key, so every problem is
    # reported at once with its own key (and file line); each sees only the fields declared above it.
    @field_validator("betas", "eps", "momentum")
    @classmethod
    def _optimizer_setting(cls, value: Any, info: ValidationInfo) -> Any:
        optimizer, default = info.data.get("optimizer"), cls.model_fields[info.field_name].default
        wanted = "sgd" if info.field_name == "momentum" else "adamw"
        changed = tuple(value) != tuple(default) if info.field_name == "betas" else value != default
        if optimizer is not None and optimizer != wanted and changed:
            raise ValueError(f"only the {wanted} optimizer uses it (train.optimizer is {optimizer}); "
                             f"set train.optimizer={wanted} or remove train.{info.field_name}")
        return value

    @field_validator("num_cycles", "step_size", "gamma")
    @classmethod
    def _scheduler_setting(cls, value: Any, info: ValidationInfo) -> Any:
        scheduler = info.data.get("scheduler")
        if scheduler is None:
            return value
        users = {"num_cycles": ("cosine_with_restarts",), "step_size": ("step",), "gamma": ("step", "exponential")}
        needed = {"step_size": "step", "gamma": "exponential"}
        example = {"step_size": "train.step_size=100 (decay every 100 optimizer steps)",
                   "gamma": "train.gamma=0.99 (the lr factor per step)"}
        if needed.get(info.field_name) == scheduler and value is None:
            raise ValueError(f"the {scheduler} scheduler needs it, e.g. {example[info.field_name]}")
        if scheduler not in users[info.field_name] and value != cls.model_fields[info.field_name].default:
            raise ValueError(f"only the {' and '.join(users[info.field_name])} scheduler uses it "
                             f"(train.scheduler is {scheduler})")
        return value

    @field_validator("warmup_steps")
    @classmethod
    def _warmup_has_a_schedule(cls, value: int | None, info: ValidationInfo) -> int | None:
        if value and info.data.get("scheduler") == "constant":
            raise ValueError("the constant scheduler has no warmup; use train.scheduler=constant_with_warmup")
        return value

    @field_validator("eval_every")
    @classmethod
    def _early_stopping_has_evals(cls, value: int, info: ValidationInfo) -> int:
        stopping = info.data.get("early_stopping")
        if stopping is not None and stopping.enabled and value == 0:
            raise ValueError("train.early_stopping needs evals during training; set train.eval_every above 0")
        return value


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
    model: ModelConfig = Field(default_factory=ModelConfig)
    data: DataConfig = Field(default_factory=DataConfig)
    method: MethodConfig = Field(default_factory=LoraConfig)
    train: TrainConfig = Field(default_factory=TrainConfig)
    eval: EvalConfig = Field(default_factory=EvalConfig)
    output: OutputConfig = Field(default_factory=OutputConfig)
    stages: list[StageConfig] = Field(default_factory=list)
    """Sequential fine-tuning: each stage trains on from the previous one's weights (see docs/tasks.md)."""

    @model_validator(mode="after")
    def _task_fits(self) -> Config:
        # Combinations that cannot work are reported here, before any file is read or model loaded.
        from pydantic_core import InitErrorDetails

        if self.task == "classification" and "suites" not in self.eval.model_fields_set:
            self.eval.suites = []  # the built-in suites score a language model, which a classifier is not
        found = _task_problems(self)
        if found:
            raise ValidationError.from_exception_data("Config", [
                InitErrorDetails(type="value_error", loc=loc, input={}, ctx={"error": ValueError(message)})
                if isinstance(message, str) else message for loc, message in found])
        return self


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
    merged = {**config.model_dump(exclude={"stages"}), "data": _merge(data, stage.data),
              "train": _merge(config.train.model_dump(), stage.train), "stages": []}
    return Config.model_validate(merged)


def _data_problems(data: DataConfig, task: str, at: tuple[Any, ...]) -> list[tuple[tuple[Any, ...], str]]:
    found: list[tuple[tuple[Any, ...], str]] = []
    if data.datasets:
        if data.train:
            found.append(((*at, "datasets"), "give either data.train (one dataset) or data.datasets (a mixture), "
                                             "not both"))
        for key in ("eval", "test"):
            if getattr(data, key):
                found.append(((*at, key), f"with data.datasets, each dataset names its own eval file "
                                          f"(datasets[].eval) and data.split holds out the rest; remove data.{key}"))
        names = [d.name for d in data.datasets]
        repeated = sorted({n for n in names if names.count(n) > 1})
        if repeated:
            found.append(((*at, "datasets"), f"dataset names must be unique; {', '.join(repeated)} repeated"))
        weighted = [d.name for d in data.datasets if d.weight is not None]
        missing = [d.name for d in data.datasets if d.weight is None]
        if data.mixing.strategy == "weights" and missing:
            found.append(((*at, "datasets"), f"mixing.strategy weights needs a weight on every dataset; "
                                             f"{', '.join(missing)} {'has' if len(missing) == 1 else 'have'} none"))
        if data.mixing.strategy == "temperature" and weighted:
            found.append(((*at, "mixing", "strategy"), f"datasets {', '.join(weighted)} have weights, which only "
                                                       f"mixing.strategy: weights uses; set it, or remove the weights "
                                                       f"(temperature sampling weighs datasets by their sizes)"))
    if task == "completion" and data.shape not in ("auto", "text"):
        found.append(((*at, "shape"), f"task completion trains on plain text (shape text); shape {data.shape} is "
                                      f"chat data — set task: chat, or leave data.shape at auto"))
    if task == "chat" and data.shape == "text":
        found.append(((*at, "shape"), "plain text is trained with task: completion (continued pre-training, every "
                                      "token trained); set task: completion"))
    if task == "classification":
        if data.shape != "auto":
            found.append(((*at, "shape"), "task classification reads {text, label} rows, which have no shape to set; "
                                          "remove data.shape (map other column names with data.columns)"))
        if data.datasets:
            found.append(((*at, "datasets"), "task classification trains one head on one dataset; give data.train"))
    elif data.label_names:
        found.append(((*at, "label_names"), f"only task: classification has labels (task is {task})"))
    return found


def _task_problems(config: Config) -> list[tuple[tuple[Any, ...], Any]]:
    from pydantic_core import InitErrorDetails

    found: list[tuple[tuple[Any, ...], Any]] = []
    if not config.stages:
        # With stages the top-level data only lends defaults; each stage's merged data is checked below.
        found += _data_problems(config.data, config.task, ("data",))
    if config.task == "classification":
        for i, suite in enumerate(config.eval.suites):
            if suite.name in _LM_SUITES or suite.name.startswith("hf:"):
                found.append((("eval", "suites", i), f"{suite.name} scores a language model; a classification run "
                                                    f"scores {{text, label}} suites with its head — remove it"))
        if config.stages:
            found.append((("stages",), "stages train language-model tasks (chat, completion) one after another; "
                                       "task classification runs one stage"))
        return found
    names = [stage.name for stage in config.stages]
    for i, stage in enumerate(config.stages):
        if names.count(stage.name) > 1:
            found.append((("stages", i, "name"), f"stage names must be unique; {stage.name} is used twice"))
        if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]*", stage.name):
            found.append((("stages", i, "name"), f"{stage.name!r} names the stage's directory: use letters, digits, "
                                                 f"'.', '_' and '-', starting with a letter or digit"))
        try:
            resolved = resolve_stage(config, i)
        except ValidationError as err:
            # The merged sections' errors, placed where the user wrote the stage.
            found += [(loc, InitErrorDetails(type=e["type"], loc=loc, input=e.get("input"), ctx=e.get("ctx", {})))
                      for e in err.errors() for loc in [("stages", i, *e["loc"])]]
            continue
        found += _data_problems(resolved.data, config.task, ("stages", i, "data"))
        if not (resolved.data.train or resolved.data.datasets):
            found.append((("stages", i, "data"), f"stage {stage.name} has no training data: set its data.train "
                                                 f"(or data.datasets), or a top-level data.train for every stage"))
    if config.stages and config.train.resume:
        found.append((("train", "resume"), "resuming a sequential run is not supported yet; start it again"))
    return found




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


def _anchor_data_paths(block: Any, base: Path) -> None:
    """Anchor the file paths of one data section: train/eval/test, and each dataset's train/eval."""
    if not isinstance(block, dict):
        return
    datasets = block.get("datasets") if isinstance(block.get("datasets"), list) else []
    for item in [block, *(d for d in datasets if isinstance(d, dict))]:
        for key in ("train", "eval", "test"):
            if isinstance(item.get(key), str):
                item[key] = _anchored(item[key], base)


def _anchor_paths(raw: dict[str, Any], base: Path) -> None:
    # Keys whose values are file paths: relative ones are anchored where they were written.
    _anchor_data_paths(raw.get("data"), base)
    for stage in raw.get("stages") if isinstance(raw.get("stages"), list) else []:
        if isinstance(stage, dict):
            _anchor_data_paths(stage.get("data"), base)
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
        extra = getattr(field, "json_schema_extra", None)
        if isinstance(extra, dict) and extra.get("section"):  # a stage's overrides of a top-level section
            annotation = Config.model_fields[str(extra["section"])].annotation
        if get_origin(annotation) is list:
            annotation = get_args(annotation)[0]
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            model = annotation
        else:
            break
    return list(model.model_fields)


# Keys that make sense only on a 4-bit base, and why the methods that train base weights refuse them.
_QUANTIZED_ONLY = {"double_quant"}
_NO_QUANTIZED_BASE = ("a 4-bit quantized base cannot be trained directly: its weights are packed integers "
                      "that take no gradient, so only adapters train on it — use method.type=qlora")


def _method_key(key: str, method_type: str) -> str:
    """Why `key` is not a key of `method.type: method_type`, and where it belongs."""
    owners = [name for name, cls in METHOD_CONFIGS.items() if key in cls.model_fields]
    if owners and key in _QUANTIZED_ONLY and method_type in ("full", "freeze", "gradual_unfreeze"):
        return f"not a key of method.type {method_type}; {_NO_QUANTIZED_BASE}"
    if owners:
        return f"not a key of method.type {method_type}; it belongs to method.type {' or '.join(owners)}"
    known = list(METHOD_CONFIGS[method_type].model_fields)
    hint = difflib.get_close_matches(key, known, n=1, cutoff=0.6)
    if hint:
        return f"unknown key; did you mean '{hint[0]}'?"
    elsewhere = difflib.get_close_matches(key, {k for c in METHOD_CONFIGS.values() for k in c.model_fields}, n=1,
                                          cutoff=0.6)
    owner = next((n for n, c in METHOD_CONFIGS.items() if elsewhere and elsewhere[0] in c.model_fields), None)
    return (f"unknown key; {method_type} keys: {', '.join(known)}"
            + (f" (did you mean '{elsewhere[0]}' of method.type {owner}?)" if owner else ""))


def _describe(error: dict[str, Any], lines: dict[tuple[str, ...], int], source: str | None,
              override_keys: set[tuple[str, ...]]) -> str:
    loc = tuple(str(p) for p in error["loc"])
    method_type = None
    if len(loc) > 1 and loc[0] == "method" and loc[1] in METHOD_CONFIGS:
        # pydantic names the chosen union member in the location (method.freeze.top_k); users wrote method.top_k.
        loc, method_type = (loc[0], *loc[2:]), loc[1]
    if error["type"] == "union_tag_invalid" and loc == ("method",):
        loc = ("method", "type")
    key = ".".join(loc) or "(top level)"
    if loc in override_keys:
        where = " (command-line override)"
    elif loc in lines and source:
        where = f" ({source}:{lines[loc]})"
    else:
        where = ""
    if error["type"] == "union_tag_invalid" and loc == ("method", "type"):
        given = _method_type(error.get("input"))
        hint = difflib.get_close_matches(str(given), list(METHOD_CONFIGS), n=1, cutoff=0.6)
        return (f"{key}{where}: unknown method {given!r}; " + (f"did you mean '{hint[0]}'? " if hint else "")
                + f"methods: {', '.join(METHOD_CONFIGS)}")
    if error["type"] == "extra_forbidden" and method_type is not None and len(loc) == 2:
        return f"{key}{where}: {_method_key(loc[1], method_type)}"
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
