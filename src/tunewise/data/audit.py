"""The data audit: what is wrong with a dataset, counted, with the rows to look at.

`tunewise data audit` runs it on a config's data or on files; `tunewise train` and `run` run it
on the prepared rows before the first step (`data.check.enabled`), stop on the findings named in
`data.check.block_on`, and keep it as `audit.json` in the run directory for the report card.

| finding | what it means |
|---|---|
| `duplicates` | training rows that repeat another exactly (after `normalise`) or nearly (Jaccard of word 3-grams ≥ `near_duplicate_threshold`) |
| `eval_leakage` / `test_leakage` | held-out rows that (nearly) repeat a training row: the held-out loss measures memory there |
| `contamination` | evaluation-suite items sharing `contamination_ngram` consecutive words with a training row |
| `format` | rows that break their shape's rules (missing keys, roles out of order, empty turns, mixed schemas) |
| `empty` / `too_short` | an answer with no words / fewer than `min_tokens` tokens |
| `too_long` / `truncated` | rows over `max_tokens` tokens / over `data.max_length`, whose tail is cut in training |
| `repetition` | answers breaking a Gopher repetition rule (repeated lines, a dominant 2-gram, repeated 10-grams) |
| `boilerplate` | an opening or closing line shared by many rows ("As an AI language model, ...") |
| `non_text` | answers of 40+ characters that are less than half letters and spaces |
| `pii` / `secrets` | e-mail, phone, card (Luhn), IBAN (mod 97), IP, national ids / API keys, tokens, private keys |
| `toxicity` | answers the offensive-language classifier scores at or above `toxicity_threshold` |
| `label_imbalance` | classification or KTO labels whose largest class is `imbalance_ratio` times the smallest |
| `preference_bias` | preference pairs whose chosen answer equals the rejected one, or is nearly always the longer |
| `demographic_imbalance` | a lexicon category mentioned much more for one group than another, per role or label |

Rows are looked at one batch at a time; what is kept per row is a hash, a MinHash signature and
its `file:line`, so a large file is audited in bounded memory (texts are read a second time
only for rows whose signatures collide).

    audit = audit_files({"train": ["train.jsonl"]}, config.data.check, count_tokens=counter)
    audit.findings        # [Finding(kind="pii", count=3, ...)]
    audit.blocking        # the findings named in block_on
"""

from __future__ import annotations

import re
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from itertools import chain, islice
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from tunewise.data.dedup import StreamDeduper, example_text
from tunewise.data.demographics import LEXICON, PAIRED, mentions
from tunewise.data.io import Row, read_rows
from tunewise.data.pii import find_pii
from tunewise.data.quality import load_toxicity_classifier, non_text, repetition, toxicity_scores
from tunewise.data.shapes import BadRow, Example, detect_shape, to_example
from tunewise.errors import DataError
from tunewise.extras import MissingExtraError
from tunewise.rundir import RunDir, write_json

if TYPE_CHECKING:
    from rich.console import Console

    from tunewise.config import CheckConfig, Config

__all__ = [
    "AUDIT_KINDS",
    "Audit",
    "Finding",
    "Item",
    "Source",
    "SuiteTexts",
    "audit",
    "audit_files",
    "file_items",
    "items_from_examples",
    "print_audit",
    "read_items",
]

SuiteTexts = Callable[["Config"], Sequence[tuple[str, list[str]]]]
"""What gives the eval suites' texts of a config, for the contamination check: the evaluation layer's
`tunewise.evaluation.suite.suite_texts`, passed in by the caller (data sits below evaluation)."""

AUDIT_KINDS = (
    "duplicates",
    "eval_leakage",
    "test_leakage",
    "contamination",
    "format",
    "empty",
    "too_short",
    "too_long",
    "truncated",
    "repetition",
    "boilerplate",
    "non_text",
    "pii",
    "secrets",
    "toxicity",
    "label_imbalance",
    "preference_bias",
    "demographic_imbalance",
)
"""Every finding the audit can report, in report order (the values `data.check.block_on` accepts)."""

EXAMPLES_KEPT = 5
_BATCH = 1024
_WORD = re.compile(r"\w+")
_BOILERPLATE_MIN_WORDS = 4
_DEMOGRAPHIC_MIN = 20
_LABEL_SHIFT = 0.25
_LENGTH_BIAS = 0.8  # chosen longer than rejected in more than 80 % (or fewer than 20 %) of pairs


@dataclass
class Finding:
    """One problem found, with how many rows it touches and where to look.

    Attributes:
        kind: one of `AUDIT_KINDS`.
        count: rows (or suite items) affected.
        message: what was found and what it does to the results, in plain words.
        examples: `file:line` of a few affected rows, with what was found there.
        detail: numbers behind the message (per kind, per split, per label...).
    """

    kind: str
    count: int
    message: str
    examples: list[str] = field(default_factory=list)
    detail: dict[str, Any] = field(default_factory=dict)


@dataclass
class Audit:
    """What the audit found; `findings` is empty when nothing was.

    Attributes:
        rows: rows audited per split.
        threshold: the near-duplicate threshold used.
        findings: in `AUDIT_KINDS` order.
        block_on: the kinds that stop a run.
        tokens: row length statistics in tokens (train split): p50, p95, max.
        skipped: checks that were asked for but could not run → why, and what to install (e.g.
            `toxicity` without the `tunewise[toxicity]` extra). A skipped check found nothing
            because it looked at nothing.
    """

    rows: dict[str, int]
    threshold: float
    findings: list[Finding] = field(default_factory=list)
    block_on: list[str] = field(default_factory=list)
    tokens: dict[str, int] = field(default_factory=dict)
    skipped: dict[str, str] = field(default_factory=dict)

    @property
    def blocking(self) -> list[Finding]:
        return [f for f in self.findings if f.kind in self.block_on]

    def to_dict(self) -> dict[str, Any]:
        out = {
            "rows": self.rows,
            "threshold": self.threshold,
            "block_on": self.block_on,
            "tokens": self.tokens,
            "findings": [asdict(f) for f in self.findings],
        }
        if self.skipped:  # only then: audit.json of a complete audit keeps its keys
            out["skipped"] = self.skipped
        return out

    def write(self, path: str | Path) -> Path:
        """Write `audit.json` (parents created)."""
        return write_json(path, self.to_dict(), ensure_ascii=False)


@dataclass
class Item:
    """One row as the audit sees it.

    Attributes:
        source: `file:line`.
        text: what duplicate and leakage detection compare (`example_text`, without the system prompt).
        roles: role ("user", "assistant", "system", "text") -> that role's text, joined.
        answer: the text whose length `empty` and `too_short` judge (the last answer, or the text).
        label: a classification or KTO label, as text.
        pair: (chosen, rejected) of a preference row.
        tokens: the row's length in tokens, when already known (rendered rows).
        truncated: whether rendering cut the row, when known.
        problem: why the row breaks its shape (a `format` finding); the other checks skip it.
    """

    source: str
    text: str = ""
    roles: dict[str, str] = field(default_factory=dict)
    answer: str = ""
    label: str | None = None
    pair: tuple[str, str] | None = None
    tokens: int | None = None
    truncated: bool | None = None
    problem: str | None = None


@dataclass
class Source:
    """The rows of one split; `items()` can be called again (the audit reads twice)."""

    split: str
    items: Callable[[], Iterable[Item]]


# --------------------------------------------------------------------------- building items


def items_from_examples(
    examples: Sequence[Example],
    *,
    labels: Sequence[str | None] | None = None,
    lengths: dict[str, tuple[int, bool]] | None = None,
) -> list[Item]:
    """Items of loaded examples; `lengths` maps a source to its rendered (tokens, truncated)."""
    out = []
    for i, ex in enumerate(examples):
        item = _example_item(ex)
        if labels is not None:
            item.label = labels[i]
        if lengths and ex.source in lengths:
            item.tokens, item.truncated = lengths[ex.source]
        out.append(item)
    return out


def _example_item(ex: Example) -> Item:
    if ex.messages is None:
        text = ex.text or ""
        return Item(ex.source, text=text, roles={"text": text}, answer=text)
    roles: dict[str, list[str]] = defaultdict(list)
    for m in ex.messages:
        roles[m["role"]].append(m["content"])
    answers = roles.get("assistant") or [""]
    return Item(ex.source, text=example_text(ex), roles={r: "\n".join(v) for r, v in roles.items()}, answer=answers[-1])


def _content(value: Any) -> str:
    """Text of a preference field: a string, a message, or a list of messages."""
    if isinstance(value, str):
        return value
    if isinstance(value, dict):
        inner = value.get("content", value.get("value"))
        if isinstance(inner, str):
            return inner
    if isinstance(value, list) and value:
        return "\n".join(_content(v) for v in value)
    raise BadRow(f"expected text or messages, not {type(value).__name__}")


def detect_kind(head: Sequence[Row], path: str | Path, shape: str = "auto") -> str:
    """The shape of a file for the audit: an SFT shape, or classification, preference, kto."""
    if shape != "auto":
        return shape
    # Row by row, the most common kind wins: a file mixing schemas is read as its majority, and
    # each row of another schema is a `format` finding naming its line, not a wrong guess for all.
    votes: Counter[str] = Counter()
    for r in head:
        try:
            votes[_kind_of(r.data.keys(), path)] += 1
        except DataError:
            continue
    if not votes:
        return _kind_of({k for r in head for k in r.data}, path)  # raises, naming the columns
    return votes.most_common(1)[0][0]


def _kind_of(keys: Iterable[str], path: str | Path) -> str:
    keys = set(keys)
    if {"chosen", "rejected"} <= keys:
        return "preference"
    if "label" in keys and ({"messages", "completion", "conversations"} & keys):
        return "kto"
    if {"text", "label"} <= keys:
        return "classification"
    return detect_shape([dict.fromkeys(keys)], path)


def row_item(row: Row, kind: str) -> Item:
    """One raw row as an `Item`; a row that does not fit `kind` gets `problem` set."""
    data = row.data
    try:
        if kind == "classification":
            text, label = data.get("text"), data.get("label")
            if not isinstance(text, str):
                raise BadRow("missing key `text`" if text is None else "`text` must be a string")
            if label is None or isinstance(label, (dict, list)):
                raise BadRow("missing key `label`" if label is None else "`label` must be a string or number")
            return Item(row.source, text=text, roles={"text": text}, answer=text, label=str(label))
        if kind == "preference":
            prompt_value = next(
                (data[k] for k in ("prompt", "conversations", "messages", "instruction") if data.get(k) is not None), ""
            )
            prompt = _content(prompt_value) if prompt_value != "" else ""
            for key in ("chosen", "rejected"):
                if data.get(key) is None:
                    raise BadRow(f"missing key `{key}`")
            chosen, rejected = _content(data["chosen"]), _content(data["rejected"])
            return Item(
                row.source,
                text=f"{prompt}\n{chosen}",
                roles={"user": prompt, "assistant": chosen},
                answer=chosen,
                pair=(chosen, rejected),
            )
        if kind == "kto":
            label = data.get("label")
            if not isinstance(label, (bool, str, int)):
                raise BadRow("missing key `label`" if label is None else "`label` must be true or false")
            inner = "chat" if "messages" in data else "sharegpt" if "conversations" in data else "prompt_completion"
            rest = {k: v for k, v in data.items() if k != "label"}
            item = _example_item(to_example(Row(row.source, rest), inner))
            item.label = str(label).lower()
            return item
        return _example_item(to_example(row, kind))
    except BadRow as e:
        try:
            own = _kind_of(data.keys(), row.source)
        except DataError:
            own = kind
        mixed = f"; its keys ({', '.join(sorted(data))}) are those of {own} rows: mixed schemas" if own != kind else ""
        return Item(row.source, problem=f"{e.reason} (read as {kind}, like the file's first rows{mixed})")


def file_items(path: str | Path, *, shape: str = "auto", columns: dict[str, str] | None = None) -> Source:
    """A re-readable stream of a file's items (the split is set by the caller)."""
    head = list(islice(read_rows(path), 100))
    renames = dict(columns or {})

    def rename(r: Row) -> Row:
        return Row(r.source, {renames.get(k, k): v for k, v in r.data.items()}) if renames else r

    kind = detect_kind([rename(r) for r in head], path, shape)

    def items() -> Iterator[Item]:
        for r in read_rows(path):
            yield row_item(rename(r), kind)

    return Source("train", items)


def read_items(source: Source) -> list[Item]:
    """All items of a source, in order (for small data and tests)."""
    return list(source.items())


# --------------------------------------------------------------------------- the audit


@dataclass
class _Examples:
    """Counts and the first few `file:line` examples of one finding."""

    count: int = 0
    examples: list[str] = field(default_factory=list)
    detail: dict[str, Any] = field(default_factory=dict)

    def add(self, example: str) -> None:
        self.count += 1
        if len(self.examples) < EXAMPLES_KEPT:
            self.examples.append(example)


def _clip(text: str, n: int = 60) -> str:
    text = " ".join(text.split())
    return text if len(text) <= n else text[: n - 1] + "…"


class _Contamination:
    """Suite items' word n-grams, to test each training row against as it streams by."""

    def __init__(self, suites: Sequence[tuple[str, list[str]]], n: int) -> None:
        self.n = n
        self.index: dict[int, dict[tuple[str, ...], list[tuple[int, int]]]] = defaultdict(lambda: defaultdict(list))
        self.items: list[tuple[str, str]] = []
        self.suite_names = [name for name, _ in suites]
        for name, texts in suites:
            for text in texts:
                words = _WORD.findall(text.lower())
                size = min(n, len(words))
                if size < 4:  # a handful of words repeats by chance
                    continue
                k = len(self.items)
                self.items.append((name, text))
                for i in range(len(words) - size + 1):
                    self.index[size][tuple(words[i : i + size])].append((k, i))
        self.found: dict[int, str] = {}  # item -> the first training row that contains it

    def check(self, text: str, source: str) -> None:
        if not self.index:
            return
        words = _WORD.findall(text.lower())
        for size, grams in self.index.items():
            for i in range(len(words) - size + 1):
                hits = grams.get(tuple(words[i : i + size]))
                if hits:
                    for k, _ in hits:
                        self.found.setdefault(k, source)


def audit(
    sources: Sequence[Source],
    settings: CheckConfig,
    *,
    suites: Sequence[tuple[str, list[str]]] = (),
    count_tokens: Callable[[list[str]], list[int]] | None = None,
    max_length: int | None = None,
) -> Audit:
    """Audit the rows of each source (train first, then eval/test) against `settings` (`data.check`).

    Args:
        sources: one per split; the split named "train" is the training data.
        settings: thresholds and what blocks.
        suites: (suite name, item texts) to test for contamination.
        count_tokens: the tokenizer's lengths of texts; without it rows whose `tokens` is unset
            are not judged by length.
        max_length: `data.max_length`: rows longer than this are `truncated`.

    Returns:
        The `Audit`; a check that cannot run is listed in its `skipped`.

    Raises:
        MissingExtraError: the toxicity check is on and named in `block_on`, but its classifier is not
            installed (a check that may stop the run is never skipped).
    """
    skipped: dict[str, str] = {}
    score_toxicity = settings.toxicity
    if score_toxicity:
        try:
            load_toxicity_classifier()
        except MissingExtraError as err:
            if "toxicity" in settings.block_on:
                raise
            score_toxicity = False
            skipped["toxicity"] = f"{err}; or set data.check.toxicity=false"
    dedup = StreamDeduper(threshold=settings.near_duplicate_threshold)
    contamination = _Contamination(suites, settings.contamination_ngram)
    found: dict[str, _Examples] = defaultdict(_Examples)
    pii_kinds: Counter[str] = Counter()
    rows: dict[str, int] = {}
    where: list[str] = []
    split_of: list[int] = []
    splits = [s.split for s in sources]
    train_lengths: list[int] = []
    labels: dict[str, Counter[str]] = defaultdict(Counter)
    demo: dict[str, Counter[tuple[str, str]]] = defaultdict(Counter)  # role or label -> mentions
    demo_rows: dict[tuple[str, str], Counter[str]] = defaultdict(Counter)  # group -> label -> rows
    lines: Counter[int] = Counter()
    line_text: dict[int, tuple[str, str]] = {}
    pairs = {"total": 0, "identical": 0, "chosen_longer": 0}
    toxic_prompts = 0

    for s_index, source in enumerate(sources):
        rows[source.split] = 0
        is_train = source.split == "train"
        iterator = iter(source.items())
        while batch := list(islice(iterator, _BATCH)):
            rows[source.split] += len(batch)
            good = []
            for item in batch:
                if item.problem is not None:
                    found["format"].add(f"{item.source}: {item.problem}")
                else:
                    good.append(item)
            if count_tokens is not None:
                unknown = [it for it in good if it.tokens is None]
                counted = count_tokens([_full(it) for it in unknown] + [it.answer for it in good])
                for it, n in zip(unknown, counted):
                    it.tokens = n
                answer_tokens: list[int | None] = list(counted[len(unknown) :])
            else:
                answer_tokens = [None] * len(good)
            if good:
                dedup.add([it.text for it in good])
            where += [it.source for it in good]
            split_of += [s_index] * len(good)
            scores: list[float] = []
            prompt_scores: list[float] = []
            if score_toxicity:
                scores = toxicity_scores([it.answer for it in good])
                prompted = [k for k, it in enumerate(good) if it.roles.get("user", "").strip()]
                asked = toxicity_scores([good[k].roles["user"] for k in prompted])
                prompt_scores = [0.0] * len(good)
                for k, score in zip(prompted, asked):
                    prompt_scores[k] = score
            for k, (item, n_answer) in enumerate(zip(good, answer_tokens)):
                _row_checks(item, n_answer, settings, max_length, found, pii_kinds)
                if scores and scores[k] >= settings.toxicity_threshold:
                    found["toxicity"].add(f"{item.source} ({scores[k]:.2f}): {_clip(item.answer)}")
                if prompt_scores and prompt_scores[k] >= settings.toxicity_threshold:
                    toxic_prompts += 1
                if item.label is not None:
                    labels[source.split][item.label] += 1
                if not is_train:
                    continue
                if item.tokens is not None:
                    train_lengths.append(item.tokens)
                contamination.check(item.text, item.source)
                if item.pair is not None:
                    chosen, rejected = item.pair
                    pairs["total"] += 1
                    if " ".join(chosen.split()) == " ".join(rejected.split()):
                        pairs["identical"] += 1
                        found["preference_bias"].add(f"{item.source}: chosen and rejected are the same text")
                    elif len(chosen) > len(rejected):
                        pairs["chosen_longer"] += 1
                _demographics(item, demo, demo_rows)
                _boilerplate(item, lines, line_text)

    result = Audit(
        rows=rows, threshold=settings.near_duplicate_threshold, block_on=list(settings.block_on), skipped=skipped
    )
    if train_lengths:
        lengths = np.array(train_lengths)
        result.tokens = {
            "p50": int(np.percentile(lengths, 50)),
            "p95": int(np.percentile(lengths, 95)),
            "max": int(lengths.max()),
        }
    _duplicates(sources, dedup, where, split_of, splits, found)
    if contamination.found:
        per_suite = Counter(contamination.items[k][0] for k in contamination.found)
        for k, src in sorted(contamination.found.items()):
            name, text = contamination.items[k]
            found["contamination"].add(f"{name}: {_clip(text)} — in {src}")
        found["contamination"].count = len(contamination.found)
    total_rows = sum(rows.values())
    train_rows = rows.get("train", 0)
    messages = _messages(
        settings,
        max_length,
        pii_kinds,
        train_rows,
        total_rows,
        toxic_prompts,
        per_suite=dict(per_suite) if contamination.found else {},
    )
    for kind in AUDIT_KINDS:
        if kind in found and found[kind].count:
            f = found[kind]
            detail: dict[str, Any] = {}
            if kind == "pii":
                detail = {"kinds": dict(pii_kinds)}
            elif kind == "contamination":
                detail = {"per_suite": dict(per_suite), "ngram": settings.contamination_ngram}
            elif kind == "duplicates":
                detail = f.detail
            elif kind == "toxicity":
                detail = {"threshold": settings.toxicity_threshold, "toxic_prompts": toxic_prompts}
            elif kind == "preference_bias":
                detail = dict(pairs)
            result.findings.append(Finding(kind, f.count, messages[kind](f), f.examples, detail))
    _pair_bias(pairs, result)
    _boilerplate_finding(lines, line_text, train_rows, result)
    _label_findings(labels, settings, result)
    _demographic_findings(demo, demo_rows, labels.get("train", Counter()), settings, result)
    order = {k: i for i, k in enumerate(AUDIT_KINDS)}
    result.findings.sort(key=lambda f: order[f.kind])
    return result


def _full(item: Item) -> str:
    return "\n".join(item.roles.values())


def _row_checks(
    item: Item,
    n_answer: int | None,
    settings: CheckConfig,
    max_length: int | None,
    found: dict[str, _Examples],
    pii_kinds: Counter[str],
) -> None:
    if not _WORD.search(item.answer):
        found["empty"].add(f"{item.source}: answer {item.answer!r:.40}")
    elif n_answer is not None and n_answer < settings.min_tokens:
        found["too_short"].add(f"{item.source}: {n_answer} token(s): {_clip(item.answer, 40)}")
    if item.tokens is not None:
        if item.tokens > settings.max_tokens:
            found["too_long"].add(f"{item.source}: {item.tokens} tokens")
        if item.truncated or (item.truncated is None and max_length is not None and item.tokens > max_length):
            found["truncated"].add(f"{item.source}: {item.tokens} tokens")
    text = _full(item)
    rule = repetition(item.answer)
    if rule:
        found["repetition"].add(f"{item.source}: {rule}")
    share = non_text(item.answer)
    if share is not None:
        found["non_text"].add(f"{item.source}: {share:.0%} letters and spaces")
    spans = find_pii(text, tuple(settings.pii))
    secrets = [s for s in spans if s.kind == "secret"]
    personal = [s for s in spans if s.kind != "secret"]
    if secrets:
        found["secrets"].add(f"{item.source}: {_clip(secrets[0].value, 24)}")
    if personal:
        kinds = Counter(s.kind for s in personal)
        pii_kinds.update(kinds)
        found["pii"].add(
            f"{item.source}: "
            + ", ".join(f"{k} ({_clip(next(s.value for s in personal if s.kind == k), 30)})" for k in kinds)
        )


def _demographics(
    item: Item, demo: dict[str, Counter[tuple[str, str]]], demo_rows: dict[tuple[str, str], Counter[str]]
) -> None:
    if item.label is not None:
        counted = mentions(item.text)
        demo[f"label {item.label}"].update(counted)
        for group in counted:
            demo_rows[group][item.label] += 1
        return
    for role, text in item.roles.items():
        if role != "system":
            demo[role].update(mentions(text))


def _boilerplate(item: Item, lines: Counter[int], line_text: dict[int, tuple[str, str]]) -> None:
    parts = [p.strip() for p in re.split(r"\n+|(?<=[.!?])\s+", item.answer) if p.strip()]
    if len(parts) < 2:
        return
    for part in {parts[0], parts[-1]}:
        if len(_WORD.findall(part)) < _BOILERPLATE_MIN_WORDS:
            continue
        key = hash(" ".join(part.casefold().split()))
        lines[key] += 1
        if lines[key] == 1:
            line_text[key] = (item.source, "")
        elif lines[key] == 2:
            line_text[key] = (line_text[key][0], part)


def _boilerplate_finding(
    lines: Counter[int], line_text: dict[int, tuple[str, str]], train_rows: int, result: Audit
) -> None:
    floor = max(5, int(0.01 * train_rows))
    common = [(key, n) for key, n in lines.most_common(20) if n >= floor]
    if not common:
        return
    rows = sum(n for _, n in common)
    result.findings.append(
        Finding(
            "boilerplate",
            rows,
            f"{len(common)} opening or closing sentence(s) recur in {rows} answers (each in at least {floor}); a "
            f"model trained on them learns to say them everywhere. Edit them out, or drop the rows with "
            f"`tunewise data clean`.",
            [f"{n}× {_clip(line_text[key][1])!r} (first at {line_text[key][0]})" for key, n in common[:EXAMPLES_KEPT]],
            {"sentences": {line_text[key][1]: n for key, n in common}},
        )
    )


def _duplicates(
    sources: Sequence[Source],
    dedup: StreamDeduper,
    where: list[str],
    split_of: list[int],
    splits: list[str],
    found: dict[str, _Examples],
) -> None:
    def texts_of(wanted: set[int]) -> dict[int, str]:
        out, i = {}, 0
        for source in sources:
            for item in source.items():
                if item.problem is not None:
                    continue
                if i in wanted:
                    out[i] = item.text
                i += 1
        return out

    groups, near = dedup.pairs(texts_of)
    train = splits.index("train") if "train" in splits else -1
    # Training duplicates: union-find over training rows; each repeat names its cluster's first row.
    parent: dict[int, int] = {}

    def find(i: int) -> int:
        while parent.get(i, i) != i:
            i = parent[i]
        return i

    def union(i: int, j: int) -> None:
        a, b = find(i), find(j)
        if a != b:
            parent[max(a, b)] = min(a, b)

    first_train = [next((i for i in g if split_of[i] == train), None) for g in groups]
    exact_repeats = 0
    for g, first in zip(groups, first_train):
        for i in g:
            if split_of[i] == train and first is not None and i != first:
                union(first, i)
                exact_repeats += 1
    near_of_group: dict[int, list[int]] = defaultdict(list)
    for p in near:
        near_of_group[p.a].append(p.b)
        near_of_group[p.b].append(p.a)
        first_a, first_b = first_train[p.a], first_train[p.b]
        if first_a is not None and first_b is not None:
            union(first_a, first_b)
    train_rows = [i for i, s in enumerate(split_of) if s == train]
    repeats = [i for i in train_rows if find(i) != i]
    dup = found["duplicates"]
    for i in repeats:
        dup.add(f"{where[i]} repeats {where[find(i)]}")
    dup.detail = {
        "exact": exact_repeats,
        "near": len(repeats) - exact_repeats,
        "clusters": len({find(i) for i in repeats}),
    }
    # Leakage: a held-out row whose own text, or a near-duplicate text, is in the training rows.
    group_of = {i: g for g, members in enumerate(groups) for i in members}
    for s_index, split in enumerate(splits):
        if s_index == train or train < 0:
            continue
        leak = found[f"{split}_leakage"]
        for i, s in enumerate(split_of):
            if s != s_index:
                continue
            group = group_of[i]
            match = first_train[group]
            if match is None:
                match = next(
                    (first_train[h] for h in sorted(near_of_group.get(group, [])) if first_train[h] is not None), None
                )
            if match is not None:
                leak.add(f"{where[i]} repeats {where[match]}")


def _messages(
    settings: CheckConfig,
    max_length: int | None,
    pii_kinds: Counter[str],
    train_rows: int,
    total_rows: int,
    toxic_prompts: int,
    per_suite: dict[str, int],
) -> dict[str, Callable[[_Examples], str]]:
    def leakage(split: str) -> Callable[[_Examples], str]:
        return lambda f: (
            f"{f.count} {split} row(s) (nearly) repeat a training row: the {split} loss measures "
            f"memory there, not generalisation. Remove them from the {split} data (`tunewise data "
            f"clean` with the training file first), or deduplicate before splitting."
        )

    return {
        "duplicates": lambda f: (
            f"{f.count} of {train_rows} training rows repeat an earlier one "
            f"({f.detail['exact']} exactly, {f.detail['near']} nearly); repeated rows are "
            f"trained on more often than the rest. `tunewise data clean` keeps one row per "
            f"cluster."
        ),
        "eval_leakage": leakage("eval"),
        "test_leakage": leakage("test"),
        "contamination": lambda f: (
            f"{f.count} evaluation item(s) share a {settings.contamination_ngram}-word passage "
            f"with the training data ({', '.join(f'{n}: {c}' for n, c in per_suite.items())}); "
            f"scores on those suites overstate the model. Drop the overlapping training rows "
            f"or those items."
        ),
        "format": lambda f: (
            f"{f.count} row(s) break their shape's rules and cannot be trained on as they are; fix "
            f"them, or `data.on_bad_rows: skip` / `tunewise data clean` sets them aside with the "
            f"reason."
        ),
        "empty": lambda f: f"{f.count} row(s) have an answer without a single word: nothing useful to learn.",
        "too_short": lambda f: (
            f"{f.count} row(s) answer in fewer than {settings.min_tokens} tokens "
            f"(data.check.min_tokens); check they are complete."
        ),
        "too_long": lambda f: (
            f"{f.count} row(s) are longer than {settings.max_tokens} tokens "
            f"(data.check.max_tokens): slow to train and often pasted documents."
        ),
        "truncated": lambda f: (
            f"{f.count} row(s) are longer than data.max_length={max_length} tokens; their "
            f"tails are cut and never trained on. Raise data.max_length or shorten them."
        ),
        "repetition": lambda f: (
            f"{f.count} row(s) repeat themselves (lines or word n-grams; Gopher rules): "
            f"degenerate text that teaches looping."
        ),
        "non_text": lambda f: (
            f"{f.count} row(s) are mostly not letters (hex dumps, tables of numbers, markup); check "
            f"they belong in a language-model dataset."
        ),
        "pii": lambda f: (
            f"{f.count} row(s) hold personal data ({', '.join(f'{k}: {n}' for k, n in pii_kinds.most_common())}); "
            f"a model can learn and repeat it. `tunewise data clean` replaces it with <EMAIL>, "
            f"<PHONE>, ... placeholders."
        ),
        "secrets": lambda f: (
            f"{f.count} row(s) hold API keys, tokens or private keys: revoke them, and let "
            f"`tunewise data clean` replace them with <SECRET>."
        ),
        "toxicity": lambda f: (
            f"{f.count} answer(s) score at least {settings.toxicity_threshold} on the "
            f"offensive-language classifier (alt-profanity-check); {toxic_prompts} prompt(s) "
            f"do. Review them: the model learns to answer that way."
        ),
        "preference_bias": lambda f: (
            f"{f.count} preference pair(s) have the same chosen and rejected text: "
            f"they teach nothing and add noise to the loss."
        ),
    }


def _pair_bias(pairs: dict[str, int], result: Audit) -> None:
    compared = pairs["total"] - pairs["identical"]
    if compared < _DEMOGRAPHIC_MIN:
        return
    share = pairs["chosen_longer"] / compared
    if 1 - _LENGTH_BIAS < share < _LENGTH_BIAS:
        return
    existing = next((f for f in result.findings if f.kind == "preference_bias"), None)
    text = (
        f"the chosen answer is the longer one in {share:.0%} of {compared} pairs: a reward or DPO model can "
        f"learn length instead of quality. Balance the lengths, or add pairs where the shorter answer wins."
    )
    if existing:
        existing.message += " Also, " + text
    else:
        result.findings.append(
            Finding(
                "preference_bias",
                compared,
                text[0].upper() + text[1:],
                [],
                {**pairs, "chosen_longer_share": round(share, 3)},
            )
        )


def _label_findings(labels: dict[str, Counter[str]], settings: CheckConfig, result: Audit) -> None:
    train = labels.get("train")
    if not train:
        return
    problems, examples = [], []
    if len(train) >= 2:
        (top, most), (low, least) = train.most_common()[0], train.most_common()[-1]
        if most >= settings.imbalance_ratio * least:
            problems.append(
                f"training label {top!r} has {most} rows, {most / least:.1f}× the {least} of {low!r} "
                f"(data.check.imbalance_ratio {settings.imbalance_ratio:g}): a classifier can score well by "
                f"favouring it. Rebalance, weight the classes, or judge by macro F1."
            )
    elif len(train) == 1:
        problems.append(f"every training row has the label {next(iter(train))!r}: nothing to tell apart.")
    for split, counts in labels.items():
        unseen = sorted(set(counts) - set(train))
        if split != "train" and unseen:
            problems.append(f"{split} labels {', '.join(map(repr, unseen))} never occur in training.")
    for split, counts in labels.items():
        examples.append(f"{split}: " + ", ".join(f"{k}: {v}" for k, v in counts.most_common()))
    if problems:
        result.findings.append(
            Finding(
                "label_imbalance",
                sum(train.values()),
                " ".join(problems),
                examples,
                {split: dict(c) for split, c in labels.items()},
            )
        )


def _demographic_findings(
    demo: dict[str, Counter[tuple[str, str]]],
    demo_rows: dict[tuple[str, str], Counter[str]],
    labels: Counter[str],
    settings: CheckConfig,
    result: Audit,
) -> None:
    flagged: list[str] = []
    for key, counts in demo.items():
        for category in PAIRED:
            groups = {g: n for (c, g), n in counts.items() if c == category}
            total = sum(groups.values())
            if total < _DEMOGRAPHIC_MIN:
                continue
            full = {g: groups.get(g, 0) for g in LEXICON[category]}
            most, least = max(full.items(), key=lambda kv: kv[1]), min(full.items(), key=lambda kv: kv[1])
            if most[1] >= settings.imbalance_ratio * max(least[1], 1):
                flagged.append(f"{key}: {category} terms {most[0]} {most[1]} vs {least[0]} {least[1]}")
    total_rows = sum(labels.values())
    if total_rows:
        for (category, group), per_label in demo_rows.items():
            n = sum(per_label.values())
            if n < _DEMOGRAPHIC_MIN:
                continue
            for label, overall in labels.items():
                share, base = per_label.get(label, 0) / n, overall / total_rows
                if abs(share - base) >= _LABEL_SHIFT:
                    flagged.append(
                        f"rows mentioning {category}/{group} are {share:.0%} label {label!r} "
                        f"(all rows: {base:.0%}; {n} rows)"
                    )
    detail = {key: {f"{c}/{g}": n for (c, g), n in sorted(counts.items())} for key, counts in demo.items()}
    if flagged:
        result.findings.append(
            Finding(
                "demographic_imbalance",
                len(flagged),
                f"{len(flagged)} demographic imbalance(s) in the training rows (lexicon counts, "
                f"data.check.imbalance_ratio {settings.imbalance_ratio:g}): a model learns the skew along with the task. "
                f"Check the rows; counterfactual augmentation (swap the group terms) evens them out.",
                flagged[:EXAMPLES_KEPT],
                {"mentions": detail},
            )
        )


# --------------------------------------------------------------------------- entry points


def audit_files(
    files: dict[str, list[str]],
    settings: CheckConfig,
    *,
    shape: str = "auto",
    columns: dict[str, str] | None = None,
    suites: Sequence[tuple[str, list[str]]] = (),
    count_tokens: Callable[[list[str]], list[int]] | None = None,
    max_length: int | None = None,
) -> Audit:
    """Audit files by split, e.g. `{"train": ["a.jsonl", "b.jsonl"], "eval": ["e.jsonl"]}`.

    Raises:
        DataError: a file is missing, unreadable, not UTF-8 or not valid JSON/CSV (with file and line).
    """
    sources = []
    for split, paths in files.items():
        if not paths:
            continue
        sources.append(Source(split, _chained([file_items(p, shape=shape, columns=columns) for p in paths])))
    if not any(s.split == "train" for s in sources):
        raise DataError("data audit: no training file given; pass at least one file to audit")
    return audit(sources, settings, suites=suites, count_tokens=count_tokens, max_length=max_length)


def _chained(parts: list[Source]) -> Callable[[], Iterable[Item]]:
    """The items of several files as one re-readable stream."""
    return lambda: chain.from_iterable(p.items() for p in parts)


def print_audit(result: Audit, console: Console, *, title: str = "data audit") -> None:
    """The console summary: a table of findings with counts and the first examples."""
    from rich.markup import escape
    from rich.table import Table

    sizes = ", ".join(f"{n} {split}" for split, n in result.rows.items())
    if result.tokens:
        sizes += (
            f" rows; training rows in tokens: median {result.tokens['p50']}, 95th percentile "
            f"{result.tokens['p95']}, longest {result.tokens['max']}"
        )
    else:
        sizes += " rows"
    if not result.findings:
        toxicity = "" if "toxicity" in result.skipped else "toxicity "
        console.print(
            f"{title}: {sizes}; nothing found (no duplicates, leakage, contamination, PII, "
            f"{toxicity}or format problems)",
            highlight=False,
        )
        _print_skipped(result, console)
        return
    table = Table(title=f"{title}: {sizes}", title_justify="left", show_lines=True)
    for column, kwargs in (("finding", {}), ("rows", {"justify": "right"}), ("what it means / examples", {})):
        table.add_column(column, **kwargs)  # type: ignore[arg-type]
    for f in result.findings:
        blocking = f.kind in result.block_on
        name = f"[red]{f.kind}\n(blocks)[/]" if blocking else f"[yellow]{f.kind}[/]"
        # Rows are user text: "[INST]" or "[/b]" in an example must print as written, not as markup.
        examples = "\n".join(f"  {escape(e)}" for e in f.examples[:3])
        table.add_row(name, str(f.count), escape(f.message) + (f"\n[dim]{examples}[/]" if examples else ""))
    console.print(table)
    _print_skipped(result, console)


def _print_skipped(result: Audit, console: Console) -> None:
    from rich.markup import escape

    for why in result.skipped.values():
        console.print(f"[yellow]skipped:[/] {escape(why)}", highlight=False)


# --------------------------------------------------------------------------- the commands


def token_counter(tokenizer: Any) -> Callable[[list[str]], list[int]]:
    """Lengths of texts in `tokenizer`'s tokens (no special tokens), in one batched call."""

    def count(texts: list[str]) -> list[int]:
        if not texts:
            return []
        return [len(ids) for ids in tokenizer(texts, add_special_tokens=False, verbose=False)["input_ids"]]

    return count


def resolve_targets(
    targets: Sequence[str], *, eval_files: Sequence[str] = (), test_files: Sequence[str] = ()
) -> tuple[Config, dict[str, list[str]]]:
    """What `data audit` / `data clean` work on: `CONFIG [key=value ...]` or `FILE [FILE ...] [key=value ...]`.

    With a config, its data files (data.train/eval/test, or each of data.datasets) are used and
    the overrides apply to it; with files, the overrides apply to the default config (e.g.
    `data.check.block_on=[secrets]`). Returns the config and the files per split.

    Raises:
        ConfigError: a bad override or config; TunewiseError: no file given.
    """
    from tunewise.config import Config, load_config
    from tunewise.errors import ConfigError, TunewiseError

    overrides = [t for t in targets if "=" in t and not Path(t).exists()]
    paths = [t for t in targets if t not in overrides]
    configs = [p for p in paths if p.lower().endswith((".yaml", ".yml"))]
    if configs:
        if len(paths) > 1:
            raise TunewiseError(f"give either one config ({configs[0]}) or data files, not both: {', '.join(paths)}")
        config = load_config(configs[0], overrides)
        data = config.data
        if data.datasets:
            files = {"train": [d.train for d in data.datasets], "eval": [d.eval for d in data.datasets if d.eval]}
        else:
            if not data.train:
                raise ConfigError([f"data.train: {configs[0]} names no training file; set data.train"])
            files = {
                "train": [data.train],
                "eval": [data.eval] if data.eval else [],
                "test": [data.test] if data.test else [],
            }
    else:
        if not paths:
            raise TunewiseError("give a config (tunewise.yaml) or at least one data file")
        from tunewise.config import parse_overrides

        nested, problems = parse_overrides(overrides)
        if problems:
            raise ConfigError(problems, "the command line")
        try:
            config = Config.model_validate(nested)
        except Exception as err:  # pydantic's ValidationError: report it as config problems
            raise ConfigError(
                [
                    f"{'.'.join(map(str, e['loc']))} (command-line override): {e['msg']}"
                    for e in getattr(err, "errors", list)()
                ]
                or [str(err)],
                "the command line",
            ) from None
        files = {"train": list(paths), "eval": [], "test": []}
    files["eval"] = [*files.get("eval", []), *eval_files]
    files["test"] = [*files.get("test", []), *test_files]
    return config, {split: fs for split, fs in files.items() if fs}


def audit_command(
    targets: Sequence[str],
    *,
    eval_files: Sequence[str] = (),
    test_files: Sequence[str] = (),
    model: str | None = None,
    out: str | Path = RunDir.AUDIT,
    console: Console,
    suites: SuiteTexts | None = None,
) -> Audit:
    """`tunewise data audit`: audit, print the table, write `out`; raise on a blocking finding.

    Args:
        suites: the eval suites' texts for the contamination check, from the resolved config
            (`tunewise.evaluation.suite.suite_texts`); None checks no suite.
    """
    from tunewise.errors import TunewiseError
    from tunewise.models import load_tokenizer

    config, files = resolve_targets(targets, eval_files=eval_files, test_files=test_files)
    tokenizer = load_tokenizer(
        model or config.model.name, revision=config.model.revision, trust_remote_code=config.model.trust_remote_code
    )
    result = audit_files(
        files,
        config.data.check,
        shape=config.data.shape,
        columns=config.data.columns,
        suites=suites(config) if suites else (),
        count_tokens=token_counter(tokenizer),
        max_length=config.data.max_length,
    )
    print_audit(result, console)
    console.print(f"wrote {result.write(out)}", highlight=False)
    if result.blocking:
        kinds = ", ".join(f.kind for f in result.blocking)
        raise TunewiseError(
            f"data audit: {kinds} found and data.check.block_on lists it (see above). Fix the data "
            f"(`tunewise data clean`), or take {kinds} out of data.check.block_on."
        )
    return result
