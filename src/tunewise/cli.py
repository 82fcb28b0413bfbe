"""The `tunewise` command: one thin function per verb; the work lives in the library."""

from __future__ import annotations

import sys
from importlib import resources
from pathlib import Path
from typing import Annotated

import click
import typer

from tunewise.console import make_console
from tunewise.errors import TunewiseError

__all__ = ["app", "main"]

app = typer.Typer(help="Fine-tune language models and measure what the fine-tune gained and what it cost.",
                  no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False)
data_app = typer.Typer(help="Inspect training data.", no_args_is_help=True)
models_app = typer.Typer(help="Base models: aliases, local paths, Hugging Face ids.", no_args_is_help=True)
app.add_typer(data_app, name="data")
app.add_typer(models_app, name="models")
console = make_console()
err_console = make_console(stderr=True)

ConfigArg = Annotated[Path, typer.Argument(help="Run config (YAML).", show_default=False)]
Overrides = Annotated[list[str] | None, typer.Argument(help="key.sub=value overrides, e.g. train.max_steps=5",
                                                       show_default=False)]


@app.command()
def init(path: Annotated[Path, typer.Argument(help="Where to write the config.")] = Path("tunewise.yaml"),
         force: Annotated[bool, typer.Option(help="Overwrite an existing file.")] = False) -> None:
    """Write a commented starter config with every key and its default."""
    if path.exists() and not force:
        raise TunewiseError(f"{path} already exists; pass --force to overwrite it or choose another path")
    path.write_text(resources.files("tunewise").joinpath("templates/starter.yaml").read_text(encoding="utf-8"),
                    encoding="utf-8")
    console.print(f"wrote {path}; set data.train, then: tunewise train {path}")


@app.command()
def train(config: ConfigArg, overrides: Overrides = None) -> None:
    """Fine-tune as configured; the run directory gets config, metrics, checkpoints and the adapter."""
    from tunewise.config import load_config
    from tunewise.pipeline import train as train_run

    train_run(load_config(config, overrides), config)


@app.command()
def plan(config: ConfigArg, overrides: Overrides = None,
         measure: Annotated[bool, typer.Option(
             "--measure", help="Also run 3 real training steps on the longest rows (loads the model).")] = False
         ) -> None:
    """Before training: trainable parameters, rows and tokens, estimated peak memory and time; warns
    when the run will not fit and says what to change."""
    from tunewise.config import load_config
    from tunewise.plan import plan as make_plan
    from tunewise.plan import print_plan

    print_plan(make_plan(load_config(config, overrides), measure=measure))


@app.command("eval")
def eval_(target: Annotated[str | None, typer.Argument(
              help="A run directory, or a config (its newest run); omit to score the default base model.",
              show_default=False)] = None,
          overrides: Overrides = None,
          suite: Annotated[list[str] | None, typer.Option(
              "--suite", help="Suite name or file (repeatable); replaces eval.suites.")] = None,
          limit: Annotated[int | None, typer.Option(help="Score at most N items of each suite.", min=1)] = None) -> None:
    """Base vs tuned: eval loss, perplexity, generations, and every suite with intervals."""
    from tunewise.pipeline import evaluate

    if target is not None and "=" in target:  # `tunewise eval model.name=X --suite ...`: no target
        overrides, target = [target, *(overrides or [])], None
    evaluate(target, overrides, suites=suite, limit=limit)


@app.command()
def run(config: ConfigArg, overrides: Overrides = None) -> None:
    """The main job: check and prepare the data, train, evaluate base vs tuned, write report.html."""
    from tunewise.config import load_config
    from tunewise.pipeline import run as run_job

    run_job(load_config(config, overrides), config)


@app.command()
def cv(config: ConfigArg, overrides: Overrides = None,
       folds: Annotated[int, typer.Option("--folds", "-k", help="How many folds (K ≥ 2): K trainings.")] = 5,
       dedup_threshold: Annotated[float, typer.Option(
           help="Jaccard similarity (word 3-grams) from which rows are near duplicates, kept in one fold.")] = 0.8,
       suites: Annotated[bool, typer.Option(
           "--suites/--no-suites", help="Score eval.suites in every fold (--no-suites: eval loss only).")] = True,
       resume: Annotated[Path | None, typer.Option(
           help="Continue this cross-validation directory; finished folds are kept.", show_default=False)] = None,
       ) -> None:
    """K-fold cross-validation: train on K-1 folds, evaluate on the other, mean ± std over folds."""
    from tunewise.config import load_config
    from tunewise.cv import cross_validate

    cross_validate(load_config(config, overrides), config, folds=folds, dedup_threshold=dedup_threshold,
                   suites=suites, resume=resume)


@app.command()
def report(run_dir: Annotated[Path, typer.Argument(help="A run directory.", show_default=False)]) -> None:
    """Rebuild report.html (and plots/*.png) of a run from its files."""
    from tunewise.report import build_report, verdict
    from tunewise.tracking import log_report

    path = build_report(run_dir)
    log_report(run_dir)
    for line in verdict(run_dir):
        console.print(line, highlight=False)
    console.print(f"report: {path}")


@app.command("runs")
def runs(target: Annotated[Path | None, typer.Argument(
             help="A folder of run directories (default runs/), or a config file (its output.dir).",
             show_default=False)] = None,
         as_json: Annotated[bool, typer.Option("--json", help="Print every field as JSON.")] = False) -> None:
    """List the runs, newest first: status, steps, eval loss base → tuned, suite changes, pitfalls."""
    import json

    from tunewise.runs import find_runs, print_runs, runs_folder

    folder = runs_folder(target)
    rows, skipped = find_runs(folder)
    if as_json:
        payload = {"folder": str(folder), "runs": [r.to_dict() for r in rows],
                   "skipped": [{"path": path, "reason": reason} for path, reason in skipped]}
        typer.echo(json.dumps(payload, indent=2))
    else:
        print_runs(rows, skipped, folder, console)


@data_app.command("preview")
def data_preview(config: ConfigArg, overrides: Overrides = None,
                 rows: Annotated[int, typer.Option("--rows", "-n", help="How many rows to show.")] = 3,
                 split: Annotated[str, typer.Option(help="train, eval or test.")] = "train") -> None:
    """Show rendered rows with the trained tokens highlighted, and truncation statistics."""
    from tunewise.config import load_config
    from tunewise.data import preview
    from tunewise.pipeline import load_tokenizer_for, prepare_data

    if split not in ("train", "eval", "test"):
        raise TunewiseError(f"--split {split}: choose train, eval or test")
    cfg = load_config(config, overrides)
    tokenizer = load_tokenizer_for(cfg)
    prepared = prepare_data(cfg, tokenizer)
    if cfg.task == "classification":  # a text and its label: no tokens are masked, so show the pairs
        names = cfg.data.label_names or {}
        for row in getattr(prepared, split)[:rows]:
            label = prepared.classes[row.labels[0]]
            console.print(f"{row.source}  [bold]{names.get(label, label)}[/]  ({row.n_tokens} tokens"
                          f"{', cut' if row.truncated else ''}): {tokenizer.decode(row.input_ids)}", highlight=False)
    else:
        preview(getattr(prepared, split), tokenizer, prepared.stats[split], n=rows, console=console)
    if prepared.rejects:
        console.print(f"{len(prepared.rejects)} rows set aside:")
        for reject in prepared.rejects[:10]:
            console.print(f"  {reject.source}: {reject.reason}")


@data_app.command("check")
def data_check(config: ConfigArg, overrides: Overrides = None) -> None:
    """Look for duplicate rows, eval/test rows leaked from training, and eval suites the training
    data contains; exit 2 when a finding named in data.check.block_on is found."""
    from tunewise.config import load_config
    from tunewise.pipeline import check_prepared, load_tokenizer_for, prepare_data

    cfg = load_config(config, overrides)
    cfg = cfg.model_copy(update={"data": cfg.data.model_copy(
        update={"check": cfg.data.check.model_copy(update={"enabled": True})})})
    prepared = prepare_data(cfg, load_tokenizer_for(cfg))
    console.print(f"{len(prepared.train)} train / {len(prepared.eval)} eval / {len(prepared.test)} test rows"
                  + (f"; {len(prepared.rejects)} rows set aside when reading" if prepared.rejects else ""))
    check_prepared(cfg, prepared)


@models_app.command("list")
def models_list() -> None:
    """Known aliases and models in the local cache."""
    from rich.table import Table

    from tunewise.models import list_models

    table = Table()
    for column in ("name", "status", "size", "path", "description"):
        table.add_column(column)
    for info in list_models():
        if info.converted:
            status = "ready"
        elif info.installed:
            status = "installed (converted on first use)"
        else:
            status = "not installed"
        size = f"{info.size_bytes / 2**20:.0f} MB" if info.size_bytes else ""
        table.add_row(info.name, status, size, str(info.path or ""), info.description)
    console.print(table)


@models_app.command("pull")
def models_pull(name: Annotated[str, typer.Argument(help="An alias or a Hugging Face id.", show_default=False)]) -> None:
    """Make a model available offline (an alias is converted once into the cache)."""
    from tunewise.models import pull

    console.print(f"{name}: ready at {pull(name)}")


def main() -> None:
    """Entry point: user errors print one paragraph and exit 2, never a traceback."""
    try:
        # standalone_mode=False: click would turn our KeyboardInterrupt into "Aborted!" and exit 1.
        result = app(standalone_mode=False)
    except TunewiseError as err:
        err_console.print(f"[bold red]error:[/] {err}", highlight=False, soft_wrap=True)
        sys.exit(2)
    except click.ClickException as err:
        err.show()
        sys.exit(err.exit_code)
    except (KeyboardInterrupt, click.exceptions.Abort):
        sys.exit(130)
    sys.exit(result if isinstance(result, int) else 0)


if __name__ == "__main__":
    main()
