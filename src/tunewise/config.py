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
                      field_validator, model_serializer, model_validator)

from tunewise.errors import ConfigError

__all__ = [
    "CheckConfig",
    "CleanConfig",
    "BaselinesConfig",
    "Config",
    "DataConfig",
    "DatasetConfig",
    "EarlyStoppingConfig",
    "EvalConfig",
    "ForgettingConfig",
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
    "RegularizeConfig",
    "SplitConfig",
    "StageConfig",
    "SuiteConfig",
    "Task",
    "TrainConfig",
    "WiseFTConfig",
    "TuneConfig",
    "TuneObjective",
    "TuneParam",
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


CheckKind = Literal["duplicates", "eval_leakage", "test_leakage", "contamination", "format", "empty", "too_short",
                    "too_long", "truncated", "repetition", "boilerplate", "non_text", "pii", "secrets", "toxicity",
                    "label_imbalance", "preference_bias", "demographic_imbalance"]
PiiKind = Literal["secret", "email", "iban", "credit_card", "national_id", "ip_address", "phone"]
_PII_KINDS: list[PiiKind] = ["secret", "email", "iban", "credit_card", "national_id", "ip_address", "phone"]
CleanDrop = Literal["duplicates", "format", "empty", "too_short", "too_long", "truncated", "repetition", "non_text",
                    "toxicity", "contamination", "secrets", "pii"]


class CheckConfig(Section):
    """The data audit (`tunewise data audit`), run before training: every finding of docs/data.md."""

    enabled: bool = True
    """Audit the prepared rows before training (writes audit.json in the run directory)."""
    near_duplicate_threshold: Annotated[float, Field(gt=0.0, le=1.0)] = 0.8
    """Jaccard similarity of word 3-gram sets (MinHash LSH, verified) at which two rows are near duplicates."""
    contamination_ngram: Annotated[int, Field(ge=4)] = 8
    """An eval-suite item sharing this many consecutive words with a training row is contaminated."""
    min_tokens: Annotated[int, Field(ge=1)] = 2
    """An answer shorter than this many tokens (of the model's tokenizer) is `too_short`."""
    max_tokens: Annotated[int, Field(ge=1)] = 4096
    """A row longer than this many tokens is `too_long` (longer than data.max_length: `truncated`)."""
    pii: list[PiiKind] = Field(default_factory=lambda: list(_PII_KINDS))
    """Which kinds of personal data and secrets to look for."""
    toxicity: bool = True
    """Score answers with the offensive-language classifier (alt-profanity-check, offline)."""
    toxicity_threshold: Annotated[float, Field(gt=0.0, le=1.0)] = 0.9
    """Classifier probability from which an answer counts as toxic."""
    imbalance_ratio: Annotated[float, Field(gt=1.0)] = 3.0
    """Largest / smallest class (labels, or demographic groups per role) from which they are imbalanced."""
    block_on: list[CheckKind] = Field(default_factory=list)
    """Findings that stop the run before training (exit 2), e.g. [eval_leakage, contamination, secrets]."""


class CleanConfig(Section):
    """What `tunewise data clean` removes and redacts; every removed or changed row goes to rejects.jsonl."""

    drop: list[CleanDrop] = Field(default_factory=lambda: ["duplicates", "format", "empty"])
    """Findings whose rows are removed (duplicates: the first row of each cluster is kept); add e.g.
    repetition, non_text, toxicity, too_long after reading the audit."""
    redact: list[PiiKind] = Field(default_factory=lambda: list(_PII_KINDS))
    """Kinds of personal data replaced by typed placeholders (<EMAIL>, <PHONE>, <SECRET>, ...)."""


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
    clean: CleanConfig = Field(default_factory=CleanConfig)
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
    packing: bool = True
    """Concatenate each batch's rows into one padding-free row, each row attending only to itself (causal LMs
    without NEFTune or a loss term that reads the batch's logits — regularize.kl.on batch/both; others pad). false: pad rows to the batch's longest, rows of similar length batched together."""
    tokens_per_pass: Annotated[int, Field(gt=0)] | None = 512
    """With packing: run a batch as forward/backward passes of at most this many tokens (whole rows), summed into the
    same gradient; bounds activation memory whatever the rows' lengths. None: the whole batch in one pass."""
    group_by_length: bool | None = None
    """Batch rows of similar length together. None: yes for padded batches (far less padding computed), no for
    packed ones (packing computes no padding; random batches, as the Trainer's default)."""
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


# --- tune: the hyperparameter search of `tunewise tune` (tunewise/tune/, docs/tune.md).

TUNE_KINDS = ("uniform", "log_uniform", "int", "log_int", "choice")
"""The ways one `tune.space` entry can draw its values."""


class TuneParam(Section):
    """One dimension of `tune.space`: exactly one of `uniform`, `log_uniform`, `int`, `log_int`
    (each `[low, high]`, both included) or `choice` (a list), plus `step` for a grid of numbers."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True, validate_by_name=True,
                              serialize_by_alias=True)

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
            raise ValueError(f"expected one of {', '.join(TUNE_KINDS)} with its values, e.g. "
                             f"{{log_uniform: [1.0e-5, 1.0e-3]}} or {{choice: [4, 8, 16]}} (got {data!r})")
        data = {k: v for k, v in data.items() if v is not None}  # a dumped config writes the unset kinds as null
        unknown = [k for k in data if k not in (*TUNE_KINDS, "step")]
        if unknown:
            hint = difflib.get_close_matches(str(unknown[0]), TUNE_KINDS, n=1, cutoff=0.6)
            raise ValueError(f"unknown kind {unknown[0]!r}; " + (f"did you mean '{hint[0]}'? " if hint else "")
                             + f"kinds: {', '.join(TUNE_KINDS)}")
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
        default_factory=lambda: [TuneObjective()])
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


# --- forgetting: the monitor that scores general ability and KL to the base at every eval, its
# budgets and what breaching one does; WiSE-FT after training (regularize.wise_ft, judged by the same
# budgets). The code is tunewise/guard/monitor.py and wise_ft.py; docs/forgetting.md.

ForgettingAction = Literal["warn", "stop", "rollback"]


def _default_forgetting_suites() -> list[SuiteConfig]:
    return [SuiteConfig(name=n) for n in ("general_knowledge", "chat")]


def suite_key(name: str) -> str:
    """The short name a suite goes by in budgets and metrics: the built-in name, a file's name
    without its extensions (`arc_easy_test` for `.../arc_easy_test.jsonl`), or an `hf:` name's
    subset or dataset (`ARC-Easy`), with `-SPLIT` when the split is not `test` (as `load_suite` names it)."""
    if name.startswith("hf:"):
        spec, _, split = name[3:].partition("@")
        dataset, _, subset = spec.partition(":")
        return (subset or dataset.rsplit("/", 1)[-1]) + (f"-{split}" if split and split != "test" else "")
    if name.endswith(_SUITE_FILE_SUFFIXES):
        file = Path(name).name
        return file.split(".")[0] or file
    return name


class WiseFTConfig(Section):
    """WiSE-FT: after training, interpolate (1−α)·base + α·tuned over a sweep of α, score each point
    on the eval rows and the forgetting suites, and keep the α with the best task score whose
    forgetting is within `forgetting.budgets`."""

    enabled: bool = False
    alphas: Annotated[list[Annotated[float, Field(ge=0.0, le=1.0)]], Field(min_length=1)] = Field(
        default_factory=lambda: [0.0, 0.25, 0.5, 0.75, 1.0])
    """The sweep; 0 is the base model, 1 the fine-tune as trained."""


class ForgettingConfig(Section):
    """The forgetting monitor: general-capability suites and KL to the base model at every eval
    during training, deltas against the base logged as metrics, and budgets that act."""

    enabled: bool = False
    """Score the suites below and the KL at every `train.eval_every` (base scored once at the start). Off by
    default: on two CPU cores an eval of the probes at these limits costs tens of seconds (docs/forgetting.md)."""
    suites: list[SuiteConfig] = Field(default_factory=_default_forgetting_suites)
    """General suites: multiple choice (scored by log-likelihood) or generation; names or files as in eval.suites."""
    limit: Annotated[int, Field(gt=0)] | None = 40
    """Items of each suite scored per eval (the first N; a suite's own `limit` wins); None: all."""
    kl: bool = True
    """Also measure KL(base ‖ tuned) on neutral chat prompts answered by the base model."""
    prompts: str | None = None
    """Neutral prompts for the KL, a .jsonl of {prompt} rows; None: the built-in set (40 prompts)."""
    kl_limit: Annotated[int, Field(gt=0)] | None = 16
    """Neutral prompts used for the KL (the first N); None: all."""
    max_new_tokens: Annotated[int, Field(gt=0)] = 24
    """Length cap of generated answers (generation suites, and the base answers the KL is taken on)."""
    budgets: dict[str, Annotated[float, Field(ge=0.0)]] = Field(default_factory=dict)
    """Suite short name -> the largest drop allowed (in its metric's units), and `kl` -> the largest KL,
    e.g. {general_knowledge: 0.05, chat: 0.1, kl: 0.2}."""
    action: ForgettingAction = "warn"
    """What a breached budget does: warn, stop training, or rollback (at the end, restore the best eval
    within every budget)."""

    @model_validator(mode="before")
    @classmethod
    def _names_as_suites(cls, data: Any) -> Any:
        if isinstance(data, dict) and isinstance(data.get("suites"), list):
            data = {**data, "suites": [{"name": s} if isinstance(s, str) else s for s in data["suites"]]}
        return data


# --- regularize: the forgetting guard's loss terms and replay (tunewise/guard/, docs/forgetting.md).


class ReplayConfig(Section):
    """Rehearsal: general rows mixed into the training rows."""

    ratio: Annotated[float, Field(ge=0.0, lt=1.0)] = 0.0
    """Share of the training rows that are general rows (0.2: one in five); 0 = off. General rows are
    repeated when there are fewer than needed."""


class EwcConfig(Section):
    """Elastic weight consolidation: Σ F·(θ − θ*)² with a diagonal Fisher F from the base model."""

    weight: Annotated[float, Field(ge=0.0)] = 0.0
    """Weight of the penalty (logged as `loss/ewc`); 0 = off. F is scaled to mean 1, so this is on
    the scale of `l2sp.weight`."""
    samples: Annotated[int, Field(gt=0)] = 64
    """General rows the Fisher is estimated on (one gradient each; cached per model and data)."""


class KLConfig(Section):
    """LwF: KL(base ‖ tuned) of the next-token distributions, the base being the model before training."""

    weight: Annotated[float, Field(ge=0.0)] = 0.0
    """Weight of the KL term (logged as `loss/kl`); 0 = off."""
    on: Literal["batch", "general", "both"] = "batch"
    """batch: the training batch's answer tokens; general: `batch_size` general rows per step; both: their mean."""
    temperature: Annotated[float, Field(gt=0.0)] = 1.0
    """Soften both distributions (LwF uses 2); the KL is multiplied by temperature²."""
    batch_size: Annotated[int, Field(gt=0)] = 4
    """on general/both: general rows per micro-batch."""

    @model_validator(mode="before")
    @classmethod
    def _on_is_a_key(cls, data: Any) -> Any:
        # YAML 1.1 reads an unquoted `on:` key as the boolean true; the user wrote the key `on`.
        if isinstance(data, dict) and True in data:
            data = {("on" if k is True else k): v for k, v in data.items()}
        return data


class L2SPConfig(Section):
    """L2-SP: ‖θ − θ*‖² over the trainable parameters, θ* their values when training starts."""

    weight: Annotated[float, Field(ge=0.0)] = 0.0
    """Weight of the penalty (logged as `loss/l2sp`); 0 = off."""


class SynthConfig(Section):
    """Self-synthesized general data (`regularize.general: self`): the base model answers prompts."""

    prompts: str | None = None
    """A file of `{prompt}` rows (.jsonl/.json/.csv); None: tunewise's seed set (155 everyday prompts)."""
    limit: Annotated[int, Field(gt=0)] | None = None
    """Use only the first N prompts (None: all)."""
    max_new_tokens: Annotated[int, Field(gt=0)] = 160
    """Longest answer; an answer cut off at this length is kept, but its end-of-turn token is not trained
    (that would teach stopping mid-sentence)."""
    batch_size: Annotated[int, Field(gt=0)] = 16
    """Prompts answered per generate call."""


class RegularizeConfig(Section):
    """The forgetting guard's regularizers, each a separately logged loss term; all off by default."""

    general: str | None = None
    """General data for replay, ewc and kl on general: `self` (the base model answers a seed prompt set,
    cached), or a file in any shape `data.train` takes; None = none."""
    replay: ReplayConfig = Field(default_factory=ReplayConfig)
    ewc: EwcConfig = Field(default_factory=EwcConfig)
    kl: KLConfig = Field(default_factory=KLConfig)
    l2sp: L2SPConfig = Field(default_factory=L2SPConfig)
    synth: SynthConfig = Field(default_factory=SynthConfig)
    wise_ft: WiseFTConfig = Field(default_factory=WiseFTConfig)
    """After training, interpolate base and tuned weights and keep the best α within forgetting.budgets."""
    seed: int = 0
    """Seed of the replay draw, the Fisher's rows and the general KL batches."""

    @property
    def needs_general(self) -> list[str]:
        """The keys of the guards that are on and read general data."""
        return ([k for k, on in (("regularize.replay.ratio", self.replay.ratio > 0),
                                 ("regularize.ewc.weight", self.ewc.weight > 0),
                                 ("regularize.kl.on", self.kl.weight > 0 and self.kl.on != "batch")) if on])

    @model_validator(mode="after")
    def _general_data_given(self) -> RegularizeConfig:
        needing = self.needs_general
        if needing and not self.general:
            raise ValueError(f"{', '.join(needing)} {'needs' if len(needing) == 1 else 'need'} general data and "
                             f"none is given; set regularize.general: "
                             f"self (the base model answers tunewise's seed prompts) or a file of general chat rows")
        return self


def _regularize_problems(reg: RegularizeConfig, task: str) -> list[tuple[tuple[Any, ...], str]]:
    """Guards the task cannot use, by key (the guard code is tunewise/guard/)."""
    found: list[tuple[tuple[Any, ...], str]] = []
    on = [("replay", "ratio", reg.replay.ratio), ("ewc", "weight", reg.ewc.weight), ("kl", "weight", reg.kl.weight)]
    if task == "classification":
        for name, key, value in on:
            if value > 0:
                found.append((("regularize", name, key), f"regularize.{name} works on a language model's "
                              f"next-token predictions; a classification head has none — use regularize.l2sp"))
    elif task == "completion" and reg.general == "self" and reg.needs_general:
        found.append((("regularize", "general"), "self-synthesized rows are chat answers and task completion trains "
                      "on plain text; set regularize.general to a plain-text file {text}"))
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
    model: ModelConfig = Field(default_factory=ModelConfig)
    data: DataConfig = Field(default_factory=DataConfig)
    method: MethodConfig = Field(default_factory=LoraConfig)
    train: TrainConfig = Field(default_factory=TrainConfig)
    regularize: RegularizeConfig = Field(default_factory=RegularizeConfig)
    """Guards against forgetting: replay, ewc, kl, l2sp (docs/forgetting.md)."""
    eval: EvalConfig = Field(default_factory=EvalConfig)
    forgetting: ForgettingConfig = Field(default_factory=ForgettingConfig)
    """The forgetting monitor during training: general probes, KL to base, budgets and action (docs/forgetting.md)."""
    output: OutputConfig = Field(default_factory=OutputConfig)
    stages: list[StageConfig] = Field(default_factory=list)
    """Sequential fine-tuning: each stage trains on from the previous one's weights (see docs/tasks.md)."""
    tune: TuneConfig = Field(default_factory=TuneConfig)
    """`tunewise tune`: the hyperparameter search (docs/tune.md); other commands ignore it."""

    @model_validator(mode="after")
    def _task_fits(self) -> Config:
        # Combinations that cannot work are reported here, before any file is read or model loaded.
        from pydantic_core import InitErrorDetails

        if self.task == "classification" and "suites" not in self.eval.model_fields_set:
            self.eval.suites = []  # the built-in suites score a language model, which a classifier is not
        if self.task == "classification" and "enabled" not in self.forgetting.model_fields_set:
            self.forgetting.enabled = False  # so does the forgetting monitor
        found = _task_problems(self) + _forgetting_problems(self)
        if found:
            raise ValidationError.from_exception_data("Config", [
                InitErrorDetails(type="value_error", loc=loc, input={}, ctx={"error": ValueError(message)})
                if isinstance(message, str) else message for loc, message in found])
        return self


# Methods WiSE-FT cannot interpolate: virtual tokens have no base value to move towards.
_NO_WISE_FT = ("prefix", "prompt", "ptuning")


def _forgetting_problems(config: Config) -> list[tuple[tuple[Any, ...], str]]:
    """What is wrong with the `forgetting` section, alone or with the rest of the config."""
    forgetting = config.forgetting
    at = ("forgetting",)
    found: list[tuple[tuple[Any, ...], str]] = []
    keys = [suite_key(s.name) for s in forgetting.suites]
    for i, suite in enumerate(forgetting.suites):
        if suite.role not in ("auto", "general"):
            found.append(((*at, "suites", i, "role"), f"the monitor's suites are general probes; remove "
                                                      f"role: {suite.role} (task suites belong in eval.suites)"))
        if keys.index(keys[i]) != i:
            found.append(((*at, "suites", i), f"two suites go by the name {keys[i]}; keep one"))
    for key in forgetting.budgets:
        if key == "kl":
            if not forgetting.kl:
                found.append(((*at, "budgets", key), "the KL is not measured (forgetting.kl is false); set "
                                                     "forgetting.kl: true or remove the budget"))
        elif key not in keys:
            found.append(((*at, "budgets", key), f"no such suite in forgetting.suites ({', '.join(keys) or 'none'}); "
                                                 f"add it to forgetting.suites or remove the budget"))
    if forgetting.action != "warn" and not forgetting.budgets:
        found.append(((*at, "action"), f"{forgetting.action} acts when a budget is breached, and forgetting.budgets "
                                       f"is empty; set e.g. forgetting.budgets: {{chat: 0.1, kl: 0.2}}"))
    if not forgetting.enabled and (forgetting.action != "warn" or forgetting.budgets):
        found.append(((*at, "enabled"), "forgetting.budgets and forgetting.action need the monitor; set "
                                        "forgetting.enabled: true"))
    if forgetting.enabled and forgetting.action != "warn" and config.train.eval_every == 0:
        found.append(((*at, "action"), f"{forgetting.action} acts at the evals during training, and "
                                       f"train.eval_every is 0 (none while training); set train.eval_every above 0"))
    lm = config.task != "classification"
    if forgetting.enabled and not lm:
        found.append(((*at, "enabled"), "the monitor scores a language model, and a classification run trains a "
                                        "head; set forgetting.enabled: false"))
    if config.regularize.wise_ft.enabled:
        method = config.method.type
        why = None
        if not lm:
            why = "a classification head has no base value to interpolate towards; remove forgetting.wise_ft"
        elif method in _NO_WISE_FT:
            why = f"method.type {method} adds virtual tokens, which have no base value to interpolate towards"
        elif getattr(config.method, "dora", False):
            why = "DoRA learns a magnitude whose starting value is not kept, so α=0 would not be the base model"
        elif config.stages:
            why = "WiSE-FT interpolates one fine-tune with its base; with stages, run it on a single stage"
        if why:
            found.append((("regularize", "wise_ft", "enabled"), f"{why} (WiSE-FT works with full, freeze, "
                                                       f"gradual_unfreeze, lora, qlora and ia3)"))
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
    found += _regularize_problems(config.regularize, config.task)
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


def _key_lines(text: str, duplicates: list[str] | None = None) -> dict[tuple[str, ...], int]:
    """Map each key path in a YAML document to its 1-based line, for error messages.

    Args:
        duplicates: collects one message per key given twice in the same mapping (YAML itself
            keeps the last silently, dropping what the user wrote first).
    """
    lines: dict[tuple[str, ...], int] = {}

    def walk(node: yaml.Node, path: tuple[str, ...]) -> None:
        if isinstance(node, yaml.MappingNode):
            seen: dict[str, int] = {}
            for key_node, value_node in node.value:
                key = (*path, str(key_node.value))
                line = key_node.start_mark.line + 1
                if key[-1] in seen and duplicates is not None:
                    duplicates.append(f"line {line}: {'.'.join(key)} is given twice (also on line {seen[key[-1]]}); "
                                      f"YAML would keep only the last one — merge them into one")
                seen[key[-1]] = line
                lines[key] = line
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
    regularize = raw.get("regularize")
    if isinstance(regularize, dict):
        if isinstance(regularize.get("general"), str) and regularize["general"] != "self":
            regularize["general"] = _anchored(regularize["general"], base)
        synth = regularize.get("synth")
        if isinstance(synth, dict) and isinstance(synth.get("prompts"), str):
            synth["prompts"] = _anchored(synth["prompts"], base)
    for stage in raw.get("stages") if isinstance(raw.get("stages"), list) else []:
        if isinstance(stage, dict):
            _anchor_data_paths(stage.get("data"), base)
    for section in ("eval", "forgetting"):
        _anchor_suites(raw.get(section), base)
    forgetting = raw.get("forgetting")
    if isinstance(forgetting, dict) and isinstance(forgetting.get("prompts"), str):
        forgetting["prompts"] = _anchored(forgetting["prompts"], base)


def _anchor_suites(section: Any, base: Path) -> None:
    suites = section.get("suites") if isinstance(section, dict) else None
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
            twice: list[str] = []
            lines = _key_lines(text, twice)
        except yaml.YAMLError as err:
            mark = getattr(err, "problem_mark", None)
            at = f":{mark.line + 1}:{mark.column + 1}" if mark else ""
            reason = getattr(err, "problem", None) or str(err)
            raise ConfigError([f"{file}{at}: not valid YAML: {reason}"]) from None
        if twice:
            raise ConfigError([f"{file}: {problem}" for problem in twice])
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
