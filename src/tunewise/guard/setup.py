"""The `guard:` section, from config to loss terms and training rows, in two steps.

    plan = plan_guard(config, tokenizer)          # before the model loads: files read, errors raised
    ...  load the model, apply the method ...
    guard = build_guard(plan, model, tokenizer, data.train)
    fit(model, tokenizer, guard.rows, ..., terms=guard.terms)

`build_guard` synthesizes the general rows when `guard.general: self` (cached), mixes in the
replay rows, estimates the Fisher (cached) and returns one loss term per guard that is on.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from tunewise.errors import DataError
from tunewise.guard.ewc import EWC, anchors, fisher_for, sample_rows, trainable_parameters
from tunewise.guard.regularizers import L2SP, KLToBase
from tunewise.guard.replay import mix_replay
from tunewise.guard.synth import mask_unfinished, read_prompts, synthesize

if TYPE_CHECKING:
    from collections.abc import Callable

    from transformers import PreTrainedModel, PreTrainedTokenizerBase

    from tunewise.config import Config
    from tunewise.data import Example, Rendered
    from tunewise.training.terms import LossTerm

__all__ = ["Guard", "GuardPlan", "build_guard", "plan_guard"]


@dataclass
class GuardPlan:
    """What `plan_guard` read before the model loaded."""

    config: Config
    general_examples: list[Example] | None = None
    """From the `guard.general` file; None with `self` (synthesized in `build_guard`) or unused."""
    prompts: list[str] = field(default_factory=list)
    """`self`: the prompts the base model will answer."""

    @property
    def active(self) -> bool:
        reg = self.config.guard
        return bool(reg.replay.ratio or reg.ewc.weight or reg.kl.weight or reg.l2sp.weight)


@dataclass
class Guard:
    """The training rows (task rows plus replay) and the loss terms, with a summary for the run."""

    rows: list[Rendered]
    terms: list[LossTerm]
    info: dict[str, Any] = field(default_factory=dict)
    """Written to `regularize.json` in the run directory: what each guard used and what it cost."""


def plan_guard(config: Config, tokenizer: PreTrainedTokenizerBase) -> GuardPlan:
    """Read and check what the guards need, before the model loads.

    Raises:
        DataError: the general file or the synth prompt file is missing or malformed (by file:line).
    """
    from tunewise.data import load_examples

    reg = config.guard
    plan = GuardPlan(config)
    if not reg.needs_general:
        return plan
    if reg.general == "self":
        plan.prompts = read_prompts(reg.synth.prompts, reg.synth.limit)
        return plan
    assert reg.general is not None  # the schema requires it when a guard needs it
    examples, _ = load_examples(reg.general, on_bad_rows=config.data.on_bad_rows)
    from tunewise.tasks import task_of

    plain = examples[0].text is not None
    if plain != bool(task_of(config).plain_text):  # the general rows are of the kind the task trains on
        wanted = "plain-text {text}" if task_of(config).plain_text else "chat (messages, alpaca, prompt/completion...)"
        raise DataError(
            f"{reg.general}: guard.general holds {'plain text' if plain else 'chat rows'}, but task "
            f"{config.task} trains on {wanted} rows; give general rows of the same kind as data.train"
        )
    plan.general_examples = examples
    return plan


def _render(config: Config, examples: list[Example], tokenizer: PreTrainedTokenizerBase) -> list[Rendered]:
    from tunewise.tasks import task_of

    rows, _, _ = task_of(config).render(examples, tokenizer, config.data)  # as the task renders its own rows
    return rows


def build_guard(
    plan: GuardPlan,
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    train_rows: list[Rendered],
    *,
    log: Callable[[str], Any] = print,
) -> Guard:
    """Turn the plan into training rows and loss terms for `model` (already wrapped by its method).

    Args:
        train_rows: the task's training rows; replay rows are added to a copy.
        log: one line per guard that is on.
    """
    config, reg = plan.config, plan.config.guard
    if not plan.active:
        return Guard(rows=list(train_rows), terms=[])
    started = time.monotonic()
    info: dict[str, Any] = {}
    general: list[Rendered] = []
    if reg.needs_general:
        if plan.general_examples is None:
            synth = synthesize(
                model,
                tokenizer,
                plan.prompts,
                max_new_tokens=reg.synth.max_new_tokens,
                batch_size=reg.synth.batch_size,
                log=log,
            )
            examples = synth.examples
            unfinished = synth.unfinished
            info["general"] = {
                "source": "self",
                "prompts": len(plan.prompts),
                "answers": len(examples),
                "unfinished": len(unfinished),
                "dropped_empty": synth.dropped,
                "cache": str(synth.cache),
                "cached": synth.cached,
            }
            log(
                f"general data: {len(examples)} self-synthesized answers"
                + (
                    f" ({len(unfinished)} cut off at {reg.synth.max_new_tokens} tokens: kept, their end of turn not "
                    f"trained)"
                    if unfinished
                    else ""
                )
                + (" (from the cache)" if synth.cached else "")
            )
        else:
            examples, unfinished = plan.general_examples, set()
            info["general"] = {"source": reg.general, "rows": len(examples)}
        general = mask_unfinished(_render(config, examples, tokenizer), unfinished, tokenizer.eos_token_id)
        if not general:
            raise DataError(
                f"{reg.general}: no general row has a trained token left after rendering "
                f"(data.max_length={config.data.max_length})"
            )
        info["general"]["rendered_rows"] = len(general)

    rows = list(train_rows)
    if reg.replay.ratio:
        rows, drawn = mix_replay(train_rows, general, reg.replay.ratio, seed=reg.seed)
        info["replay"] = {
            "ratio": reg.replay.ratio,
            "task_rows": len(train_rows),
            "replay_rows": len(drawn),
            "distinct_general_rows": len({r.source for r in drawn}),
        }
        log(
            f"replay: {len(drawn)} general rows mixed into {len(train_rows)} task rows "
            f"({100 * len(drawn) / max(1, len(rows)):.1f}% of training rows)"
        )

    terms: list[LossTerm] = []
    params = trainable_parameters(model)
    anchor = anchors(model, params) if (reg.ewc.weight or reg.l2sp.weight) else {}
    if reg.ewc.weight:
        chosen = sample_rows(general, reg.ewc.samples, reg.seed)
        fisher, cached = fisher_for(model, chosen, params, pad_id=tokenizer.pad_token_id, log=log)
        terms.append(EWC(reg.ewc.weight, params, anchor, fisher))
        info["ewc"] = {
            "weight": reg.ewc.weight,
            "samples": len(chosen),
            "cached": cached,
            "parameters": sum(p.numel() for p in params.values()),
        }
        log(
            f"ewc: weight {reg.ewc.weight:g}, diagonal Fisher on {len(chosen)} general rows"
            + (" (from the cache)" if cached else "")
        )
    if reg.kl.weight:
        terms.append(
            KLToBase(
                reg.kl.weight,
                on=reg.kl.on,
                temperature=reg.kl.temperature,
                general=general,
                batch_size=reg.kl.batch_size,
                pad_id=tokenizer.pad_token_id,
                seed=reg.seed,
            )
        )
        info["kl"] = {"weight": reg.kl.weight, "on": reg.kl.on, "temperature": reg.kl.temperature}
        log(
            f"kl: weight {reg.kl.weight:g} to the base model on {reg.kl.on}"
            + (f" ({reg.kl.batch_size} general rows per micro-batch)" if reg.kl.on != "batch" else "")
        )
    if reg.l2sp.weight:
        terms.append(L2SP(reg.l2sp.weight, params, anchor))
        info["l2sp"] = {"weight": reg.l2sp.weight}
        log(f"l2sp: weight {reg.l2sp.weight:g} on {sum(p.numel() for p in params.values()):,} trainable parameters")
    info["setup_s"] = round(time.monotonic() - started, 2)
    return Guard(rows=rows, terms=terms, info=info)
