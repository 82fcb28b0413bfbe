"""What `augment`, `synth` and `select` share: a local generation model, progress, and the
input/output of data files with every row's `file:line` kept.

A *generator* is any callable that takes chat conversations and returns one reply per
conversation. `ModelGenerator` is the real one (a local model through `tunewise.models`); tests
pass plain functions, so the filters around generation are tested exactly.
"""

from __future__ import annotations

import csv
import json
import os
import sys
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tunewise.data.io import Row, read_rows
from tunewise.errors import TunewiseError

if TYPE_CHECKING:
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

__all__ = ["DEFAULT_MODEL", "Generator", "ModelGenerator", "append_jsonl", "progress", "read_all", "write_rows"]

DEFAULT_MODEL = "smollm2-135m-instruct"

Generator = Callable[[Sequence[Sequence[dict[str, str]]]], list[str]]
"""Chat conversations in, one reply (text) per conversation out."""


class ModelGenerator:
    """Sample replies from a local causal language model, in batches, reproducibly.

    Every call reseeds torch with `seed + calls`, so the same sequence of calls on the same model
    gives the same replies (and a resumed job repeats none of the earlier calls' randomness).

    Args:
        model: a loaded causal LM, or None to load `name`.
        tokenizer: its tokenizer (with a chat template), or None to load `name`'s.
        name: the model to load when `model`/`tokenizer` are None: an alias, a local directory
            or a Hugging Face id (`tunewise.models.load_model`).
        max_new_tokens: reply length cap, in tokens.
        temperature: sampling temperature; 0 means greedy decoding.
        top_p: nucleus sampling mass.
        seed: the base seed.
        batch_size: conversations generated together.
    """

    def __init__(
        self,
        model: PreTrainedModel | None = None,
        tokenizer: PreTrainedTokenizerBase | None = None,
        *,
        name: str = DEFAULT_MODEL,
        max_new_tokens: int = 128,
        temperature: float = 0.7,
        top_p: float = 0.9,
        seed: int = 0,
        batch_size: int = 8,
    ) -> None:
        if model is None or tokenizer is None:
            from tunewise.models import load_model, load_tokenizer

            tokenizer = tokenizer if tokenizer is not None else load_tokenizer(name)
            model = model if model is not None else load_model(name)
        if not getattr(tokenizer, "chat_template", None):
            raise TunewiseError(
                f"model {name!r}: its tokenizer has no chat template, so prompts cannot be rendered. "
                "Use an instruct/chat model (e.g. the default, smollm2-135m-instruct) with --model."
            )
        self.model, self.tokenizer, self.name = model, tokenizer, name
        self.max_new_tokens, self.temperature, self.top_p = max_new_tokens, temperature, top_p
        self.seed, self.batch_size, self.calls = seed, batch_size, 0

    def reseed(self, seed: int) -> None:
        """Start the call count over from `seed`: a resumed job reseeds by its position in the
        work, so it samples what an uninterrupted run would have sampled there."""
        self.seed, self.calls = seed, 0

    def __call__(self, conversations: Sequence[Sequence[dict[str, str]]]) -> list[str]:
        import torch

        from tunewise.inference import generate_texts

        torch.manual_seed(self.seed + self.calls)
        self.calls += 1
        return generate_texts(
            self.model,
            self.tokenizer,
            conversations,
            max_new_tokens=self.max_new_tokens,
            batch_size=self.batch_size,
            temperature=self.temperature,
            top_p=self.top_p,
        )


def progress(
    iterable: Iterable[Any] | None = None, *, total: int | None = None, desc: str = "", enabled: bool | None = None
) -> Any:
    """A tqdm bar on stderr; off when stderr is not a terminal unless `enabled` says otherwise."""
    from tqdm.auto import tqdm

    if enabled is None:
        enabled = sys.stderr.isatty()
    return tqdm(iterable, total=total, desc=desc, disable=not enabled, file=sys.stderr, dynamic_ncols=True)


# --------------------------------------------------------------------------- reading


def read_all(path: str | Path) -> list[Row]:
    """Every row of a data file, each with its `file:line` (bad bytes, bad JSON: named by line)."""
    return list(read_rows(path))


# --------------------------------------------------------------------------- writing


def write_rows(rows: Sequence[dict[str, Any]], path: str | Path) -> Path:
    """Write rows as the output path's extension says: `.jsonl`, `.json`, `.csv`/`.tsv`, `.parquet`.

    CSV cells that are not strings (message lists, provenance) are written as JSON text, which
    `tunewise` reads back. The file is written to a temporary name and renamed, so an interrupted
    write never leaves half a file under the real name.
    """
    p = Path(path)
    name = p.name.lower()
    if not name.endswith((".jsonl", ".json", ".csv", ".tsv", ".parquet")):
        raise TunewiseError(
            f"{path}: cannot tell the output format from the extension; use .jsonl, .json, .csv, .tsv or .parquet."
        )
    p.parent.mkdir(parents=True, exist_ok=True)
    tmp = p.with_name(f".{p.name}.tmp-{os.getpid()}")
    try:
        if name.endswith(".jsonl"):
            with open(tmp, "w", encoding="utf-8") as f:
                for row in rows:
                    f.write(json.dumps(row, ensure_ascii=False) + "\n")
        elif name.endswith(".json"):
            tmp.write_text(json.dumps(list(rows), ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
        elif name.endswith(".parquet"):
            import pyarrow as pa
            import pyarrow.parquet as pq

            flat = [
                {
                    k: v if isinstance(v, (str, int, float, bool)) or v is None else json.dumps(v, ensure_ascii=False)
                    for k, v in r.items()
                }
                for r in rows
            ]
            pq.write_table(pa.Table.from_pylist(flat), tmp)
        else:
            columns: list[str] = []
            for row in rows:
                columns += [k for k in row if k not in columns]
            with open(tmp, "w", encoding="utf-8", newline="") as f:
                writer = csv.writer(f, delimiter="\t" if name.endswith(".tsv") else ",")
                writer.writerow(columns)
                for row in rows:
                    writer.writerow([_cell(row.get(c)) for c in columns])
        os.replace(tmp, p)
    finally:
        if tmp.exists():
            tmp.unlink()
    return p


def _cell(value: Any) -> str:
    if value is None:
        return ""
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)


def append_jsonl(path: Path, rows: Iterable[dict[str, Any]]) -> None:
    """Append rows to a JSONL file and flush them to disk (resumable jobs write as they go)."""
    with open(path, "a", encoding="utf-8") as f:
        for row in rows:
            f.write(json.dumps(row, ensure_ascii=False) + "\n")
        f.flush()
        os.fsync(f.fileno())
