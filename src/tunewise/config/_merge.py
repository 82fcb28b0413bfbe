"""Deep merge of nested dicts: YAML under overrides, a stage's sections over the top-level ones."""

from __future__ import annotations

from typing import Any


def merge(base: dict[str, Any], top: dict[str, Any]) -> dict[str, Any]:
    """`base` with `top` on top: nested dicts merge key by key, any other value of `top` replaces."""
    out = dict(base)
    for key, value in top.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merge(out[key], value)
        else:
            out[key] = value
    return out
