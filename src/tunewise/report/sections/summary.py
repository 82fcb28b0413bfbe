"""Run summary: the model, method and training settings, the data statistics per split, the rows
set aside, the data audit, files that could not be read, and the resolved config."""

from __future__ import annotations

import json
from typing import Any

from markupsafe import Markup

from tunewise.report.formatting import clip, format_count, format_value
from tunewise.report.reader import RunRecord, mapping, number
from tunewise.report.rules import REJECTS_SHOWN
from tunewise.report.templating import Page, Section, kv_table, render_template

__all__ = ["SECTION"]

_STATS_HEAD = (
    "split",
    "rows",
    "truncated",
    "no trained tokens",
    "tokens trained",
    "tokens dropped",
    "length p50 / p95 / max",
    "max_length",
)
_AUDIT_EXAMPLES_SHOWN = 5  # audit.json keeps at most this many examples per finding (data.audit.EXAMPLES_KEPT)
_REJECT_CLIP = 240  # characters of a rejected row shown


def _facts(run: RunRecord) -> list[tuple[str, str]]:
    model, method = run.section("model"), run.section("method")
    train, data = run.section("train"), run.section("data")
    ts = run.train_summary or {}
    method_text = str(method.get("type", "—"))
    if method.get("r") is not None:
        method_text += f" (r={method.get('r')}, alpha={method.get('alpha', '?')}, dropout={method.get('dropout', '?')})"
    share = "—"
    if number(ts.get("trainable_parameters")) is not None:
        share = (
            f"{format_count(ts.get('trainable_parameters'))} of {format_count(ts.get('total_parameters'))} "
            f"({format_value(ts.get('trainable_percent'), 2)}%)"
        )
    stats = run.data_stats or {}
    rows = " / ".join(
        format_count((stats.get(s) or {}).get("rows")) if isinstance(stats.get(s), dict) else "—"
        for s in ("train", "eval", "test")
    )
    last_metrics = (run.metrics or [{}])[-1] if run.metrics else {}
    steps = ts.get("steps", last_metrics.get("step", "—"))
    status = "—" if run.train_summary is None else ("interrupted" if ts.get("interrupted") else "completed")
    return [
        ("Model", model.get("name", "—")),
        ("Method", method_text),
        ("Trainable parameters", share),
        ("Data rows (train / eval / test)", rows),
        (
            "Training data",
            data.get("train")
            or ", ".join(
                f"{d.get('name')} ({d.get('train')})" for d in data.get("datasets") or [] if isinstance(d, dict)
            )
            or "—",
        ),
        ("Steps", f"{steps} ({status})" if status != "—" else str(steps)),
        (
            "Epochs / learning rate / schedule",
            f"{train.get('epochs', '—')} / {train.get('lr', '—')} / {train.get('scheduler', '—')}",
        ),
        ("Batch size × accumulation", f"{train.get('batch_size', '—')} × {train.get('grad_accum', '—')}"),
    ]


def _stats(run: RunRecord) -> list[tuple[str, list[str]]]:
    """One row per split of data_stats.json; [] when it holds none."""
    rows = []
    for split, s in (run.data_stats or {}).items():
        if not isinstance(s, dict):
            continue
        lengths = (
            f"{format_count(s.get('length_p50'))} / {format_count(s.get('length_p95'))} / "
            f"{format_count(s.get('length_max'))}"
        )
        rows.append(
            (
                split,
                [
                    format_count(s.get("rows")),
                    format_count(s.get("rows_truncated")),
                    format_count(s.get("rows_without_trained_tokens")),
                    format_count(s.get("tokens_trained")),
                    format_count(s.get("tokens_dropped")),
                    lengths,
                    format_count(s.get("max_length")),
                ],
            )
        )
    return rows


def _rejects(run: RunRecord) -> list[tuple[Any, Any, str]]:
    return [
        (
            r.get("source", "?"),
            r.get("reason", "?"),
            clip(json.dumps(r.get("row"), ensure_ascii=False, default=str), _REJECT_CLIP),
        )
        for r in (run.rejects or [])[:REJECTS_SHOWN]
    ]


def _audit(saved: dict[str, Any]) -> dict[str, Any]:
    """The data audit's findings from a saved `audit.json`, read defensively: a malformed field
    shows as '?', never breaks the report."""
    rows, tokens = mapping(saved.get("rows")), mapping(saved.get("tokens"))
    block_on: list[Any] = saved["block_on"] if isinstance(saved.get("block_on"), list) else []
    findings = [f for f in saved.get("findings") or [] if isinstance(f, dict)]
    skipped = mapping(saved.get("skipped"))  # checks asked for that could not run (a missing extra), and why
    return {
        "sizes": ", ".join(f"{n} {split}" for split, n in rows.items()),
        "lengths": (
            f"; training row length in tokens: median {tokens.get('p50', '?')}, 95th percentile "
            f"{tokens.get('p95', '?')}, longest {tokens.get('max', '?')}"
        )
        if tokens
        else "",
        "blocking": ", ".join(map(str, block_on)) or "nothing (data.check.block_on is empty)",
        "skipped": list(skipped.values()),
        "toxicity_skipped": "toxicity" in skipped,  # then "nothing found" must not claim no toxic answers
        "findings": [
            (
                f.get("kind", "?"),
                f.get("kind") in block_on,
                f.get("count", "?"),
                f.get("message", ""),
                (f.get("examples") or [])[:_AUDIT_EXAMPLES_SHOWN],
            )
            for f in findings
        ],
    }


def _render(page: Page) -> Markup:
    run = page.run
    return render_template(
        "sections/summary.html.j2",
        run=run,
        facts=kv_table(_facts(run)),
        stats_head=_STATS_HEAD,
        stats=_stats(run),
        rejects=_rejects(run),
        audit=None if run.data_check is None else _audit(run.data_check),
    )


SECTION = Section("summary", "Run summary", "Summary", _render)
