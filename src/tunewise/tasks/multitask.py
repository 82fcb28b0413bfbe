"""Multi-task: several datasets in one training mixture, each evaluated on its own.

    data:
      datasets:
        - {name: support, train: support.jsonl, eval: support_eval.jsonl}
        - {name: sql, train: sql.jsonl}            # eval: data.split of its own rows
      mixing: {strategy: temperature, temperature: 2}

Each dataset is read, split and rendered exactly as a single `data.train` file would be. Then the
training rows of one epoch are drawn from the datasets with probabilities

- `strategy: weights`: p_i = w_i / Σ w (every dataset needs a `weight`);
- `strategy: temperature` (T5, mT5): p_i ∝ n_i^(1/T) for dataset sizes n_i. T = 1 samples in
  proportion to size (the plain concatenation, in expectation); a larger T flattens the mixture
  towards uniform, up-sampling the small datasets.

The epoch has Σ n_i rows, like the concatenation: p_i of them from dataset i (rounded), in an
order shuffled with `mixing.seed`. Within a dataset the rows come in a seeded random order and all
of them are used before any repeats, so an up-sampled dataset cycles through its rows and a
down-sampled one contributes a random subset. The draw is made once and repeated by later epochs.

Evaluation: the eval rows of all datasets together drive eval during training; after training,
base and tuned eval loss are reported per dataset (`datasets` in eval_summary.json) with a paired
bootstrap interval on each change. `mixture.json` in the run directory records the probabilities
and what was drawn.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from tunewise.data.templates import RenderStats
from tunewise.tasks.base import Prepared

if TYPE_CHECKING:
    from tunewise.config import Config, MixingConfig
    from tunewise.data import Example, Rendered

__all__ = [
    "dataset_losses",
    "describe_mixture",
    "mixture_probabilities",
    "prepare_mixture",
    "print_datasets",
    "rows_stats",
    "sample_mixture",
    "select_eval",
]


def mixture_probabilities(
    sizes: Sequence[int], mixing: MixingConfig, weights: Sequence[float | None] | None = None
) -> list[float]:
    """The probability of drawing a training row from each dataset.

    Args:
        sizes: training rows per dataset.
        mixing: the strategy and temperature.
        weights: per dataset, for `strategy: weights` (each must be set and positive).

    Raises:
        ValueError: sizes or weights that give no distribution.
    """
    if not sizes or any(n <= 0 for n in sizes):
        raise ValueError(f"every dataset needs training rows; sizes {list(sizes)}")
    if mixing.strategy == "weights":
        if weights is None or any(w is None or w <= 0 for w in weights) or len(weights) != len(sizes):
            raise ValueError("strategy weights needs one positive weight per dataset")
        raw = [float(w) for w in weights]  # type: ignore[arg-type]
    else:
        # In log space: n ** (1/T) overflows no float for any real dataset size, but stay safe.
        logs = [math.log(n) / mixing.temperature for n in sizes]
        top = max(logs)
        raw = [math.exp(x - top) for x in logs]
    total = sum(raw)
    return [x / total for x in raw]


def sample_mixture(
    sizes: Sequence[int], probabilities: Sequence[float], total: int, seed: int
) -> list[tuple[int, int]]:
    """Draw `total` training rows as (dataset index, row index) pairs, in a seeded random order.

    Dataset i gives p_i × total rows, rounded by largest remainder, so the proportions hold
    exactly rather than only in expectation (a plain draw of 24 rows at p = 0.25 comes out empty
    one time in a thousand). Within a dataset, rows follow a seeded shuffle that is used up before
    a fresh one starts, so no row repeats before every row of its dataset was drawn once.
    """
    rng = random.Random(seed)
    exact = [p * total for p in probabilities]
    counts = [math.floor(x) for x in exact]
    by_remainder = sorted(range(len(exact)), key=lambda i: (counts[i] - exact[i], i))
    for i in by_remainder[: total - sum(counts)]:
        counts[i] += 1
    slots = [d for d, n in enumerate(counts) for _ in range(n)]
    rng.shuffle(slots)
    orders: list[list[int]] = [[] for _ in sizes]
    out = []
    for d in slots:
        if not orders[d]:
            order = list(range(sizes[d]))
            rng.shuffle(order)
            orders[d] = order[::-1]  # pop() from the end takes them in shuffled order
        out.append((d, orders[d].pop()))
    return out


def rows_stats(rows: Sequence[Rendered], parts: Sequence[RenderStats]) -> RenderStats:
    """Render statistics of rows drawn from several datasets (the parts give what rows cannot)."""
    lengths = sorted(r.n_tokens + r.n_dropped_tokens for r in rows)

    def rank(q: float) -> int:
        return lengths[max(0, math.ceil(q * len(lengths)) - 1)] if lengths else 0

    return RenderStats(
        rows=len(rows),
        rows_truncated=sum(r.truncated for r in rows),
        rows_without_trained_tokens=sum(p.rows_without_trained_tokens for p in parts),
        tokens_total=sum(r.n_tokens for r in rows),
        tokens_trained=sum(r.n_trained for r in rows),
        tokens_dropped=sum(r.n_dropped_tokens for r in rows),
        max_length=parts[0].max_length,
        length_min=lengths[0] if lengths else 0,
        length_mean=sum(lengths) / len(lengths) if lengths else 0.0,
        length_p50=rank(0.5),
        length_p95=rank(0.95),
        length_max=lengths[-1] if lengths else 0,
    )


def prepare_mixture(config: Config, prepare_one: Callable[[Config], Prepared]) -> Prepared:
    """Prepare every dataset of `data.datasets` as its own `data.train`, then draw the mixture.

    Args:
        prepare_one: prepares a config whose `data.train` is one dataset (the task's own preparation).

    Returns:
        `Prepared` with the mixed training rows, the eval and test rows of every dataset in
        dataset order (`eval_parts` says how many each), and `mixture` describing the draw.
    """
    data = config.data
    parts: list[Prepared] = []
    for dataset in data.datasets:
        one = config.model_copy(
            update={
                "data": data.model_copy(
                    update={"train": dataset.train, "eval": dataset.eval, "test": None, "datasets": []}
                )
            }
        )
        parts.append(prepare_one(one))
    sizes = [len(p.train) for p in parts]
    probabilities = mixture_probabilities(sizes, data.mixing, [d.weight for d in data.datasets])
    drawn = sample_mixture(sizes, probabilities, sum(sizes), data.mixing.seed)
    train = [parts[d].train[i] for d, i in drawn]
    mixture = []
    for k, (dataset, part) in enumerate(zip(data.datasets, parts)):
        rows = [i for d, i in drawn if d == k]
        mixture.append(
            {
                "name": dataset.name,
                "train_rows": sizes[k],
                "probability": probabilities[k],
                "drawn": len(rows),
                "distinct": len(set(rows)),
                "eval_rows": len(part.eval),
            }
        )
    stats = {
        split: rows_stats(rows, [p.stats[split] for p in parts])
        for split, rows in (
            ("train", train),
            ("eval", [r for p in parts for r in p.eval]),
            ("test", [r for p in parts for r in p.test]),
        )
    }
    for dataset, part in zip(data.datasets, parts):
        stats.update({f"{split} · {dataset.name}": part.stats[split] for split in ("train", "eval")})
    return Prepared(
        train=train,
        eval=[r for p in parts for r in p.eval],
        test=[r for p in parts for r in p.test],
        eval_examples=[ex for p in parts for ex in p.eval_examples],
        stats=stats,
        rejects=[r for p in parts for r in p.rejects],
        train_examples=[ex for p in parts for ex in p.train_examples],
        test_examples=[ex for p in parts for ex in p.test_examples],
        eval_parts={d.name: len(p.eval) for d, p in zip(data.datasets, parts)},
        mixture=mixture,
    )


def describe_mixture(mixture: list[dict[str, Any]]) -> str:
    """One line per dataset: its size, probability and rows drawn per epoch."""
    return "\n".join(
        f"  {m['name']}: {m['train_rows']} train rows, p={m['probability']:.3f}, "
        f"{m['drawn']} drawn per epoch ({m['distinct']} distinct), {m['eval_rows']} eval rows"
        for m in mixture
    )


def dataset_losses(
    eval_parts: dict[str, int],
    per_row: dict[str, list[tuple[float, int]]],
    *,
    limit: int | None,
    bootstrap: int,
    confidence: float,
    seed: int,
) -> list[dict[str, Any]]:
    """Base and tuned eval loss per dataset, from the per-row losses of all eval rows in dataset order.

    Args:
        eval_parts: dataset name -> its number of eval rows, in the order the rows are concatenated.
        per_row: side -> (summed loss, tokens) per scored row, as `compare` returns them; with
            `limit`, the first `limit` rows of each dataset were scored.

    Returns:
        One entry per dataset: rows, tokens, `base`/`tuned` (loss, perplexity), `delta_loss` and
        `delta` (paired bootstrap interval of tuned − base over rows, token-weighted).
    """
    import numpy as np

    from tunewise.evaluation.metrics import paired_bootstrap_delta_corpus

    out = []
    start = 0
    for name, count in eval_parts.items():
        n = min(count, limit) if limit else count
        sides = {side: rows[start : start + n] for side, rows in per_row.items()}
        start += n
        if not n:
            out.append({"name": name, "rows": 0, "tokens": 0})
            continue
        entry: dict[str, Any] = {"name": name, "rows": n, "tokens": sum(c for _, c in sides["base"])}
        for side, rows in sides.items():
            total, tokens = sum(s for s, _ in rows), sum(c for _, c in rows)
            loss = total / tokens if tokens else float("nan")
            entry[side] = {"loss": loss, "perplexity": math.exp(loss) if tokens else float("nan")}
        if "tuned" in sides and entry["tokens"]:
            stats = {side: np.array(rows, dtype=float) for side, rows in sides.items()}

            def mean(side: str, stats: dict[str, Any] = stats) -> Any:
                return lambda idx: float(stats[side][idx, 0].sum() / max(stats[side][idx, 1].sum(), 1.0))

            d = paired_bootstrap_delta_corpus(
                n, mean("base"), mean("tuned"), n_resamples=bootstrap, confidence=confidence, seed=seed
            )
            entry["delta_loss"] = entry["tuned"]["loss"] - entry["base"]["loss"]
            entry["delta"] = {"value": d.value, "low": d.low, "high": d.high, "p_value": d.p_value}
        out.append(entry)
    return out


def select_eval(data: Prepared, limit: int | None) -> tuple[list[Rendered], list[Example]]:
    """The eval rows to score and their examples: the first `limit` rows (of each dataset, for a
    mixture, so that every dataset is scored), or all of them."""
    if not limit:
        return data.eval, data.eval_examples
    if not data.eval_parts:
        rows = data.eval[:limit]
    else:
        rows, start = [], 0
        for count in data.eval_parts.values():
            rows += data.eval[start : start + min(count, limit)]
            start += count
    kept = {r.source for r in rows}
    # Examples follow the rows they rendered into (a long document may give several windows).
    return rows, [ex for ex in data.eval_examples if ex.source in kept]


def print_datasets(entries: list[dict[str, Any]], confidence: float) -> None:
    """The per-dataset eval loss table of a multi-task run."""
    from rich.table import Table

    from tunewise.console import make_console

    table = Table(title=f"per dataset: eval loss, base vs tuned (change [{100 * confidence:.0f}% interval])")
    for column in ("dataset", "rows", "base", "tuned", "change"):
        table.add_column(column, justify="left" if column == "dataset" else "right")
    for e in entries:
        if not e.get("rows"):
            table.add_row(e["name"], "0", "-", "-", "-")
            continue
        d = e.get("delta")
        change = f"{d['value']:+.4f} [{d['low']:+.4f}, {d['high']:+.4f}]" if d else "-"
        if d and (d["low"] > 0 or d["high"] < 0):
            change = f"[{'green' if d['value'] < 0 else 'red'}]{change}[/]"
        table.add_row(
            e["name"],
            str(e["rows"]),
            f"{e['base']['loss']:.4f}",
            f"{e['tuned']['loss']:.4f}" if "tuned" in e else "-",
            change,
        )
    make_console().print(table)
