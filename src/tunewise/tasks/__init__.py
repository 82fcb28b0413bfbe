"""Task kinds: what a run trains the model to do, and what follows from that for data and evaluation.

`task:` in the config picks one (see docs/tasks.md):

| task | rows | trained on | scored by |
|---|---|---|---|
| `chat` (default) | chat, Alpaca, ShareGPT, prompt/completion | the assistant turns (`data.train_on`) | eval loss, generations, suites |
| `completion` | plain text `{text}` | every token: continued pre-training | eval loss and perplexity, suites |
| `classification` | `{text, label}` | a classification head on the base model (+ the method's adapter) | accuracy and macro-F1 with intervals, against majority-class and prompting baselines |

Two ways to combine datasets, for the language-model tasks:

- multi-task (`data.datasets` with `data.mixing`): one training mixture sampled by explicit weights
  or by temperature, each dataset evaluated on its own (`multitask.py`);
- sequential (`stages:`): each stage trains on from the previous stage's weights and is evaluated on
  every earlier stage's eval set, so forgetting between stages shows as a table (`stages.py`).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from tunewise.config import Config
    from tunewise.pipeline import Prepared

__all__ = ["TASKS", "check_head_trains", "collator_for", "describe_data", "model_load_kwargs", "write_task_files"]

TASKS: dict[str, str] = {
    "chat": "instruction / chat fine-tuning: the assistant turns are trained, prompts are context",
    "completion": "completion and continued pre-training on plain text: every token is trained",
    "classification": "a classification head on the base model for {text, label} rows",
}
"""task -> what it trains (a test keeps this table, `tunewise.config.Task` and docs/tasks.md in step)."""


def model_load_kwargs(config: Config, data: Prepared | None) -> dict[str, Any]:
    """Extra `load_model` arguments the task needs: a sequence-classification head for `classification`.

    Args:
        data: the prepared data; classification reads its label set from it.
    """
    if config.task != "classification":
        return {}
    from tunewise.tasks.classification import head_kwargs

    if data is None or not data.classes:
        raise ValueError("a classification model needs the label set of the prepared data")
    return head_kwargs(data.classes)


def describe_data(config: Config, data: Prepared) -> str:
    """The one-paragraph data summary `tunewise train` prints before loading the model."""
    rows = f"data: {len(data.train)} train / {len(data.eval)} eval / {len(data.test)} test rows"
    aside = f", {len(data.rejects)} rows set aside (rejects.jsonl)" if data.rejects else ""
    if config.task == "classification":
        from collections import Counter

        counts = Counter(row.labels[0] for row in data.train)
        names = config.data.label_names or {}
        shares = ", ".join(f"{names.get(c, c)} {100 * counts[i] / len(data.train):.0f}%"
                           for i, c in enumerate(data.classes))
        return f"{rows}{aside}; {len(data.classes)} labels in training: {shares}"
    text = f"{rows}, {data.stats['train'].tokens_trained} trained tokens per epoch{aside}"
    if data.mixture:
        from tunewise.tasks.multitask import describe_mixture

        text += f"\nmixture ({config.data.mixing.strategy}" + (
            f", temperature {config.data.mixing.temperature:g}" if config.data.mixing.strategy == "temperature"
            else "") + "):\n" + describe_mixture(data.mixture)
    return text


def write_task_files(run_dir: Path, config: Config, data: Prepared) -> None:
    """What a task keeps in the run directory: `labels.json` (classification), `mixture.json` (multi-task)."""
    import json

    if config.task == "classification":
        from tunewise.tasks.classification import write_labels

        write_labels(run_dir, config, data.classes)
    if data.mixture:
        (run_dir / "mixture.json").write_text(json.dumps(data.mixture, indent=2) + "\n", encoding="utf-8")


def collator_for(config: Config, pad_id: int) -> Any:
    """The batch collator the task trains with; None keeps the training loop's own (token labels)."""
    if config.task != "classification":
        return None
    import torch

    from tunewise.tasks.classification import LabelCollator

    # Padded lengths in multiples of 8 suit GPU tensor cores, as the training loop's own collator does.
    return LabelCollator(pad_id=pad_id, multiple_of=8 if torch.cuda.is_available() else 1)


def check_head_trains(config: Config, model: Any) -> None:
    """Raise when a classification run's new head would stay frozen (and so random) under the method.

    Raises:
        ConfigError: naming the method setting that trains it.
    """
    if config.task != "classification":
        return
    from tunewise.errors import ConfigError

    heads = [(name, p) for name, p in model.named_parameters()
             if {"score", "classifier"} & set(name.split("."))]
    if heads and not any(p.requires_grad for _, p in heads):
        hint = ("set method.train_head: true (the head is the new score layer here)"
                if config.method.type in ("freeze", "gradual_unfreeze") else "use lora, ia3 or full")
        raise ConfigError([f"method.type: {config.method.type} leaves the new classification head frozen, so it "
                           f"would stay random; {hint}"])
