"""Show what the model will be trained on: the rendered tokens with the loss mask made visible.

Most silent fine-tuning failures are visible here at a glance: a prompt that is trained on, an
end-of-turn token that is not (so the model never learns to stop), a default system prompt
the user did not expect, answers cut off by `max_length`.

In colour, trained tokens have a green background (alternating shades, so token boundaries
show) and untrained tokens are dim. Without colour (`NO_COLOR`, a pipe, a log file) every run
of trained tokens is wrapped in `⟦…⟧`, so the mask reads the same in plain text. Special
tokens are shown as written (`<|im_end|>`), and a newline is shown as `↵` before the line break.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, cast

from rich.console import Console
from rich.table import Table
from rich.text import Text

from tunewise.data.templates import IGNORE_INDEX, Rendered, RenderStats

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase

__all__ = ["CLOSE", "OPEN", "preview"]

OPEN, CLOSE = "⟦", "⟧"
"""The brackets around trained spans when colour is off."""

_TRAINED = ("black on green3", "black on pale_green3")
_UNTRAINED = ("grey50", "grey62")
_NEWLINE = "↵"


def preview(
    rendered: Sequence[Rendered],
    tokenizer: PreTrainedTokenizerBase,
    stats: RenderStats,
    *,
    n: int,
    console: Console | None = None,
) -> None:
    """Print the first `n` rendered rows with their loss mask, then the length statistics.

    Args:
        rendered: rows from `render_all`.
        tokenizer: the tokenizer they were rendered with (to decode them).
        stats: the statistics from `render_all`.
        n: how many rows to show.
        console: where to print; a new `rich` console on stdout when None.
    """
    console = console or Console()
    plain = console.no_color or console.color_system is None
    special = set(tokenizer.all_special_ids)

    console.print(_legend(plain))
    for row in list(rendered)[:n]:
        console.print()
        header = Text(f"{row.source}", style="bold")
        header.append(f"  {row.n_tokens} tokens, {row.n_trained} trained")
        if row.truncated:
            header.append(f", truncated: {row.n_dropped_tokens} tokens dropped", style="bold red")
        console.print(header, soft_wrap=True)
        # soft_wrap: the terminal wraps long lines; rich must not insert line breaks of its own
        # into the text, or the output would no longer be the exact rendered sequence.
        console.print(_body(row, tokenizer, special, plain), soft_wrap=True)
    console.print()
    console.print(_stats_table(stats))


def _legend(plain: bool) -> Text:
    legend = Text("legend: ")
    if plain:
        legend.append(f"{OPEN}trained{CLOSE} not trained")
    else:
        legend.append("trained", style=_TRAINED[0])
        legend.append(" ")
        legend.append("not trained", style=_UNTRAINED[0])
    legend.append(f"; {_NEWLINE} = newline; special tokens are shown as written")
    return legend


def _pieces(row: Rendered, tokenizer: PreTrainedTokenizerBase) -> list[tuple[str, bool, int]]:
    """Decode token by token: `(text, trained, first token id)` per piece.

    A byte-level token can hold half of a multi-byte character; such tokens are joined with
    the next ones until the bytes decode, so the preview never shows replacement characters
    the data does not contain.
    """
    pieces: list[tuple[str, bool, int]] = []
    pending: list[int] = []
    trained = False
    for token, label in zip(row.input_ids, row.labels):
        if not pending:
            trained = label != IGNORE_INDEX  # a joined piece takes its first token's mask
        pending.append(token)
        # decode gives a list only for a batch of sequences; one flat id list decodes to a str.
        text = cast(str, tokenizer.decode(pending, clean_up_tokenization_spaces=False))
        if "\ufffd" in text and len(pending) < 4:  # a UTF-8 character is at most 4 bytes
            continue
        pieces.append((text, trained, pending[0]))
        pending = []
    if pending:  # truncation cut a character in half
        text = cast(str, tokenizer.decode(pending, clean_up_tokenization_spaces=False))
        pieces.append((text, trained, pending[0]))
    return pieces


def _body(row: Rendered, tokenizer: PreTrainedTokenizerBase, special: set[int], plain: bool) -> Text:
    text = Text()
    in_trained = False
    for i, (piece, trained, first) in enumerate(_pieces(row, tokenizer)):
        if plain and trained != in_trained:
            text.append(OPEN if trained else CLOSE)
            in_trained = trained
        style = (_TRAINED if trained else _UNTRAINED)[i % 2]
        if first in special:
            style += " bold"
        text.append(piece.replace("\n", f"{_NEWLINE}\n"), style=None if plain else style)
    if plain and in_trained:
        text.append(CLOSE)
    if row.truncated:
        text.append(f" ✂ {row.n_dropped_tokens} more tokens cut by max_length", style="bold red")
    return text


def _stats_table(stats: RenderStats) -> Table:
    table = Table(title=f"Rendered rows (max_length={stats.max_length})", title_justify="left")
    table.add_column("", style="bold")
    table.add_column("value", justify="right")
    share = stats.tokens_trained / stats.tokens_total if stats.tokens_total else 0.0
    truncated_share = stats.rows_truncated / stats.rows if stats.rows else 0.0
    table.add_row("rows", f"{stats.rows}")
    table.add_row("rows truncated", f"{stats.rows_truncated} ({truncated_share:.1%})")
    table.add_row("rows rejected: no trained tokens left", f"{stats.rows_without_trained_tokens}")
    table.add_row("tokens (kept rows)", f"{stats.tokens_total}")
    table.add_row("tokens trained", f"{stats.tokens_trained} ({share:.1%})")
    table.add_row("tokens cut by truncation", f"{stats.tokens_dropped}")
    table.add_row(
        "length min / mean / p50 / p95 / max",
        f"{stats.length_min} / {stats.length_mean:.0f} / {stats.length_p50} / {stats.length_p95} / {stats.length_max}",
    )
    return table
