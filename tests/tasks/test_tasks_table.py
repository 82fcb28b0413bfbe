"""The task table, the config's `task` values and docs/tasks.md stay in step."""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import get_args

from tunewise.config import Task
from tunewise.tasks import TASKS

DOCS = Path(__file__).resolve().parents[2] / "docs"


def test_every_task_is_in_the_config_and_documented() -> None:
    assert list(TASKS) == list(get_args(Task))
    doc = (DOCS / "tasks.md").read_text()
    for task in TASKS:
        assert f"| `{task}`" in doc and f"## {task}" in doc, task
    assert "## Multi-task" in doc and "## Sequential stages" in doc


def test_each_task_is_one_module_holding_its_object() -> None:
    doc = (DOCS / "tasks.md").read_text()
    for name, task in TASKS.items():
        assert task.name == name and task.description
        assert importlib.import_module(f"tunewise.tasks.{name}").TASK is task
        assert f"`{name}.py`" in doc, name
