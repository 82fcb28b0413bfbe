"""Elastic weight consolidation (Kirkpatrick et al., 2017) with a diagonal Fisher.

    penalty = Σ_i F_i · (θ_i − θ*_i)²

θ are the trainable parameters and θ* their anchor values; F_i estimates how much the base
model's fit to general data depends on parameter i: the mean over `samples` general rows of the
squared gradient of the row's loss (the empirical Fisher, one row per backward pass). EWC is L2-SP
with a per-parameter stiffness: parameters that matter to general behaviour are held firmly,
the others are left free to learn the task.

What θ and θ* are depends on the method:

- full, freeze, gradual_unfreeze: θ are base weights; θ* their base values (the originals the
  method keeps for every base-vs-tuned comparison, so the anchor costs no extra memory on CPU).
- adapters (LoRA, IA3, prompt methods): θ are the adapter's parameters and θ* their values when
  training starts. For LoRA the update is B·A with B starting at zero, so the penalty grows with
  the adapter's update; at that start the gradient of A is zero (B is), so the Fisher of A is zero
  and only B is held.

F is computed for the trainable parameters on the model as it is when training starts (the base
model, unless a previous stage trained it), then scaled to mean 1 over all of them: `ewc.weight`
is then on the same scale as `l2sp.weight`, and EWC only redistributes the pull across parameters.
It costs one float32 tensor per trainable parameter (the whole model's size for `full`) in memory
and on disk, where it is cached per model, trainable set and data in `$TUNEWISE_HOME/guard/fisher`.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import torch

from tunewise.errors import TunewiseError
from tunewise.guard.synth import cache_dir, model_fingerprint
from tunewise.inference import eval_mode
from tunewise.training.collate import PadCollator

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

    from tunewise.data import Rendered

__all__ = ["EWC", "anchors", "estimate_fisher", "fisher_for", "trainable_parameters"]


def trainable_parameters(model: torch.nn.Module) -> dict[str, torch.nn.Parameter]:
    """The parameters that train, by name (a tied weight once)."""
    return {name: param for name, param in model.named_parameters() if param.requires_grad}


def anchors(model: torch.nn.Module, params: dict[str, torch.nn.Parameter]) -> dict[str, torch.Tensor]:
    """θ*: the kept base value of each trainable base weight (no copy on CPU), else — an adapter's
    parameter, a new head — a copy of its value now."""
    from tunewise.methods.weights import originals

    kept = originals(model) or {}
    out = {}
    for name, param in params.items():
        value = kept.get(name)
        if value is None or value.shape != param.shape:
            out[name] = param.detach().clone()
        else:
            out[name] = value.to(param.device, param.dtype)
    return out


def estimate_fisher(
    model: torch.nn.Module,
    rows: Sequence[Rendered],
    params: dict[str, torch.nn.Parameter],
    *,
    pad_id: int,
    log: Callable[[str], Any] | None = None,
) -> dict[str, torch.Tensor]:
    """Diagonal empirical Fisher of `params`: mean over `rows` of the squared gradient of each row's
    mean next-token loss, one row per backward pass, in eval mode (no dropout); then scaled to mean 1.

    The parameters' `.grad` are left as they were found (None before training).
    """
    from tqdm.auto import tqdm

    if not rows:
        raise ValueError("the Fisher needs at least one row")
    device = next(iter(params.values())).device
    fisher = {name: torch.zeros_like(p, dtype=torch.float32) for name, p in params.items()}
    saved = {name: p.grad for name, p in params.items()}
    collate = PadCollator(pad_id=pad_id)
    # Eval mode (no dropout) but with gradients: the Fisher is built from them.
    try:
        with eval_mode(model, autograd="enabled"):
            for row in tqdm(rows, desc="EWC Fisher", unit="row", leave=False):
                for p in params.values():
                    p.grad = None
                batch = {
                    k: v.to(device) for k, v in collate([{"input_ids": row.input_ids, "labels": row.labels}]).items()
                }
                model(**batch).loss.backward()
                for name, p in params.items():
                    if p.grad is not None:
                        fisher[name] += p.grad.detach().float().pow(2)
    finally:
        for name, p in params.items():
            p.grad = saved[name]
    total = sum(float(f.sum()) for f in fisher.values())
    count = sum(f.numel() for f in fisher.values())
    if not total > 0:
        raise TunewiseError(
            "EWC: every squared gradient on the general rows is zero, so the Fisher holds "
            "nothing; check that the general rows have trained tokens (guard.general)"
        )
    scale = count / total  # mean 1 (the 1/len(rows) of the average cancels in the scaling)
    for f in fisher.values():
        f.mul_(scale)
    return fisher


def fisher_for(
    model: torch.nn.Module,
    rows: Sequence[Rendered],
    params: dict[str, torch.nn.Parameter],
    *,
    pad_id: int,
    log: Callable[[str], Any] = print,
) -> tuple[dict[str, torch.Tensor], bool]:
    """`estimate_fisher`, cached per model (base values and trainable values), trainable set and rows.

    Returns:
        The Fisher by parameter name, and whether it came from the cache.
    """
    from safetensors.torch import load_file, save_file

    rows_hash = hashlib.sha256(json.dumps([[r.input_ids, r.labels] for r in rows]).encode()).hexdigest()
    key = hashlib.sha256(
        json.dumps(
            {
                "base": model_fingerprint(model),
                "trainable": model_fingerprint(model, trainable=True),
                "names": sorted(params),
                "rows": rows_hash,
            }
        ).encode()
    ).hexdigest()[:24]
    path = cache_dir("fisher") / f"{key}.safetensors"
    if path.is_file():
        loaded = load_file(str(path))
        if set(loaded) == set(params):
            return {n: loaded[n].to(params[n].device) for n in params}, True
    log(
        f"EWC: estimating the diagonal Fisher of {sum(p.numel() for p in params.values()):,} parameters "
        f"on {len(rows)} general rows (cached for next time)"
    )
    fisher = estimate_fisher(model, rows, params, pad_id=pad_id)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".tmp{os.getpid()}")
    save_file({n: f.detach().to("cpu").contiguous() for n, f in fisher.items()}, str(tmp))
    tmp.replace(path)
    return fisher, False


def sample_rows(rows: Sequence[Rendered], samples: int, seed: int) -> list[Rendered]:
    """`samples` rows drawn without replacement (all of them when there are fewer), seeded."""
    order = list(range(len(rows)))
    random.Random(seed).shuffle(order)
    return [rows[i] for i in sorted(order[:samples])]


@dataclass
class EWC:
    """The EWC loss term: Σ F·(θ − θ*)² over the trainable parameters (logged as `loss/ewc`)."""

    weight: float
    params: dict[str, torch.nn.Parameter]
    anchor: dict[str, torch.Tensor]
    fisher: dict[str, torch.Tensor]
    name: str = field(default="ewc", init=False)
    reads_outputs = False

    def __call__(self, model: torch.nn.Module, inputs: dict[str, Any], outputs: Any) -> torch.Tensor:
        terms = [
            (self.fisher[n] * (p.float() - self.anchor[n].float()).pow(2)).sum()
            for n, p in self.params.items()
            if p.requires_grad
        ]  # a group gradual unfreezing has not reached yet cannot move
        return torch.stack(terms).sum() if terms else torch.zeros(())
