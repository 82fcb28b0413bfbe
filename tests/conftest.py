"""Shared fixtures: the real default model (converted once) and a tiny random model on disk."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Callable
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


@pytest.fixture()
def headless_chromium(tmp_path: Path) -> Callable[..., subprocess.CompletedProcess[str]]:
    """Run headless Chromium with these arguments (e.g. `--dump-dom URL`); fails with the install
    command when Chromium is missing, since a skipped browser test would hide a broken report."""

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        found = next(filter(None, map(shutil.which, ("chromium", "chromium-browser", "google-chrome"))), None)
        if found is None:
            pytest.fail(
                "chromium is not on PATH; install it (Debian/Ubuntu: `apt-get install chromium`) "
                "to render the report in a real browser"
            )
        command = [
            found,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--hide-scrollbars",
            f"--user-data-dir={tmp_path / 'chromium-profile'}",
            *args,
        ]
        done = subprocess.run(command, capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stderr[-2000:]
        return done

    return run
