"""`tunewise data clean`: remove what the audit finds, redact personal data, lose nothing silently.

For each input file, a cleaned JSONL file of the same name is written to the output directory,
plus one `rejects.jsonl` for all of them and `clean_summary.json`. Each row of the input ends
in exactly one of three states:

| state    | in the cleaned file        | in rejects.jsonl                                                  |
|----------|----------------------------|-------------------------------------------------------------------|
| kept     | as it was                  | —                                                                 |
| changed  | with placeholders          | `{"action": "changed", "reason", "source", "row": original, "cleaned": new}` |
| removed  | —                          | `{"action": "removed", "reason", "source", "row": original}`      |

so **rows in = rows out + rows removed**, and rejects.jsonl holds every removed *and* every changed
row (`removed + changed` lines), each with its reason and the row as the user wrote it.

The steps, in order, all on the redacted text so that cleaning a cleaned file changes nothing
(idempotence):

1. redaction: every string of the row (message contents included) has the kinds in
   `data.clean.redact` replaced by `<EMAIL>`, `<PHONE>`, `<CREDIT_CARD>`, `<IBAN>`,
   `<IP_ADDRESS>`, `<NATIONAL_ID>`, `<SECRET>` (`tunewise.data.pii`);
2. filters: a row with a finding listed in `data.clean.drop` is removed with that finding as
   reason (`format`, `empty`, `too_short`, `too_long`, `truncated`, `repetition`, `non_text`,
   `toxicity`, `contamination`; `secrets` / `pii` remove a row holding them instead of redacting);
3. deduplication (`duplicates` in `drop`): among the rows left, across all input files in the
   order given, exact and near duplicates form clusters and the first row of each is kept —
   deterministically, the same rows for the same input.

Files are streamed: three passes over the input (rows, candidate texts for near-duplicate
verification, output), with per-row memory of a hash and a MinHash signature.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from itertools import islice
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tunewise.data.audit import Item, _Contamination, detect_kind, row_item
from tunewise.data.dedup import StreamDeduper
from tunewise.data.io import Row, read_rows
from tunewise.data.pii import find_pii, redact
from tunewise.data.quality import non_text, repetition, toxicity_scores
from tunewise.errors import TunewiseError
from tunewise.rundir import RunDir

if TYPE_CHECKING:
    from tunewise.config import CheckConfig, CleanConfig
    from tunewise.data.audit import SuiteTexts

__all__ = ["CleanResult", "clean_command", "clean_files", "output_name", "redact_row"]

_BATCH = 1024
_SUFFIXES = (".jsonl.gz", ".ndjson.gz", ".jsonl", ".ndjson", ".json", ".csv", ".tsv", ".parquet")


@dataclass
class CleanResult:
    """What `clean_files` did. `rows_in == rows_out + removed` always holds."""

    rows_in: int
    rows_out: int
    removed: int
    changed: int
    reasons: dict[str, int] = field(default_factory=dict)
    """Removal reasons (the finding kind) and redactions (`redacted <kind>`) with their counts."""
    outputs: list[str] = field(default_factory=list)
    rejects: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {
            "rows_in": self.rows_in,
            "rows_out": self.rows_out,
            "removed": self.removed,
            "changed": self.changed,
            "reasons": self.reasons,
            "outputs": self.outputs,
            "rejects": self.rejects,
        }


def output_name(path: str | Path) -> str:
    """The cleaned file's name: the input's name with its data extension replaced by `.jsonl`."""
    name = Path(path).name
    for suffix in _SUFFIXES:
        if name.lower().endswith(suffix):
            return name[: -len(suffix)] + ".jsonl"
    return name + ".jsonl"


def redact_row(value: Any, kinds: Sequence[str], counts: Counter[str]) -> Any:
    """The row with every string value redacted (keys and non-strings unchanged); adds to `counts`."""
    if isinstance(value, str):
        text, found = redact(value, kinds)
        counts.update(found)
        return text
    if isinstance(value, dict):
        return {k: redact_row(v, kinds, counts) for k, v in value.items()}
    if isinstance(value, list):
        return [redact_row(v, kinds, counts) for v in value]
    return value


@dataclass
class _Input:
    path: str
    kind: str
    renames: dict[str, str]

    def rows(self) -> Iterator[Row]:
        for r in read_rows(self.path):
            yield Row(r.source, {self.renames.get(k, k): v for k, v in r.data.items()}) if self.renames else r


def clean_files(
    paths: Sequence[str | Path],
    out_dir: str | Path,
    clean: CleanConfig,
    check: CheckConfig,
    *,
    shape: str = "auto",
    columns: dict[str, str] | None = None,
    count_tokens: Callable[[list[str]], list[int]] | None = None,
    max_length: int | None = None,
    suites: Sequence[tuple[str, list[str]]] = (),
) -> CleanResult:
    """Clean `paths` into `out_dir` (see the module docstring).

    Args:
        paths: input files; duplicates across them keep the row of the earlier file.
        out_dir: where the cleaned files, rejects.jsonl and clean_summary.json go.
        clean: `data.clean` (what to drop, what to redact).
        check: `data.check` (the thresholds the filters share with the audit).
        count_tokens: the tokenizer's lengths, needed when `too_short`, `too_long` or
            `truncated` is dropped.
        max_length: `data.max_length`, for `truncated`.
        suites: (suite name, item texts), for `contamination`.

    Raises:
        TunewiseError: two inputs would write the same output file, a length filter has no
            tokenizer, or an input is unreadable (DataError, with file and line).
    """
    drop = list(clean.drop)
    if count_tokens is None and {"too_short", "too_long", "truncated"} & set(drop):
        raise TunewiseError("data.clean.drop: too_short, too_long and truncated need a tokenizer to count tokens")
    names = [output_name(p) for p in paths]
    repeated = sorted({n for n in names if names.count(n) > 1} | ({RunDir.REJECTS} & set(names)))
    if repeated:
        raise TunewiseError(
            f"data clean: the inputs would write {', '.join(repeated)} more than once (or over "
            f"{RunDir.REJECTS}); rename an input file"
        )
    renames = dict(columns or {})
    inputs = []
    for p in paths:
        head = [Row(r.source, {renames.get(k, k): v for k, v in r.data.items()}) for r in islice(read_rows(p), 100)]
        inputs.append(_Input(str(p), detect_kind(head, p, shape), renames))
    # A kind whose rows are dropped is not also redacted: the row goes whole, with that reason.
    redact_kinds = [
        k for k in clean.redact if not ((k == "secret" and "secrets" in drop) or (k != "secret" and "pii" in drop))
    ]
    contamination = _Contamination(suites, check.contamination_ngram) if "contamination" in drop else None

    def prepared() -> Iterator[tuple[int, int, Row, Any, Counter[str], Item]]:
        index = 0
        for file_no, inp in enumerate(inputs):
            for row in inp.rows():
                counts: Counter[str] = Counter()
                data = redact_row(row.data, redact_kinds, counts)
                yield index, file_no, row, data, counts, row_item(Row(row.source, data), inp.kind)
                index += 1

    removed: dict[int, str] = {}
    changed: dict[int, str] = {}
    dedup = StreamDeduper(threshold=check.near_duplicate_threshold)
    dedup_rows: list[int] = []
    sources: list[str] = []
    stream = prepared()
    while batch := list(islice(stream, _BATCH)):
        good = [(i, item) for i, _, _, _, _, item in batch if item.problem is None]
        tokens: Sequence[int | None] = [None] * len(good)
        answers: Sequence[int | None] = tokens
        if count_tokens is not None and {"too_short", "too_long", "truncated"} & set(drop):
            counted = count_tokens([_all(item) for _, item in good] + [item.answer for _, item in good])
            tokens, answers = counted[: len(good)], counted[len(good) :]
        toxic = toxicity_scores([item.answer for _, item in good]) if "toxicity" in drop else []
        reasons: dict[int, str] = {}
        for k, (i, item) in enumerate(good):
            found = _filters(
                item,
                tokens[k],
                answers[k],
                toxic[k] if toxic else None,
                check,
                max_length,
                contamination,
                pii="pii" in drop,
                secrets="secrets" in drop,
            )
            reason = next((f"{kind}: {why}" for kind in drop for fkind, why in found if fkind == kind), None)
            if reason:
                reasons[i] = reason
        fresh = []
        for i, _, row, _, counts, item in batch:
            sources.append(row.source)
            if item.problem is not None and "format" in drop:
                removed[i] = f"format: {item.problem}"
            elif i in reasons:
                removed[i] = reasons[i]
            else:
                if counts:
                    changed[i] = "redacted " + ", ".join(f"{k} ×{n}" for k, n in sorted(counts.items()))
                if "duplicates" in drop and item.problem is None:
                    dedup_rows.append(i)
                    fresh.append(item.text)
        if fresh:
            dedup.add(fresh)

    if "duplicates" in drop and dedup_rows:
        _drop_duplicates(dedup, dedup_rows, sources, prepared, removed, changed)

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    reasons_count: Counter[str] = Counter(r.split(":")[0] for r in removed.values())
    for note in changed.values():
        for part in note.removeprefix("redacted ").split(", "):
            kind, _, n = part.partition(" ×")
            reasons_count[f"redacted {kind}"] += int(n)
    rows_in = rows_out = 0
    outputs = [str(out / name) for name in names]
    files = [open(path, "w", encoding="utf-8") for path in outputs]  # noqa: SIM115 - closed below
    try:
        with open(out / RunDir.REJECTS, "w", encoding="utf-8") as rejects:
            for i, file_no, row, data, _, _ in prepared():
                rows_in += 1
                if i in removed:
                    rejects.write(
                        _json({"source": row.source, "action": "removed", "reason": removed[i], "row": row.data})
                    )
                    continue
                rows_out += 1
                files[file_no].write(_json(data))
                if i in changed:
                    rejects.write(
                        _json(
                            {
                                "source": row.source,
                                "action": "changed",
                                "reason": changed[i],
                                "row": row.data,
                                "cleaned": data,
                            }
                        )
                    )
    finally:
        for f in files:
            f.close()
    result = CleanResult(
        rows_in,
        rows_out,
        len(removed),
        len(changed),
        dict(reasons_count.most_common()),
        outputs,
        str(out / RunDir.REJECTS),
    )
    assert result.rows_in == result.rows_out + result.removed, "clean lost a row"  # the invariant, checked every run
    (out / "clean_summary.json").write_text(json.dumps(result.to_dict(), indent=2) + "\n", encoding="utf-8")
    return result


def _json(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, default=str) + "\n"


def _all(item: Item) -> str:
    return "\n".join(item.roles.values())


def _filters(
    item: Item,
    tokens: int | None,
    answer_tokens: int | None,
    toxic: float | None,
    check: CheckConfig,
    max_length: int | None,
    contamination: _Contamination | None,
    *,
    pii: bool,
    secrets: bool,
) -> list[tuple[str, str]]:
    """(finding kind, why) of every row-level finding, in a fixed order."""
    import re

    found: list[tuple[str, str]] = []
    if not re.search(r"\w", item.answer):
        found.append(("empty", "the answer has no words"))
    elif answer_tokens is not None and answer_tokens < check.min_tokens:
        found.append(("too_short", f"{answer_tokens} answer token(s), below data.check.min_tokens={check.min_tokens}"))
    if tokens is not None and tokens > check.max_tokens:
        found.append(("too_long", f"{tokens} tokens, above data.check.max_tokens={check.max_tokens}"))
    if tokens is not None and max_length is not None and tokens > max_length:
        found.append(("truncated", f"{tokens} tokens, above data.max_length={max_length}"))
    rule = repetition(item.answer)
    if rule:
        found.append(("repetition", rule))
    share = non_text(item.answer)
    if share is not None:
        found.append(("non_text", f"{share:.0%} letters and spaces"))
    if toxic is not None and toxic >= check.toxicity_threshold:
        found.append(("toxicity", f"offensive-language probability {toxic:.2f}"))
    if contamination is not None:
        before = len(contamination.found)
        contamination.check(item.text, item.source)
        if len(contamination.found) > before:
            found.append(("contamination", "shares a passage with an evaluation item"))
    spans = find_pii(_all(item)) if pii or secrets else []
    if any(s.kind == "secret" for s in spans):
        found.append(("secrets", "holds an API key, token or private key"))
    if any(s.kind != "secret" for s in spans):
        found.append(("pii", "holds " + ", ".join(sorted({s.kind for s in spans if s.kind != "secret"}))))
    return found


def _drop_duplicates(
    dedup: StreamDeduper,
    rows: list[int],
    sources: list[str],
    prepared: Callable[[], Iterator[tuple[int, int, Row, Any, Counter[str], Item]]],
    removed: dict[int, str],
    changed: dict[int, str],
) -> None:
    """Keep the first row of each duplicate cluster; the others are removed, naming the kept row."""

    def texts_of(wanted: set[int]) -> dict[int, str]:
        want = {rows[k] for k in wanted}
        back = {rows[k]: k for k in wanted}
        return {back[i]: item.text for i, _, _, _, _, item in prepared() if i in want}

    groups, near = dedup.pairs(texts_of)
    parent = list(range(len(rows)))

    def find(k: int) -> int:
        while parent[k] != k:
            parent[k] = parent[parent[k]]
            k = parent[k]
        return k

    def union(a: int, b: int) -> None:
        ra, rb = find(a), find(b)
        if ra != rb:
            parent[max(ra, rb)] = min(ra, rb)

    for g in groups:
        for k in g[1:]:
            union(g[0], k)
    for p in near:
        union(groups[p.a][0], groups[p.b][0])
    exact_of = {k: g[0] for g in groups for k in g}
    for k in range(len(rows)):
        root = find(k)
        if root == k:
            continue
        how = "exact" if exact_of[k] == exact_of[root] else "near"
        removed[rows[k]] = f"duplicates: {how} duplicate of {sources[rows[root]]} (kept)"
        changed.pop(rows[k], None)


def clean_command(
    targets: Sequence[str],
    *,
    out: str | Path = "clean",
    model: str | None = None,
    console: Any,
    suites: SuiteTexts | None = None,
) -> CleanResult:
    """`tunewise data clean`: clean a config's data files or the given files into `out`, print a summary.

    Args:
        suites: the eval suites' texts for the contamination filter, from the resolved config
            (`tunewise.evaluation.suite.suite_texts`); None filters against no suite.
    """
    from rich.table import Table

    from tunewise.data.audit import resolve_targets, token_counter

    config, files = resolve_targets(targets)
    paths = [p for split in ("train", "eval", "test") for p in files.get(split, [])]
    drop = set(config.data.clean.drop)
    count_tokens = None
    if {"too_short", "too_long", "truncated"} & drop:
        from tunewise.models import load_tokenizer

        count_tokens = token_counter(
            load_tokenizer(
                model or config.model.name,
                revision=config.model.revision,
                trust_remote_code=config.model.trust_remote_code,
            )
        )
    texts = suites(config) if suites and "contamination" in drop else ()
    result = clean_files(
        paths,
        out,
        config.data.clean,
        config.data.check,
        shape=config.data.shape,
        columns=config.data.columns,
        count_tokens=count_tokens,
        max_length=config.data.max_length,
        suites=texts,
    )
    table = Table(
        title=f"data clean: {result.rows_in} rows in = {result.rows_out} out + {result.removed} removed "
        f"({result.changed} changed)",
        title_justify="left",
    )
    table.add_column("reason")
    table.add_column("count", justify="right")
    for reason, n in result.reasons.items():
        table.add_row(reason, str(n))
    console.print(table)
    for path in result.outputs:
        console.print(f"wrote {path}", highlight=False)
    console.print(f"wrote {result.rejects} (every removed and changed row, with its reason)", highlight=False)
    return result
