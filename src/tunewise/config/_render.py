"""Pydantic validation errors rendered as `ConfigError` lines: the key path as the user wrote it,
its origin (file:line, or command-line override), and for an unknown key the closest known one."""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from collections.abc import Set as AbstractSet
from typing import Any, get_args, get_origin

from pydantic import BaseModel
from pydantic_core import ErrorDetails

from tunewise.config.method import METHOD_CONFIGS, _method_type
from tunewise.config.root import Config

__all__ = ["describe_error"]


def _fields_at(loc: tuple[Any, ...]) -> list[str]:
    """The known keys of the section that `loc` (a pydantic error location) points into."""
    model: type[BaseModel] = Config
    for part in loc:
        if isinstance(part, int) or str(part).isdigit():
            continue  # a list index: stay on the list's item model
        field = model.model_fields.get(str(part))
        annotation = getattr(field, "annotation", None)
        extra = getattr(field, "json_schema_extra", None)
        if isinstance(extra, dict) and extra.get("section"):  # a stage's overrides of a top-level section
            annotation = Config.model_fields[str(extra["section"])].annotation
        if get_origin(annotation) is list:
            annotation = get_args(annotation)[0]
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            model = annotation
        else:
            break
    return list(model.model_fields)


# Sections renamed so that one concept has one name (the forgetting guard): the old key -> the new one.
# The keys inside them did not change; an old key is an error that names the new one.
_RENAMED = {"regularize": "guard", "forgetting": "guard.monitor"}  # the old section names, on purpose


def _key_paths(value: Any, prefix: str) -> list[str]:
    """The key paths written under a section (a list or a value ends a path), e.g. guard.kl.weight."""
    if not isinstance(value, dict) or not value:
        return [prefix]
    return [path for key, child in value.items() for path in _key_paths(child, f"{prefix}.{key}")]


def _renamed(old: str, value: Any) -> str:
    """The message for a renamed section: its new name, and the new path of each key written under it."""
    new = _RENAMED[old]
    written = _key_paths(value, new) if isinstance(value, dict) and value else []
    if not written:  # nothing written under it: name a few of the section's keys
        written = [f"{new}.{key}" for key in _fields_at(tuple(new.split(".")))[:3]] + ["..."]
    shown = written[:6] + (["..."] if len(written) > 6 else [])
    return f"was renamed {new}: (same keys: {', '.join(shown)})"


# Keys that make sense only on a 4-bit base, and why the methods that train base weights refuse them.
_QUANTIZED_ONLY = {"double_quant"}
_NO_QUANTIZED_BASE = (
    "a 4-bit quantized base cannot be trained directly: its weights are packed integers "
    "that take no gradient, so only adapters train on it — use method.type=qlora"
)


def _method_key(key: str, method_type: str) -> str:
    """Why `key` is not a key of `method.type: method_type`, and where it belongs."""
    owners = [name for name, cls in METHOD_CONFIGS.items() if key in cls.model_fields]
    if owners and key in _QUANTIZED_ONLY and method_type in ("full", "freeze", "gradual_unfreeze"):
        return f"not a key of method.type {method_type}; {_NO_QUANTIZED_BASE}"
    if owners:
        return f"not a key of method.type {method_type}; it belongs to method.type {' or '.join(owners)}"
    known = list(METHOD_CONFIGS[method_type].model_fields)
    hint = difflib.get_close_matches(key, known, n=1, cutoff=0.6)
    if hint:
        return f"unknown key; did you mean '{hint[0]}'?"
    elsewhere = difflib.get_close_matches(
        key, {k for c in METHOD_CONFIGS.values() for k in c.model_fields}, n=1, cutoff=0.6
    )
    owner = next((n for n, c in METHOD_CONFIGS.items() if elsewhere and elsewhere[0] in c.model_fields), None)
    return f"unknown key; {method_type} keys: {', '.join(known)}" + (
        f" (did you mean '{elsewhere[0]}' of method.type {owner}?)" if owner else ""
    )


def describe_error(
    error: ErrorDetails,
    lines: Mapping[tuple[str, ...], int] | None = None,
    source: str | None = None,
    override_keys: AbstractSet[tuple[str, ...]] = frozenset(),
) -> str:
    """One pydantic validation error as one `ConfigError` line, starting with the key path the user wrote.

    Args:
        error: an item of `ValidationError.errors()` raised by validating a `Config`.
        lines: key path -> its 1-based line in `source` (`key_lines`); the line is shown when known.
        source: the YAML file the config came from; None when there is none.
        override_keys: key paths set by command-line overrides, shown as such instead of a file line.

    Returns:
        `key (origin): what is wrong`, with the closest known key for an unknown one.
    """
    lines = lines or {}
    loc = tuple(str(p) for p in error["loc"])
    method_type = None
    if len(loc) > 1 and loc[0] == "method" and loc[1] in METHOD_CONFIGS:
        # pydantic names the chosen union member in the location (method.freeze.top_k); users wrote method.top_k.
        loc, method_type = (loc[0], *loc[2:]), loc[1]
    if error["type"] == "union_tag_invalid" and loc == ("method",):
        loc = ("method", "type")
    key = ".".join(loc) or "(top level)"
    if loc in override_keys:
        where = " (command-line override)"
    elif loc in lines and source:
        where = f" ({source}:{lines[loc]})"
    else:
        where = ""
    if error["type"] == "union_tag_invalid" and loc == ("method", "type"):
        given = _method_type(error.get("input"))
        hint = difflib.get_close_matches(str(given), list(METHOD_CONFIGS), n=1, cutoff=0.6)
        return (
            f"{key}{where}: unknown method {given!r}; "
            + (f"did you mean '{hint[0]}'? " if hint else "")
            + f"methods: {', '.join(METHOD_CONFIGS)}"
        )
    if error["type"] == "extra_forbidden" and method_type is not None and len(loc) == 2:
        return f"{key}{where}: {_method_key(loc[1], method_type)}"
    if error["type"] == "extra_forbidden" and len(loc) == 1 and loc[0] in _RENAMED:
        return f"{key}{where}: {_renamed(loc[0], error.get('input'))}"
    if error["type"] == "extra_forbidden":
        known = _fields_at(loc[:-1])
        hint = difflib.get_close_matches(loc[-1], known, n=1, cutoff=0.6)
        suggestion = f"did you mean '{hint[0]}'?" if hint else f"known keys here: {', '.join(known)}"
        return f"{key}{where}: unknown key; {suggestion}"
    if error["type"] == "value_error":
        message = str(error["msg"]).removeprefix("Value error, ")
        return message if not loc or message.startswith(key) else f"{key}{where}: {message}"
    got = error.get("input")
    shown = "" if isinstance(got, dict) else f" (got {got!r})"
    return f"{key}{where}: {error['msg']}{shown}"
