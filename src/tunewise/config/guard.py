"""The forgetting guard's section, `guard:`: its loss terms, replay and WiSE-FT, and the forgetting
monitor during training (`guard.monitor:`: probes, budgets and action). The code is tunewise/guard/;
docs/forgetting.md."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field, model_validator

from tunewise.config._section import Section
from tunewise.config.eval import SuiteConfig

__all__ = [
    "EwcConfig",
    "GuardConfig",
    "KLConfig",
    "L2SPConfig",
    "MonitorAction",
    "MonitorConfig",
    "ReplayConfig",
    "SynthConfig",
    "WiseFTConfig",
]

# --- guard.monitor: the forgetting monitor that scores general ability and KL to the base at every
# eval, its budgets and what breaching one does (tunewise/guard/monitor.py). WiSE-FT after training
# (guard.wise_ft, tunewise/guard/wise_ft.py) is judged by the same budgets.

MonitorAction = Literal["warn", "stop", "rollback"]


def _default_monitor_suites() -> list[SuiteConfig]:
    return [SuiteConfig(name=n) for n in ("general_knowledge", "chat")]


class MonitorConfig(Section):
    """The forgetting monitor: general-capability suites and KL to the base model at every eval
    during training, deltas against the base logged as metrics, and budgets that act."""

    enabled: bool = False
    """Score the suites below and the KL at every `train.eval_every` (base scored once at the start). Off by
    default: on two CPU cores an eval of the probes at these limits costs tens of seconds (docs/forgetting.md)."""
    suites: list[SuiteConfig] = Field(default_factory=_default_monitor_suites)
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
    action: MonitorAction = "warn"
    """What a breached budget does: warn, stop training, or rollback (at the end, restore the best eval
    within every budget)."""

    @model_validator(mode="before")
    @classmethod
    def _names_as_suites(cls, data: Any) -> Any:
        if isinstance(data, dict) and isinstance(data.get("suites"), list):
            data = {**data, "suites": [{"name": s} if isinstance(s, str) else s for s in data["suites"]]}
        return data


# --- guard: the forgetting guard's loss terms, replay, WiSE-FT, and the monitor above
# (tunewise/guard/, docs/forgetting.md).


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
    """Self-synthesized general data (`guard.general: self`): the base model answers prompts."""

    prompts: str | None = None
    """A file of `{prompt}` rows (.jsonl/.json/.csv); None: tunewise's seed set (155 everyday prompts)."""
    limit: Annotated[int, Field(gt=0)] | None = None
    """Use only the first N prompts (None: all)."""
    max_new_tokens: Annotated[int, Field(gt=0)] = 160
    """Longest answer; an answer cut off at this length is kept, but its end-of-turn token is not trained
    (that would teach stopping mid-sentence)."""
    batch_size: Annotated[int, Field(gt=0)] = 16
    """Prompts answered per generate call."""


class WiseFTConfig(Section):
    """WiSE-FT: after training, interpolate (1−α)·base + α·tuned over a sweep of α, score each point
    on the eval rows and the forgetting suites, and keep the α with the best task score whose
    forgetting is within `guard.monitor.budgets`."""

    enabled: bool = False
    alphas: Annotated[list[Annotated[float, Field(ge=0.0, le=1.0)]], Field(min_length=1)] = Field(
        default_factory=lambda: [0.0, 0.25, 0.5, 0.75, 1.0]
    )
    """The sweep; 0 is the base model, 1 the fine-tune as trained."""


class GuardConfig(Section):
    """The forgetting guard: regularizers, each a separately logged loss term, WiSE-FT after training,
    and the forgetting monitor during training; all off by default."""

    general: str | None = None
    """General data for replay, ewc and kl on general: `self` (the base model answers a seed prompt set,
    cached), or a file in any shape `data.train` takes; None = none."""
    replay: ReplayConfig = Field(default_factory=ReplayConfig)
    ewc: EwcConfig = Field(default_factory=EwcConfig)
    kl: KLConfig = Field(default_factory=KLConfig)
    l2sp: L2SPConfig = Field(default_factory=L2SPConfig)
    synth: SynthConfig = Field(default_factory=SynthConfig)
    wise_ft: WiseFTConfig = Field(default_factory=WiseFTConfig)
    """After training, interpolate base and tuned weights and keep the best α within guard.monitor.budgets."""
    seed: int = 0
    """Seed of the replay draw, the Fisher's rows and the general KL batches."""
    monitor: MonitorConfig = Field(default_factory=MonitorConfig)
    """The forgetting monitor during training: general probes, KL to base, budgets and action."""

    @property
    def needs_general(self) -> list[str]:
        """The keys of the guards that are on and read general data."""
        return [
            k
            for k, on in (
                ("guard.replay.ratio", self.replay.ratio > 0),
                ("guard.ewc.weight", self.ewc.weight > 0),
                ("guard.kl.on", self.kl.weight > 0 and self.kl.on != "batch"),
            )
            if on
        ]

    @model_validator(mode="after")
    def _general_data_given(self) -> GuardConfig:
        needing = self.needs_general
        if needing and not self.general:
            raise ValueError(
                f"{', '.join(needing)} {'needs' if len(needing) == 1 else 'need'} general data and "
                f"none is given; set guard.general: "
                f"self (the base model answers tunewise's seed prompts) or a file of general chat rows"
            )
        return self
