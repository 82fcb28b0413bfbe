"""The `model:` section: which base model to fine-tune."""

from __future__ import annotations

from tunewise.config._section import Section

__all__ = ["ModelConfig"]


class ModelConfig(Section):
    """Which base model to fine-tune."""

    name: str = "smollm2-135m-instruct"
    """An alias (`tunewise models list`), a local directory, or a Hugging Face model id."""
    revision: str | None = None
    trust_remote_code: bool = False
    """Run code shipped with a hub model. Off unless you trust the model's authors."""
    chat_template: str | None = None
    """None uses the tokenizer's own; or a named template (chatml, llama3, mistral, zephyr) or a .jinja file."""
