"""`task: chat` (the default): instruction and chat fine-tuning.

Rows are chats (messages, Alpaca, ShareGPT, prompt/completion; `data/shapes.py`), rendered with the
model's chat template; the assistant turns are trained (`data.train_on`), the prompts are context
(`data/templates.py`). Scored as a language model: eval loss and perplexity, generations, suites
and the cheaper alternatives (`_language.py`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from tunewise.tasks._language import LanguageModelTask

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase

    from tunewise.config import DataConfig
    from tunewise.data import Example, Reject, Rendered, RenderStats

__all__ = ["TASK", "ChatTask"]


class ChatTask(LanguageModelTask):
    """`task: chat`: the assistant turns are trained, prompts are context."""

    name = "chat"
    description = "instruction / chat fine-tuning: the assistant turns are trained, prompts are context"
    plain_text: bool | None = False

    def render(
        self, examples: list[Example], tokenizer: PreTrainedTokenizerBase, data: DataConfig
    ) -> tuple[list[Rendered], RenderStats, list[Reject]]:
        from tunewise.data import render_all

        return render_all(examples, tokenizer, train_on=data.train_on, max_length=data.max_length)


TASK = ChatTask()
