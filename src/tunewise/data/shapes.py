"""Recognise what a dataset's rows look like and turn each into one training `Example`.

Five shapes of supervised fine-tuning data are accepted, told apart by their keys:

| shape               | keys (optional ones in brackets)                                    |
|---------------------|---------------------------------------------------------------------|
| `chat`              | `messages`: [{role, content}], roles system/user/assistant          |
| `sharegpt`          | `conversations`: [{from, value}], from human/gpt/system; [`system`] |
| `alpaca`            | `instruction`, `output`; [`input`, `system`, `history`]             |
| `prompt_completion` | `prompt`, `completion` (string or message list); [`system`]         |
| `text`              | `text` (trained on as plain text, no chat template)                 |

ShareGPT also accepts user/assistant in `from`; alpaca `history` is LLaMA-Factory's list of
earlier `[user, assistant]` pairs.

Every shape but `text` becomes a conversation of `{"role", "content"}` messages that the chat
template renders later (`templates.py`). The rules a conversation must follow, so that its
assistant turns can be trained on without surprises:

- roles are `system`, `user` and `assistant`; a system message may only come first;
- after it, turns alternate user, assistant, user, ... starting with user;
- user and assistant messages are non-empty (a system message may be empty: that is how a
  user suppresses a template's default system prompt);
- there is at least one assistant turn — a row without one has nothing to train on.
- A trailing user turn after the last assistant turn is allowed and kept: it is rendered as
  context and never trained on (except with `train_on: everything`). Rejecting it would throw
  away the earlier, valid assistant turns; dropping it silently would change the row.

A row that breaks a rule raises `BadRow` with a precise reason. `load_examples` either stops at
the first one (`on_bad_rows="error"`, naming file, line and reason) or collects them as
`Reject`s (`on_bad_rows="skip"`) for the rejects file — never a silent drop.
"""

from __future__ import annotations

import json
import random
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from itertools import chain, islice
from pathlib import Path
from typing import Any, Literal, TypeVar

from tunewise.data.io import Row, read_rows, type_name
from tunewise.errors import ConfigError, DataError
from tunewise.rundir import write_text

__all__ = [
    "SHAPES",
    "BadRow",
    "Example",
    "Reject",
    "check_renames",
    "detect_shape",
    "load_examples",
    "rename_columns",
    "required_str",
    "split_examples",
    "to_example",
    "write_rejects",
]

SHAPES: dict[str, str] = {
    "chat": "messages: [{role, content}, ...]",
    "sharegpt": "conversations: [{from, value}, ...]",
    "alpaca": "instruction, output (input, system, history optional)",
    "prompt_completion": "prompt, completion (system optional)",
    "text": "text",
}
"""Accepted shapes and the keys that identify each, in detection order."""

_ROLES = ("system", "user", "assistant")
_SHAREGPT_ROLES = {
    "human": "user",
    "user": "user",
    "gpt": "assistant",
    "assistant": "assistant",
    "system": "system",
}
_DETECT_SAMPLE = 100  # rows looked at to detect the shape and check column renames

T = TypeVar("T")


@dataclass(frozen=True)
class Example:
    """One training example, normalised from any shape.

    Exactly one of `messages` and `text` is set.

    Attributes:
        source: where the row came from (`file:line`).
        messages: the conversation as `{"role", "content"}` dicts, for every shape but `text`.
        text: the plain text, for the `text` shape.
    """

    source: str
    messages: tuple[dict[str, str], ...] | None = None
    text: str | None = None


@dataclass(frozen=True)
class Reject:
    """A row left out, kept with the reason so nothing the user gave is lost.

    Attributes:
        source: where the row came from (`file:line`).
        reason: why it was left out, in words a user can act on.
        row: the row exactly as read from the file.
    """

    source: str
    reason: str
    row: dict[str, Any]


class BadRow(DataError):
    """One row does not fit its shape. `load_examples` turns it into an error or a `Reject`.

    Attributes:
        reason: what is wrong, e.g. `"no assistant turn: nothing to train on"`.
        source: the row's `file:line`, when known.
    """

    def __init__(self, reason: str, source: str | None = None) -> None:
        self.reason = reason
        self.source = source
        super().__init__(f"{source}: {reason}" if source else reason)


# --------------------------------------------------------------------------- detection


def detect_shape(first_rows: Sequence[Row | Mapping[str, Any]], path: str | Path) -> str:
    """Tell the shape of a dataset from the keys of its first rows.

    Preference data (`chosen`/`rejected`), KTO data (`label` next to a conversation or a
    completion) and classification data (`text` + `label`) are refused rather than read as SFT
    data, because training on them as plain demonstrations would also teach the rejected
    answers (or ignore the labels). Setting the shape explicitly overrides this.

    Args:
        first_rows: a sample of rows (`Row`s or plain dicts); the union of their keys is used.
        path: the dataset path, for the error message.

    Returns:
        One of `SHAPES`.

    Raises:
        DataError: no shape matches, or the data is for another kind of training.
    """
    keys: set[str] = set()
    for row in first_rows:
        keys.update(row.data if isinstance(row, Row) else row)

    def other_kind(kind: str, use: str) -> DataError:
        return DataError(
            f"{path}: the columns ({_keys(keys)}) look like {kind}, not supervised fine-tuning "
            f"data; {use} To train on the rows as plain demonstrations anyway, set data.shape "
            "explicitly."
        )

    if {"chosen", "rejected"} <= keys:
        raise other_kind("preference pairs", "train on them with `tunewise align` (DPO, ORPO, reward).")
    if "label" in keys and ({"messages", "completion", "conversations"} & keys):
        raise other_kind(
            "KTO data (a completion with a good/bad label)",
            "rows labelled bad would be learned as good answers; use `tunewise align` (KTO).",
        )
    if "messages" in keys:
        return "chat"
    if "conversations" in keys:
        return "sharegpt"
    if {"instruction", "output"} <= keys:
        return "alpaca"
    if {"prompt", "completion"} <= keys:
        return "prompt_completion"
    if "text" in keys:
        if "label" in keys:
            raise other_kind(
                "classification data (text + label)",
                "language-model training on it would ignore the labels; use a classification task instead.",
            )
        return "text"
    shapes = "; ".join(f"{name} ({k})" for name, k in SHAPES.items())
    raise DataError(
        f"{path}: cannot tell the dataset's shape from its columns ({_keys(keys)}). Accepted "
        f"shapes: {shapes}. Rename columns with data.columns (e.g. data.columns: "
        "{question: prompt, answer: completion}), or set data.shape."
    )


def _keys(keys: Iterable[str]) -> str:
    return ", ".join(sorted(keys)) or "none"


# --------------------------------------------------------------------------- one row


def to_example(row: Row, shape: str) -> Example:
    """Normalise one row of a known shape into an `Example`.

    Alpaca becomes `[system?, user: instruction + "\\n\\n" + input (when input is non-empty),
    assistant: output]`, with any `history` pairs before it; ShareGPT roles are mapped
    (human → user, gpt → assistant); a string prompt/completion becomes one user and one
    assistant message. See the module docstring for the rules a conversation must follow.

    Args:
        row: the row (after any column renaming).
        shape: one of `SHAPES`.

    Returns:
        The example.

    Raises:
        BadRow: the row does not fit the shape; `reason` says exactly how.
    """
    try:
        return _CONVERTERS[shape](row.source, row.data)
    except BadRow as e:
        raise BadRow(e.reason, row.source) from None


def _chat(source: str, data: Mapping[str, Any]) -> Example:
    messages = _message_list(data, "messages")
    checked = [_message(m, i, "role", "content", None) for i, m in enumerate(messages, 1)]
    return Example(source, messages=_conversation(checked))


def _sharegpt(source: str, data: Mapping[str, Any]) -> Example:
    turns = _message_list(data, "conversations")
    messages = []
    for i, turn in enumerate(turns, 1):
        # Some exports write ShareGPT rows with OpenAI keys; accept both spellings.
        role_key, content_key = (
            ("role", "content") if isinstance(turn, dict) and "from" not in turn else ("from", "value")
        )
        messages.append(_message(turn, i, role_key, content_key, _SHAREGPT_ROLES))
    system = _optional_str(data, "system")
    if system:
        if messages and messages[0]["role"] == "system":
            raise BadRow("a system prompt is given twice: in `system` and as the first turn")
        messages.insert(0, {"role": "system", "content": system})
    return Example(source, messages=_conversation(messages))


def _alpaca(source: str, data: Mapping[str, Any]) -> Example:
    instruction = required_str(data, "instruction")
    extra = _optional_str(data, "input")
    output = required_str(data, "output")
    messages: list[dict[str, str]] = []
    system = _optional_str(data, "system")
    if system:
        messages.append({"role": "system", "content": system})
    history = data.get("history")
    if history is not None:
        if not isinstance(history, list) or not all(isinstance(p, (list, tuple)) and len(p) == 2 for p in history):
            raise BadRow("`history` must be a list of [user, assistant] pairs")
        for user, assistant in history:
            messages += [
                {"role": "user", "content": user},
                {"role": "assistant", "content": assistant},
            ]
    user = f"{instruction}\n\n{extra}" if extra and extra.strip() else instruction
    messages += [{"role": "user", "content": user}, {"role": "assistant", "content": output}]
    return Example(source, messages=_conversation(messages))


def _prompt_completion(source: str, data: Mapping[str, Any]) -> Example:
    messages: list[dict[str, str]] = []
    system = _optional_str(data, "system")
    if system:
        messages.append({"role": "system", "content": system})
    for key, role in (("prompt", "user"), ("completion", "assistant")):
        value = data.get(key)
        if value is None:
            raise BadRow(f"missing key `{key}`")
        if isinstance(value, str):
            messages.append({"role": role, "content": value})
        elif isinstance(value, list):  # TRL's conversational prompt-completion
            start = len(messages)
            messages += [_message(m, start + i, "role", "content", None) for i, m in enumerate(value, 1)]
        else:
            raise BadRow(f"`{key}` must be a string or a list of messages, not {type_name(value)}")
    return Example(source, messages=_conversation(messages))


def _text(source: str, data: Mapping[str, Any]) -> Example:
    return Example(source, text=required_str(data, "text"))


_CONVERTERS = {
    "chat": _chat,
    "sharegpt": _sharegpt,
    "alpaca": _alpaca,
    "prompt_completion": _prompt_completion,
    "text": _text,
}


def required_str(data: Mapping[str, Any], key: str) -> str:
    """The string at `key` of a row.

    Raises:
        BadRow: the key is missing, or its value is not a string or is empty.
    """
    if key not in data or data[key] is None:
        raise BadRow(f"missing key `{key}`")
    value = data[key]
    if not isinstance(value, str):
        raise BadRow(f"`{key}` must be a string, not {type_name(value)} ({value!r:.40})")
    if not value.strip():
        raise BadRow(f"`{key}` is empty")
    return value


def _optional_str(data: Mapping[str, Any], key: str) -> str | None:
    value = data.get(key)
    if value is None:
        return None
    if not isinstance(value, str):
        raise BadRow(f"`{key}` must be a string, not {type_name(value)} ({value!r:.40})")
    return value


def _message_list(data: Mapping[str, Any], key: str) -> list[Any]:
    if key not in data or data[key] is None:
        raise BadRow(f"missing key `{key}`")
    value = data[key]
    if isinstance(value, str):
        # CSV cells (and some Parquet exports) hold the message list as JSON text.
        try:
            value = json.loads(value)
        except json.JSONDecodeError:
            raise BadRow(f"`{key}` must be a list of messages, not a string") from None
    if not isinstance(value, list):
        raise BadRow(f"`{key}` must be a list of messages, not {type_name(value)}")
    if not value:
        raise BadRow(f"`{key}` is an empty list")
    return value


def _message(m: Any, i: int, role_key: str, content_key: str, role_map: Mapping[str, str] | None) -> dict[str, str]:
    if not isinstance(m, dict):
        raise BadRow(f"message {i} must be an object with `{role_key}` and `{content_key}`, not {type_name(m)}")
    for k in (role_key, content_key):
        if k not in m or m[k] is None:
            raise BadRow(f"message {i} has no `{k}`")
    role, content = m[role_key], m[content_key]
    if not isinstance(content, str):
        raise BadRow(f"message {i}: `{content_key}` must be a string, not {type_name(content)}")
    accepted = role_map if role_map is not None else {r: r for r in _ROLES}
    if not isinstance(role, str) or role not in accepted:
        raise BadRow(f"message {i} has unknown role {role!r}; accepted: {', '.join(accepted)}")
    return {"role": accepted[role], "content": content}


def _conversation(messages: list[dict[str, str]]) -> tuple[dict[str, str], ...]:
    """Check the conversation rules of the module docstring; return it as a tuple."""
    for i, m in enumerate(messages, 1):
        if m["role"] == "system":
            if i != 1:
                raise BadRow(f"message {i} is a system message; only the first may be one")
        elif not isinstance(m["content"], str) or not m["content"].strip():
            raise BadRow(f"message {i} ({m['role']}) has empty content")
    turns = messages[1:] if messages and messages[0]["role"] == "system" else messages
    offset = len(messages) - len(turns)
    if not turns:
        raise BadRow("no user or assistant turn: nothing to train on")
    for j, m in enumerate(turns):
        expected = "user" if j % 2 == 0 else "assistant"
        if m["role"] != expected:
            # Templates such as Mistral's refuse non-alternating chats, and a turn-by-turn loss
            # mask needs each assistant turn to answer exactly one user turn.
            raise BadRow(
                f"message {j + 1 + offset} is {m['role']!r} where {expected!r} was expected; "
                "turns must alternate user, assistant, user, ... starting with user"
            )
    if not any(m["role"] == "assistant" for m in turns):
        raise BadRow("no assistant turn: nothing to train on")
    return tuple(messages)


# --------------------------------------------------------------------------- whole files


def load_examples(
    path: str | Path,
    *,
    shape: str = "auto",
    columns: Mapping[str, str] | None = None,
    on_bad_rows: Literal["error", "skip"] = "error",
) -> tuple[list[Example], list[Reject]]:
    """Read a dataset file and normalise every row into an `Example`.

    Args:
        path: any file `read_rows` accepts.
        shape: one of `SHAPES`, or `"auto"` to detect it from the first rows' keys.
        columns: renames applied to every row before anything else, e.g.
            `{"question": "prompt", "answer": "completion"}`.
        on_bad_rows: `"error"` stops at the first bad row; `"skip"` leaves bad rows out and
            returns them as rejects.

    Returns:
        `(examples, rejects)`, both in file order.

    Raises:
        DataError: the file cannot be read, its shape cannot be told, a row is bad and
            `on_bad_rows` is `"error"`, or no row at all is usable.
        ConfigError: `shape`, `columns` or `on_bad_rows` is invalid.
    """
    if shape != "auto" and shape not in SHAPES:
        raise ConfigError([f"data.shape: unknown shape {shape!r}; use auto or one of {', '.join(SHAPES)}"])
    if on_bad_rows not in ("error", "skip"):
        raise ConfigError([f"data.on_bad_rows: must be 'error' or 'skip', not {on_bad_rows!r}"])

    rows = read_rows(path)
    head = list(islice(rows, _DETECT_SAMPLE))
    renames = dict(columns or {})
    if renames:
        check_renames(head, renames, path)
    detected = shape == "auto"
    if detected:
        shape = detect_shape([rename_columns(r.data, renames) for r in head], path)

    examples: list[Example] = []
    rejects: list[Reject] = []
    for row in chain(head, rows):
        try:
            examples.append(to_example(Row(row.source, rename_columns(row.data, renames)), shape))
        except BadRow as e:
            if on_bad_rows == "error":
                how = "detected from its columns" if detected else "set by data.shape"
                raise DataError(
                    f"{row.source}: {e.reason} (the file is read as shape {shape!r}, {how}). "
                    "Fix this row, or set `data.on_bad_rows: skip` to leave such rows out — "
                    "each is then written to the rejects file with its reason."
                ) from None
            # The reject keeps the row as the user wrote it, before any renaming.
            rejects.append(Reject(row.source, e.reason, row.data))
    if not examples:
        first = "; ".join(f"{r.source}: {r.reason}" for r in rejects[:3])
        raise DataError(
            f"{path}: no usable rows — all {len(rejects)} were rejected as shape {shape!r} "
            f"(first: {first}). Check data.shape and data.columns against the file."
        )
    return examples, rejects


def check_renames(head: list[Row], renames: Mapping[str, str], path: str | Path) -> None:
    """Raise a ConfigError when `data.columns` names a column the first rows lack, or would overwrite one."""
    keys: set[str] = set()
    for r in head:
        keys.update(r.data)
    problems = []
    for old, new in renames.items():
        if old not in keys:
            problems.append(f"data.columns: {path} has no column {old!r} (columns: {_keys(keys)})")
        elif new in keys and new not in renames:
            problems.append(
                f"data.columns: renaming {old!r} to {new!r} would overwrite the existing "
                f"column {new!r} in {path}; rename or drop that one too"
            )
    if problems:
        raise ConfigError(problems)


def rename_columns(data: dict[str, Any], renames: Mapping[str, str]) -> dict[str, Any]:
    """The row with its columns renamed by `data.columns` (`{old: new}`)."""
    if not renames:
        return data
    return {renames.get(k, k): v for k, v in data.items()}


def split_examples(
    examples: Sequence[T], *, eval_fraction: float, test_fraction: float, seed: int
) -> tuple[list[T], list[T], list[T]]:
    """Split examples into train, eval and test sets, reproducibly.

    The split is a seeded permutation: the same examples, fractions and seed always give the
    same split, and the three parts are disjoint and together hold every example (each keeps
    file order). The test set is drawn first, so changing `eval_fraction` never changes it.
    Sizes are rounded to the nearest row; a positive fraction gets at least one row when the
    dataset has room for it, and the train set always keeps at least one row.

    Args:
        examples: anything indexable (examples, rows, ids).
        eval_fraction: share for evaluation during training, in [0, 1).
        test_fraction: share held out for the final test, in [0, 1).
        seed: the permutation's seed.

    Returns:
        `(train, eval, test)`.

    Raises:
        ConfigError: a fraction is out of range or they sum to 1 or more.
    """
    problems = [
        f"data.{name}: must be at least 0 and below 1, not {value}"
        for name, value in (("eval_fraction", eval_fraction), ("test_fraction", test_fraction))
        if not 0 <= value < 1
    ]
    if not problems and eval_fraction + test_fraction >= 1:
        problems.append(
            f"data.eval_fraction + data.test_fraction must be below 1 (leaving rows to train "
            f"on), not {eval_fraction} + {test_fraction}"
        )
    if problems:
        raise ConfigError(problems)

    n = len(examples)

    def size(fraction: float) -> int:
        k = int(n * fraction + 0.5)  # round half up, unlike round()'s banker's rounding
        return max(k, 1) if fraction > 0 else 0

    n_test, n_eval = size(test_fraction), size(eval_fraction)
    # Keep at least one row to train on. Shrink test before eval: eval drives early stopping
    # and the forgetting monitor during training, so it is the one promised a row.
    excess = n_test + n_eval - max(n - 1, 0)
    if excess > 0:
        cut = min(excess, n_test)
        n_test -= cut
        n_eval -= excess - cut

    order = list(range(n))
    random.Random(seed).shuffle(order)
    test = sorted(order[:n_test])
    evaluation = sorted(order[n_test : n_test + n_eval])
    train = sorted(order[n_test + n_eval :])
    return ([examples[i] for i in train], [examples[i] for i in evaluation], [examples[i] for i in test])


def write_rejects(rejects: Iterable[Reject], path: str | Path) -> Path:
    """Write rejected rows to a JSONL file, one `{"source", "reason", "row"}` per line, atomically and
    only in the writer process (`tunewise.rundir.write_text`).

    Args:
        rejects: the rows left out.
        path: the file to write (parent directories are created); written even when there are
            no rejects, so its presence says the check ran.

    Returns:
        The path written.
    """
    # default=str: Parquet and HF rows can hold dates or bytes that JSON cannot.
    lines = (
        json.dumps({"source": r.source, "reason": r.reason, "row": r.row}, ensure_ascii=False, default=str) + "\n"
        for r in rejects
    )
    return write_text(path, "".join(lines))
