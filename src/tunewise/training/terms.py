"""Extra loss terms: the training loss is `task + Σ weight · term`, each term logged on its own.

A term is a small object with a `name`, a `weight` and `__call__(model, inputs, outputs)` that
returns an (unweighted) scalar tensor. The trainer adds `weight × value` to the task loss and logs
it as `loss/<name>` beside `loss/task`; the logged `loss` stays the total that was minimised.

Adding a guard (EWC, KL to the base model, L2-SP, ...) is one class like `ParamNorm` below:

    class KLToBase:
        name, weight = "kl", 0.1
        def __call__(self, model, inputs, outputs):
            ...
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal, Protocol, runtime_checkable

import torch

if TYPE_CHECKING:
    from tunewise.config import PenaltyConfig

__all__ = ["LossTerm", "ParamNorm", "penalty_terms", "reads_outputs"]


@runtime_checkable
class LossTerm(Protocol):
    """One named term of the training loss.

    Attributes:
        name: logged as `loss/<name>`; unique among a run's terms.
        weight: the term's multiplier in the loss.

    A term that sets `reads_outputs = False` promises not to read `outputs` (nor the batch's
    logits): runs with only such terms keep the packed fast path, where `outputs` carries the loss
    alone. A term without the attribute is taken to read them.
    """

    # Read-only members: a term may give them as plain attributes or as properties (`ParamNorm.name`).
    @property
    def name(self) -> str: ...

    @property
    def weight(self) -> float: ...

    def __call__(self, model: torch.nn.Module, inputs: dict[str, Any], outputs: Any) -> torch.Tensor:
        """The unweighted value for this batch: a scalar tensor in the autograd graph."""
        ...


@dataclass
class ParamNorm:
    """An explicit L1 (Σ|w|) or L2 (Σw²) penalty on the trainable parameters.

    Unlike AdamW's decoupled `weight_decay`, this is part of the loss: its gradient goes through the
    optimizer's adaptive scaling like the task gradient does (classic L2 regularisation), and its
    size is visible in the logs. For an adapter the trainable parameters are the adapter's, so the
    penalty pulls the update towards zero, i.e. the model towards the base model.
    """

    kind: Literal["l1", "l2"]
    weight: float
    reads_outputs = False

    @property
    def name(self) -> str:
        return self.kind

    def __call__(self, model: torch.nn.Module, inputs: dict[str, Any], outputs: Any) -> torch.Tensor:
        params = [p for p in model.parameters() if p.requires_grad]
        if not params:
            return torch.zeros(())
        if self.kind == "l1":
            return torch.stack([p.abs().sum() for p in params]).sum()
        return torch.stack([p.pow(2).sum() for p in params]).sum()


def penalty_terms(penalty: PenaltyConfig) -> list[LossTerm]:
    """The configured `train.penalty` terms; a weight of 0 adds no term (and no cost)."""
    norms: tuple[tuple[Literal["l1", "l2"], float], ...] = (("l1", penalty.l1), ("l2", penalty.l2))
    return [ParamNorm(kind, weight) for kind, weight in norms if weight > 0]


def reads_outputs(term: LossTerm) -> bool:
    """Whether `term` needs the model's outputs (full logits) on the training batch."""
    return bool(getattr(term, "reads_outputs", True))
