"""Shared fixtures: the real default model (converted once) and a tiny random model on disk."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def default_model_dir() -> Path:
    """The default alias converted to safetensors in the user's real cache (`tunewise_home()`).

    The demo and the CLI use the same cache, so the ~20 s conversion happens once per machine.
    Fails (with the install command) when the alias package is missing: `make test` installs it,
    and a skipped integration test would hide exactly the breakage it exists to catch.
    """
    from tunewise.models import convert_alias

    return convert_alias("smollm2-135m-instruct")


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny random model + tokenizer saved with `save_pretrained` (a "local path" model)."""
    from tunewise.testing import save_tiny_model

    return save_tiny_model(tmp_path_factory.mktemp("tiny-model"))
