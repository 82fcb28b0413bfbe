"""Sequential fine-tuning: stages, each training on from the weights the stage before left.

    stages:
      - {name: general, data: {train: general.jsonl}}
      - {name: medical, data: {train: medical.jsonl}, train: {lr: 1.0e-4}}

A stage overrides the top-level `data` and `train` sections (`tunewise.config.resolve_stage`):
setting any of data.train/eval/test/datasets replaces all four, every other key is inherited.
The model, method and eval sections are the run's, shared by every stage.

How a stage continues from the one before: there is one model throughout. The method is applied
once, before stage 1; every later stage keeps training the same trainable parameters — for LoRA,
the same adapter — with a fresh optimizer and learning-rate schedule of its own. The base weights
are never changed, so "base" stays the base model in every comparison (the adapter switched off),
and each stage's `adapter/` holds the whole change from the base up to that stage: it loads on its
own (`tunewise eval RUN/2-medical`). The alternative, merging each stage's adapter into the base
and starting a new one, gives each stage fresh capacity but would lose the base model of the
comparisons and make every stage's weights depend on all earlier ones' files; not chosen.

After each stage the model is scored on the eval rows of that stage and of every earlier one, so
forgetting shows as a table (eval loss, lower is better; row 0 is the base model on every stage):

    model            general  medical
    base               2.10     2.60
    after general      1.40        -
    after medical      1.65     1.30      <- general's loss rose 1.40 -> 1.65: forgetting

Everything is checked before stage 1 trains: every stage's data is read, split, rendered and
checked first, so a bad file in the last stage fails in seconds, not after hours.

Layout of the run:

    <output.dir>/<config stem>-<timestamp>/
      stages_config.yaml    the whole config, stages included
      stages_summary.json   the table, rewritten after every stage
      1-general/            an ordinary run directory: config.yaml (the stage's own), adapter/, ...
      2-medical/
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rich.table import Table

from tunewise.console import make_console
from tunewise.errors import TunewiseError
from tunewise.run._run import Run, check_prepared, config_text
from tunewise.rundir import RunDir, write_json, write_text
from tunewise.tasks import Prepared, load_tokenizer_for, prepare_data

if TYPE_CHECKING:
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

    from tunewise.config import Config

__all__ = ["CONFIG_FILE", "SUMMARY_FILE", "print_table", "run_stages", "stage_dir_name", "summarise"]

console = make_console()

CONFIG_FILE = RunDir.STAGES_CONFIG
SUMMARY_FILE = RunDir.STAGES_SUMMARY


def stage_dir_name(index: int, name: str) -> str:
    """The run subdirectory of stage `index` (0-based): `1-general`, `2-medical`, ..."""
    return RunDir.stage_name(index, name)


def _stage_configs(config: Config, top: Path) -> list[Config]:
    from tunewise.config import resolve_stage
    from tunewise.tracking import default_mlflow_uri

    out = []
    for i, stage in enumerate(config.stages):
        resolved = resolve_stage(config, i)
        # Stages track into the same MLflow store as every other run of this output.dir.
        out.append(
            resolved.model_copy(
                update={
                    "output": resolved.output.model_copy(
                        update={
                            "dir": str(top),
                            "name": stage_dir_name(i, stage.name),
                            "mlflow_uri": config.output.mlflow_uri or default_mlflow_uri(config.output.dir),
                        }
                    )
                }
            )
        )
    return out


def _top_dir(config: Config, config_path: str | Path | None) -> RunDir:
    top = RunDir.new(config.output.dir, config.output.name, config_path)
    if config.output.name and top.exists() and any(top.path.iterdir()):
        raise TunewiseError(f"run directory {top.path} already exists; choose another output.name")
    return top


def summarise(
    names: Sequence[str], losses: Sequence[Sequence[float | None]], eval_rows: Sequence[int]
) -> dict[str, Any]:
    """The stages table as JSON: `rows[k]` is the model after stage k (row 0 the base), `losses[k][j]`
    its eval loss on stage j's eval rows (None where not measured), plus forgetting and gain per stage.

    Forgetting of stage j: its loss after the last stage minus its loss right after stage j
    (positive = forgotten). Gain of stage j: its loss right after stage j minus the base's (negative
    = learned).
    """
    last = len(losses) - 1
    rows = [
        {"model": "base" if k == 0 else f"after {names[k - 1]}", "losses": list(row)} for k, row in enumerate(losses)
    ]
    forgetting, gain = [], []
    for j, name in enumerate(names):
        right_after = losses[j + 1][j] if j + 1 <= last else None
        base = losses[0][j]
        if right_after is not None and base is not None:
            gain.append({"stage": name, "base": base, "right_after": right_after, "change": right_after - base})
        final = losses[last][j] if last > j + 1 else None
        if right_after is not None and final is not None:
            forgetting.append(
                {"stage": name, "right_after": right_after, "after_last": final, "change": final - right_after}
            )
    return {
        "metric": "eval_loss",
        "lower_is_better": True,
        "stages": [
            {"name": n, "run": stage_dir_name(i, n), "eval_rows": r} for i, (n, r) in enumerate(zip(names, eval_rows))
        ],
        "rows": rows,
        "gain": gain,
        "forgetting": forgetting,
    }


def print_table(summary: dict[str, Any]) -> None:
    """The stages table as `tunewise run` prints it, with one line per stage on what was forgotten."""
    names = [s["name"] for s in summary["stages"]]
    table = Table(title="stages: eval loss on each stage's eval rows (lower is better)")
    table.add_column("model")
    for name in names:
        table.add_column(name, justify="right")
    for row in summary["rows"]:
        table.add_row(row["model"], *("-" if v is None else f"{v:.4f}" for v in row["losses"]))
    console.print(table)
    for item in summary["gain"]:
        console.print(
            f"stage {item['stage']}: eval loss {item['base']:.4f} (base) → {item['right_after']:.4f} "
            f"right after it ({item['change']:+.4f})",
            highlight=False,
        )
    for item in summary["forgetting"]:
        colour = "red" if item["change"] > 0 else "green"
        console.print(
            f"[{colour}]forgetting of {item['stage']}: eval loss {item['right_after']:.4f} right after "
            f"its stage → {item['after_last']:.4f} after the last ({item['change']:+.4f})[/]",
            highlight=False,
        )


def _losses(
    model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, data: Sequence[Prepared], config: Config, which: str
) -> list[float]:
    from tunewise.evaluation.compare import loss_on, side
    from tunewise.tasks.multitask import select_eval

    out = []
    with side(model, which) as m:
        for part in data:
            rows, _ = select_eval(part, config.eval.limit)  # the rows `tunewise eval` scores for this stage
            out.append(loss_on(m, rows, pad_id=tokenizer.pad_token_id, batch_size=config.eval.batch_size).loss)
    return out


def run_stages(config: Config, config_path: str | Path | None = None, *, evaluate: bool = True) -> Path:
    """Train the stages one after another and print and save the stages table.

    Args:
        evaluate: also give every stage the full evaluation of `tunewise run` (suites, baselines,
            report card); False (`tunewise train`) scores only the eval losses of the table.

    Returns:
        The run directory holding one subdirectory per stage.
    """
    top = _top_dir(config, config_path)
    stages = _stage_configs(config, top.path)
    names = [s.name for s in config.stages]
    tokenizer = load_tokenizer_for(config)
    prepared, checks = [], []
    for name, stage in zip(names, stages):
        console.rule(f"stage {name}: data")
        data = prepare_data(stage, tokenizer)
        if not data.eval:
            raise TunewiseError(
                f"stage {name}: no eval rows, and the stages table scores every stage on them; set "
                f"its data.eval to a file or data.split.eval above 0"
            )
        prepared.append(data)
        checks.append(check_prepared(stage, data))

    top.mkdir()
    write_text(top.stages_config, config_text(config))
    console.print(f"sequential run: {len(stages)} stages in {top.path}")
    losses: list[list[float | None]] = []
    model = None
    for k, (name, stage, data) in enumerate(zip(names, stages, prepared)):
        console.rule(f"stage {k + 1}/{len(stages)}: {name}")
        # One model throughout: each stage trains on from the weights the one before left.
        job = Run(stage, config_path, model=model, data=data, check=checks[k])
        try:
            job.fit()
            job.save()
        except KeyboardInterrupt:
            done = f"stages {', '.join(names[:k])} finished and kept in {top.path}; " if k else ""
            console.print(
                f"[yellow]Sequential run stopped in stage {name}; {done}resuming a sequential run is not "
                f"supported yet: run it again to start over.[/]",
                highlight=False,
            )
            raise
        model = job.model
        if k == 0:  # the base model, on every stage's eval rows: row 0 of the table
            losses.append(list(_losses(model, tokenizer, prepared, config, "base")))
        losses.append([*_losses(model, tokenizer, prepared[: k + 1], config, "tuned"), *[None] * (len(stages) - k - 1)])
        summary = summarise(names, losses, [len(p.eval) for p in prepared])
        write_json(top.stages_summary, summary, default=None)
        if evaluate:
            job.evaluate()
    print_table(summary)
    console.print(f"stages summary: {top.stages_summary}")
    if evaluate:
        from tunewise.report import build_report

        # Built last: each stage's report shows the whole stages table.
        reports = [build_report(top.stage(i, name).path) for i, name in enumerate(names)]
        console.print(f"report cards: {', '.join(str(r) for r in reports)}")
    return top.path
