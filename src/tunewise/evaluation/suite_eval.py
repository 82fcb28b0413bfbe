"""Score evaluation suites for base and tuned, with a bootstrap interval on every number.

Each suite kind has one way to turn a model into per-item scores:

| kind | how | metric |
|---|---|---|
| multiple_choice | log-likelihood of each choice (fast scoring) | `acc_norm` (length-normalised), `acc` in extra |
| generation | greedy answer through the chat template, checked against answers/reference | `contains` / `rougeL` / any metric name |
| safety | greedy answer, refusal detector | `refusal_rate` on harmful, `over_refusal_rate` on benign |
| bias | log-likelihood of the stereotyping vs the swapped sentence | `stereotype_preference` (0.5 = none) |

Base and tuned are scored on the same items, so every delta gets a *paired* bootstrap interval.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from tunewise.config import EvalConfig, SuiteConfig
from tunewise.errors import ConfigError
from tunewise.evaluation.baselines import ShotPool, context_length, suite_contexts, variant_label
from tunewise.evaluation.compare import side
from tunewise.evaluation.metrics import Interval, Scores, bootstrap_ci, get_metric, paired_bootstrap_delta, score_delta
from tunewise.evaluation.refusal import is_refusal
from tunewise.evaluation.scoring import score_multiple_choice
from tunewise.evaluation.suite import Suite, load_suite
from tunewise.inference import generate_texts, sequence_logprobs

if TYPE_CHECKING:
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

__all__ = ["BUILTIN_ROLES", "SuiteResult", "evaluate_suites", "score_suite", "sentence_logliks", "suite_metric"]

# The role a built-in suite plays in the report; user files are the task unless they say otherwise.
BUILTIN_ROLES = {"general_knowledge": "general", "chat": "general", "safety": "safety", "bias_pairs": "bias"}
_SAMPLES_KEPT = 5


@dataclass
class SuiteResult:
    """One metric of one suite, base and (when there is one) tuned, with intervals."""

    name: str
    kind: str
    role: str
    metric: str
    higher_is_better: bool | None
    n: int
    base: dict[str, float]
    tuned: dict[str, float] | None = None
    delta: dict[str, float] | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _interval(iv: Interval) -> dict[str, float]:
    return {"value": iv.value, "low": iv.low, "high": iv.high}


def sentence_logliks(
    model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, texts: Sequence[str], *, batch_size: int = 16
) -> list[float]:
    """Sum of log p(token | previous tokens) over each text's tokens after the first.

    The first token has no context to be scored in; minimal pairs share it, so comparisons
    between them are unaffected.
    """
    encoded = [tokenizer(t, add_special_tokens=False)["input_ids"] for t in texts]
    return sequence_logprobs(model, encoded, pad_id=tokenizer.pad_token_id, batch_size=batch_size)


def suite_metric(suite: Suite, metric: str | None = None) -> str:
    """The metric a suite is scored by: `acc_norm` for multiple choice; for generation the one
    configured, else `contains` when items list accepted answers and `rougeL` against a reference."""
    if suite.kind == "multiple_choice":
        return "acc_norm"
    return metric or ("contains" if "answers" in suite.items[0] else "rougeL")


def _role(spec: SuiteConfig, suite: Suite) -> str:
    if spec.role != "auto":
        return spec.role
    if spec.name in BUILTIN_ROLES:
        return BUILTIN_ROLES[spec.name]
    return {"safety": "safety", "bias": "bias"}.get(suite.kind, "task")


def _chat(prompt: str) -> list[dict[str, str]]:
    return [{"role": "user", "content": prompt}]


def evaluate_suites(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    config: EvalConfig,
    *,
    sides: Sequence[str] = ("base", "tuned"),
    seed: int = 0,
    log: Any = print,
    pool: ShotPool | None = None,
) -> list[SuiteResult]:
    """Score every suite of `config` on each side of `model` (adapter off = base, on = tuned).

    Args:
        sides: ("base",) scores only the base model (no tuned model to compare).
        log: called with one progress line per suite and side.
        pool: training examples for the few-shot and retrieval baselines; with a tuned side, each
            `task` suite of kind multiple_choice or generation is also scored for the base model
            with them in its prompt, into `extra["baselines"]` (see `tunewise.evaluation.baselines`).
    """
    suites = [
        (spec, load_suite(spec.name, limit=spec.limit, columns=spec.columns)) for spec in config.suites
    ]  # fail fast on bad files
    for spec, suite in suites:
        if spec.metric is not None:
            if suite.kind != "generation":
                raise ConfigError(
                    [
                        f"eval.suites ({spec.name}): metric is only configurable for generation "
                        f"suites; this one is {suite.kind}"
                    ]
                )
            get_metric(spec.metric, key=f"eval.suites ({spec.name}).metric")
        if suite.kind == "classification":
            raise ConfigError(
                [
                    f"eval.suites ({spec.name}): a {{text, label}} suite is scored by a "
                    f"classification head, which a language model has none of: train one with "
                    f"task: classification (docs/tasks.md), or score the labels by likelihood "
                    f"with a multiple_choice suite {{query, choices, gold}}"
                ]
            )
    results: list[SuiteResult] = []
    boot = {"n_resamples": config.bootstrap, "confidence": config.confidence, "seed": seed}
    for spec, suite in suites:
        role = _role(spec, suite)
        per_side: dict[str, Any] = {}
        for which in sides:
            log(f"  {suite.name} ({suite.kind}, {len(suite)} items): {which} ...")
            with side(model, which) as m:
                per_side[which] = _score_side(m, suite, spec, tokenizer, config)
        summarised = _summarise(suite, role, spec, per_side, boot)
        if (
            pool is not None
            and pool.variants
            and role == "task"
            and "tuned" in per_side
            and suite.kind in ("multiple_choice", "generation")
        ):
            summarised[0].extra["baselines"] = _baselines(
                model, tokenizer, config, suite, spec, pool, per_side, summarised[0], boot, log
            )
        results.extend(summarised)
    return results


def _baselines(
    model: PreTrainedModel,
    tok: PreTrainedTokenizerBase,
    config: EvalConfig,
    suite: Suite,
    spec: SuiteConfig,
    pool: ShotPool,
    per_side: dict[str, Any],
    result: SuiteResult,
    boot: dict[str, Any],
    log: Any,
) -> dict[str, Any]:
    """The base model with training examples in its prompt on a task suite, against the fine-tune."""
    if suite.kind == "multiple_choice":
        queries = [it["query"] for it in suite.items]
        reserve = [
            max(len(tok(" " + str(c), add_special_tokens=False)["input_ids"]) for c in it["choices"])
            for it in suite.items
        ]
    else:
        queries = [it["prompt"] for it in suite.items]
        reserve = [config.max_new_tokens] * len(suite.items)
    contexts = suite_contexts(pool, tok, queries, reserve=reserve, max_tokens=context_length(model))
    variants: dict[str, Any] = {"base": {"label": variant_label("base", 0), **(result.base or {}), "examples": 0.0}}
    tuned_vs: dict[str, Any] = {"base": result.delta}
    for variant, (ctx, mean_examples) in contexts.items():
        label = variant_label(variant, pool.k[variant])
        log(f"  {suite.name}: {label} ...")
        with side(model, "base") as m:
            scored = _score_side(m, suite, spec, tok, config, contexts=ctx)
        if suite.kind == "multiple_choice":
            iv = bootstrap_ci(scored["acc_norm"], **boot)
            d = paired_bootstrap_delta(scored["acc_norm"], per_side["tuned"]["acc_norm"], **boot)
        else:
            iv = scored["scores"].interval(**boot)
            d = score_delta(scored["scores"], per_side["tuned"]["scores"], **boot)
        variants[variant] = {"label": label, **_interval(iv), "examples": mean_examples}
        tuned_vs[variant] = {"value": d.value, "low": d.low, "high": d.high, "p_value": d.p_value}
    variants["tuned"] = {"label": variant_label("tuned", 0), **(result.tuned or {}), "examples": 0.0}
    return {
        "name": result.name,
        "kind": suite.kind,
        "metric": result.metric,
        "higher_is_better": True,
        "n": result.n,
        "variants": variants,
        "tuned_vs": tuned_vs,
    }


def score_suite(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    suite: Suite,
    *,
    metric: str | None = None,
    batch_size: int,
    max_new_tokens: int,
    contexts: Sequence[list[dict[str, str]]] | None = None,
) -> dict[str, Any]:
    """Per-item scores of one suite for `model` as it is: the one way every suite is scored.

    `evaluate_suites` (base and tuned, baselines) and the forgetting monitor both call it.
    `contexts[i]` (earlier chat turns) goes before item i (multiple choice and generation only).
    Multiple-choice items are scored as plain text, so their context is the turns rendered
    through the chat template, followed by the query as it stands.

    Args:
        metric: a generation suite's metric name (`suite_metric` picks the default).
        batch_size: items per forward pass / generation batch.
        max_new_tokens: the answer length cap of generation and safety suites.

    Returns:
        By suite kind: multiple_choice `{acc_norm, acc}` (0/1 arrays); generation `{metric, scores,
        answers}` (`scores` a `tunewise.evaluation.metrics.Scores`); safety `{refused, answers}`;
        bias `{prefers_stereotype}`.

    Raises:
        ConfigError: a suite kind that cannot be scored by a language model.
    """
    items = suite.items
    if contexts is not None and suite.kind == "multiple_choice":
        items = [
            {**it, "query": (tokenizer.apply_chat_template(ctx, tokenize=False) if ctx else "") + it["query"]}
            for it, ctx in zip(items, contexts)
        ]

    def answers(prompts: list[str], turns: Sequence[list[dict[str, str]]] | None = None) -> list[str]:
        chats = [[*(turns[i] if turns else []), *_chat(p)] for i, p in enumerate(prompts)]
        return generate_texts(model, tokenizer, chats, max_new_tokens=max_new_tokens, batch_size=batch_size)

    if suite.kind == "multiple_choice":
        scores = score_multiple_choice(model, tokenizer, items, batch_size=batch_size, progress=False)
        return {
            "acc_norm": np.array([s.correct_norm for s in scores], float),
            "acc": np.array([s.correct_raw for s in scores], float),
        }
    if suite.kind == "generation":
        replies = answers([it["prompt"] for it in items], contexts)
        refs = [it.get("answers") or [it["reference"]] for it in items]
        name = suite_metric(suite, metric)
        return {"metric": name, "scores": get_metric(name)(replies, refs), "answers": replies}
    if suite.kind == "safety":
        replies = answers([it["prompt"] for it in items])
        return {"refused": np.array([is_refusal(a) for a in replies], float), "answers": replies}
    if suite.kind == "bias":
        lls = sentence_logliks(
            model, tokenizer, [t for it in items for t in (it["more"], it["less"])], batch_size=batch_size
        )
        return {"prefers_stereotype": np.array([lls[2 * i] > lls[2 * i + 1] for i in range(len(items))], float)}
    raise ConfigError([f"suite {suite.name}: suite kind {suite.kind} cannot be scored"])


def _score_side(
    model: PreTrainedModel,
    suite: Suite,
    spec: SuiteConfig,
    tokenizer: PreTrainedTokenizerBase,
    config: EvalConfig,
    contexts: Sequence[list[dict[str, str]]] | None = None,
) -> dict[str, Any]:
    """`score_suite` with the `eval` section's settings."""
    return score_suite(
        model,
        tokenizer,
        suite,
        metric=spec.metric,
        batch_size=config.batch_size,
        max_new_tokens=config.max_new_tokens,
        contexts=contexts,
    )


def _paired(
    name: str,
    kind: str,
    role: str,
    metric: str,
    better: bool | None,
    values: dict[str, np.ndarray],
    boot: dict[str, Any],
    extra: dict[str, Any] | None = None,
) -> SuiteResult:
    base = values["base"]
    result = SuiteResult(
        name=name,
        kind=kind,
        role=role,
        metric=metric,
        higher_is_better=better,
        n=len(base),
        base=_interval(bootstrap_ci(base, **boot)),
        extra=extra or {},
    )
    if "tuned" in values:
        result.tuned = _interval(bootstrap_ci(values["tuned"], **boot))
        d = paired_bootstrap_delta(base, values["tuned"], **boot)
        result.delta = {"value": d.value, "low": d.low, "high": d.high, "p_value": d.p_value}
    return result


def _samples(suite: Suite, per_side: dict[str, Any], reference_key: str) -> list[dict[str, str]]:
    rows = []
    for i, item in enumerate(suite.items[:_SAMPLES_KEPT]):
        ref = item.get(reference_key)
        row = {"prompt": item["prompt"], "reference": ", ".join(ref) if isinstance(ref, list) else str(ref or "")}
        row.update({which: per_side[which]["answers"][i] for which in per_side})
        rows.append(row)
    return rows


def _summarise(
    suite: Suite, role: str, spec: SuiteConfig, per_side: dict[str, Any], boot: dict[str, Any]
) -> list[SuiteResult]:
    sides = list(per_side)
    if suite.kind == "multiple_choice":
        raw = {w: float(per_side[w]["acc"].mean()) for w in sides}
        return [
            _paired(
                suite.name,
                suite.kind,
                role,
                "acc_norm",
                True,
                {w: per_side[w]["acc_norm"] for w in sides},
                boot,
                {"acc": raw},
            )
        ]
    if suite.kind == "generation":
        scores: dict[str, Scores] = {w: per_side[w]["scores"] for w in sides}
        result = SuiteResult(
            name=suite.name,
            kind=suite.kind,
            role=role,
            metric=per_side[sides[0]]["metric"],
            higher_is_better=True,
            n=len(suite),
            base=_interval(scores["base"].interval(**boot)),
            extra={"samples": _samples(suite, per_side, "answers" if "answers" in suite.items[0] else "reference")},
        )
        if "tuned" in scores:
            result.tuned = _interval(scores["tuned"].interval(**boot))
            d = score_delta(scores["base"], scores["tuned"], **boot)
            result.delta = {"value": d.value, "low": d.low, "high": d.high, "p_value": d.p_value}
        return [result]
    if suite.kind == "safety":
        harmful = np.array([it["label"] == "harmful" for it in suite.items])
        out = []
        for metric, mask, better in (("refusal_rate", harmful, True), ("over_refusal_rate", ~harmful, False)):
            if mask.any():
                label = "harmful" if better else "benign"
                out.append(
                    _paired(
                        f"{suite.name}:{label}",
                        suite.kind,
                        role,
                        metric,
                        better,
                        {w: per_side[w]["refused"][mask] for w in sides},
                        boot,
                    )
                )
        out[0].extra["samples"] = _samples(suite, per_side, "label")
        return out
    # bias: 0.5 means no preference between stereotyping and swapped sentence.
    return [
        _paired(
            suite.name,
            suite.kind,
            role,
            "stereotype_preference",
            None,
            {w: per_side[w]["prefers_stereotype"] for w in sides},
            boot,
        )
    ]
