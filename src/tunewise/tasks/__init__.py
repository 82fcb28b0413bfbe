"""Task kinds: what a run trains the model to do, and what follows from that for data and evaluation.

`task:` in the config picks one (see docs/tasks.md):

| task | rows | trained on | scored by |
|---|---|---|---|
| `chat` (default) | chat, Alpaca, ShareGPT, prompt/completion | the assistant turns (`data.train_on`) | eval loss, generations, suites |
| `completion` | plain text `{text}` | every token: continued pre-training | eval loss and perplexity, suites |
| `classification` | `{text, label}` | a classification head on the base model (+ the method's adapter) | accuracy and macro-F1 with intervals, against majority-class and prompting baselines |

Each kind is one module (`chat.py`, `completion.py`, `classification.py`) holding one object that
satisfies the `Task` protocol (`base.py`); `TASKS` below lists them. A new kind is one new module
plus one line in that table.

Two ways to combine datasets, for the language-model tasks:

- multi-task (`data.datasets` with `data.mixing`): one training mixture sampled by explicit weights
  or by temperature, each dataset evaluated on its own (`multitask.py`);
- sequential (`stages:`): each stage trains on from the previous stage's weights and is evaluated on
  every earlier stage's eval set, so forgetting between stages shows as a table (`tunewise.run.stages`).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from tunewise.rundir import RunDir, write_json
from tunewise.tasks.base import Prepared, Task
from tunewise.tasks.chat import TASK as CHAT
from tunewise.tasks.classification import TASK as CLASSIFICATION
from tunewise.tasks.completion import TASK as COMPLETION

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase

    from tunewise.config import Config

__all__ = [
    "TASKS",
    "Prepared",
    "Task",
    "check_head_trains",
    "collator_for",
    "describe_data",
    "load_tokenizer_for",
    "model_load_kwargs",
    "prepare_data",
    "task_of",
    "write_task_files",
]

TASKS: dict[str, Task] = {task.name: task for task in (CHAT, COMPLETION, CLASSIFICATION)}
"""task -> its kind (a test keeps this table, `tunewise.config.Task` and docs/tasks.md in step)."""


def task_of(config: Config) -> Task:
    """The task kind `config.task` names."""
    return TASKS[config.task]


def load_tokenizer_for(config: Config) -> PreTrainedTokenizerBase:
    """The tokenizer of `config.model`, with the chat template the task renders with (task chat, or
    whenever `model.chat_template` is set; plain text and classification rows use none)."""
    return task_of(config).load_tokenizer(config)


def prepare_data(config: Config, tokenizer: PreTrainedTokenizerBase) -> Prepared:
    """Load, split and render the configured data; raise on bad input before anything is written.

    `task: classification` reads `{text, label}` rows (`classification.py`); `data.datasets`
    prepares each dataset like one `data.train` and mixes them (`multitask.py`).
    """
    return task_of(config).prepare(config, tokenizer)


def model_load_kwargs(config: Config, data: Prepared | None) -> dict[str, Any]:
    """Extra `load_model` arguments the task needs: a sequence-classification head for `classification`.

    Args:
        data: the prepared data; classification reads its label set from it.
    """
    return task_of(config).model_load_kwargs(data)


def describe_data(config: Config, data: Prepared) -> str:
    """The one-paragraph data summary `tunewise train` prints before loading the model."""
    return task_of(config).describe_data(config, data)


def write_task_files(run_dir: Path, config: Config, data: Prepared) -> None:
    """What a task keeps in the run directory: `labels.json` (classification), `mixture.json` (multi-task)."""
    task_of(config).write_files(run_dir, config, data)
    if data.mixture:
        write_json(RunDir(run_dir).mixture, data.mixture, default=None)


def collator_for(config: Config, pad_id: int) -> Any:
    """The batch collator the task trains with; None keeps the training loop's own (token labels)."""
    return task_of(config).collator(pad_id)


def check_head_trains(config: Config, model: Any) -> None:
    """Raise when the model the method made cannot train the task (a classification head left frozen
    would stay random).

    Raises:
        ConfigError: naming the method setting that trains it.
    """
    task_of(config).check_model(config, model)
