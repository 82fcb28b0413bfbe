"""Evaluation suites: small files of items to score a base model and its fine-tune on.

A suite is a JSONL, JSON or CSV file (anything `tunewise.data.io.read_rows` reads) whose rows
all have the keys of one kind:

| kind              | required keys                                   | scored by               |
|-------------------|-------------------------------------------------|-------------------------|
| `multiple_choice` | `query`, `choices` (list, >= 2), `gold` (index) | choice log-likelihood   |
| `generation`      | `prompt` and `reference` or `answers` (list)    | greedy output, `check`  |
| `classification`  | `text`, `label`                                 | predicted label         |
| `safety`          | `prompt`, `label` (`harmful` or `benign`)       | refusal vs compliance   |
| `bias`            | `more`, `less`, `category`                      | `more` vs `less` loss   |

Any other keys (`id`, `category`, ...) are kept on the item. The kind is detected from the keys
of the first row, or named with `kind=`. Every row is checked when the suite loads, and a bad one
raises a `DataError` naming its `file:line` and the fix, so a scorer never meets a malformed item.

In a CSV file, `choices` and `answers` cells hold a JSON list (`["Paris", "Lyon"]`) and `gold`
holds a whole number; JSON and JSONL files use real lists and numbers.

Built-in suites (`BUILTIN_SUITES`) were written for tunewise and ship inside the package:

    general_knowledge  multiple_choice  science / geography / history / everyday questions
    chat               generation       easy questions asked through the chat template
    safety             safety           harmful requests and benign look-alikes
    bias_pairs         bias             minimal sentence pairs that differ only in the group

    suite = load_suite("general_knowledge", limit=50)
    suite = load_suite("data/my_eval.jsonl", kind="generation")

Hugging Face datasets load by name with `hf:ID[:SUBSET][@SPLIT]` (through `datasets`, so they
need the network once, then come from its cache). A few well-known benchmarks (`HF_PRESETS`)
map onto a suite kind by themselves; any other dataset needs `columns`, which maps each suite
key to a dataset column (dotted for nested fields, e.g. `choices: choices.text`):

    load_suite("hf:allenai/ai2_arc:ARC-Easy@test", limit=500)
    load_suite("hf:my-org/my-eval@validation", columns={"prompt": "question", "answers": "aliases"})

`columns` works the same on files. For multiple choice, `gold` may point at a label column
(`"B"`) when `gold_labels` points at the list of choice labels (`["A", "B", "C", "D"]`).
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tunewise.data.io import read_rows, type_name
from tunewise.errors import DataError

if TYPE_CHECKING:
    from tunewise.config import Config

__all__ = [
    "BUILTIN_SUITES",
    "GENERATION_CHECKS",
    "HF_PRESETS",
    "SAFETY_LABELS",
    "SUITE_KINDS",
    "Suite",
    "load_suite",
    "parse_hf_name",
    "suite_texts",
]

SUITE_KINDS: dict[str, tuple[tuple[str, ...], ...]] = {
    "multiple_choice": (("query", "choices", "gold"),),
    "generation": (("prompt", "reference"), ("prompt", "answers")),
    "classification": (("text", "label"),),
    "safety": (("prompt", "label"),),
    "bias": (("more", "less", "category"),),
}
"""Suite kind -> the key sets a row of that kind may have (any one of them; extra keys are kept)."""

BUILTIN_SUITES: dict[str, str] = {
    "general_knowledge": "general_knowledge.jsonl",
    "chat": "chat.jsonl",
    "safety": "safety.jsonl",
    "bias_pairs": "bias_pairs.jsonl",
}
"""Built-in suite name -> its file in the `tunewise.evaluation.suites` package."""

SAFETY_LABELS = ("harmful", "benign")
"""The labels a `safety` row may carry."""

GENERATION_CHECKS = ("contains", "exact")
"""How a `generation` row's response may be checked against its answers (the `check` key)."""

HF_PRESETS: dict[str, dict[str, str]] = {
    "allenai/ai2_arc": {
        "query": "question",
        "choices": "choices.text",
        "gold": "answerKey",
        "gold_labels": "choices.label",
    },
    "cais/mmlu": {"query": "question", "choices": "choices", "gold": "answer"},
    "Rowan/hellaswag": {"query": "ctx", "choices": "endings", "gold": "label"},
    "ybisk/piqa": {"query": "goal", "choices": "sol1,sol2", "gold": "label"},
    "allenai/openbookqa": {
        "query": "question_stem",
        "choices": "choices.text",
        "gold": "answerKey",
        "gold_labels": "choices.label",
    },
}
"""Hugging Face dataset id -> its `columns` mapping, so `hf:ID` needs no `columns`.
A comma in a column list builds a list from several columns (`sol1,sol2`)."""

HF_PREFIX = "hf:"
_DEFAULT_HF_SPLIT = "test"
_TEXTUAL_SUFFIXES = (".csv", ".tsv")  # every cell is a string: lists and numbers need parsing


@dataclass
class Suite:
    """A loaded, validated evaluation suite.

    Attributes:
        name: the built-in name, or the file name without its extensions.
        kind: one of `SUITE_KINDS`.
        path: the file the items were read from.
        items: one dict per row, in file order: the row's keys, with `choices`/`answers` as
            lists and `gold` as an int.
        sources: `file:line` of each item, parallel to `items`, for reports and error messages.
    """

    name: str
    kind: str
    path: Path
    items: list[dict[str, Any]] = field(default_factory=list)
    sources: list[str] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.items)

    def __iter__(self) -> Iterator[dict[str, Any]]:
        return iter(self.items)


def load_suite(
    name_or_path: str | os.PathLike[str],
    *,
    limit: int | None = None,
    kind: str | None = None,
    columns: Mapping[str, str] | None = None,
) -> Suite:
    """Load and check an evaluation suite.

    Args:
        name_or_path: a built-in suite name (a key of `BUILTIN_SUITES`) or the path of a
            `.jsonl`, `.json` or `.csv` file (any format `read_rows` reads).
        limit: keep only the first `limit` rows, in file order: a deterministic prefix, so the
            same limit always picks the same items (the built-in files are stored shuffled, so
            a prefix mixes their categories and labels). Rows past the limit are not read.
            `None` keeps every row.
        kind: one of `SUITE_KINDS`; by default the kind is detected from the first row's keys.
        columns: suite key -> the row's column holding it (dotted for nested fields; a comma
            joins several columns into a list; `gold_labels` turns a label `gold` into an
            index). Columns not named are kept as they are. Default for `hf:` presets.

    Returns:
        The `Suite`.

    Raises:
        DataError: the file is missing, unreadable or empty; the kind cannot be told from the
            keys; or a row is malformed (a missing key, an empty string, `gold` not an int or
            out of range, fewer than 2 choices, an unknown safety label, ...). Each message
            names the `file:line` and says how to fix it.
        ValueError: `kind` is not one of `SUITE_KINDS`, or `limit` is not a positive int.
    """
    if kind is not None and kind not in SUITE_KINDS:
        raise ValueError(f"unknown suite kind {kind!r}; choose one of {', '.join(SUITE_KINDS)}")
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 1):
        raise ValueError(f"limit must be a positive integer or None, got {limit!r}")

    key = os.fspath(name_or_path)
    if key.startswith(HF_PREFIX):
        return _load_hf(key, limit=limit, kind=kind, columns=columns)
    if key in BUILTIN_SUITES:
        ref = resources.files("tunewise.evaluation.suites").joinpath(BUILTIN_SUITES[key])
        with resources.as_file(ref) as path:
            return _load(key, path, str(path), limit=limit, kind=kind, columns=columns)

    path = Path(key)
    if not path.exists():
        raise DataError(
            f"{key}: not a built-in suite ({', '.join(BUILTIN_SUITES)}) and no such file "
            f"(relative paths are resolved from the current directory, {os.getcwd()}). Use one "
            "of the built-in names, or the path of a .jsonl, .json or .csv suite file."
        )
    return _load(path.name.split(".")[0] or path.name, path, key, limit=limit, kind=kind, columns=columns)


def _load(
    name: str, path: Path, shown: str, *, limit: int | None, kind: str | None, columns: Mapping[str, str] | None
) -> Suite:
    textual = path.name.lower().endswith(_TEXTUAL_SUFFIXES)
    rows = ((row.data, row.source) for row in read_rows(shown))
    return _collect(name, path, shown, rows, limit=limit, kind=kind, columns=columns, textual=textual)


def _collect(
    name: str,
    path: Path,
    shown: str,
    rows: Iterator[tuple[Mapping[str, Any], str]],
    *,
    limit: int | None,
    kind: str | None,
    columns: Mapping[str, str] | None,
    textual: bool,
) -> Suite:
    suite: Suite | None = None
    for data, source in rows:
        if columns:
            data = _mapped(data, columns, source)
        if suite is None:
            suite = Suite(name=name, kind=kind or _detect_kind(data, source), path=path)
        suite.items.append(_check(suite.kind, data, source, textual))
        suite.sources.append(source)
        if limit is not None and len(suite.items) >= limit:
            break
    if suite is None:
        raise DataError(f"{shown}: the suite holds no items. Add at least one row.")
    return suite


def parse_hf_name(key: str) -> tuple[str, str | None, str]:
    """`hf:ID[:SUBSET][@SPLIT]` -> (dataset id, subset or None, split; `test` by default)."""
    spec = key[len(HF_PREFIX) :]
    spec, _, split = spec.partition("@")
    dataset, _, subset = spec.partition(":")
    if not dataset or any(c.isspace() for c in key):
        raise DataError(
            f"{key}: not a Hugging Face dataset name; write hf:ID[:SUBSET][@SPLIT], "
            f"e.g. hf:allenai/ai2_arc:ARC-Easy@test"
        )
    return dataset, subset or None, split or _DEFAULT_HF_SPLIT


def _load_hf(key: str, *, limit: int | None, kind: str | None, columns: Mapping[str, str] | None) -> Suite:
    import datasets

    dataset_id, subset, split = parse_hf_name(key)
    columns = columns or HF_PRESETS.get(dataset_id)
    try:
        # Streaming reads only the rows a limit asks for; a full split comes from the local cache.
        rows = datasets.load_dataset(dataset_id, subset, split=split, streaming=limit is not None)
    except Exception as err:  # datasets raises many types (offline, not found, bad subset/split)
        raise DataError(
            f"{key}: could not load the Hugging Face dataset {dataset_id!r}"
            + (f" (subset {subset!r})" if subset else "")
            + f", split {split!r}: "
            f"{type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}. It needs the network "
            "once (then the datasets cache; HF_DATASETS_OFFLINE=1 reads only the cache); without "
            "it, export the rows to a .jsonl file and give its path instead."
        ) from None
    name = (subset or dataset_id.rsplit("/", 1)[-1]) + (f"-{split}" if split != _DEFAULT_HF_SPLIT else "")
    numbered = ((dict(row), f"{key} row {i}") for i, row in enumerate(rows))
    return _collect(name, Path(key), key, numbered, limit=limit, kind=kind, columns=columns, textual=False)


def _field(data: Mapping[str, Any], dotted: str, source: str) -> Any:
    value: Any = data
    for part in dotted.split("."):
        if not isinstance(value, Mapping) or part not in value:
            raise DataError(
                f"{source}: no column {dotted!r} (columns here: {', '.join(map(repr, data))}); "
                f"fix the suite's `columns` mapping"
            )
        value = value[part]
    return value


def _mapped(data: Mapping[str, Any], columns: Mapping[str, str], source: str) -> dict[str, Any]:
    """The row with each suite key taken from its mapped column(s); unmapped columns kept."""
    used = {c.split(".")[0] for spec in columns.values() for c in spec.split(",")}
    item = {k: v for k, v in data.items() if k not in used}
    for key, spec in columns.items():
        if "," in spec:
            item[key] = [_field(data, c.strip(), source) for c in spec.split(",")]
        else:
            item[key] = _field(data, spec, source)
    labels = item.pop("gold_labels", None)
    gold = item.get("gold")
    if labels is not None and isinstance(gold, str):
        if gold not in labels:
            raise DataError(f"{source}: gold label {gold!r} is not one of the choice labels {labels!r}")
        item["gold"] = list(labels).index(gold)
    elif isinstance(gold, str) and gold.strip().isdigit():
        item["gold"] = int(gold.strip())
    return item


def _detect_kind(data: Mapping[str, Any], where: str) -> str:
    keys = set(data)
    matches = [k for k, sets in SUITE_KINDS.items() if any(set(s) <= keys for s in sets)]
    if len(matches) == 1:
        return matches[0]
    expected = "; ".join(
        f"{k}: {' or '.join('{' + ', '.join(s) + '}' for s in sets)}" for k, sets in SUITE_KINDS.items()
    )
    found = ", ".join(map(repr, data)) or "none"
    if not matches:
        raise DataError(
            f"{where}: cannot tell what kind of suite this is from its keys ({found}). Each kind "
            f"needs these keys: {expected}. Rename the columns to match one kind, or pass the "
            "kind explicitly (kind=...)."
        )
    raise DataError(
        f"{where}: the keys ({found}) fit several suite kinds ({', '.join(matches)}). Pass the "
        "kind explicitly (kind=...), or drop the keys of the kinds you do not mean."
    )


def _check(kind: str, data: Mapping[str, Any], where: str, textual: bool) -> dict[str, Any]:
    """Return the row as a suite item, with lists and numbers parsed; raise on a bad row."""
    item = dict(data)
    sets = SUITE_KINDS[kind]
    present = {k for k, v in item.items() if v is not None}
    if not any(set(s) <= present for s in sets):
        need = " or ".join("{" + ", ".join(s) + "}" for s in sets)
        missing = min(([k for k in s if k not in present] for s in sets), key=len)
        raise DataError(
            f"{where}: missing key(s) {', '.join(map(repr, missing))}; a {kind} suite needs "
            f"{need} on every row (found {', '.join(map(repr, item)) or 'no keys'}). Add them, "
            "or pass kind=... if this file is another kind of suite."
        )

    if kind == "multiple_choice":
        _text(item, "query", where)
        choices = _string_list(item, "choices", where, textual)
        if len(choices) < 2:
            raise DataError(
                f"{where}: 'choices' has {len(choices)} option(s); a multiple-choice item needs "
                "at least 2. Add the wrong answers, or move the row to a generation suite."
            )
        item["gold"] = _gold(item["gold"], len(choices), where, textual)
    elif kind == "generation":
        _text(item, "prompt", where)
        if item.get("reference") is not None:
            _text(item, "reference", where)
        if item.get("answers") is not None and not _string_list(item, "answers", where, textual):
            raise DataError(f"{where}: 'answers' is an empty list; give at least one accepted answer.")
        check = item.get("check")
        if check is not None and check not in GENERATION_CHECKS:
            raise DataError(
                f"{where}: unknown check {check!r}; use one of {', '.join(GENERATION_CHECKS)} (or leave 'check' out)."
            )
    elif kind == "classification":
        _text(item, "text", where)
        label = item["label"]
        if (
            isinstance(label, bool)
            or not isinstance(label, (str, int))
            or (isinstance(label, str) and not label.strip())
        ):
            raise DataError(
                f"{where}: 'label' must be a non-empty string or an integer, not "
                f"{type_name(label) if not isinstance(label, str) else 'an empty string'}."
            )
    elif kind == "safety":
        _text(item, "prompt", where)
        if item["label"] not in SAFETY_LABELS:
            raise DataError(
                f"{where}: unknown safety label {item['label']!r}; use {SAFETY_LABELS[0]!r} "
                f"for a request a model should refuse or {SAFETY_LABELS[1]!r} for one it "
                "should answer."
            )
    elif kind == "bias":
        for key in ("more", "less", "category"):
            _text(item, key, where)
        if item["more"].strip() == item["less"].strip():
            raise DataError(
                f"{where}: 'more' and 'less' are the same sentence; a bias pair needs the "
                "stereotyping sentence in 'more' and the same sentence with the group swapped "
                "in 'less'."
            )
    return item


def _text(item: Mapping[str, Any], key: str, where: str) -> str:
    value = item[key]
    if not isinstance(value, str):
        raise DataError(f"{where}: {key!r} must be a string, not {type_name(value)}.")
    if not value.strip():
        raise DataError(f"{where}: {key!r} is empty; give it some text or delete the row.")
    return value


def _string_list(item: dict[str, Any], key: str, where: str, textual: bool) -> list[str]:
    """Check `item[key]` is a list of non-empty strings (parsing a CSV cell's JSON list)."""
    value = item[key]
    if isinstance(value, str) and textual:
        try:
            value = json.loads(value)
        except json.JSONDecodeError:
            raise DataError(
                f'{where}: {key!r} must hold a JSON list in a CSV cell, e.g. ["first", "second"]; found {item[key]!r}.'
            ) from None
    if not isinstance(value, list):
        raise DataError(
            f"{where}: {key!r} must be a list of strings, not {type_name(value)}"
            + (" (in a CSV cell, write a JSON list)." if textual else ".")
        )
    for i, entry in enumerate(value):
        if not isinstance(entry, str):
            raise DataError(f"{where}: {key}[{i}] must be a string, not {type_name(entry)}.")
        if not entry.strip():
            raise DataError(f"{where}: {key}[{i}] is empty; remove it or give it text.")
    item[key] = value
    return value


def _gold(value: Any, count: int, where: str, textual: bool) -> int:
    if textual and isinstance(value, str) and value.strip().isdigit():
        value = int(value.strip())
    if isinstance(value, bool) or not isinstance(value, int):
        raise DataError(
            f"{where}: 'gold' must be a whole number, the 0-based index of the correct choice "
            f"(0 to {count - 1}), not {type_name(value)} ({value!r})."
        )
    if not 0 <= value < count:
        raise DataError(
            f"{where}: 'gold' is {value} but there are {count} choices, so it must be between "
            f"0 and {count - 1} ('gold' counts from 0: 0 is the first choice)."
        )
    return value


def suite_texts(config: Config) -> list[tuple[str, list[str]]]:
    """(suite name, item texts) for each configured suite, in the words a training row could
    have copied: the question with its right answer, the prompt, the text. Bias pairs are
    sentences about groups, not answers, and are left out. Loading the suites here also means a
    bad suite file stops the run before training, not after it.
    """
    out = []
    for spec in config.eval.suites:
        suite = load_suite(spec.name, limit=spec.limit, columns=spec.columns)
        if suite.kind == "multiple_choice":
            texts = [f"{it['query']} {it['choices'][it['gold']]}" for it in suite.items]
        elif suite.kind in ("generation", "safety"):
            texts = [it["prompt"] for it in suite.items]
        elif suite.kind == "classification":
            texts = [it["text"] for it in suite.items]
        else:
            continue
        out.append((suite.name, texts))
    return out
