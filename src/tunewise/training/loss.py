"""The causal-LM task loss without full-vocabulary logits for the positions that are not trained.

The usual way (`model(**batch).loss`) turns every position into a vocabulary-wide row of logits —
49,152 numbers per token for SmolLM2, kept as bf16 logits, their float32 copy, the log-softmax and
its gradient — and then ignores the prompt and padding positions. Here the decoder runs alone, only
the hidden states of positions whose next token is trained are gathered, and the output head and
cross-entropy run on those, a chunk of positions at a time (`chunked_cross_entropy`): the logits of
one chunk exist at once, and their gradient is taken in the same pass (the logits are never kept for
backward).

The result is the same loss as transformers' `ForCausalLMLoss` (sum over the trained positions,
divided by `num_items_in_batch` or by their count), to float rounding: tests/training/test_loss.py.
"""

from __future__ import annotations

from typing import Any

import torch
from torch.nn import functional as F

__all__ = ["CHUNK", "causal_lm_loss", "chunked_cross_entropy", "has_plain_head"]

IGNORE = -100

CHUNK = 1024
"""Positions whose vocabulary-wide logits exist at once (1024 × 49,152 × 4 bytes ≈ 200 MB for SmolLM2)."""


def _compute_dtype(device: torch.device, weight: torch.Tensor) -> torch.dtype:
    # Under autocast the head's matrix product runs in the autocast dtype, as the model's own head would.
    kind = device.type
    if torch.is_autocast_enabled(kind):
        return torch.get_autocast_dtype(kind)
    return weight.dtype


class _LinearCrossEntropy(torch.autograd.Function):
    """sum_i CE(h_i · Wᵀ + b, y_i), gradients computed chunk by chunk in the forward pass."""

    @staticmethod
    def forward(
        ctx: Any,
        hidden: torch.Tensor,
        weight: torch.Tensor,
        bias: torch.Tensor | None,
        targets: torch.Tensor,
        chunk: int,
        dtype: torch.dtype,
    ) -> torch.Tensor:
        need_h, need_w = ctx.needs_input_grad[0], ctx.needs_input_grad[1]
        need_b = bias is not None and ctx.needs_input_grad[2]
        w = weight.to(dtype)
        b = bias.to(dtype) if bias is not None else None
        total = torch.zeros((), dtype=torch.float32, device=hidden.device)
        grad_h = torch.empty_like(hidden) if need_h else None
        grad_w = torch.zeros_like(weight, dtype=torch.float32) if need_w else None
        grad_b = torch.zeros_like(bias, dtype=torch.float32) if need_b and bias is not None else None
        with torch.autocast(hidden.device.type, enabled=False):
            for start in range(0, hidden.shape[0], chunk):
                h = hidden[start : start + chunk].to(dtype)
                y = targets[start : start + chunk]
                logits = F.linear(h, w, b).float()
                lse = torch.logsumexp(logits, dim=-1)
                total += (lse - logits.gather(1, y[:, None])[:, 0]).sum()
                if need_h or need_w or need_b:
                    # d/dlogits of the summed cross-entropy: softmax − one-hot.
                    grad = torch.exp(logits.sub_(lse[:, None]))
                    grad[torch.arange(len(y), device=y.device), y] -= 1.0
                    grad = grad.to(dtype)
                    # Each gradient buffer exists exactly when its input needs a gradient.
                    if grad_h is not None:
                        grad_h[start : start + chunk] = grad @ w
                    if grad_w is not None:
                        grad_w += (grad.t() @ h).float()
                    if grad_b is not None:
                        grad_b += grad.float().sum(0)
        ctx.save_for_backward(*(g for g in (grad_h, grad_w, grad_b) if g is not None))
        ctx.has = (need_h, need_w, need_b)
        ctx.dtypes = (hidden.dtype, weight.dtype, bias.dtype if bias is not None else None)
        return total

    @staticmethod
    def backward(ctx: Any, grad_out: torch.Tensor) -> tuple[Any, ...]:
        saved = iter(ctx.saved_tensors)
        grads = []
        for has, dtype in zip(ctx.has, ctx.dtypes, strict=True):
            grads.append((next(saved) * grad_out).to(dtype) if has else None)
        return grads[0], grads[1], grads[2], None, None, None


def chunked_cross_entropy(
    hidden: torch.Tensor,
    weight: torch.Tensor,
    targets: torch.Tensor,
    bias: torch.Tensor | None = None,
    *,
    chunk: int = CHUNK,
) -> torch.Tensor:
    """Summed cross-entropy of `hidden @ weight.T (+ bias)` against `targets`, `chunk` rows at a time.

    Under autocast the matrix product runs in the autocast dtype and the softmax in float32, as a
    model's own head followed by `F.cross_entropy` on `logits.float()`.

    Args:
        hidden: `(n, hidden)` the hidden states of the trained positions only.
        weight: `(vocab, hidden)` the output head.
        targets: `(n,)` token ids (no ignored entries: gather the trained positions first).

    Returns:
        A float32 scalar, the sum over the n positions.
    """
    dtype = _compute_dtype(hidden.device, weight)
    return _LinearCrossEntropy.apply(hidden, weight, bias, targets, chunk, dtype)


def has_plain_head(model: torch.nn.Module) -> bool:
    """Whether the output head is a plain linear layer (not wrapped by an adapter), so that
    `causal_lm_loss` computes exactly what the model's own forward would."""
    from tunewise.training.packing import _causal_lm

    get_head = getattr(_causal_lm(model), "get_output_embeddings", None)
    return callable(get_head) and type(get_head()) is torch.nn.Linear


def causal_lm_loss(
    model: torch.nn.Module, inputs: dict[str, Any], num_items_in_batch: Any = None, *, chunk: int = CHUNK
) -> tuple[torch.Tensor, int]:
    """The next-token loss of a causal LM on a batch, from the trained positions' hidden states only.

    Args:
        model: a causal LM of one of `packing.PACKABLE_MODEL_TYPES` (PEFT-wrapped or not; not a
            prompt-learning method).
        inputs: `input_ids`, `labels` (unshifted, -100 where untrained) and `attention_mask` and/or
            `position_ids`.
        num_items_in_batch: trained tokens in the whole accumulated batch; the loss is the sum divided
            by it (already a share of the optimizer step), else the mean over this batch.

    Returns:
        The loss and the number of trained positions in this batch.
    """
    from tunewise.training.packing import _causal_lm

    lm = _causal_lm(model)
    head = lm.get_output_embeddings()
    forward = {k: v for k, v in inputs.items() if k not in ("labels", "shift_labels")}
    hidden = lm.get_decoder()(**forward, use_cache=False).last_hidden_state
    targets = inputs["labels"][:, 1:]
    keep = targets != IGNORE
    picked = hidden[:, :-1][keep]
    total = chunked_cross_entropy(picked, head.weight, targets[keep], head.bias, chunk=chunk)
    count = int(keep.sum())
    if num_items_in_batch is not None:
        return total / num_items_in_batch, count
    return total / max(count, 1), count
