"""WiSE-FT (Wortsman et al., 2022): interpolate the fine-tune with its base model after training.

    θ(α) = (1 − α)·θ_base + α·θ_tuned,   α = 0 the base model, α = 1 the fine-tune as trained

What θ is depends on the method (`Interpolation`):

- LoRA, rsLoRA, QLoRA: the adapter's delta is scaled, ΔW(α) = α·B·A·s, by scaling the `lora_B`
  matrices (their base value is 0) — the same as scaling LoRA's scaling factor, but it is kept in
  the weights, so the saved adapter *is* the chosen α. No base weight is touched.
- (IA)³: the learned rescaling vectors move towards 1, their no-op value.
- full, freeze, gradual_unfreeze: every trained parameter moves towards the original value the
  method kept before training (`tunewise.methods.weights.originals`).

At α = 0 and α = 1 the interpolation reproduces the base and the tuned logits exactly (`torch.lerp`
returns its end points exactly). Virtual-token methods (prefix, prompt, P-tuning) and DoRA have no
base value to move towards; the config refuses them (`guard.wise_ft.enabled`).

`sweep` scores every α of `guard.wise_ft.alphas` on the task (eval loss on the eval rows) and
on the forgetting probes (`tunewise.guard.monitor.Probe`: the general suites and the KL to the
base), `choose` picks the α with the lowest eval loss among the points within every
`guard.monitor.budgets` (with no budgets: the lowest eval loss), and the model is left at that α.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from tunewise.errors import ConfigError, TunewiseError
from tunewise.guard.monitor import KL_KEY, ProbeScores, breaches
from tunewise.rundir import RunDir, write_json

if TYPE_CHECKING:
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

    from tunewise.config import Config
    from tunewise.data import Rendered
    from tunewise.guard.monitor import ForgettingMonitor, Probe

__all__ = ["WISE_FT_FILE", "Interpolation", "WisePoint", "check_wise_ft", "choose", "run_wise_ft", "sweep"]

WISE_FT_FILE = RunDir.WISE_FT
"""The sweep and the α chosen, in the run directory (read by the report card)."""

_ZERO, _ONE = "zero", "one"


class Interpolation:
    """Move a trained model between its base (α = 0) and itself as trained (α = 1).

    Args:
        model: the trained model: a PEFT model (LoRA family or IA3), or a model whose trained
            parameters' originals were kept by its method (full, freeze, gradual_unfreeze).

    Raises:
        TunewiseError: the model has no interpolable base (virtual tokens, DoRA, nothing kept).
    """

    def __init__(self, model: PreTrainedModel) -> None:
        from tunewise.methods.weights import originals

        self.model = model
        params = dict(model.named_parameters())
        anchors: dict[str, torch.Tensor | str] = {}
        if hasattr(model, "peft_config"):
            for name in params:
                if "lora_magnitude_vector" in name:
                    raise TunewiseError(
                        "WiSE-FT: DoRA learns a magnitude whose starting value is not kept, so "
                        "there is no base to interpolate towards; use plain LoRA"
                    )
                if ".lora_B." in name or ".lora_embedding_B." in name:
                    anchors[name] = _ZERO
                elif ".ia3_l." in name:
                    anchors[name] = _ONE
            if not anchors:
                kind = type(model.peft_config[next(iter(model.peft_config))]).__name__
                raise TunewiseError(
                    f"WiSE-FT: a {kind} adapter has no weights with a base value to interpolate "
                    f"towards (LoRA's B matrices, IA3's vectors); use lora, qlora or ia3"
                )
        else:
            kept = originals(model) or {}
            anchors = {name: kept[name] for name in kept if name in params}
            if not anchors:
                raise TunewiseError(
                    "WiSE-FT: the model kept no original weights to interpolate towards; it must "
                    "be prepared by a tunewise method (full, freeze, gradual_unfreeze, lora, ia3)"
                )
        self._anchors = anchors
        # The tuned values: the tensors the parameters hold now (each α gets new tensors).
        self._tuned = {name: params[name].data for name in anchors}
        self.alpha = 1.0

    def set(self, alpha: float) -> None:
        """Put the model at α: (1 − α)·base + α·tuned for every interpolated parameter."""
        if not 0.0 <= alpha <= 1.0:
            raise ValueError(f"alpha must be within [0, 1], got {alpha}")
        params = dict(self.model.named_parameters())
        with torch.no_grad():
            for name, tuned in self._tuned.items():
                anchor = self._anchors[name]
                if isinstance(anchor, str):
                    start = torch.zeros_like(tuned) if anchor == _ZERO else torch.ones_like(tuned)
                else:
                    start = anchor.to(tuned.device, tuned.dtype)
                params[name].data = tuned if alpha == 1.0 else torch.lerp(start, tuned, alpha)
        self.alpha = alpha


@dataclass
class WisePoint:
    """One α of the sweep."""

    alpha: float
    eval_loss: float | None
    scores: dict[str, float]
    deltas: dict[str, float]
    kl: float | None
    breaches: list[str]
    within_budget: bool
    seconds: float


def choose(points: Sequence[WisePoint]) -> tuple[WisePoint, str]:
    """The rule: the lowest eval loss among the points within every budget (ties: the larger α).

    With no point within budget, the smallest α (the one closest to the base). Points without an
    eval loss rank by α alone (larger first).

    Returns:
        The point chosen and the reason, in words.
    """
    if not points:
        raise ValueError("no WiSE-FT points to choose from")

    def rank(p: WisePoint) -> tuple[float, float]:
        return (p.eval_loss if p.eval_loss is not None else float("inf"), -p.alpha)

    within = [p for p in points if p.within_budget]
    if within:
        best = min(within, key=rank)
        return best, f"lowest eval loss among the {len(within)} of {len(points)} α within every forgetting budget"
    best = min(points, key=lambda p: p.alpha)
    return best, "no α was within every forgetting budget: the smallest α, closest to the base model"


def sweep(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    eval_rows: list[Rendered],
    alphas: Sequence[float],
    probe: Probe,
    base: ProbeScores,
    budgets: dict[str, float],
    *,
    batch_size: int = 8,
    log: Callable[[str], Any] = print,
) -> dict[str, Any]:
    """Score every α, leave the model at the chosen one, and return the record (`wise_ft.json`).

    Args:
        eval_rows: the task's eval rows: the eval loss is the task score (lower is better).
        alphas: the sweep, in any order.
        probe: the forgetting probes (general suites, KL on neutral prompts), base already prepared.
        base: the base model's probe scores.
        budgets: `guard.monitor.budgets`.
    """
    from tunewise.evaluation.compare import loss_on

    interpolation = Interpolation(model)
    points: list[WisePoint] = []
    started_all = time.monotonic()
    for alpha in sorted(set(alphas)):
        started = time.monotonic()
        interpolation.set(alpha)
        loss = (
            loss_on(model, eval_rows, pad_id=tokenizer.pad_token_id, batch_size=batch_size).loss if eval_rows else None
        )
        now = probe.measure(model)
        found = breaches(base, now, budgets)
        point = WisePoint(
            alpha=alpha,
            eval_loss=loss,
            scores=now.values,
            deltas=now.deltas(base),
            kl=now.kl,
            breaches=[b.text() for b in found],
            within_budget=not found,
            seconds=time.monotonic() - started,
        )
        points.append(point)
        shown = ", ".join(f"{k} {v:.3f}" for k, v in now.values.items())
        log(
            f"  WiSE-FT α={alpha:g}: eval loss {_num(loss)}, {shown}"
            + (f", KL to base {now.kl:.4f}" if now.kl is not None else "")
            + ("" if not found else f" — over budget: {'; '.join(b.text() for b in found)}")
        )
    chosen, reason = choose(points)
    interpolation.set(chosen.alpha)
    return {
        "alphas": [p.alpha for p in points],
        "points": [asdict(p) for p in points],
        "chosen": chosen.alpha,
        "reason": reason,
        "budgets": dict(budgets),
        "base": dict(base.values),
        "kl_measured": KL_KEY in probe.describe(),
        "seconds": time.monotonic() - started_all,
    }


def _num(value: float | None) -> str:
    return "—" if value is None else f"{value:.4f}"


def check_wise_ft(config: Config, *, eval_rows: int) -> None:
    """What `guard.wise_ft` needs from the data, checked before training.

    Raises:
        ConfigError: WiSE-FT is on and there are no eval rows to score the task on.
    """
    if config.guard.wise_ft.enabled and not eval_rows:
        raise ConfigError(
            [
                "guard.wise_ft.enabled: WiSE-FT picks α by the eval loss, and there are no eval "
                "rows; set data.eval to a file or data.split.eval above 0"
            ]
        )


def run_wise_ft(
    config: Config,
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    eval_rows: list[Rendered],
    run_dir: Path,
    monitor: ForgettingMonitor | None = None,
    *,
    tracker: Any = None,
    step: int = 0,
    log: Callable[[str], Any] = print,
) -> dict[str, Any] | None:
    """WiSE-FT after training, when `guard.wise_ft.enabled`: sweep α, leave the model at the α
    chosen, print the table, write `wise_ft.json` and send the α chosen to the trackers.

    The forgetting probes and the base scores are the monitor's when it ran (else loaded and
    measured here, with the same `guard.monitor` settings).
    """
    from rich.table import Table

    from tunewise.console import make_console
    from tunewise.guard.monitor import Probe

    wise = config.guard.wise_ft
    if not wise.enabled:
        return None
    if monitor is not None and monitor.base is not None:
        probe, base = monitor.probe, monitor.base
    else:
        probe = Probe(config.guard.monitor, tokenizer, batch_size=config.eval.batch_size)
        base = probe.measure_base(model)
    rows = eval_rows[: config.eval.limit] if config.eval.limit else eval_rows
    sweep_shown = ", ".join(f"{a:g}" for a in sorted(set(wise.alphas)))
    log(
        f"WiSE-FT: interpolating base and tuned weights at α = {sweep_shown} "
        f"(eval loss on {len(rows)} eval rows, {', '.join(k for k, _, _ in probe.suites)}"
        + (", KL to base" if config.guard.monitor.kl else "")
        + ") ..."
    )
    record = sweep(
        model,
        tokenizer,
        rows,
        wise.alphas,
        probe,
        base,
        config.guard.monitor.budgets,
        batch_size=config.eval.batch_size,
        log=log,
    )
    write_json(RunDir(run_dir).wise_ft, record)
    table = Table(title="WiSE-FT: (1−α)·base + α·tuned")
    keys = [k for k, _, _ in probe.suites]
    for column in ("α", "eval loss", *keys, *(["KL to base"] if config.guard.monitor.kl else []), "within budget"):
        table.add_column(column, justify="right")
    for p in record["points"]:
        mark = "[bold green]← chosen[/]" if p["alpha"] == record["chosen"] else ""
        table.add_row(
            f"{p['alpha']:g}",
            _num(p["eval_loss"]),
            *(f"{p['scores'][k]:.3f} ({p['deltas'][k]:+.3f})" for k in keys),
            *([_num(p["kl"])] if config.guard.monitor.kl else []),
            ("yes" if p["within_budget"] else "[red]no[/]") + (f" {mark}" if mark else ""),
        )
    make_console().print(table)
    log(f"WiSE-FT: kept α = {record['chosen']:g} ({record['reason']}); the saved weights are this interpolation")
    if tracker is not None:
        tracker.log_metrics({"wise_ft/alpha": float(record["chosen"])}, step=step)
    return record
