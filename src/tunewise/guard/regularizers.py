"""The KL-to-base (LwF) and L2-SP loss terms; EWC is in ewc.py, replay in replay.py.

Each is a `tunewise.training.terms.LossTerm`: the trainer adds `weight × value` to the task loss
and logs it as `loss/<name>`.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

import torch

from tunewise.guard.kl import base_logits, next_token_mask, token_kl
from tunewise.training.collate import PadCollator

if TYPE_CHECKING:
    from collections.abc import Sequence

    from tunewise.data import Rendered

__all__ = ["L2SP", "KLToBase"]


@dataclass
class L2SP:
    """‖θ − θ*‖² over the trainable parameters, θ* their starting values (Li et al., 2018)."""

    weight: float
    params: dict[str, torch.nn.Parameter]
    anchor: dict[str, torch.Tensor]
    name: str = field(default="l2sp", init=False)
    reads_outputs = False

    def __call__(self, model: torch.nn.Module, inputs: dict[str, Any], outputs: Any) -> torch.Tensor:
        terms = [(p.float() - self.anchor[n].float()).pow(2).sum() for n, p in self.params.items() if p.requires_grad]
        return torch.stack(terms).sum() if terms else torch.zeros(())


@dataclass
class KLToBase:
    """Learning without forgetting: KL(base ‖ tuned) of the next-token distributions (Li & Hoiem, 2016).

    `on="batch"`: on the training batch's trained positions, against one extra forward pass of the
    base model (no gradient). `on="general"`: on `batch_size` general rows per micro-batch — a
    forward and backward pass of the tuned model and a forward pass of the base model on them.
    `on="both"`: the mean of the two.
    """

    weight: float
    on: Literal["batch", "general", "both"] = "batch"
    temperature: float = 1.0
    general: Sequence[Rendered] = ()
    batch_size: int = 4
    pad_id: int = 0
    seed: int = 0
    name: str = field(default="kl", init=False)

    @property
    def reads_outputs(self) -> bool:
        """On general rows only, the term runs its own forward passes: the training batch may be
        packed and its logits never formed."""
        return self.on != "general"

    def __post_init__(self) -> None:
        if self.on != "batch" and not self.general:
            raise ValueError("KL on general rows needs general rows")
        self._rng = random.Random(self.seed)
        self._queue: list[int] = []
        self._collate = PadCollator(pad_id=self.pad_id)

    def _general_batch(self, device: torch.device) -> dict[str, torch.Tensor]:
        rows = []
        for _ in range(min(self.batch_size, len(self.general))):
            if not self._queue:  # each row once per pass over the pool, in a fresh order
                self._queue = list(range(len(self.general)))
                self._rng.shuffle(self._queue)
            row = self.general[self._queue.pop()]
            rows.append({"input_ids": row.input_ids, "labels": row.labels})
        return {k: v.to(device) for k, v in self._collate(rows).items()}

    def __call__(self, model: torch.nn.Module, inputs: dict[str, Any], outputs: Any) -> torch.Tensor:
        parts = []
        if self.on in ("batch", "both"):
            logits = outputs["logits"] if isinstance(outputs, dict) else outputs.logits
            parts.append(token_kl(logits, base_logits(model, inputs), next_token_mask(inputs), self.temperature))
        if self.on in ("general", "both"):
            batch = self._general_batch(inputs["input_ids"].device)
            tuned = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
            parts.append(token_kl(tuned, base_logits(model, batch), next_token_mask(batch), self.temperature))
        return torch.stack(parts).mean()
