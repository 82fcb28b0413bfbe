"""Learning curves: train loss (raw and smoothed) and eval loss by step, with the overfitting onset."""

from __future__ import annotations

from markupsafe import Markup

from tunewise.report.plots import learning_curves
from tunewise.report.rules import (
    OVERFIT_EVAL_RISE,
    OVERFIT_MIN_EVAL_POINTS,
    TRAIN_SMOOTH_WINDOW,
    curves,
    overfitting_onset,
)
from tunewise.report.templating import Page, Section, missing, render_template

__all__ = ["SECTION"]


def _render(page: Page) -> Markup:
    run = page.run
    if not run.metrics:
        return missing("Learning curves", run.hint("metrics"))
    c = curves(run.metrics)
    if not c.train and not c.eval:
        return missing("Learning curves (metrics.jsonl holds no loss)", run.hint("metrics"))
    onset = overfitting_onset(c)
    best_step = min(c.eval, key=lambda p: p[1])[0] if c.eval else None
    png = learning_curves(
        c.train,
        c.smooth,
        c.eval,
        best_step=best_step,
        onset_step=onset.step if onset else None,
        smooth_window=TRAIN_SMOOTH_WINDOW,
    )
    chart = page.plot("learning_curves.png", png, "train and eval loss against the optimizer step")
    notes = [f"Train loss: {len(c.train)} logged points, smoothed as the mean of the last {TRAIN_SMOOTH_WINDOW}."]
    if c.eval:
        best = min(c.eval, key=lambda p: p[1])
        last = c.eval[-1]
        notes.append(f"Lowest eval loss {best[1]:.3f} at step {best[0]}; last {last[1]:.3f} at step {last[0]}.")
    if onset:
        notes.append(
            f"Overfitting onset at step {onset.step} (dashed line): eval loss more than "
            f"{OVERFIT_EVAL_RISE:.0%} above its minimum while train loss kept falling."
        )
    elif len(c.eval) >= OVERFIT_MIN_EVAL_POINTS:
        notes.append(
            "No overfitting onset: eval loss never rose past its minimum by more than "
            f"{OVERFIT_EVAL_RISE:.0%} while train loss fell."
        )
    too_few = None
    if len(c.eval) < OVERFIT_MIN_EVAL_POINTS:
        too_few = missing(
            f"Overfitting (needs at least {OVERFIT_MIN_EVAL_POINTS} eval points during training, found {len(c.eval)})",
            run.hint("eval_curve"),
        )
    return render_template("sections/curves.html.j2", chart=chart, notes=" ".join(notes), too_few=too_few)


SECTION = Section("curves", "Learning curves", "Learning curves", _render)
