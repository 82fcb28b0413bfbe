"""`task: chat` (the default): instruction and chat fine-tuning.

Rows are chats (messages, Alpaca, ShareGPT, prompt/completion; `data/shapes.py`), rendered with the
model's chat template; the assistant turns are trained (`data.train_on`), the prompts are context
(`data/templates.py`). Scored as a language model: eval loss and perplexity, generations, suites
and the cheaper alternatives (`_language.py`).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from tunewise.tasks._language import (
    describe_language_data,
    evaluate_language_model,
    prepare_language_data,
)
from tunewise.tasks.base import Prepared, load_tokenizer

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase

    from tunewise.config import Config, DataConfig
    from tunewise.data import Example, Reject, Rendered, RenderStats

__all__ = ["TASK", "ChatTask"]


def _render(
    examples: list[Example], tokenizer: PreTrainedTokenizerBase, data: DataConfig
) -> tuple[list[Rendered], RenderStats, list[Reject]]:
    from tunewise.data import render_all

    return render_all(examples, tokenizer, train_on=data.train_on, max_length=data.max_length)


class ChatTask:
    """`task: chat`: the assistant turns are trained, prompts are context."""

    name = "chat"
    description = "instruction / chat fine-tuning: the assistant turns are trained, prompts are context"
    plain_text: bool | None = False
    head = False

    def load_tokenizer(self, config: Config) -> PreTrainedTokenizerBase:
        return load_tokenizer(config, chat_template=True)

    def prepare(self, config: Config, tokenizer: PreTrainedTokenizerBase) -> Prepared:
        return prepare_language_data(config, tokenizer, plain_text=False, render=_render)

    def render(
        self, examples: list[Example], tokenizer: PreTrainedTokenizerBase, data: DataConfig
    ) -> tuple[list[Rendered], RenderStats, list[Reject]]:
        return _render(examples, tokenizer, data)

    def model_class(self) -> Any:
        return None

    def model_load_kwargs(self, data: Prepared | None) -> dict[str, Any]:
        return {}

    def check_model(self, config: Config, model: Any) -> None:
        return None

    def collator(self, pad_id: int) -> Any:
        return None

    def describe_data(self, config: Config, data: Prepared) -> str:
        return describe_language_data(config, data)

    def check_saved(self, run_dir: Path, data: Prepared) -> None:
        return None

    def write_files(self, run_dir: Path, config: Config, data: Prepared) -> None:
        return None

    def evaluate(
        self,
        config: Config,
        run_dir: Path | None,
        model: Any,
        tokenizer: PreTrainedTokenizerBase,
        data: Prepared | None,
    ) -> dict[str, Any]:
        return evaluate_language_model(config, run_dir, model, tokenizer, data)


TASK = ChatTask()
