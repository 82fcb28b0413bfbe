"""KL divergence between the base model's and the tuned model's next-token distributions.

Both the `kl` regularizer (LwF) and the forgetting monitor measure forgetting as

    KL(base ‖ tuned) = Σ_v p_base(v) · (log p_base(v) − log p_tuned(v))

per position, averaged over the positions that count. It is computed in float32 whatever the
model's dtype (a bf16 log-softmax over a 49k vocabulary loses the small differences this measures),
a chunk of positions at a time, so that the float32 copies of the full-vocabulary rows stay bounded
by `chunk` × vocab whatever the batch size.

The base logits come from the same model object (`base_logits`): an adapter is switched off
(`disable_adapter`, no second copy of anything); a model whose base weights train (full, freeze,
gradual_unfreeze) gets the original values it kept before training swapped in for one forward pass
(`tunewise.methods.as_base`). Those kept originals already cost memory equal to the trainable
parameters (the whole model for `full`, in CPU RAM) — the price of every base-vs-tuned comparison in
tunewise — and the KL adds nothing to it on a CPU; on a GPU the originals are moved over for the
forward pass, so the GPU briefly holds a second copy of the trainable parameters.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import torch
import torch.nn.functional as F

if TYPE_CHECKING:
    from collections.abc import Mapping

__all__ = ["base_logits", "next_token_mask", "token_kl"]

_CHUNK = 512
"""Positions per float32 chunk: 512 × a 49k vocabulary is ~100 MB per float32 copy."""


def _chunk_kl(tuned: torch.Tensor, base: torch.Tensor, temperature: float) -> torch.Tensor:
    log_q = F.log_softmax(tuned.float() / temperature, dim=-1)
    log_p = F.log_softmax(base.float() / temperature, dim=-1)
    # KL(p ‖ q) with p the base: log_target keeps it exact where p underflows to 0.
    return F.kl_div(log_q, log_p, reduction="sum", log_target=True)


def token_kl(
    tuned_logits: torch.Tensor,
    base_logits: torch.Tensor,
    mask: torch.Tensor | None = None,
    temperature: float = 1.0,
    *,
    chunk: int = _CHUNK,
) -> torch.Tensor:
    """Mean over the unmasked positions of KL(base ‖ tuned) of the next-token distributions.

    Args:
        tuned_logits: `(..., vocab)` logits of the model being trained; gradients flow through them.
        base_logits: the same shape, from the base model (no gradient is taken through them).
        mask: `tuned_logits.shape[:-1]`, true (or 1) where the position counts; None counts every
            position. `next_token_mask` builds it from a batch's labels or attention mask.
        temperature: both distributions are softened by it (LwF uses 2); the result is multiplied
            by temperature² so that its gradient keeps the same size whatever the temperature.
        chunk: positions turned into float32 full-vocabulary rows at a time.

    Returns:
        A float32 scalar; 0 (still in the graph) when no position counts.
    """
    if tuned_logits.shape != base_logits.shape:
        raise ValueError(
            f"tuned and base logits differ in shape: {tuple(tuned_logits.shape)} vs {tuple(base_logits.shape)}"
        )
    if temperature <= 0:
        raise ValueError(f"temperature must be above 0, got {temperature}")
    vocab = tuned_logits.shape[-1]
    tuned = tuned_logits.reshape(-1, vocab)
    base = base_logits.detach().reshape(-1, vocab)
    if mask is not None:
        if mask.shape != tuned_logits.shape[:-1]:
            raise ValueError(
                f"mask shape {tuple(mask.shape)} does not match the logits' positions {tuple(tuned_logits.shape[:-1])}"
            )
        keep = mask.reshape(-1).to(tuned.device).bool()
        tuned, base = tuned[keep], base[keep]
    count = tuned.shape[0]
    if count == 0:
        return tuned_logits.sum().float() * 0.0
    total = tuned.new_zeros((), dtype=torch.float32)
    for start in range(0, count, chunk):
        part_t, part_b = tuned[start : start + chunk], base[start : start + chunk]
        if part_t.requires_grad:
            # Recompute the float32 softmaxes in backward instead of keeping every chunk's: the
            # memory held for backward stays one chunk's worth of float32 rows.
            from torch.utils.checkpoint import checkpoint

            total = total + checkpoint(_chunk_kl, part_t, part_b, temperature, use_reentrant=False)
        else:
            total = total + _chunk_kl(part_t, part_b, temperature)
    return total / count * temperature**2


def next_token_mask(inputs: Mapping[str, Any]) -> torch.Tensor:
    """Which logit positions of a batch predict a real next token.

    Position t's logits predict token t+1, so the last position never counts. With `labels`
    (-100 where no loss is taken), a position counts where the next label is trained — the same
    positions as the task loss. Without labels, where the next token is not padding
    (`attention_mask`), or everywhere.

    Returns:
        A bool tensor of the batch's `(batch, length)` shape.
    """
    ids = inputs["input_ids"]
    mask = torch.zeros(ids.shape, dtype=torch.bool, device=ids.device)
    labels = inputs.get("labels")
    if labels is not None and labels.shape == ids.shape:
        mask[:, :-1] = labels[:, 1:] != -100
    elif inputs.get("attention_mask") is not None:
        attention = inputs["attention_mask"].bool()
        mask[:, :-1] = attention[:, 1:] & attention[:, :-1]
    else:
        mask[:, :-1] = True
    return mask


def base_logits(model: torch.nn.Module, inputs: Mapping[str, Any]) -> torch.Tensor:
    """The base model's logits for a batch, from the same model object.

    An adapter is disabled for the pass; trained base weights have their kept originals swapped in
    (`tunewise.methods.as_base`; see this module's docstring for the memory it costs). Dropout is
    off for the pass (the base model is the reference, not a sample), and the model's train/eval
    mode is restored afterwards.

    Args:
        model: the model being trained (PEFT-wrapped or a plain transformers model).
        inputs: the batch; `input_ids` and, when present, `attention_mask` are used. Labels are not
            passed, so no loss is computed.

    Returns:
        `(batch, length, vocab)` logits, detached.
    """
    from tunewise.inference import eval_mode
    from tunewise.methods import as_base

    forward = {k: inputs[k] for k in ("input_ids", "attention_mask") if inputs.get(k) is not None}
    with eval_mode(model), as_base(model):
        logits = model(**forward).logits
    return logits.detach()
