"""Running a model without training it: the one place generation and log-probabilities live.

Everything in tunewise that asks a model for text or for the probability of text goes through here:
evaluation (greedy answers of base and tuned, eval loss, suite scores), data synthesis and
augmentation (sampled replies), the forgetting guard's self-synthesized replay and its monitor, and
the baselines.

- `device_of(model)`: the device a model's weights are on (where its inputs must go).
- `eval_mode(model)`: dropout off and autograd off for the block, then every submodule's own
  train/eval flag restored exactly as it was — also when the block raises. A model half in
  training mode (a frozen part kept in eval) comes back half in training mode.
- `generate(...)` / `generate_texts(...)`: batched generation with the KV cache of
  `model.generate`, left padding, greedy or sampled, stopping at the tokenizer's end-of-turn token;
  prompts are chat conversations (rendered through the chat template) or text as is.
- `token_logprobs(...)`: log p(token t+1 | tokens ≤ t) at every position of a padded batch, and
  `sequence_logprobs(...)` its sum over each text. Multiple-choice suites are scored by the packed
  engine in `tunewise.evaluation.scoring`, which is built on the same definition.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal, TypeVar, cast

import torch

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase

__all__ = [
    "Generation",
    "Prompt",
    "device_of",
    "eval_mode",
    "generate",
    "generate_texts",
    "sequence_logprobs",
    "token_logprobs",
]

ModelT = TypeVar("ModelT", bound=torch.nn.Module)

Prompt = Sequence[Mapping[str, str]] | str
"""A chat conversation (`[{"role": ..., "content": ...}, ...]`, rendered through the tokenizer's chat
template with the generation prompt added), or text given to the model exactly as it is."""


def device_of(model: torch.nn.Module) -> torch.device:
    """The device of the model's first parameter: where its input tensors must be moved to.

    Raises:
        ValueError: the model has no parameters.
    """
    for param in model.parameters():
        return param.device
    raise ValueError(f"{type(model).__name__} has no parameters, so it has no device")


@contextlib.contextmanager
def eval_mode(
    model: ModelT, *, autograd: Literal["no_grad", "inference_mode", "enabled"] = "no_grad"
) -> Iterator[ModelT]:
    """Run a block with `model` in eval mode (no dropout), then restore every submodule's own mode.

    `model.train(was_training)` would not do: it sets one flag on every submodule, so a model whose
    parts were in different modes comes back changed. Here each submodule gets back exactly the flag
    it had, on a normal exit and on an exception alike.

    Args:
        model: any torch module (a PEFT-wrapped model too).
        autograd: `no_grad` (the default: outputs can still meet tensors that need gradients, as a
            KL term's reference logits do), `inference_mode` (a little faster; its tensors can never
            enter autograd), or `enabled` (gradients flow, for a Fisher estimate in eval mode).

    Yields:
        `model`, in eval mode.
    """
    flags = [(module, module.training) for module in model.modules()]
    grad: contextlib.AbstractContextManager[Any] = (
        torch.no_grad()
        if autograd == "no_grad"
        else torch.inference_mode()
        if autograd == "inference_mode"
        else contextlib.nullcontext()
    )
    model.eval()
    try:
        with grad:
            yield model
    finally:
        for module, training in flags:
            module.training = training


@dataclass(frozen=True)
class Generation:
    """One generated reply.

    Attributes:
        text: the new tokens decoded without special tokens, stripped of surrounding whitespace.
        finished: the reply ended on its own (an end-of-turn token within `max_new_tokens`), rather
            than being cut off by the limit.
    """

    text: str
    finished: bool


def generate(
    model: torch.nn.Module,
    tokenizer: PreTrainedTokenizerBase,
    prompts: Sequence[Prompt],
    *,
    max_new_tokens: int,
    batch_size: int = 8,
    temperature: float = 0.0,
    top_p: float = 1.0,
    on_batch: Callable[[int], Any] | None = None,
) -> list[Generation]:
    """Continue each prompt, `batch_size` prompts at a time, in the order given.

    Prompts are left-padded (generation continues from the right edge) and run through
    `model.generate`, which keeps a KV cache, so each new token costs one position, not the whole
    sequence. The model runs in eval mode without gradients (`eval_mode`); the tokenizer's padding
    side is restored afterwards.

    Batches are formed in input order: padding never changes the model's answer in exact arithmetic,
    but in floating point it can flip a near-tie, so a caller that wants the same answers as before
    keeps the same order (sorting by length, when wanted, is the caller's choice).

    Args:
        model: a causal language model (PEFT-wrapped too).
        tokenizer: its tokenizer; needs a chat template for conversation prompts.
        prompts: chat conversations or plain texts (`Prompt`).
        max_new_tokens: the reply length cap, in tokens.
        batch_size: prompts generated together.
        temperature: 0 decodes greedily; above 0 samples at this temperature (seed torch first for
            reproducible samples).
        top_p: nucleus sampling mass, when sampling.
        on_batch: called with the number of prompts after each batch (a progress bar's `update`).

    Returns:
        One `Generation` per prompt, in prompt order. Generation stops at the tokenizer's
        end-of-turn token (`eos_token_id`; for chat models the end of the assistant's turn).
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, got {batch_size}")
    device = device_of(model)
    sampling: dict[str, Any] = (
        {"do_sample": True, "temperature": temperature, "top_p": top_p} if temperature > 0 else {"do_sample": False}
    )
    end = tokenizer.eos_token_id
    replies: list[Generation] = []
    old_side = tokenizer.padding_side
    tokenizer.padding_side = "left"  # generation continues from the right edge
    try:
        with eval_mode(model):
            for start in range(0, len(prompts), batch_size):
                chunk = prompts[start : start + batch_size]
                texts = [
                    p
                    if isinstance(p, str)
                    else str(
                        tokenizer.apply_chat_template(
                            [dict(turn) for turn in p], add_generation_prompt=True, tokenize=False
                        )
                    )
                    for p in chunk
                ]
                enc = tokenizer(texts, return_tensors="pt", padding=True, add_special_tokens=False).to(device)
                out = model.generate(
                    **enc,
                    max_new_tokens=max_new_tokens,
                    **sampling,  # type: ignore[operator]
                    pad_token_id=tokenizer.pad_token_id,
                    eos_token_id=end,
                )
                for row in out[:, enc["input_ids"].shape[1] :]:
                    text = cast(str, tokenizer.decode(row, skip_special_tokens=True))  # one row: one string
                    replies.append(Generation(text=text.strip(), finished=bool((row == end).any())))
                if on_batch is not None:
                    on_batch(len(chunk))
    finally:
        tokenizer.padding_side = old_side
    return replies


def generate_texts(
    model: torch.nn.Module,
    tokenizer: PreTrainedTokenizerBase,
    prompts: Sequence[Prompt],
    *,
    max_new_tokens: int,
    batch_size: int = 8,
    temperature: float = 0.0,
    top_p: float = 1.0,
) -> list[str]:
    """`generate`, the reply texts only (greedy by default): one string per prompt, in prompt order."""
    return [
        g.text
        for g in generate(
            model,
            tokenizer,
            prompts,
            max_new_tokens=max_new_tokens,
            batch_size=batch_size,
            temperature=temperature,
            top_p=top_p,
        )
    ]


def token_logprobs(
    model: torch.nn.Module, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None
) -> torch.Tensor:
    """Log-probability of every next token: entry `[b, t]` is log p(input_ids[b, t+1] | input_ids[b, ≤t]).

    The log-softmax runs in float32 whatever the model's dtype. Padded positions get a value too
    (the model's opinion of the pad token); mask them out with `attention_mask[:, 1:]` or labels.
    `-token_logprobs` at the trained positions is exactly the per-token cross-entropy a causal LM
    loss averages. Call it under `eval_mode` for deterministic values (it changes no mode itself).

    Args:
        model: a causal language model.
        input_ids: `(batch, length)` token ids, on any device (moved to the model's).
        attention_mask: `(batch, length)`, 1 for real tokens; None: all real.

    Returns:
        `(batch, length - 1)` float32 log-probabilities, on the model's device.
    """
    device = device_of(model)
    ids = input_ids.to(device)
    forward = {"input_ids": ids}
    if attention_mask is not None:
        forward["attention_mask"] = attention_mask.to(device)
    logits = model(**forward).logits[:, :-1].float()
    return torch.log_softmax(logits, -1).gather(-1, ids[:, 1:, None]).squeeze(-1)


def sequence_logprobs(
    model: torch.nn.Module,
    sequences: Sequence[Sequence[int]],
    *,
    pad_id: int,
    batch_size: int = 16,
    scored: Sequence[Sequence[bool]] | None = None,
) -> list[float]:
    """Summed log-probability of each token sequence (its tokens after the first), batched by length.

    Sequences of similar length share a batch (right-padded); padding never changes a sequence's
    number. The first token has no context to be scored in. Runs in eval mode without gradients.

    Args:
        model: a causal language model.
        sequences: token ids, one list per sequence.
        pad_id: the id padding is filled with (masked out; never scored).
        batch_size: sequences per forward pass.
        scored: per sequence, per token, whether that token counts (e.g. only an answer's tokens;
            entry 0 is ignored); None: every token after the first.

    Returns:
        One sum per sequence, in input order (0.0 for a sequence of fewer than two tokens).
    """
    out = [0.0] * len(sequences)
    order = sorted(range(len(sequences)), key=lambda i: len(sequences[i]))
    with eval_mode(model):
        for start in range(0, len(order), batch_size):
            chunk = order[start : start + batch_size]
            width = max(len(sequences[i]) for i in chunk)
            ids = torch.full((len(chunk), width), pad_id, dtype=torch.long)
            mask = torch.zeros_like(ids)
            counted = torch.zeros_like(ids)
            for row, i in enumerate(chunk):
                n = len(sequences[i])
                ids[row, :n] = torch.as_tensor(list(sequences[i]), dtype=torch.long)
                mask[row, :n] = 1
                counted[row, :n] = 1 if scored is None else torch.as_tensor(list(scored[i]), dtype=torch.long)
            picked = token_logprobs(model, ids, mask)
            sums = (picked * counted[:, 1:].to(picked.device)).sum(-1)
            for row, i in enumerate(chunk):
                out[i] = float(sums[row])
    return out
