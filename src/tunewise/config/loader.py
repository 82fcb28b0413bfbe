"""YAML in, `key.sub=value` overrides on top, the resolved config out.

Precedence is defaults < YAML < overrides. A key given twice in one mapping is an error (YAML
itself would keep the last silently). Paths written in the YAML file are relative to that file;
paths given as overrides are relative to the current directory (where the user typed them).
"""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from tunewise.config._merge import merge
from tunewise.config._render import describe_error
from tunewise.config.eval import _SUITE_FILE_SUFFIXES
from tunewise.config.root import Config
from tunewise.errors import ConfigError

__all__ = ["dump_config", "key_lines", "load_config", "parse_overrides"]


def parse_overrides(overrides: list[str]) -> tuple[dict[str, Any], list[str]]:
    """Turn `key.sub=value` arguments into a nested dict; values are parsed as YAML scalars.

    Returns:
        The nested dict and a list of problems (malformed arguments), reported with the rest.
    """
    nested: dict[str, Any] = {}
    problems: list[str] = []
    for arg in overrides:
        key, sep, raw = arg.partition("=")
        key = key.strip()
        if not sep or not key or any(not part for part in key.split(".")):
            problems.append(f"override {arg!r}: expected key.sub=value, e.g. train.max_steps=5")
            continue
        try:
            value = yaml.safe_load(raw) if raw.strip() else ""
        except yaml.YAMLError:
            value = raw  # an unparseable value is a plain string; the schema judges it
        if isinstance(value, str):
            # YAML 1.1 reads `1e-4` as a string; a user typing it means a number.
            with contextlib.suppress(ValueError):
                value = float(value) if value.strip().lower() not in ("nan", "inf", "-inf", "infinity") else value
        parts = key.split(".")
        node = nested
        for part in parts[:-1]:
            child = node.setdefault(part, {})
            if not isinstance(child, dict):
                problems.append(f"override {arg!r}: {part} was already set to a value, not a section")
                break
            node = child
        else:
            node[parts[-1]] = value
    return nested, problems


def key_lines(text: str, duplicates: list[str] | None = None) -> dict[tuple[str, ...], int]:
    """Map each key path in a YAML document to its 1-based line, for error messages.

    List items are keyed by their index as text (`("eval", "suites", "0")`), as pydantic locates them.

    Args:
        text: the YAML document.
        duplicates: collects one message per key given twice in the same mapping (YAML itself
            keeps the last silently, dropping what the user wrote first).
    """
    lines: dict[tuple[str, ...], int] = {}

    def walk(node: yaml.Node, path: tuple[str, ...]) -> None:
        if isinstance(node, yaml.MappingNode):
            seen: dict[str, int] = {}
            for key_node, value_node in node.value:
                key = (*path, str(key_node.value))
                line = key_node.start_mark.line + 1
                if key[-1] in seen and duplicates is not None:
                    duplicates.append(
                        f"line {line}: {'.'.join(key)} is given twice (also on line {seen[key[-1]]}); "
                        f"YAML would keep only the last one — merge them into one"
                    )
                seen[key[-1]] = line
                lines[key] = line
                walk(value_node, key)
        elif isinstance(node, yaml.SequenceNode):
            for i, item in enumerate(node.value):
                item_key = (*path, str(i))
                lines[item_key] = item.start_mark.line + 1
                walk(item, item_key)

    root = yaml.compose(text)
    if root is not None:
        walk(root, ())
    return lines


def _items(value: Any) -> list[Any]:
    # The list itself (anchoring edits it in place); a non-list is left for the schema to report.
    return value if isinstance(value, list) else []


def _anchored(value: str, base: Path) -> str:
    path = Path(value).expanduser()
    return str(path if path.is_absolute() else (base / path).resolve())


def _anchor_data_paths(block: Any, base: Path) -> None:
    """Anchor the file paths of one data section: train/eval/test, and each dataset's train/eval."""
    if not isinstance(block, dict):
        return
    for item in [block, *(d for d in _items(block.get("datasets")) if isinstance(d, dict))]:
        for key in ("train", "eval", "test"):
            if isinstance(item.get(key), str):
                item[key] = _anchored(item[key], base)


def _anchor_paths(raw: dict[str, Any], base: Path) -> None:
    # Keys whose values are file paths: relative ones are anchored where they were written.
    _anchor_data_paths(raw.get("data"), base)
    guard = raw.get("guard")
    if isinstance(guard, dict):
        if isinstance(guard.get("general"), str) and guard["general"] != "self":
            guard["general"] = _anchored(guard["general"], base)
        synth = guard.get("synth")
        if isinstance(synth, dict) and isinstance(synth.get("prompts"), str):
            synth["prompts"] = _anchored(synth["prompts"], base)
        monitor = guard.get("monitor")
        _anchor_suites(monitor, base)
        if isinstance(monitor, dict) and isinstance(monitor.get("prompts"), str):
            monitor["prompts"] = _anchored(monitor["prompts"], base)
    for stage in _items(raw.get("stages")):
        if isinstance(stage, dict):
            _anchor_data_paths(stage.get("data"), base)
    _anchor_suites(raw.get("eval"), base)


def _anchor_suites(section: Any, base: Path) -> None:
    suites = _items(section.get("suites")) if isinstance(section, dict) else []
    for i, suite in enumerate(suites):
        name = suite.get("name") if isinstance(suite, dict) else suite
        if isinstance(name, str) and name.endswith(_SUITE_FILE_SUFFIXES):
            anchored = _anchored(name, base)
            suites[i] = {**suite, "name": anchored} if isinstance(suite, dict) else anchored


def _flatten_keys(tree: dict[str, Any], prefix: tuple[str, ...] = ()) -> set[tuple[str, ...]]:
    keys: set[tuple[str, ...]] = set()
    for key, value in tree.items():
        keys.add((*prefix, key))
        if isinstance(value, dict):
            keys |= _flatten_keys(value, (*prefix, key))
    return keys


def load_config(path: str | Path | None = None, overrides: list[str] | None = None) -> Config:
    """Build the typed config: defaults, then the YAML file, then `key.sub=value` overrides.

    Args:
        path: a YAML file, or None for defaults plus overrides only.
        overrides: arguments like `train.max_steps=5`; values are parsed as YAML scalars.

    Raises:
        ConfigError: listing every problem at once, each with its key path and origin.
    """
    raw: dict[str, Any] = {}
    lines: dict[tuple[str, ...], int] = {}
    source = str(path) if path is not None else None
    if path is not None:
        file = Path(path)
        if not file.is_file():
            raise ConfigError([f"config file not found: {file} (run `tunewise init {file}` to write a starter config)"])
        text = file.read_text(encoding="utf-8")
        try:
            loaded = yaml.safe_load(text)
            twice: list[str] = []
            lines = key_lines(text, twice)
        except yaml.YAMLError as err:
            mark = getattr(err, "problem_mark", None)
            at = f":{mark.line + 1}:{mark.column + 1}" if mark else ""
            reason = getattr(err, "problem", None) or str(err)
            raise ConfigError([f"{file}{at}: not valid YAML: {reason}"]) from None
        if twice:
            raise ConfigError([f"{file}: {problem}" for problem in twice])
        if loaded is None:
            loaded = {}
        if not isinstance(loaded, dict):
            raise ConfigError(
                [
                    f"{file}: the top level must be a mapping of sections (model:, data:, ...), "
                    f"not a {type(loaded).__name__}"
                ]
            )
        raw = loaded
        _anchor_paths(raw, file.resolve().parent)

    nested, problems = parse_overrides(list(overrides or []))
    _anchor_paths(nested, Path.cwd())
    merged = merge(raw, nested)
    try:
        config = Config.model_validate(merged)
    except ValidationError as err:
        override_keys = _flatten_keys(nested)
        problems += [describe_error(e, lines, source, override_keys) for e in err.errors()]
        config = None
    if problems:
        raise ConfigError(problems, source)
    assert config is not None
    return config


def dump_config(config: Config, path: str | Path) -> None:
    """Write the resolved config (every default filled in) as YAML, ready to re-run."""
    Path(path).write_text(yaml.safe_dump(config.model_dump(mode="json"), sort_keys=False), encoding="utf-8")
