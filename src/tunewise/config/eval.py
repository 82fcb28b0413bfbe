"""The `eval:` section: the suites scored for base and tuned, and the baselines beside them."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field, model_validator

from tunewise.config._section import Section

__all__ = ["BaselinesConfig", "EvalConfig", "SuiteConfig", "SuiteRole", "suite_key"]

_SUITE_FILE_SUFFIXES = (".jsonl", ".json", ".csv")
"""A suite name ending so is a file (anchored at the config file, and keyed by its stem)."""

SuiteRole = Literal["auto", "task", "general", "safety", "bias"]


class SuiteConfig(Section):
    """One evaluation suite: a built-in name or a file, and what its score means."""

    name: str
    """Built-in (general_knowledge, chat, safety, bias_pairs), a .jsonl/.json/.csv file, or hf:ID[:SUBSET][@SPLIT]."""
    role: SuiteRole = "auto"
    """general = forgetting probe, task = what the fine-tune is for; auto: from the built-in name, else task."""
    limit: Annotated[int, Field(gt=0)] | None = None
    """Score only the first N items (None: all)."""
    metric: str | None = None
    """Generation suites: contains, exact_match, rougeL, bleu, ... (default: contains for `answers`, rougeL for `reference`)."""
    columns: dict[str, str] | None = None
    """Suite key -> column of the file or dataset (dotted for nested fields); hf: presets need none."""


def _default_suites() -> list[SuiteConfig]:
    return [SuiteConfig(name=n) for n in ("general_knowledge", "chat", "safety", "bias_pairs")]


class BaselinesConfig(Section):
    """The base model given training examples in its prompt: was fine-tuning worth it?

    Both apply to the task measurements only (the eval rows and `task` suites), never to the
    general, safety or bias suites.
    """

    few_shot: Annotated[int, Field(ge=0)] = 3
    """k training examples drawn at random (the same for every row) as earlier chat turns; 0 = off."""
    retrieval: Annotated[int, Field(ge=0)] = 3
    """k training examples nearest to each prompt by BM25, as earlier chat turns; 0 = off."""
    seed: int = 0
    """Seed of the few-shot draw."""


class EvalConfig(Section):
    """What `tunewise eval` and the end of `tunewise run` measure, base and tuned side by side."""

    suites: list[SuiteConfig] = Field(default_factory=_default_suites)
    """Suites scored for base and tuned; a plain string is a suite name. [] scores none."""
    bootstrap: Annotated[int, Field(ge=100)] = 1000
    """Bootstrap resamples behind every confidence interval."""
    confidence: Annotated[float, Field(gt=0.5, lt=1.0)] = 0.95

    @model_validator(mode="before")
    @classmethod
    def _names_as_suites(cls, data: Any) -> Any:
        if isinstance(data, dict) and isinstance(data.get("suites"), list):
            data = {**data, "suites": [{"name": s} if isinstance(s, str) else s for s in data["suites"]]}
        return data

    limit: Annotated[int, Field(gt=0)] | None = None
    """Score at most this many eval rows (None: all)."""
    batch_size: Annotated[int, Field(gt=0)] = 8
    generations: Annotated[int, Field(ge=0)] = 4
    """How many eval prompts to answer by greedy generation, base and tuned."""
    max_new_tokens: Annotated[int, Field(gt=0)] = 64
    baselines: BaselinesConfig = Field(default_factory=BaselinesConfig)
    """Cheaper alternatives to fine-tuning, scored on the same task measurements as base and tuned."""


def suite_key(name: str) -> str:
    """The short name a suite goes by in budgets and metrics: the built-in name, a file's name
    without its extensions (`arc_easy_test` for `.../arc_easy_test.jsonl`), or an `hf:` name's
    subset or dataset (`ARC-Easy`), with `-SPLIT` when the split is not `test` (as `load_suite` names it)."""
    if name.startswith("hf:"):
        spec, _, split = name[3:].partition("@")
        dataset, _, subset = spec.partition(":")
        return (subset or dataset.rsplit("/", 1)[-1]) + (f"-{split}" if split and split != "test" else "")
    if name.endswith(_SUITE_FILE_SUFFIXES):
        file = Path(name).name
        return file.split(".")[0] or file
    return name
