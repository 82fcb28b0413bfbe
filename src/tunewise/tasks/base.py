"""What every task kind provides (`Task`), and the prepared data all of them hand on (`Prepared`).

A task kind is one module (`chat.py`, `completion.py`, `classification.py`) holding one object
that satisfies `Task`, registered in the `TASKS` table of `tunewise.tasks`. The run (`tunewise.run`)
asks the task for everything that depends on it — how rows are read and rendered, which model head
loads, how batches are collated, how the tuned model is scored — and holds no task branch itself.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase

    from tunewise.config import Config, DataConfig
    from tunewise.data import Example, Reject, Rendered, RenderStats

__all__ = ["Prepared", "Task", "load_tokenizer", "row_counts"]


@dataclass
class Prepared:
    """Rendered train/eval/test rows plus what was set aside and why."""

    train: list[Rendered]
    eval: list[Rendered]
    test: list[Rendered]
    eval_examples: list[Example]
    stats: dict[str, RenderStats]
    rejects: list[Reject] = field(default_factory=list)
    train_examples: list[Example] = field(default_factory=list)
    """The training rows kept, as examples: the pool the few-shot and retrieval baselines draw from."""
    test_examples: list[Example] = field(default_factory=list)
    classes: list[str] = field(default_factory=list)
    """task classification: the labels, in class-id order (`Rendered.labels` is `[class id]`)."""
    eval_parts: dict[str, int] = field(default_factory=dict)
    """Multi-task: dataset name -> its number of eval rows, in the order `eval` holds them."""
    mixture: list[dict[str, Any]] = field(default_factory=list)
    """Multi-task: per dataset, its sampling probability and the training rows drawn (mixture.json)."""


class Task(Protocol):
    """One task kind: what a run trains the model to do, and what follows for data and evaluation."""

    name: str
    """The `task:` value of the config."""
    description: str
    """What it trains, in one line (docs/tasks.md's table)."""
    plain_text: bool | None
    """The rows it reads: plain `{text}` (True), chat rows (False), or neither ({text, label}: None)."""
    head: bool
    """Whether it trains a new head on the base model: the base model then has no such head, so an
    untrained config is scored by its baselines alone, and the label set comes from the data."""

    def load_tokenizer(self, config: Config) -> PreTrainedTokenizerBase:
        """The tokenizer of `config.model`, with the chat template the task renders with (if any)."""
        ...

    def prepare(self, config: Config, tokenizer: PreTrainedTokenizerBase) -> Prepared:
        """Load, split and render the configured data; raise on bad input before anything is written."""
        ...

    def render(
        self, examples: list[Example], tokenizer: PreTrainedTokenizerBase, data: DataConfig
    ) -> tuple[list[Rendered], RenderStats, list[Reject]]:
        """Render examples of the task's own kind of row (the forgetting guard's general rows use it)."""
        ...

    def model_class(self) -> Any:
        """The Auto class the model loads with; None for a causal language model."""
        ...

    def model_load_kwargs(self, data: Prepared | None) -> dict[str, Any]:
        """Extra `load_model` arguments (a classification head, say)."""
        ...

    def check_model(self, config: Config, model: Any) -> None:
        """Raise when the model the method made cannot train this task (a frozen new head, say)."""
        ...

    def collator(self, pad_id: int) -> Any:
        """The batch collator it trains with; None keeps the training loop's own (token labels)."""
        ...

    def describe_data(self, config: Config, data: Prepared) -> str:
        """What the data holds for this task, in a few words (after the row counts `train` prints)."""
        ...

    def check_saved(self, run_dir: Path, data: Prepared) -> None:
        """Raise when a saved run does not fit the prepared data (another label set, say)."""
        ...

    def write_files(self, run_dir: Path, config: Config, data: Prepared) -> None:
        """The task's own files in the run directory (labels.json for classification)."""
        ...

    def evaluate(
        self,
        config: Config,
        run_dir: Path | None,
        model: Any,
        tokenizer: PreTrainedTokenizerBase,
        data: Prepared | None,
    ) -> dict[str, Any]:
        """Score base vs tuned (base alone when `run_dir` is None), print the tables, return the summary.

        The summary is what `eval_summary.json` holds; the caller writes it.
        """
        ...


def row_counts(data: Prepared) -> tuple[str, str]:
    """The start of every task's data summary: rows per split, and the rows set aside (or "")."""
    rows = f"data: {len(data.train)} train / {len(data.eval)} eval / {len(data.test)} test rows"
    aside = f", {len(data.rejects)} rows set aside (rejects.jsonl)" if data.rejects else ""
    return rows, aside


def load_tokenizer(config: Config, *, chat_template: bool) -> PreTrainedTokenizerBase:
    """The tokenizer of `config.model`, with the configured chat template applied when the task renders
    chats (`chat_template`) or whenever `model.chat_template` is set (plain text and classification rows
    use none otherwise)."""
    from tunewise.data import resolve_chat_template
    from tunewise.models import load_tokenizer as load

    tokenizer = load(
        config.model.name, revision=config.model.revision, trust_remote_code=config.model.trust_remote_code
    )
    if chat_template or config.model.chat_template:
        resolve_chat_template(tokenizer, config.model.chat_template)
    return tokenizer
