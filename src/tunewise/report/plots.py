"""The report's charts, drawn with matplotlib and returned as PNG bytes.

The figures are built with the object-oriented API on an Agg canvas, never through pyplot, so
building a report never switches the global backend of the process that asked for it (a notebook
keeps its inline plots). Every function takes plain numbers: what counts as overfitting or as a
significant change is decided in `rules.py`, not here.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

__all__ = [
    "COLORS",
    "DeltaBar",
    "delta_chart",
    "forgetting_curve",
    "learning_curves",
    "style_axes",
    "to_png",
    "value_chart",
]

COLORS = {
    "good": "#1a7f37",
    "bad": "#cf222e",
    "neutral": "#8c959f",
    "train_raw": "#9fb8d9",
    "train": "#1f6feb",
    "eval": "#d97706",
}
"""One palette for the charts and the HTML, so green and red mean the same thing in both."""

_DPI = 150  # every figure is 10 in wide: 1500 px, sharp at the page width on high-density screens


@dataclass(frozen=True)
class DeltaBar:
    """One bar of a delta chart: tuned minus base with its interval.

    Attributes:
        label: what was measured (suite and metric).
        value: the point estimate of tuned − base.
        low: the lower end of its interval, or None when not measured.
        high: the upper end of its interval, or None when not measured.
        judgement: `good`, `bad` or `neutral` — the colour of the bar.
    """

    label: str
    value: float
    low: float | None
    high: float | None
    judgement: str


def style_axes(ax: Any) -> None:
    """The charts' common look: no top and right spines, a light grid behind the data, small ticks."""
    ax.spines["top"].set_visible(False)
    ax.spines["right"].set_visible(False)
    ax.grid(True, color="#d0d7de", linewidth=0.6, alpha=0.8)
    ax.set_axisbelow(True)
    ax.tick_params(labelsize=9)


def _columns(points: Sequence[tuple[int, float]]) -> tuple[list[int], list[float]]:
    return [step for step, _ in points], [value for _, value in points]


def to_png(fig: Figure) -> bytes:
    """The figure as PNG bytes, drawn on its own Agg canvas (the global pyplot backend is untouched)."""
    FigureCanvasAgg(fig)
    buffer = io.BytesIO()
    # No "Software" stamp: the same run gives byte-identical plots whatever matplotlib built them.
    fig.savefig(buffer, format="png", dpi=_DPI, bbox_inches="tight", metadata={"Software": None})
    return buffer.getvalue()


def learning_curves(
    train: Sequence[tuple[int, float]],
    train_smooth: Sequence[tuple[int, float]],
    eval_points: Sequence[tuple[int, float]],
    *,
    best_step: int | None = None,
    onset_step: int | None = None,
    smooth_window: int | None = None,
) -> bytes:
    """Train and eval loss against the optimizer step, the overfitting onset marked.

    Args:
        train: (step, loss) as logged.
        train_smooth: (step, loss) after smoothing, drawn over the raw curve.
        eval_points: (step, eval loss).
        best_step: the step of the lowest eval loss, marked with a ring.
        onset_step: where overfitting began: a dashed vertical line, the region after it shaded.
        smooth_window: how many logged points the smoothing averages, for the legend.

    Returns:
        The chart as PNG bytes.
    """
    fig = Figure(figsize=(10, 4.2))
    ax = fig.add_subplot()
    style_axes(ax)
    if train:
        ax.plot(*_columns(train), color=COLORS["train_raw"], linewidth=1, label="train loss (as logged)")
    if train_smooth:
        label = f"train loss (mean of last {smooth_window} logs)" if smooth_window else "train loss (smoothed)"
        ax.plot(*_columns(train_smooth), color=COLORS["train"], linewidth=2, label=label)
    if eval_points:
        ax.plot(*_columns(eval_points), color=COLORS["eval"], linewidth=2, marker="o", markersize=4, label="eval loss")
    if best_step is not None:
        best = dict(eval_points).get(best_step)
        if best is not None:
            ax.plot(
                [best_step],
                [best],
                marker="o",
                markersize=11,
                markerfacecolor="none",
                markeredgecolor=COLORS["good"],
                markeredgewidth=2,
                linestyle="none",
                label=f"lowest eval loss (step {best_step})",
            )
    if onset_step is not None:
        last = max(step for step, _ in [*train, *eval_points])
        ax.axvspan(onset_step, max(last, onset_step), color=COLORS["bad"], alpha=0.06, linewidth=0)
        ax.axvline(onset_step, color=COLORS["bad"], linestyle="--", linewidth=1.5)
        ax.annotate(
            f"overfitting onset\nstep {onset_step}",
            xy=(onset_step, 1),
            xycoords=("data", "axes fraction"),
            xytext=(6, -6),
            textcoords="offset points",
            va="top",
            ha="left",
            fontsize=9,
            color=COLORS["bad"],
            fontweight="bold",
        )
    ax.set_xlabel("optimizer step", fontsize=10)
    ax.set_ylabel("loss", fontsize=10)
    if ax.has_data():
        ax.legend(fontsize=9, frameon=False, loc="upper right")
    return to_png(fig)


def _bar_axes(bars: Sequence[DeltaBar], xlabel: str) -> tuple[Figure, Any]:
    """One horizontal bar per entry, coloured by judgement, interval as error bars, 0 marked."""
    fig = Figure(figsize=(10, 0.55 * len(bars) + 1.3))
    ax = fig.add_subplot()
    style_axes(ax)
    ax.grid(True, axis="x", color="#d0d7de", linewidth=0.6)
    ax.grid(False, axis="y")
    ys = list(range(len(bars)))[::-1]
    below = [b.value - b.low if b.low is not None else 0.0 for b in bars]
    above = [b.high - b.value if b.high is not None else 0.0 for b in bars]
    ax.barh(
        ys,
        [b.value for b in bars],
        color=[COLORS.get(b.judgement, COLORS["neutral"]) for b in bars],
        height=0.55,
        alpha=0.85,
        xerr=[below, above],
        error_kw={"ecolor": "#24292f", "capsize": 4, "elinewidth": 1.2},
    )
    ax.axvline(0, color="#24292f", linewidth=1)
    ax.set_yticks(ys, [b.label for b in bars], fontsize=9)
    ax.set_xlabel(xlabel, fontsize=10)
    return fig, ax


def delta_chart(bars: Sequence[DeltaBar], *, xlabel: str = "tuned − base") -> bytes:
    """Horizontal bars of tuned − base per suite, interval as error bars, 0 as a reference line.

    Args:
        bars: one bar per suite, top to bottom.
        xlabel: the x axis label.

    Returns:
        The chart as PNG bytes.
    """
    fig, ax = _bar_axes(bars, xlabel)
    # Symmetric limits around 0: a glance tells better from worse without reading the ticks.
    reach = max(
        [abs(b.value) for b in bars]
        + [abs(b.low) for b in bars if b.low is not None]
        + [abs(b.high) for b in bars if b.high is not None]
        + [1e-3]
    )
    ax.set_xlim(-1.15 * reach, 1.15 * reach)
    return to_png(fig)


def value_chart(bars: Sequence[DeltaBar], *, xlabel: str) -> bytes:
    """Horizontal bars of one measurement per model variant, interval as error bars.

    Args:
        bars: one bar per variant, top to bottom; `judgement` colours it (`neutral` for a reference).
        xlabel: what the values are (e.g. "eval loss (lower is better)").

    Returns:
        The chart as PNG bytes.
    """
    fig, _ = _bar_axes(bars, xlabel)
    return to_png(fig)


_SERIES = ("#1f6feb", "#8250df", "#bf3989", "#0a7d8c", "#9a6700", "#57606a")
"""Line colours of the general suites in the forgetting curve, in order."""


def forgetting_curve(
    eval_loss: Sequence[tuple[int, float]],
    scores: dict[str, Sequence[tuple[int, float]]],
    kl: Sequence[tuple[int, float]],
    *,
    floors: dict[str, float] | None = None,
    kl_budget: float | None = None,
    breach_steps: Sequence[int] = (),
    marker: tuple[int, str] | None = None,
) -> bytes:
    """The task metric and the general scores against the optimizer step, one panel each (and the KL
    to the base in a third when measured).

    Args:
        eval_loss: (step, eval loss) of the task's eval rows.
        scores: suite -> (step, score); step 0 is the base model.
        kl: (step, KL to base); empty when not measured.
        floors: suite -> the lowest score its budget allows (base − budget), drawn dashed.
        kl_budget: the KL budget, drawn dashed.
        breach_steps: evals where a budget was breached, shaded.
        marker: (step, label) of the weights the run ended with when not the last step (a rollback,
            a stop), a vertical line on every panel.

    Returns:
        The chart as PNG bytes.
    """
    panels = 2 + bool(kl)
    fig = Figure(figsize=(10, 2.6 * panels + 0.6))
    axes = fig.subplots(panels, 1, sharex=True)
    for ax in axes:
        style_axes(ax)
        for step in breach_steps:
            ax.axvline(step, color=COLORS["bad"], alpha=0.18, linewidth=6)
        if marker is not None:
            ax.axvline(marker[0], color=COLORS["good"], linestyle="--", linewidth=1.5)
    loss_ax, score_ax = axes[0], axes[1]
    if eval_loss:
        loss_ax.plot(
            *_columns(eval_loss), color=COLORS["eval"], linewidth=2, marker="o", markersize=4, label="eval loss (task)"
        )
    loss_ax.set_ylabel("eval loss", fontsize=10)
    if marker is not None:
        loss_ax.annotate(
            marker[1],
            xy=(marker[0], 1),
            xycoords=("data", "axes fraction"),
            xytext=(6, -6),
            textcoords="offset points",
            va="top",
            ha="left",
            fontsize=9,
            color=COLORS["good"],
            fontweight="bold",
        )
    for i, (name, points) in enumerate(scores.items()):
        color = _SERIES[i % len(_SERIES)]
        score_ax.plot(*_columns(points), color=color, linewidth=2, marker="o", markersize=4, label=name)
        floor = (floors or {}).get(name)
        if floor is not None:
            score_ax.axhline(floor, color=color, linestyle=":", linewidth=1.3, label=f"{name} budget floor")
    score_ax.set_ylabel("general score", fontsize=10)
    if kl:
        kl_ax = axes[2]
        kl_ax.plot(*_columns(kl), color=COLORS["bad"], linewidth=2, marker="o", markersize=4, label="KL to base")
        if kl_budget is not None:
            kl_ax.axhline(kl_budget, color=COLORS["bad"], linestyle=":", linewidth=1.3, label="KL budget")
        kl_ax.set_ylabel("KL(base ‖ tuned)", fontsize=10)
    axes[-1].set_xlabel("optimizer step (0 = base model)", fontsize=10)
    for ax in axes:
        if ax.has_data():
            ax.legend(fontsize=8, frameon=False, loc="best")
    return to_png(fig)
