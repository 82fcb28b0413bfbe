"""The `train:` section: the optimisation loop, its explicit penalties and early stopping."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import ConfigDict, Field, ValidationInfo, field_validator

from tunewise.config._section import Section

__all__ = ["EarlyStoppingConfig", "PenaltyConfig", "Scheduler", "TrainConfig"]


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


def _field_name(info: ValidationInfo) -> str:
    # pydantic leaves the name unset only for model validators; these are field validators.
    assert info.field_name is not None
    return info.field_name


Scheduler = Literal[
    "linear", "cosine", "cosine_with_restarts", "constant", "constant_with_warmup", "step", "exponential"
]


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
    without NEFTune or a loss term that reads the batch's logits — guard.kl.on batch/both; others pad). false: pad rows to the batch's longest, rows of similar length batched together."""
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
        name = _field_name(info)
        optimizer, default = info.data.get("optimizer"), cls.model_fields[name].default
        wanted = "sgd" if name == "momentum" else "adamw"
        changed = tuple(value) != tuple(default) if name == "betas" else value != default
        if optimizer is not None and optimizer != wanted and changed:
            raise ValueError(
                f"only the {wanted} optimizer uses it (train.optimizer is {optimizer}); "
                f"set train.optimizer={wanted} or remove train.{name}"
            )
        return value

    @field_validator("num_cycles", "step_size", "gamma")
    @classmethod
    def _scheduler_setting(cls, value: Any, info: ValidationInfo) -> Any:
        scheduler, name = info.data.get("scheduler"), _field_name(info)
        if scheduler is None:
            return value
        users = {"num_cycles": ("cosine_with_restarts",), "step_size": ("step",), "gamma": ("step", "exponential")}
        needed = {"step_size": "step", "gamma": "exponential"}
        example = {
            "step_size": "train.step_size=100 (decay every 100 optimizer steps)",
            "gamma": "train.gamma=0.99 (the lr factor per step)",
        }
        if needed.get(name) == scheduler and value is None:
            raise ValueError(f"the {scheduler} scheduler needs it, e.g. {example[name]}")
        if scheduler not in users[name] and value != cls.model_fields[name].default:
            raise ValueError(f"only the {' and '.join(users[name])} scheduler uses it (train.scheduler is {scheduler})")
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
