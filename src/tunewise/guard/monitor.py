"""The forgetting monitor: what the fine-tune is costing the base model, measured at every eval.

At the start of training the base model (adapters off, or the original weights swapped in:
`tunewise.methods.as_base`) is scored once on

- the general suites of `guard.monitor.suites` — multiple choice by log-likelihood (`acc_norm`, the
  built-in `general_knowledge` by default, or any `{query, choices, gold}` file such as ARC-Easy)
  and generation through the chat template (the built-in `chat` suite, `contains`), each limited to
  its first `guard.monitor.limit` items so that an eval stays cheap;
- a set of neutral chat prompts, which the base model answers greedily once: the KL is later taken
  on those answer tokens, KL(base ‖ tuned) per token (`tunewise.guard.kl.token_kl`).

Then, at every eval during training, the same probes are scored on the model as it is, and the eval
log gains `eval_general/<suite>` (the score), `eval_general/<suite>_delta` (score − base; negative
is a drop) and `eval_kl_to_base`. They reach metrics.jsonl, the trackers and early stopping like
any eval metric, because the monitor runs first on every event (`fit(monitors=...)`).

Why both kinds of probe: a narrow fine-tune can leave multiple-choice log-likelihood accuracy flat
while the model starts answering everyday questions in the task's format; that shows in generation
and in the KL, not in the log-likelihood scores.

Budgets (`guard.monitor.budgets`): the largest drop allowed per suite (in its metric's units) and the
largest KL. A breach does what `guard.monitor.action` says: `warn` (console and report), `stop` (end
training at that eval; the model stays as it is there), or `rollback` (train on, then at the end
restore the weights of the eval with the lowest eval loss among those within every budget — the
base model's when none was). Rollback keeps a CPU copy of the trainable parameters at that eval
(the adapter for LoRA, the whole model for full fine-tuning). Everything, breaches included, is
written to `forgetting.json` in the run directory.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from transformers import TrainerCallback, TrainerControl, TrainerState, TrainingArguments

from tunewise.config import MonitorConfig, SuiteConfig, suite_key
from tunewise.errors import ConfigError, DataError
from tunewise.rundir import RunDir, write_json

if TYPE_CHECKING:
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

    from tunewise.config import Config
    from tunewise.evaluation.suite import Suite

__all__ = [
    "FORGETTING_FILE",
    "KL_KEY",
    "Breach",
    "ForgettingMonitor",
    "Probe",
    "ProbeScores",
    "breaches",
    "build_monitor",
    "load_prompts",
    "restore_weights",
    "snapshot_weights",
]

FORGETTING_FILE = RunDir.FORGETTING
"""What the monitor measured and did, in the run directory (read by the report card)."""
KL_KEY = "kl"
"""The budget key (and `ProbeScores.values` key) of the KL to the base."""
_BUILTIN_PROMPTS = "neutral_prompts.jsonl"


@dataclass
class ProbeScores:
    """One measurement of the forgetting probes: a score per suite short name, and the KL (None when off).

    Not to be confused with `tunewise.evaluation.metrics.Scores`, the per-item scores of one metric.
    """

    values: dict[str, float]
    kl: float | None = None

    def deltas(self, base: ProbeScores) -> dict[str, float]:
        """Each suite's score minus the base's (negative is a drop)."""
        return {k: v - base.values[k] for k, v in self.values.items()}


@dataclass(frozen=True)
class Breach:
    """A budget exceeded at one eval."""

    key: str
    """The suite short name, or `kl`."""
    value: float
    """The drop (base − now, in the metric's units) or the KL."""
    budget: float

    def text(self) -> str:
        what = "KL to base" if self.key == KL_KEY else f"{self.key} dropped"
        return f"{what} {self.value:.3f} > budget {self.budget:g}"


def breaches(base: ProbeScores, now: ProbeScores, budgets: dict[str, float]) -> list[Breach]:
    """The budgets `now` exceeds against `base`: a suite's drop (base − now) above its budget, or
    the KL above the `kl` budget. Every suite score is higher-is-better."""
    found = []
    for key, budget in budgets.items():
        if key == KL_KEY:
            value = now.kl
        elif key in now.values and key in base.values:
            value = base.values[key] - now.values[key]
        else:
            continue
        if value is not None and value > budget + 1e-12:
            found.append(Breach(key, float(value), budget))
    return found


def load_prompts(path: str | None, limit: int | None) -> list[str]:
    """The neutral prompts the KL is measured on: `{prompt}` rows of a file, or the built-in set.

    Raises:
        DataError: the file is missing, or a row has no non-empty `prompt` (naming its file:line).
    """
    from tunewise.data.io import read_rows

    if path is None:
        ref = resources.files("tunewise.guard").joinpath(_BUILTIN_PROMPTS)
        with resources.as_file(ref) as builtin:
            rows = list(read_rows(str(builtin)))
    else:
        if not Path(path).is_file():
            raise DataError(
                f"{path}: no such file (guard.monitor.prompts); give a .jsonl of {{prompt}} rows, "
                f"or remove guard.monitor.prompts to use the built-in neutral prompts"
            )
        rows = list(read_rows(path))
    prompts = []
    for row in rows:
        prompt = row.data.get("prompt")
        if not isinstance(prompt, str) or not prompt.strip():
            raise DataError(
                f"{row.source}: a neutral prompt row needs a non-empty string `prompt` "
                f"(guard.monitor.prompts); fix or delete the row"
            )
        prompts.append(prompt)
    if not prompts:
        raise DataError(f"{path}: holds no prompts (guard.monitor.prompts)")
    return prompts[:limit] if limit else prompts


@dataclass
class _KLRow:
    input_ids: list[int]
    answer_start: int
    """Index of the first answer token: positions answer_start-1 ... len-2 predict the answer."""


class Probe:
    """The general suites and the neutral prompts, loaded once, scored on whatever `model` is now.

    Args:
        config: the `guard.monitor` section.
        tokenizer: the run's tokenizer (its chat template renders the chat prompts).
        batch_size: rows per forward pass (`eval.batch_size`).
    """

    def __init__(self, config: MonitorConfig, tokenizer: PreTrainedTokenizerBase, *, batch_size: int = 8) -> None:
        from tunewise.evaluation.metrics import get_metric
        from tunewise.evaluation.suite import load_suite

        self.config = config
        self.tokenizer = tokenizer
        self.batch_size = batch_size
        self.suites: list[tuple[str, SuiteConfig, Suite]] = []
        for i, spec in enumerate(config.suites):
            suite = load_suite(spec.name, limit=spec.limit or config.limit, columns=spec.columns)
            if suite.kind not in ("multiple_choice", "generation"):
                raise ConfigError(
                    [
                        f"guard.monitor.suites.{i} ({spec.name}): a {suite.kind} suite is no general-"
                        f"capability probe; the monitor scores multiple_choice {{query, choices, gold}} "
                        f"and generation {{prompt, answers|reference}} suites"
                    ]
                )
            if spec.metric is not None:
                if suite.kind != "generation":
                    raise ConfigError(
                        [
                            f"guard.monitor.suites.{i}.metric: only generation suites take a metric; "
                            f"{spec.name} is {suite.kind} (scored by acc_norm)"
                        ]
                    )
                get_metric(spec.metric, key=f"guard.monitor.suites.{i}.metric")
            self.suites.append((suite_key(spec.name), spec, suite))
        needs_template = config.kl or any(s.kind == "generation" for _, _, s in self.suites)
        if needs_template and not getattr(tokenizer, "chat_template", None):
            raise ConfigError(
                [
                    "guard.monitor: the chat suite and the KL render prompts through a chat template, and "
                    "this tokenizer has none; set model.chat_template, or guard.monitor.kl: false and only "
                    "multiple-choice guard.monitor.suites"
                ]
            )
        self.prompts = load_prompts(config.prompts, config.kl_limit) if config.kl else []
        self._kl_rows: list[_KLRow] = []

    def metric(self, key: str) -> str:
        """The metric a suite is scored by."""
        from tunewise.evaluation.suite_eval import suite_metric

        _, spec, suite = next(s for s in self.suites if s[0] == key)
        return suite_metric(suite, spec.metric)

    def describe(self) -> dict[str, Any]:
        """Suite short name -> kind, metric and items, for forgetting.json."""
        out: dict[str, Any] = {
            key: {"kind": suite.kind, "metric": self.metric(key), "n": len(suite), "source": spec.name}
            for key, spec, suite in self.suites
        }
        if self.config.kl:
            out[KL_KEY] = {
                "kind": "kl",
                "metric": "kl_to_base",
                "n": len(self.prompts),
                "source": self.config.prompts or "built-in neutral prompts",
            }
        return out

    def suite_scores(self, model: PreTrainedModel) -> dict[str, float]:
        """Each suite's score for `model` as it is now, scored as `tunewise eval` scores it
        (`tunewise.evaluation.suite_eval.score_suite`): the mean `acc_norm` or the metric's value."""
        from tunewise.evaluation.suite_eval import score_suite

        values: dict[str, float] = {}
        for key, spec, suite in self.suites:
            scored = score_suite(
                model,
                self.tokenizer,
                suite,
                metric=spec.metric,
                batch_size=self.batch_size,
                max_new_tokens=self.config.max_new_tokens,
            )
            values[key] = (
                float(scored["acc_norm"].mean()) if suite.kind == "multiple_choice" else float(scored["scores"].value)
            )
        return values

    def prepare_kl(self, model: PreTrainedModel) -> None:
        """Let the base model answer the neutral prompts (greedily); the KL is taken on those answers.
        Call with `model` as the base model."""
        from tunewise.inference import generate_texts

        if not self.prompts:
            return
        tok = self.tokenizer
        chats = [[{"role": "user", "content": p}] for p in self.prompts]
        answers = generate_texts(
            model, tok, chats, max_new_tokens=self.config.max_new_tokens, batch_size=self.batch_size
        )
        rows = []
        for chat, answer in zip(chats, answers):
            prompt = tok(
                tok.apply_chat_template(chat, add_generation_prompt=True, tokenize=False), add_special_tokens=False
            )["input_ids"]
            whole = tok(
                tok.apply_chat_template([*chat, {"role": "assistant", "content": answer}], tokenize=False),
                add_special_tokens=False,
            )["input_ids"]
            if whole[: len(prompt)] != prompt or len(whole) <= len(prompt):
                continue  # a template that re-renders the prompt differently: no clean answer span
            rows.append(_KLRow(whole, len(prompt)))
        self._kl_rows = rows

    def kl_to_base(self, model: PreTrainedModel) -> float | None:
        """Mean KL(base ‖ model) per answer token over the neutral prompts (`prepare_kl` first)."""
        from tunewise.guard.kl import token_kl
        from tunewise.inference import device_of, eval_mode
        from tunewise.methods import as_base

        if not self._kl_rows:
            return None
        device = device_of(model)
        pad = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else 0
        total, count = 0.0, 0
        with eval_mode(model):
            for start in range(0, len(self._kl_rows), self.batch_size):
                chunk = self._kl_rows[start : start + self.batch_size]
                width = max(len(r.input_ids) for r in chunk)
                ids = torch.full((len(chunk), width), pad, dtype=torch.long)
                attention = torch.zeros_like(ids)
                mask = torch.zeros((len(chunk), width), dtype=torch.bool)
                for i, row in enumerate(chunk):
                    ids[i, : len(row.input_ids)] = torch.as_tensor(row.input_ids)
                    attention[i, : len(row.input_ids)] = 1
                    mask[i, row.answer_start - 1 : len(row.input_ids) - 1] = True
                ids, attention = ids.to(device), attention.to(device)
                tuned = model(input_ids=ids, attention_mask=attention).logits
                with as_base(model):
                    base = model(input_ids=ids, attention_mask=attention).logits
                n = int(mask.sum())
                total += float(token_kl(tuned, base, mask.to(device))) * n
                count += n
        return total / count if count else None

    def measure(self, model: PreTrainedModel) -> ProbeScores:
        """Every probe on `model` as it is now (in eval mode; every module's mode is restored afterwards)."""
        from tunewise.inference import eval_mode

        with eval_mode(model):
            return ProbeScores(self.suite_scores(model), self.kl_to_base(model) if self.config.kl else None)

    def measure_base(self, model: PreTrainedModel) -> ProbeScores:
        """The base model's scores (and its answers for the KL); the KL of the base to itself is 0."""
        from tunewise.inference import eval_mode
        from tunewise.methods import as_base

        with eval_mode(model), as_base(model):
            values = self.suite_scores(model)
            if self.config.kl:
                self.prepare_kl(model)
        return ProbeScores(values, 0.0 if self.config.kl else None)


def snapshot_weights(model: torch.nn.Module, names: Sequence[str]) -> dict[str, torch.Tensor]:
    """A CPU copy of these parameters' current values."""
    params = dict(model.named_parameters())
    return {n: params[n].detach().to("cpu", copy=True) for n in names}


def restore_weights(model: torch.nn.Module, saved: dict[str, torch.Tensor]) -> None:
    """Copy saved values back into the model's parameters (in place: the optimizer's references hold)."""
    params = dict(model.named_parameters())
    with torch.no_grad():
        for name, value in saved.items():
            params[name].copy_(value.to(params[name].device, params[name].dtype))


@dataclass
class _Point:
    step: int
    eval_loss: float | None
    scores: dict[str, float]
    deltas: dict[str, float]
    kl: float | None
    breaches: list[str]
    seconds: float


@dataclass
class _Record:
    suites: dict[str, Any]
    budgets: dict[str, float]
    action: str
    base: dict[str, float] = field(default_factory=dict)
    base_kl: float | None = None
    points: list[_Point] = field(default_factory=list)
    fired: list[dict[str, Any]] = field(default_factory=list)
    stopped_at: int | None = None
    rollback: dict[str, Any] | None = None
    base_seconds: float = 0.0


class ForgettingMonitor(TrainerCallback):
    """Score the forgetting probes at every eval, add them to the eval's log, and act on budgets.

    Hand it to `fit(monitors=[...])` so that it runs before the metrics log and the trackers.

    Args:
        probe: the loaded probes.
        config: the `guard.monitor` section (budgets, action).
        run_dir: where `forgetting.json` goes; None writes nothing.
        log: prints one line per eval and every action taken.
        base: base scores measured already (e.g. by an earlier stage); None measures them at train begin.
    """

    def __init__(
        self,
        probe: Probe,
        config: MonitorConfig,
        run_dir: Path | None = None,
        log: Callable[[str], Any] = print,
        base: ProbeScores | None = None,
    ) -> None:
        self.probe = probe
        self.config = config
        self.path = RunDir(run_dir).forgetting if run_dir is not None else None
        self.log = log
        self.base = base
        self.record = _Record(suites=probe.describe(), budgets=dict(config.budgets), action=config.action)
        self._names: list[str] = []
        self._start: dict[str, torch.Tensor] | None = None
        self._best: tuple[int, float, dict[str, torch.Tensor]] | None = None  # step, eval loss, weights
        self._evaluated = False

    # --- the Trainer's events ---

    def on_train_begin(
        self,
        args: TrainingArguments,
        state: TrainerState,
        control: TrainerControl,
        model: PreTrainedModel | None = None,
        **kwargs: Any,
    ) -> None:
        assert model is not None
        if self.path is not None and self.path.is_file() and state.global_step:
            self._resume(state.global_step)
        if self.base is None:
            started = time.monotonic()
            self.base = self.probe.measure_base(model)
            self.record.base_seconds = time.monotonic() - started
        elif self.config.kl and not self.probe._kl_rows:
            self.probe.measure_base(model)
        self.record.base = dict(self.base.values)
        self.record.base_kl = self.base.kl
        shown = ", ".join(f"{k} {v:.3f}" for k, v in self.base.values.items())
        self.log(
            f"forgetting monitor: base {shown}"
            + (f"; KL on {len(self.probe._kl_rows)} neutral prompts" if self.config.kl else "")
            + f" ({self.record.base_seconds:.1f}s)"
        )
        if self.config.action == "rollback":
            self._names = [n for n, p in model.named_parameters() if p.requires_grad]
            from tunewise.methods.weights import originals

            kept = originals(model) or {}
            # The starting weights: the originals kept by the method when they cover every trainable
            # parameter (no second copy), else a copy (an adapter's starting values are small).
            self._start = (
                {n: kept[n] for n in self._names}
                if all(n in kept for n in self._names)
                else snapshot_weights(model, self._names)
            )
        self._write()

    def on_log(
        self,
        args: TrainingArguments,
        state: TrainerState,
        control: TrainerControl,
        logs: dict[str, Any] | None = None,
        model: PreTrainedModel | None = None,
        **kwargs: Any,
    ) -> TrainerControl | None:
        if not logs or "eval_loss" not in logs or model is None or self.base is None:
            return None
        self._evaluated = True
        started = time.monotonic()
        now = self.probe.measure(model)
        deltas = now.deltas(self.base)
        for key, value in now.values.items():
            logs[f"eval_general/{key}"] = value
            logs[f"eval_general/{key}_delta"] = deltas[key]
        if now.kl is not None:
            logs["eval_kl_to_base"] = now.kl
        found = breaches(self.base, now, self.config.budgets)
        eval_loss = logs.get("eval_loss")
        point = _Point(
            step=state.global_step,
            eval_loss=float(eval_loss) if isinstance(eval_loss, (int, float)) else None,
            scores=now.values,
            deltas=deltas,
            kl=now.kl,
            breaches=[b.text() for b in found],
            seconds=time.monotonic() - started,
        )
        self.record.points.append(point)
        shown = ", ".join(f"{k} {v:.3f} ({deltas[k]:+.3f})" for k, v in now.values.items())
        kl = f", KL to base {now.kl:.4f}" if now.kl is not None else ""
        self.log(f"forgetting at step {state.global_step}: {shown}{kl} ({point.seconds:.1f}s)")
        if found:
            self._act(state.global_step, found, control)
        elif (
            self.config.action == "rollback"
            and point.eval_loss is not None
            and (self._best is None or point.eval_loss < self._best[1])
        ):
            self._best = (state.global_step, point.eval_loss, snapshot_weights(model, self._names))
        self._write()
        return control

    def on_train_end(
        self,
        args: TrainingArguments,
        state: TrainerState,
        control: TrainerControl,
        model: PreTrainedModel | None = None,
        **kwargs: Any,
    ) -> None:
        if self.config.action == "rollback" and model is not None and self.record.fired:
            self._rollback(model, state)
        if not self._evaluated:
            self.log(
                "[yellow]forgetting monitor: no eval ran during training (train.eval_every, eval rows), so "
                "nothing was measured after the base[/]"
            )
        self._write()

    # --- acting ---

    def _act(self, step: int, found: list[Breach], control: TrainerControl) -> None:
        reasons = "; ".join(b.text() for b in found)
        action = self.config.action
        self.record.fired.append({"step": step, "action": action, "breaches": [asdict(b) for b in found]})
        if action == "warn":
            self.log(f"[yellow]forgetting budget breached at step {step}: {reasons}[/]")
        elif action == "stop":
            self.log(
                f"[red]forgetting budget breached at step {step}: {reasons}; stopping training "
                f"(guard.monitor.action: stop)[/]"
            )
            control.should_training_stop = True
            self.record.stopped_at = step
        else:
            self.log(
                f"[yellow]forgetting budget breached at step {step}: {reasons}; the best eval within "
                f"budget will be restored at the end (guard.monitor.action: rollback)[/]"
            )

    def _rollback(self, model: PreTrainedModel, state: TrainerState) -> None:
        if self._best is not None and self._best[0] == state.global_step:
            # The weights training ended with are those of the best eval within budget.
            self.record.rollback = {
                "step": self._best[0],
                "restored": False,
                "eval_loss": self._best[1],
                "reason": "the last eval was within every budget and had the lowest eval loss",
            }
            self.log(
                f"forgetting rollback: the last eval (step {self._best[0]}) is the best within budget; "
                f"nothing to restore"
            )
            return
        if self._best is not None:
            step, loss, weights = self._best
            restore_weights(model, weights)
            self.record.rollback = {
                "step": step,
                "restored": True,
                "eval_loss": loss,
                "reason": f"lowest eval loss among the evals within every budget (trained to step {state.global_step})",
            }
            self.log(
                f"[yellow]forgetting rollback: restored the weights of step {step} (eval loss {loss:.4f}), "
                f"the best eval within every budget; training ran to step {state.global_step}[/]"
            )
        elif self._start is not None:
            restore_weights(model, self._start)
            self.record.rollback = {
                "step": 0,
                "restored": True,
                "eval_loss": None,
                "reason": "no eval was within every budget: the starting (base) weights",
            }
            self.log(
                "[red]forgetting rollback: no eval was within every budget; restored the starting weights "
                "(the fine-tune is undone). Loosen guard.monitor.budgets, lower train.lr, or add a guard "
                "(guard.*)[/]"
            )

    # --- the record ---

    def _resume(self, step: int) -> None:
        try:
            old = json.loads(self.path.read_text(encoding="utf-8"))  # type: ignore[union-attr]
        except (OSError, json.JSONDecodeError):
            return
        self.record.points = [_Point(**p) for p in old.get("points", []) if p.get("step", 0) <= step]
        self.record.fired = [f for f in old.get("fired", []) if f.get("step", 0) <= step]

    def _write(self) -> None:
        if self.path is None:
            return
        payload = asdict(self.record)
        payload["seconds"] = self.record.base_seconds + sum(p.seconds for p in self.record.points)
        write_json(self.path, payload)


def build_monitor(
    config: Config, tokenizer: PreTrainedTokenizerBase, run_dir: Path | None, log: Callable[[str], Any] = print
) -> ForgettingMonitor | None:
    """The run's forgetting monitor, or None when `guard.monitor.enabled` is false. The suites and prompts
    are loaded here, so a bad file fails before training starts."""
    if not config.guard.monitor.enabled:
        return None
    probe = Probe(config.guard.monitor, tokenizer, batch_size=config.eval.batch_size)
    return ForgettingMonitor(probe, config.guard.monitor, run_dir, log=log)
