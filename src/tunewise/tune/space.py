"""The search space: `tune.space` entries checked against the config schema, drawn, and applied.

Every entry addresses a config key by its dotted path (`train.lr`, `method.r`,
`guard.replay.ratio`). Before any trial runs, `check_space` puts the extreme values of each
entry (low and high of a range, every choice) into the config and validates the result, so an
unknown key or a value the schema refuses is a `ConfigError` naming `tune.space.<key>` and its
line — not a failed trial an hour in.

`method.<key>` entries follow the method chosen: with `method.type` in the space too, a trial draws
the type first and then only the method keys that type has (Optuna's define-by-run), so
`{method.type: {choice: [lora, ia3]}, method.r: {choice: [8, 16]}}` draws `r` for LoRA trials only.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError

from tunewise.config import METHOD_CONFIGS, Config, TuneParam, describe_error
from tunewise.errors import ConfigError

if TYPE_CHECKING:
    import optuna

__all__ = ["apply_params", "check_space", "grid_space", "probe_values", "sample_params"]


def probe_values(param: TuneParam) -> list[Any]:
    """The values that stand for a whole entry when checking it: both ends of a range, every choice."""
    if param.choice is not None:
        return list(param.choice)
    bounds = param.uniform or param.log_uniform or param.int_ or param.log_int
    if bounds is None:  # not reached: the config sets exactly one kind
        raise ValueError(f"tune.space entry of kind {param.kind} has no values")
    return list(bounds)


def _float_range(param: TuneParam) -> tuple[float, float]:
    bounds = param.uniform or param.log_uniform
    if bounds is None:  # not reached: called for the kinds that set one of them
        raise ValueError(f"tune.space entry of kind {param.kind} is not a float range")
    return bounds


def _int_range(param: TuneParam) -> tuple[int, int]:
    bounds = param.int_ or param.log_int
    if bounds is None:  # not reached: called for the kinds that set one of them
        raise ValueError(f"tune.space entry of kind {param.kind} is not an int range")
    return bounds


def _ordered(space: Mapping[str, TuneParam]) -> list[str]:
    # method.type first: the method keys drawn after it depend on it.
    return sorted(space, key=lambda key: key != "method.type")


def _method_types(base: Config, space: Mapping[str, TuneParam]) -> list[str]:
    if "method.type" in space:
        return [str(v) for v in probe_values(space["method.type"])]
    return [base.method.type]


def _method_key_applies(key: str, method_type: str) -> bool:
    return key.split(".")[1] in METHOD_CONFIGS[method_type].model_fields if method_type in METHOD_CONFIGS else False


def apply_params(base: Config, params: Mapping[str, Any]) -> Config:
    """The base config with each dotted key set to its value, validated as a whole.

    A changed `method.type` starts from that method's defaults (plus the method keys in `params`),
    so switching LoRA -> IA3 carries none of LoRA's settings along.

    Raises:
        ValidationError: the result breaks the schema.
    """
    tree = base.model_dump(mode="json")
    tree.pop("tune", None)  # the search section is not part of what a trial runs
    new_type = params.get("method.type")
    if new_type is not None and new_type != tree["method"].get("type"):
        # Another method starts from its own defaults: keys two methods share may mean different things
        # (LoRA's target_modules "all-linear" is no list of IA3 modules).
        tree["method"] = {"type": new_type}
    for key, value in params.items():
        node = tree
        *parents, last = key.split(".")
        for part in parents:
            child = node.get(part)
            if not isinstance(child, dict):
                child = {}
                node[part] = child
            node = child
        node[last] = value
    return Config.model_validate(tree)


def check_space(base: Config, lines: Mapping[tuple[str, ...], int] | None = None, source: str | None = None) -> None:
    """Check every `tune.space` entry against the schema before any trial.

    Each entry's probe values (`probe_values`) are applied one at a time to the base config and the
    result validated; the grid sampler also needs every entry to be a finite list of values.

    Raises:
        ConfigError: every problem at once, each naming `tune.space.<key>` and its file line.
    """
    space = base.tune.space
    problems: list[str] = []
    if not space:
        problems.append(
            "tune.space: nothing to search; add entries such as "
            "`tune.space: {train.lr: {log_uniform: [1.0e-5, 1.0e-3]}, method.r: {choice: [4, 8, 16]}}`"
        )
    types = _method_types(base, space)
    for key in _ordered(space):
        where = _where(("tune", "space", key), lines, source)
        parts = key.split(".")
        if parts[0] == "tune" or key.startswith("output."):
            problems.append(
                f"tune.space.{key}{where}: the search cannot search its own settings or where runs go; "
                f"set it in the config instead"
            )
            continue
        if parts[0] == "method" and len(parts) == 2 and key != "method.type":
            owners = [t for t in types if _method_key_applies(key, t)]
            if not owners:
                problems.append(
                    f"tune.space.{key}{where}: not a key of method.type {' or '.join(types)}; "
                    + _method_owners(parts[1])
                )
                continue
            probes = [
                (v, {"method.type": owners[0]} if owners[0] != base.method.type else {})
                for v in probe_values(space[key])
            ]
        else:
            probes = [(v, {}) for v in probe_values(space[key])]
        for value, extra in probes:
            try:
                apply_params(base, {**extra, key: value})
            except ValidationError as err:
                described = "; ".join(describe_error(e) for e in err.errors())
                if any(e["type"] == "extra_forbidden" for e in err.errors()):
                    problems.append(f"tune.space.{key}{where}: not a config key: {described}")
                else:
                    problems.append(f"tune.space.{key}{where}: {value!r} does not fit the config: {described}")
                break
    if base.tune.sampler == "grid":
        for key, param in space.items():
            if param.kind in ("uniform", "log_uniform", "log_int") and param.step is None:
                problems.append(
                    f"tune.space.{key}{_where(('tune', 'space', key), lines, source)}: the grid sampler "
                    f"needs a finite list of values; use {{choice: [...]}}, or add a step to uniform"
                )
    if problems:
        raise ConfigError(problems, source)


def _method_owners(key: str) -> str:
    owners = [name for name, cls in METHOD_CONFIGS.items() if key in cls.model_fields]
    if owners:
        return f"it belongs to method.type {' or '.join(owners)} (add that type to the space, or set method.type)"
    return "no method has it; see docs/methods.md for each method's keys"


def _where(path: tuple[str, ...], lines: Mapping[tuple[str, ...], int] | None, source: str | None) -> str:
    line = (lines or {}).get(path)
    return f" ({source}:{line})" if line and source else ""


def _choices(param: TuneParam) -> tuple[list[Any], bool]:
    """Optuna's categorical values are scalars; a list or mapping choice travels as JSON text."""
    choices = list(param.choice or [])
    encoded = any(isinstance(c, (list, dict)) for c in choices)
    return ([json.dumps(c) for c in choices] if encoded else choices), encoded


def sample_params(trial: optuna.Trial, base: Config) -> dict[str, Any]:
    """Draw one value per entry of `tune.space` (method keys only where the trial's method has them)."""
    space = base.tune.space
    params: dict[str, Any] = {}
    method_type: str = base.method.type
    for key in _ordered(space):
        param = space[key]
        if key.startswith("method.") and key != "method.type" and not _method_key_applies(key, method_type):
            continue
        kind = param.kind
        if kind == "choice":
            choices, encoded = _choices(param)
            value = trial.suggest_categorical(key, choices)
            value = json.loads(value) if encoded else value
        elif kind in ("uniform", "log_uniform"):
            low, high = _float_range(param)
            value = trial.suggest_float(key, low, high, log=kind == "log_uniform", step=param.step)
        else:
            low, high = _int_range(param)
            value = trial.suggest_int(key, low, high, log=kind == "log_int", step=int(param.step or 1))
        params[key] = value
        if key == "method.type":
            method_type = str(value)
    return params


def grid_space(base: Config) -> dict[str, list[Any]]:
    """Every entry as the finite list of values the grid sampler walks (choices JSON-encoded as drawn)."""
    out: dict[str, list[Any]] = {}
    for key, param in base.tune.space.items():
        if param.kind == "choice":
            out[key] = _choices(param)[0]
        elif param.kind == "uniform":
            low, high = _float_range(param)
            step = param.step or (high - low)
            count = round((high - low) / step) + 1
            out[key] = [round(low + i * step, 12) for i in range(count) if low + i * step <= high + 1e-12]
        else:
            low, high = _int_range(param)
            out[key] = list(range(low, high + 1, int(param.step or 1)))
    return out
