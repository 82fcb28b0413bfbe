"""The data check before training is the data audit (`tunewise.data.audit`) on the prepared rows.

`tunewise data check` is an alias of `tunewise data audit CONFIG`; `train`, `run` and `cv` call
`check_data` on the rows they are about to train on, so the rendered lengths (and truncation)
are those of the chat template and `data.max_length`.

    check = check_data(train, {"eval": eval_rows}, config, suites=suite_texts(config))  # evaluation.suite
    check.findings      # [Finding(kind="eval_leakage", count=3, ...)]
    check.blocking      # the findings named in data.check.block_on
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from functools import partial
from typing import TYPE_CHECKING

from tunewise.data.audit import AUDIT_KINDS, Audit, Finding, Source, audit, items_from_examples

if TYPE_CHECKING:
    from tunewise.config import Config
    from tunewise.data.shapes import Example

__all__ = ["CHECK_KINDS", "DataCheck", "Finding", "check_data"]

CHECK_KINDS = AUDIT_KINDS
"""Every finding the check (the audit) can report: the values `data.check.block_on` accepts."""

DataCheck = Audit
"""What the check found: an `Audit`."""


def check_data(
    train: Sequence[Example],
    held_out: dict[str, Sequence[Example]],
    config: Config,
    *,
    suites: Sequence[tuple[str, list[str]]] = (),
    lengths: dict[str, tuple[int, bool]] | None = None,
    labels: dict[str, str] | None = None,
    count_tokens: Callable[[list[str]], list[int]] | None = None,
) -> Audit:
    """Audit `train` and each held-out split ("eval", "test") with `config.data.check`.

    Args:
        train: the training examples.
        held_out: split name -> its examples.
        config: `data.check` sets thresholds and what blocks; `data.max_length` what is truncated.
        suites: (suite name, item texts) pairs to check for contamination.
        lengths: source -> (rendered tokens, truncated); rows without one are not judged by length.
        labels: source -> label, for classification rows.
        count_tokens: the tokenizer's lengths, to measure answers (`too_short`).
    """
    splits = {"train": train, **held_out}
    sources = []
    for name, examples in splits.items():
        items = items_from_examples(
            examples, lengths=lengths, labels=[labels.get(ex.source) for ex in examples] if labels is not None else None
        )
        sources.append(Source(name, partial(list, items)))
    return audit(
        sources, config.data.check, suites=suites, max_length=config.data.max_length, count_tokens=count_tokens
    )
