"""Self-synthesized general data: the base model answers a set of everyday prompts.

Replay needs general data, and the data a model was pre-trained on is rarely available. The base
model itself can stand in for it: its own greedy answers to varied general prompts are exactly
the behaviour a fine-tune should not lose. tunewise ships a seed set of 155 such prompts of its
own authorship (`seed_prompts.jsonl`: advice, explanations, short writing, rewriting, everyday
how-to), kept apart from the evaluation suites so that nothing trained leaks into what is measured
(a test checks they share no 6-word passage).

Answers are generated once per model, chat template, prompt set and answer length, and cached in
`$TUNEWISE_HOME/guard/synth/<key>.jsonl`. An answer cut off by `max_new_tokens` is kept (its text is
still the base model's behaviour) but listed in `Synthesized.unfinished`: its end-of-turn token is not
trained (`mask_unfinished`), since that would teach the model to stop mid-sentence.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from tunewise.errors import DataError

if TYPE_CHECKING:
    from collections.abc import Callable

    from transformers import PreTrainedModel, PreTrainedTokenizerBase

    from tunewise.data import Example, Rendered

__all__ = [
    "SEED_PROMPTS",
    "Synthesized",
    "cache_dir",
    "mask_unfinished",
    "model_fingerprint",
    "read_prompts",
    "synthesize",
]

SEED_PROMPTS = "seed_prompts.jsonl"
"""The built-in prompt set, inside this package."""


def cache_dir(kind: str) -> Path:
    """`$TUNEWISE_HOME/guard/<kind>`: where synthesized answers and Fisher estimates are kept."""
    from tunewise.models import tunewise_home

    return tunewise_home() / "guard" / kind


def read_prompts(path: str | None, limit: int | None = None) -> list[str]:
    """The prompts of a `{prompt}` file (any format `data.train` takes), or the built-in seed set.

    Raises:
        DataError: the file is missing, a row has no non-empty `prompt`, or no prompt is left.
    """
    from tunewise.data import read_rows

    if path is None:
        ref = resources.files("tunewise.guard").joinpath(SEED_PROMPTS)
        rows = [json.loads(line) for line in ref.read_text(encoding="utf-8").splitlines() if line.strip()]
        prompts = [row["prompt"] for row in rows]
    else:
        prompts = []
        for row in read_rows(path):
            value = row.data.get("prompt")
            if not isinstance(value, str) or not value.strip():
                raise DataError(
                    f"{row.source}: a synth prompt row needs a non-empty text `prompt` "
                    f"(guard.synth.prompts); found keys {', '.join(row.data) or 'none'}"
                )
            prompts.append(value.strip())
    if limit is not None:
        prompts = prompts[:limit]
    if not prompts:
        raise DataError(
            f"{path or SEED_PROMPTS}: no prompts to synthesize general data from "
            f"(guard.synth.prompts / guard.synth.limit)"
        )
    return prompts


def _digest(tensor: torch.Tensor) -> bytes:
    flat = tensor.detach().reshape(-1)
    head = flat[:1024].to("cpu").contiguous().view(torch.uint8).numpy().tobytes()
    total = repr(float(flat.double().sum())) if flat.is_floating_point() else ""
    return head + total.encode()


def model_fingerprint(model: torch.nn.Module, *, trainable: bool = False) -> str:
    """A short hash of the model's values: the base model's (adapters off, kept originals in), or
    with `trainable`, of the trainable parameters as they are now. Cheap (first values and the sum
    of each tensor), and changes with any fine-tune of the weights."""
    from tunewise.methods import as_base

    digest = hashlib.sha256()
    config = getattr(model, "config", None)
    digest.update((config.to_json_string(use_diff=False) if config is not None else type(model).__name__).encode())
    peft = hasattr(model, "peft_config")
    if trainable:
        for name, param in model.named_parameters():
            if param.requires_grad:
                digest.update(name.encode() + _digest(param))
        return digest.hexdigest()[:20]
    # Read before `as_base`: disabling a PEFT adapter also clears its parameters' requires_grad.
    adapter = {name for name, param in model.named_parameters() if peft and param.requires_grad}
    with as_base(model):
        for name, param in model.named_parameters():
            if name in adapter:
                continue  # the adapter's own weights are not part of the base model
            # PEFT renames wrapped weights (q_proj.base_layer.weight): hash by the plain name.
            plain = name.removeprefix("base_model.model.").replace(".base_layer.", ".")
            digest.update(plain.encode() + _digest(param))
    return digest.hexdigest()[:20]


@dataclass
class Synthesized:
    """The answered prompts, and what was left out."""

    examples: list[Example]
    unfinished: set[str]
    """Sources of the answers cut off by `max_new_tokens`: kept, but their end of turn is not trained."""
    dropped: int
    """Empty answers, left out."""
    cache: Path
    cached: bool
    """True when read from the cache (no generation ran)."""


def synthesize(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    prompts: list[str],
    *,
    max_new_tokens: int,
    batch_size: int,
    log: Callable[[str], Any] = print,
) -> Synthesized:
    """Answer `prompts` with the base model (greedy), or read the answers from the cache.

    The model is used as the base model (`tunewise.methods.as_base`: adapters off), in eval mode;
    its mode is restored afterwards.

    Returns:
        One chat `Example` (user prompt, assistant answer) per non-empty answer, in prompt order.
    """
    from tqdm.auto import tqdm

    from tunewise.data import Example
    from tunewise.inference import generate
    from tunewise.methods import as_base

    key = hashlib.sha256(
        json.dumps(
            {
                "model": model_fingerprint(model),
                "template": tokenizer.chat_template,
                "prompts": prompts,
                "max_new_tokens": max_new_tokens,
            },
            sort_keys=True,
        ).encode()
    ).hexdigest()[:24]
    path = cache_dir("synth") / f"{key}.jsonl"
    cached = path.is_file()
    if cached:
        records = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    else:
        log(
            f"self-synthesized replay: the base model answers {len(prompts)} general prompts "
            f"(greedy, up to {max_new_tokens} tokens; cached for next time)"
        )
        # Long prompts last: a batch of similar lengths wastes less padding.
        order = sorted(range(len(prompts)), key=lambda i: len(prompts[i]))
        chats = [[{"role": "user", "content": prompts[i]}] for i in order]
        with as_base(model), tqdm(total=len(prompts), desc="synthesizing replay", unit="prompt", leave=False) as bar:
            replies = generate(
                model, tokenizer, chats, max_new_tokens=max_new_tokens, batch_size=batch_size, on_batch=bar.update
            )
        answered = {i: (reply.text, reply.finished) for i, reply in zip(order, replies)}
        records = [{"prompt": p, "answer": answered[i][0], "finished": answered[i][1]} for i, p in enumerate(prompts)]
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".tmp{os.getpid()}")
        tmp.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records), encoding="utf-8")
        tmp.replace(path)  # atomic: a concurrent run reads either nothing or the whole file
    examples = [
        Example(
            source=f"self-synth:{i + 1}",
            messages=({"role": "user", "content": r["prompt"]}, {"role": "assistant", "content": r["answer"]}),
        )
        for i, r in enumerate(records)
        if r["answer"]
    ]
    unfinished = {f"self-synth:{i + 1}" for i, r in enumerate(records) if r["answer"] and not r["finished"]}
    if not examples:
        raise DataError(
            f"self-synthesized replay: all of the base model's {len(records)} answers are empty; "
            f"check the prompts (guard.synth.prompts) and the chat template (model.chat_template)"
        )
    return Synthesized(
        examples=examples, unfinished=unfinished, dropped=len(records) - len(examples), cache=path, cached=cached
    )


def mask_unfinished(rows: list[Rendered], unfinished: set[str], end_of_turn: int) -> list[Rendered]:
    """Rows whose answer was cut off, with their trained end-of-turn token no longer trained."""
    import dataclasses

    out = []
    for row in rows:
        if row.source in unfinished:
            labels = list(row.labels)
            # The end of turn is among the last trained tokens (ChatML may train a newline after it).
            ends = [i for i, label in enumerate(labels) if label != -100][-2:]
            ends = [i for i in ends if row.input_ids[i] == end_of_turn]
            for i in ends:
                labels[i] = -100
            row = dataclasses.replace(row, labels=labels, n_trained=row.n_trained - len(ends))
        out.append(row)
    return out
