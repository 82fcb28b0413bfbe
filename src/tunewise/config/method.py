"""The `method:` section: how much of the model a fine-tune changes, one class per `method.type`."""

from __future__ import annotations

from typing import Annotated, Any, Literal, Union

from pydantic import Discriminator, Field, Tag, model_validator

from tunewise.config._section import Section

__all__ = [
    "METHOD_CONFIGS",
    "FreezeConfig",
    "FullConfig",
    "GradualUnfreezeConfig",
    "IA3Config",
    "LoraConfig",
    "MethodConfig",
    "PTuningConfig",
    "PrefixConfig",
    "PromptConfig",
    "QLoraConfig",
]

# The keys of one method are errors under another (with the reason), never silently ignored.


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
            raise ValueError(
                "method: nothing would train; set method.top_k above 0, method.modules, "
                "method.train_embeddings or method.train_head"
            )
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
            raise ValueError(
                "method: set exactly one of method.every_steps and method.every_epochs "
                f"(got every_steps={self.every_steps}, every_epochs={self.every_epochs})"
            )
        return self


class _LoraFields(Section):
    """The settings LoRA and QLoRA share; each sets its own `type` (first, as in every method section)."""

    type: str
    r: Annotated[int, Field(gt=0)] = 16
    alpha: Annotated[float, Field(gt=0)] = 32
    dropout: Annotated[float, Field(ge=0.0, lt=1.0)] = 0.05
    target_modules: str | list[str] = "all-linear"
    """`all-linear`, a list of module names (matched as name suffixes), or one regex over full names."""
    rslora: bool = False
    """Rank-stabilised scaling alpha/sqrt(r) instead of alpha/r (better at high ranks)."""
    dora: bool = False
    """DoRA: learn each weight's magnitude apart from the low-rank direction update."""


class LoraConfig(_LoraFields):
    """LoRA adapters through PEFT: low-rank updates beside frozen base weights."""

    type: Literal["lora"] = "lora"


class QLoraConfig(_LoraFields):
    """QLoRA: LoRA on a base model quantized to 4-bit NF4 at load (bitsandbytes)."""

    type: Literal["qlora"] = "qlora"
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
                raise ValueError(
                    f"method.feedforward_modules: {', '.join(extra)} not in method.target_modules; "
                    f"feed-forward modules must be targets too"
                )
        return self


METHOD_CONFIGS: dict[str, type[Section]] = {
    "full": FullConfig,
    "freeze": FreezeConfig,
    "gradual_unfreeze": GradualUnfreezeConfig,
    "lora": LoraConfig,
    "qlora": QLoraConfig,
    "prefix": PrefixConfig,
    "prompt": PromptConfig,
    "ptuning": PTuningConfig,
    "ia3": IA3Config,
}
"""method.type -> its config class (tunewise.methods.METHODS holds the code, in the same order)."""


def _method_type(value: Any) -> Any:
    # No `type` key means LoRA, the default: `method: {r: 8}` keeps working.
    return value.get("type", "lora") if isinstance(value, dict) else getattr(value, "type", None)


# Spelled out member by member (not built from METHOD_CONFIGS) so that type checkers see the union;
# a test keeps the two in step.
MethodConfig = Annotated[
    Union[  # noqa: UP007
        Annotated[FullConfig, Tag("full")],
        Annotated[FreezeConfig, Tag("freeze")],
        Annotated[GradualUnfreezeConfig, Tag("gradual_unfreeze")],
        Annotated[LoraConfig, Tag("lora")],
        Annotated[QLoraConfig, Tag("qlora")],
        Annotated[PrefixConfig, Tag("prefix")],
        Annotated[PromptConfig, Tag("prompt")],
        Annotated[PTuningConfig, Tag("ptuning")],
        Annotated[IA3Config, Tag("ia3")],
    ],
    Discriminator(_method_type),
]
"""One of the method configs, chosen by `method.type`."""
