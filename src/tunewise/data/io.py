"""Read dataset files into rows, each tagged with where it came from.

Every row carries a `source` such as `data/train.jsonl:17`, so any later complaint about it
(a missing key, an empty answer, a prompt longer than `max_length`) can name the exact place
in the user's file. Supported formats, chosen by extension:

| extension              | layout                                              | source        |
|------------------------|-----------------------------------------------------|---------------|
| `.jsonl`, `.ndjson`    | one JSON object per line (`.gz` compressed too)     | `file:LINE`   |
| `.json`                | a list of objects, or `{"key": [objects]}`          | `file:LINE`\\* |
| `.csv`, `.tsv`         | a header row, then one record per row               | `file:LINE`   |
| `.parquet`             | one row per record                                  | `file:row N`  |
| a directory            | written by `datasets.Dataset.save_to_disk`          | `dir:row N`   |

\\* the line on which the object starts; `file:item N` when objects share lines (minified JSON).
Line, item and row numbers all count from 1, as an editor does. CSV line numbers are physical
lines, so a record whose quoted field spans lines is named by the line it starts on.
"""

from __future__ import annotations

import csv
import gzip
import json
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from tunewise.errors import DataError

__all__ = ["SUPPORTED_FORMATS", "Row", "read_rows"]

SUPPORTED_FORMATS = (
    ".jsonl",
    ".ndjson",
    ".jsonl.gz",
    ".ndjson.gz",
    ".json",
    ".csv",
    ".tsv",
    ".parquet",
    "a directory written by datasets' save_to_disk",
)
"""What `read_rows` accepts, in the words its error messages use."""


@dataclass(frozen=True)
class Row:
    """One record of a dataset file.

    Attributes:
        source: where the record is, `file:line` (or `file:row N` for Parquet and saved
            datasets, `file:item N` for minified JSON), for error messages and rejects files.
        data: the record as read: column name to value.
    """

    source: str
    data: dict[str, Any]


def read_rows(path: str | Path) -> Iterator[Row]:
    """Read a dataset file, yielding its records in file order.

    The path is checked before this returns, so a missing file or an unknown extension fails
    at the call, not at the first `next()`. Blank lines in JSONL and CSV files are skipped.

    Args:
        path: a `.jsonl`/`.ndjson` (optionally `.gz`), `.json`, `.csv`, `.tsv` or `.parquet`
            file, or a directory written by `datasets.Dataset.save_to_disk`.

    Returns:
        An iterator of `Row`s.

    Raises:
        DataError: the file is missing or has an unsupported extension (at the call); a line
            is not valid JSON, a record is not an object, a CSV record has the wrong number of
            fields, or the file holds no rows at all (while iterating). Each message names the
            file and line.
    """
    shown = str(path)  # report the path as the user wrote it: that is what they will look for
    p = Path(path)
    if not p.exists():
        raise DataError(
            f"{shown}: no such file or directory (relative paths are resolved from the "
            f"current directory, {os.getcwd()}). Check the path in the config (data.train / "
            "data.eval) or on the command line."
        )
    reader = _reader_for(p, shown)
    return _non_empty(reader(p, shown), shown)


def _reader_for(p: Path, shown: str) -> Callable[[Path, str], Iterator[Row]]:
    if p.is_dir():
        return _read_saved_dataset
    name = p.name.lower()
    if name.endswith((".jsonl", ".ndjson", ".jsonl.gz", ".ndjson.gz")):
        return _read_jsonl
    if name.endswith(".json"):
        return _read_json
    if name.endswith((".csv", ".tsv")):
        return _read_csv
    if name.endswith(".parquet"):
        return _read_parquet
    raise DataError(
        f"{shown}: unsupported file type {''.join(p.suffixes) or '(no extension)'!r}. "
        f"tunewise reads {', '.join(SUPPORTED_FORMATS)}. Rename the file if its extension is "
        "wrong, or convert it to JSONL (one JSON object per line)."
    )


def _non_empty(rows: Iterator[Row], shown: str) -> Iterator[Row]:
    count = 0
    for row in rows:
        count += 1
        yield row
    if count == 0:
        raise DataError(
            f"{shown}: no rows — the file holds no records. Point the config at a file with at least one example."
        )


def _open_text(p: Path, newline: str | None = None) -> IO[str]:
    # utf-8-sig: files saved by Excel/Notepad start with a BOM that would otherwise end up in
    # the first column name or make the first JSON line invalid.
    if p.name.lower().endswith(".gz"):
        return gzip.open(p, "rt", encoding="utf-8-sig", newline=newline)
    return open(p, encoding="utf-8-sig", newline=newline)


def _not_utf8(shown: str, err: UnicodeDecodeError, p: Path | None = None) -> DataError:
    where = _bad_utf8_line(p) if p is not None else None
    at = f"{shown}:{where[0]}" if where else shown
    detail = f"byte 0x{where[1]:02x} at column {where[2]}" if where else f"{err.reason} at byte {err.start}"
    return DataError(
        f"{at}: not UTF-8 text ({detail}). Re-save the file as UTF-8 (e.g. `iconv -f latin1 -t utf-8`), "
        "or fix that line."
    )


def _bad_utf8_line(p: Path) -> tuple[int, int, int] | None:
    """(line, byte, column) of the first byte that is not UTF-8: the decoder's own position is
    relative to the chunk it was decoding, which means nothing to the user."""
    opener = gzip.open if p.name.lower().endswith(".gz") else open
    try:
        with opener(p, "rb") as f:
            for lineno, raw in enumerate(f, start=1):
                try:
                    raw.decode("utf-8")
                except UnicodeDecodeError as e:
                    return lineno, raw[e.start], e.start + 1
    except OSError:
        return None
    return None


def type_name(value: Any) -> str:
    """A JSON-ish name of a value's type with its article, for error messages ("a list")."""
    return {
        list: "a list",
        dict: "an object",
        str: "a string",
        type(None): "null",
        bool: "a boolean",
        int: "a number",
        float: "a number",
    }.get(type(value), type(value).__name__)


def _not_an_object(where: str, value: Any) -> DataError:
    return DataError(
        f'{where}: expected a JSON object ({{"key": value, ...}}) but found '
        f"{type_name(value)}. Each record must be an object whose keys are the columns "
        '(e.g. {"instruction": ..., "output": ...}).'
    )


def _read_jsonl(p: Path, shown: str) -> Iterator[Row]:
    try:
        with _open_text(p) as f:
            for lineno, line in enumerate(f, start=1):
                if not line.strip():
                    continue
                where = f"{shown}:{lineno}"
                try:
                    value = json.loads(line)
                except json.JSONDecodeError as e:
                    raise DataError(
                        f"{where}: not valid JSON ({e.msg}, column {e.colno}). Each line of a "
                        "JSONL file must hold one complete JSON object; fix or delete this line."
                    ) from None
                if not isinstance(value, dict):
                    raise _not_an_object(where, value)
                yield Row(where, value)
    except UnicodeDecodeError as e:
        raise _not_utf8(shown, e, p) from None
    except (OSError, EOFError) as e:  # a truncated or corrupt .gz
        raise DataError(f"{shown}: cannot be read ({e}). Check the file is complete.") from None


def _read_json(p: Path, shown: str) -> Iterator[Row]:
    try:
        text = p.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as e:
        raise _not_utf8(shown, e, p) from None
    try:
        value = json.loads(text)
    except json.JSONDecodeError as e:
        hint = " It looks like JSON Lines (one object per line): rename it to .jsonl." if e.msg == "Extra data" else ""
        raise DataError(
            f"{shown}:{e.lineno}: not valid JSON ({e.msg}, column {e.colno}).{hint} A .json "
            "dataset must be one list of objects, or an object holding one such list."
        ) from None

    array_start: int | None = None
    if isinstance(value, list):
        items = value
        array_start = _skip_ws(text, 0)
    elif isinstance(value, dict):
        lists = [k for k, v in value.items() if isinstance(v, list)]
        if len(lists) != 1:
            found = ", ".join(repr(k) for k in value) or "none"
            raise DataError(
                f"{shown}: a .json dataset must be a list of objects, or an object holding "
                f"exactly one list of objects; this object has keys {found} and "
                f"{len(lists)} list values. Keep only the list of records (or convert to JSONL)."
            )
        items = value[lists[0]]
        array_start = _find_member(text, lists[0])
    else:
        raise DataError(f"{shown}: a .json dataset must be a list of objects, but the file holds {type_name(value)}.")

    starts = _item_offsets(text, array_start, len(items)) if array_start is not None else None
    line_of: Callable[[int], str]
    if starts is not None:
        lines: list[int] = []
        line, previous = 1, 0
        for s in starts:  # str.count runs in C: linear in the file, cheap next to the parse
            line += text.count("\n", previous, s)
            lines.append(line)
            previous = s
        if len(set(lines)) == len(lines):  # one object per line at least: line numbers help
            line_of = lambda i: f"{shown}:{lines[i]}"  # noqa: E731
        else:
            line_of = lambda i: f"{shown}:item {i + 1}"  # noqa: E731
    else:
        line_of = lambda i: f"{shown}:item {i + 1}"  # noqa: E731

    for i, item in enumerate(items):
        if not isinstance(item, dict):
            raise _not_an_object(line_of(i), item)
        yield Row(line_of(i), item)


def _skip_ws(text: str, i: int) -> int:
    while i < len(text) and text[i] in " \t\r\n":
        i += 1
    return i


def _find_member(text: str, key: str) -> int | None:
    """Return the offset of the value of top-level member `key` in a JSON object text."""
    decoder = json.JSONDecoder()
    try:
        i = _skip_ws(text, 0)
        if text[i] != "{":
            return None
        i = _skip_ws(text, i + 1)
        while i < len(text) and text[i] != "}":
            name, i = decoder.raw_decode(text, i)
            i = _skip_ws(text, i)
            i = _skip_ws(text, i + 1)  # past ':'
            if name == key:
                return i
            _, i = decoder.raw_decode(text, i)
            i = _skip_ws(text, i)
            if text[i] == ",":
                i = _skip_ws(text, i + 1)
    except (ValueError, IndexError):
        pass
    return None


def _item_offsets(text: str, start: int, count: int) -> list[int] | None:
    """Return the character offset at which each element of the JSON array at `start` begins.

    The file has already been parsed once, so this walk cannot fail on valid input; it uses
    the C decoder item by item, which keeps it about as fast as the parse itself.
    """
    decoder = json.JSONDecoder()
    offsets: list[int] = []
    try:
        if text[start] != "[":
            return None
        i = _skip_ws(text, start + 1)
        while len(offsets) < count:
            offsets.append(i)
            _, i = decoder.raw_decode(text, i)
            i = _skip_ws(text, i)
            if text[i] == ",":
                i = _skip_ws(text, i + 1)
    except (ValueError, IndexError):
        return None
    return offsets


def _read_csv(p: Path, shown: str) -> Iterator[Row]:
    delimiter = "\t" if p.name.lower().endswith(".tsv") else ","
    try:
        # newline="" lets the csv module handle quoted fields that contain newlines.
        with _open_text(p, newline="") as f:
            reader = csv.reader(f, delimiter=delimiter)
            header: list[str] | None = None
            end_of_previous = 0
            for record in reader:
                # reader.line_num is the physical line the record ENDS on; it starts on the
                # line after the previous record ended.
                start_line = end_of_previous + 1
                end_of_previous = reader.line_num
                if not record or all(not cell.strip() for cell in record):
                    continue
                if header is None:
                    header = [h.strip() for h in record]
                    dup = sorted({h for h in header if header.count(h) > 1})
                    if dup:
                        raise DataError(
                            f"{shown}:{start_line}: the header repeats column(s) "
                            f"{', '.join(map(repr, dup))}; give every column a unique name."
                        )
                    continue
                where = f"{shown}:{start_line}"
                if len(record) != len(header):
                    raise DataError(
                        f"{where}: {len(record)} fields but the header has {len(header)} "
                        f"({', '.join(header)}). A field holding the delimiter "
                        f"{delimiter!r}, a quote or a newline must be enclosed in double quotes."
                    )
                yield Row(where, dict(zip(header, record)))
    except UnicodeDecodeError as e:
        raise _not_utf8(shown, e, p) from None
    except csv.Error as e:
        raise DataError(f"{shown}: not a valid CSV file ({e}).") from None


def _read_parquet(p: Path, shown: str) -> Iterator[Row]:
    import pyarrow.parquet as pq

    try:
        parquet = pq.ParquetFile(p)
    except Exception as e:  # pyarrow raises several unrelated types for a bad file
        raise DataError(f"{shown}: not a readable Parquet file ({e}).") from None
    n = 0
    for batch in parquet.iter_batches(batch_size=1024):
        for record in batch.to_pylist():
            n += 1
            yield Row(f"{shown}:row {n}", record)


def _read_saved_dataset(p: Path, shown: str) -> Iterator[Row]:
    if not ((p / "dataset_info.json").exists() or (p / "dataset_dict.json").exists()):
        raise DataError(
            f"{shown}: is a directory but not a dataset saved with datasets' save_to_disk "
            "(no dataset_info.json or dataset_dict.json inside). Point at a data file, or at "
            "the directory save_to_disk wrote."
        )
    import datasets

    try:
        loaded = datasets.load_from_disk(str(p))
    except Exception as e:  # datasets raises several types for a damaged directory
        raise DataError(f"{shown}: cannot be loaded with datasets.load_from_disk ({e}).") from None
    if isinstance(loaded, datasets.DatasetDict):
        splits = list(loaded)
        if len(splits) != 1:
            raise DataError(
                f"{shown}: holds several splits ({', '.join(splits)}); point at one of them, "
                f"e.g. {shown.rstrip('/')}/{splits[0] if splits else 'train'}."
            )
        dataset = loaded[splits[0]]
    else:
        dataset = loaded
    n = 0
    for batch in dataset.iter(batch_size=1024):
        columns = list(batch)
        size = len(batch[columns[0]]) if columns else 0
        for i in range(size):
            n += 1
            yield Row(f"{shown}:row {n}", {c: batch[c][i] for c in columns})
