"""The `tunewise` command: one thin function per verb; the work lives in the library."""

from __future__ import annotations

import sys
from importlib import resources
from pathlib import Path
from typing import Annotated

import click
import typer
from rich.markup import escape

from tunewise.console import make_console
from tunewise.errors import TunewiseError
from tunewise.rundir import RunDir

__all__ = ["app", "main"]

app = typer.Typer(
    help="Fine-tune language models and measure what the fine-tune gained and what it cost.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
data_app = typer.Typer(help="Inspect, audit and clean training data.", no_args_is_help=True)
models_app = typer.Typer(help="Base models: aliases, local paths, Hugging Face ids.", no_args_is_help=True)
app.add_typer(data_app, name="data")
app.add_typer(models_app, name="models")
console = make_console()
err_console = make_console(stderr=True)

ConfigArg = Annotated[Path, typer.Argument(help="Run config (YAML).", show_default=False)]
Overrides = Annotated[
    list[str] | None, typer.Argument(help="key.sub=value overrides, e.g. train.max_steps=5", show_default=False)
]


@app.command()
def init(
    path: Annotated[Path, typer.Argument(help="Where to write the config.")] = Path("tunewise.yaml"),
    force: Annotated[bool, typer.Option(help="Overwrite an existing file.")] = False,
) -> None:
    """Write a commented starter config with every key and its default."""
    if path.exists() and not force:
        raise TunewiseError(f"{path} already exists; pass --force to overwrite it or choose another path")
    path.write_text(
        resources.files("tunewise").joinpath("templates/starter.yaml").read_text(encoding="utf-8"), encoding="utf-8"
    )
    console.print(f"wrote {path}; set data.train, then: tunewise train {path}")


@app.command()
def train(config: ConfigArg, overrides: Overrides = None) -> None:
    """Fine-tune as configured; the run directory gets config, metrics, checkpoints and the adapter."""
    from tunewise.config import load_config
    from tunewise.run import train as train_run

    train_run(load_config(config, overrides), config)


@app.command()
def plan(
    config: ConfigArg,
    overrides: Overrides = None,
    measure: Annotated[
        bool, typer.Option("--measure", help="Also run 3 real training steps on the longest rows (loads the model).")
    ] = False,
) -> None:
    """Before training: trainable parameters, rows and tokens, estimated peak memory and time; warns
    when the run will not fit and says what to change."""
    from tunewise.config import load_config
    from tunewise.plan import plan as make_plan
    from tunewise.plan import print_plan

    print_plan(make_plan(load_config(config, overrides), measure=measure))


@app.command("eval")
def eval_(
    target: Annotated[
        str | None,
        typer.Argument(
            help="A run directory, or a config (its newest run); omit to score the default base model.",
            show_default=False,
        ),
    ] = None,
    overrides: Overrides = None,
    suite: Annotated[
        list[str] | None, typer.Option("--suite", help="Suite name or file (repeatable); replaces eval.suites.")
    ] = None,
    limit: Annotated[int | None, typer.Option(help="Score at most N items of each suite.", min=1)] = None,
) -> None:
    """Base vs tuned: eval loss, perplexity, generations, and every suite with intervals."""
    from tunewise.run import evaluate

    if target is not None and "=" in target:  # `tunewise eval model.name=X --suite ...`: no target
        overrides, target = [target, *(overrides or [])], None
    evaluate(target, overrides, suites=suite, limit=limit)


@app.command()
def run(config: ConfigArg, overrides: Overrides = None) -> None:
    """The main job: check and prepare the data, train, evaluate base vs tuned, write report.html."""
    from tunewise.config import load_config
    from tunewise.run import run as run_job

    run_job(load_config(config, overrides), config)


@app.command()
def cv(
    config: ConfigArg,
    overrides: Overrides = None,
    folds: Annotated[int, typer.Option("--folds", "-k", help="How many folds (K ≥ 2): K trainings.")] = 5,
    dedup_threshold: Annotated[
        float,
        typer.Option(help="Jaccard similarity (word 3-grams) from which rows are near duplicates, kept in one fold."),
    ] = 0.8,
    suites: Annotated[
        bool,
        typer.Option("--suites/--no-suites", help="Score eval.suites in every fold (--no-suites: eval loss only)."),
    ] = True,
    resume: Annotated[
        Path | None,
        typer.Option(help="Continue this cross-validation directory; finished folds are kept.", show_default=False),
    ] = None,
) -> None:
    """K-fold cross-validation: train on K-1 folds, evaluate on the other, mean ± std over folds."""
    from tunewise.config import load_config
    from tunewise.cv import cross_validate

    cross_validate(
        load_config(config, overrides),
        config,
        folds=folds,
        dedup_threshold=dedup_threshold,
        suites=suites,
        resume=resume,
    )


@app.command()
def tune(
    config: ConfigArg,
    overrides: Overrides = None,
    trials: Annotated[
        int | None,
        typer.Option(
            help="Trials the study should hold in all, finished ones included (default tune.trials).",
            min=1,
            show_default=False,
        ),
    ] = None,
    timeout: Annotated[
        float | None,
        typer.Option(
            help="Stop starting trials after this many seconds (default tune.timeout).", min=1, show_default=False
        ),
    ] = None,
    workers: Annotated[
        int | None,
        typer.Option(
            help="Local worker processes sharing the study (default tune.workers).", min=1, show_default=False
        ),
    ] = None,
) -> None:
    """Hyperparameter search with Optuna over tune.space: each trial an ordinary run; prints the best
    trial or the Pareto front, writes best.yaml and a search report. Re-running continues the study."""
    from tunewise.config import load_config
    from tunewise.tune import tune as run_search

    run_search(load_config(config, overrides), config, trials=trials, timeout=timeout, workers=workers)


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
def runs(
    target: Annotated[
        Path | None,
        typer.Argument(
            help="A folder of run directories (default runs/), or a config file (its output.dir).", show_default=False
        ),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print every field as JSON.")] = False,
) -> None:
    """List the runs, newest first: status, steps, eval loss base → tuned, suite changes, pitfalls."""
    import json

    from tunewise.runs import find_runs, print_runs, runs_folder

    folder = runs_folder(target)
    rows, skipped = find_runs(folder)
    if as_json:
        payload = {
            "folder": str(folder),
            "runs": [r.to_dict() for r in rows],
            "skipped": [{"path": path, "reason": reason} for path, reason in skipped],
        }
        typer.echo(json.dumps(payload, indent=2))
    else:
        print_runs(rows, skipped, folder, console)


@data_app.command("preview")
def data_preview(
    config: ConfigArg,
    overrides: Overrides = None,
    rows: Annotated[int, typer.Option("--rows", "-n", help="How many rows to show.")] = 3,
    split: Annotated[str, typer.Option(help="train, eval or test.")] = "train",
) -> None:
    """Show rendered rows with the trained tokens highlighted, and truncation statistics."""
    from tunewise.config import load_config
    from tunewise.data import preview
    from tunewise.tasks import load_tokenizer_for, prepare_data

    if split not in ("train", "eval", "test"):
        raise TunewiseError(f"--split {split}: choose train, eval or test")
    cfg = load_config(config, overrides)
    tokenizer = load_tokenizer_for(cfg)
    prepared = prepare_data(cfg, tokenizer)
    if prepared.classes:  # {text, label} rows: no tokens are masked, so show the pairs
        names = cfg.data.label_names or {}
        for row in getattr(prepared, split)[:rows]:
            label = prepared.classes[row.labels[0]]
            console.print(
                f"{row.source}  [bold]{names.get(label, label)}[/]  ({row.n_tokens} tokens"
                f"{', cut' if row.truncated else ''}): {tokenizer.decode(row.input_ids)}",
                highlight=False,
            )
    else:
        preview(getattr(prepared, split), tokenizer, prepared.stats[split], n=rows, console=console)
    if prepared.rejects:
        console.print(f"{len(prepared.rejects)} rows set aside:")
        for reject in prepared.rejects[:10]:
            console.print(f"  {reject.source}: {reject.reason}")


AuditTargets = Annotated[
    list[str],
    typer.Argument(
        help="A config (YAML) or data files, then key.sub=value overrides, e.g. data.check.min_tokens=3",
        show_default=False,
    ),
]


@data_app.command("audit")
def data_audit(
    targets: AuditTargets,
    eval_file: Annotated[
        list[str] | None,
        typer.Option("--eval", help="Eval file to check for leakage (repeatable).", show_default=False),
    ] = None,
    test_file: Annotated[
        list[str] | None,
        typer.Option("--test", help="Test file to check for leakage (repeatable).", show_default=False),
    ] = None,
    model: Annotated[
        str | None, typer.Option(help="Tokenizer to count tokens with (default: model.name).", show_default=False)
    ] = None,
    out: Annotated[Path, typer.Option(help="Where to write the findings as JSON.")] = Path(RunDir.AUDIT),
) -> None:
    """Audit training data: duplicates, leakage, contamination, lengths, repetition, PII and secrets,
    toxicity, label balance, format errors, demographic terms; exit 2 on a data.check.block_on finding."""
    from tunewise.data.audit import audit_command
    from tunewise.evaluation.suite import suite_texts

    audit_command(
        targets,
        eval_files=eval_file or [],
        test_files=test_file or [],
        model=model,
        out=out,
        console=console,
        suites=suite_texts,
    )


@data_app.command("clean")
def data_clean(
    targets: AuditTargets,
    out: Annotated[Path, typer.Option(help="Directory for the cleaned files and rejects.jsonl.")] = Path("clean"),
    model: Annotated[
        str | None, typer.Option(help="Tokenizer for the length filters (default: model.name).", show_default=False)
    ] = None,
) -> None:
    """Remove duplicates (one row per cluster) and the rows data.clean.drop names, redact personal data
    with <EMAIL>-style placeholders; every removed or changed row goes to rejects.jsonl with its reason."""
    from tunewise.data.clean import clean_command
    from tunewise.evaluation.suite import suite_texts

    clean_command(targets, out=out, model=model, console=console, suites=suite_texts)


@data_app.command("check")
def data_check(config: ConfigArg, overrides: Overrides = None) -> None:
    """The audit exactly as `train` runs it before the first step: on the prepared, split and rendered
    rows of CONFIG; exit 2 when a finding named in data.check.block_on is found."""
    from tunewise.config import load_config
    from tunewise.run import check_prepared, load_tokenizer_for, prepare_data

    cfg = load_config(config, overrides)
    cfg = cfg.model_copy(
        update={"data": cfg.data.model_copy(update={"check": cfg.data.check.model_copy(update={"enabled": True})})}
    )
    tokenizer = load_tokenizer_for(cfg)
    prepared = prepare_data(cfg, tokenizer)
    console.print(
        f"{len(prepared.train)} train / {len(prepared.eval)} eval / {len(prepared.test)} test rows"
        + (f"; {len(prepared.rejects)} rows set aside when reading" if prepared.rejects else "")
    )
    check_prepared(cfg, prepared, tokenizer)


DataFile = Annotated[Path, typer.Argument(help="A data file (JSONL, JSON, CSV/TSV, Parquet).", show_default=False)]
ModelOpt = Annotated[str, typer.Option("--model", help="Local generation model: alias, directory or HF id.")]
FieldOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--field", help="Text field to use (repeatable), instead of the shape's input fields.", show_default=False
    ),
]


@data_app.command("augment")
def data_augment(
    path: DataFile,
    out: Annotated[
        Path, typer.Option("--out", "-o", help="Output file; its extension picks the format.", show_default=False)
    ],
    ops: Annotated[
        str, typer.Option(help="Comma-separated: synonym, insert, swap, delete, paraphrase, backtranslate.")
    ] = "synonym,insert,swap,delete",
    num_aug: Annotated[int, typer.Option(help="Variants per row and operation.", min=1)] = 1,
    alpha_sr: Annotated[float, typer.Option(help="Share of words replaced by synonyms.")] = 0.1,
    alpha_ri: Annotated[float, typer.Option(help="Random insertions, as a share of the words.")] = 0.1,
    alpha_rs: Annotated[float, typer.Option(help="Random swaps, as a share of the words.")] = 0.1,
    p_rd: Annotated[float, typer.Option(help="Probability of deleting each word.")] = 0.1,
    seed: Annotated[int, typer.Option(help="Random seed.")] = 0,
    roles: Annotated[str, typer.Option(help="Chat roles whose turns are edited (comma-separated).")] = "user",
    field: FieldOpt = None,
    thesaurus: Annotated[
        Path | None, typer.Option(help="Your own thesaurus file (synonym groups).", show_default=False)
    ] = None,
    model: ModelOpt = "smollm2-135m-instruct",
    pivot: Annotated[str, typer.Option(help="Back-translation's pivot language.")] = "French",
    max_new_tokens: Annotated[int, typer.Option(help="Reply length cap of the model, in tokens.")] = 128,
    originals: Annotated[bool, typer.Option("--originals/--no-originals", help="Also write the input rows.")] = True,
    limit: Annotated[int | None, typer.Option(help="Augment only the first N rows.", min=1)] = None,
) -> None:
    """Label-preserving augmentation (EDA edits, paraphrase, back-translation); provenance on every new row."""
    from tunewise.data import ModelGenerator
    from tunewise.data.augment import MODEL_OPS, OPS, EdaParams, Thesaurus, augment_file, rejects_path

    op_list = [o.strip() for o in ops.split(",") if o.strip()]
    if unknown := [o for o in op_list if o not in OPS]:
        raise TunewiseError(f"--ops: unknown operation {', '.join(map(repr, unknown))}; choose from {', '.join(OPS)}")
    generator = (
        ModelGenerator(name=model, max_new_tokens=max_new_tokens, seed=seed)
        if any(o in MODEL_OPS for o in op_list)
        else None
    )
    result = augment_file(
        path,
        out,
        limit=limit,
        ops=op_list,
        num_aug=num_aug,
        seed=seed,
        params=EdaParams(alpha_sr, alpha_ri, alpha_rs, p_rd),
        thesaurus=Thesaurus.load(thesaurus) if thesaurus else None,
        generator=generator,
        model_name=model if generator else None,
        pivot=pivot,
        roles=[r.strip() for r in roles.split(",") if r.strip()],
        fields=field,
        keep_originals=originals,
    )
    made = ", ".join(f"{op} {n}" for op, n in result.made.items()) or "none"
    console.print(
        f"{result.inputs} rows in; {sum(result.made.values())} new rows ({made}); "
        f"{len(result.rows)} rows written to {out}; {len(result.rejects)} variants rejected "
        f"-> {rejects_path(out)}",
        highlight=False,
    )


@data_app.command("synth")
def data_synth(
    out: Annotated[
        Path, typer.Option("--out", "-o", help="Chat JSONL to write (resumed if it exists).", show_default=False)
    ],
    count: Annotated[int, typer.Option(help="Accepted tasks wanted in --out in total.", min=1)] = 20,
    seeds: Annotated[
        Path | None, typer.Option(help="Seed tasks file (default: tunewise's own 24).", show_default=False)
    ] = None,
    model: ModelOpt = "smollm2-135m-instruct",
    shots: Annotated[int, typer.Option(help="Example tasks per prompt.", min=1)] = 3,
    machine_shots: Annotated[int, typer.Option(help="Of which at most this many synthetic.", min=0)] = 1,
    rouge_threshold: Annotated[float, typer.Option(help="Reject at ROUGE-L F1 >= this with any earlier task.")] = 0.7,
    dedup_threshold: Annotated[float, typer.Option(help="Reject at word-3-gram Jaccard >= this (MinHash LSH).")] = 0.7,
    min_words: Annotated[int, typer.Option(help="Shortest task, in words.")] = 3,
    max_words: Annotated[int, typer.Option(help="Longest task, in words.")] = 150,
    batch_size: Annotated[int, typer.Option(help="Attempts generated together (and written together).", min=1)] = 4,
    max_attempts: Annotated[
        int | None,
        typer.Option(help="Give up after this many attempts (default 10 x count).", min=1, show_default=False),
    ] = None,
    temperature: Annotated[float, typer.Option(help="Sampling temperature.")] = 0.7,
    max_new_tokens: Annotated[int, typer.Option(help="Reply length cap, in tokens.")] = 128,
    seed: Annotated[int, typer.Option(help="Random seed.")] = 0,
) -> None:
    """Self-Instruct synthetic data: new tasks from seed tasks, filtered (MinHash, ROUGE-L, length), answered."""
    from tunewise.data import ModelGenerator
    from tunewise.data.synth import load_seeds, synthesize

    seed_tasks = load_seeds(seeds)
    generator = ModelGenerator(
        name=model, max_new_tokens=max_new_tokens, temperature=temperature, seed=seed, batch_size=batch_size
    )
    result = synthesize(
        out,
        generator,
        seeds=seed_tasks,
        count=count,
        shots=shots,
        machine_shots=machine_shots,
        rouge_threshold=rouge_threshold,
        dedup_threshold=dedup_threshold,
        min_words=min_words,
        max_words=max_words,
        batch_size=batch_size,
        max_attempts=max_attempts,
        seed=seed,
        model_name=model,
    )
    if result.resumed_from:
        console.print(f"resumed after {result.resumed_from} earlier attempts", highlight=False)
    rejected = ", ".join(f"{k} {n}" for k, n in sorted(result.new_rejected.items())) or "none"
    console.print(
        f"{result.new_accepted} tasks accepted, {sum(result.new_rejected.values())} rejected ({rejected}); "
        f"{result.accepted} in {out} after {result.attempts} attempts ({result.stopped}); "
        f"rejects: {result.rejects}",
        highlight=False,
    )


@data_app.command("select")
def data_select(
    path: DataFile,
    k: Annotated[int, typer.Option("--k", "-k", help="How many rows to choose.", min=1)],
    out: Annotated[
        Path, typer.Option("--out", "-o", help="Where to write the chosen rows with their scores.", show_default=False)
    ],
    by: Annotated[str, typer.Option(help="entropy, perplexity (uncertainty) or kcenter (diversity).")] = "entropy",
    labelled: Annotated[
        Path | None, typer.Option(help="Rows already labelled: kcenter starts from them.", show_default=False)
    ] = None,
    model: Annotated[
        str, typer.Option("--model", help="The model to be fine-tuned: alias, directory or HF id.")
    ] = "smollm2-135m-instruct",
    field: FieldOpt = None,
    max_length: Annotated[int, typer.Option(help="Tokens scored per row.", min=2)] = 256,
    batch_size: Annotated[int, typer.Option(help="Rows per forward pass.", min=1)] = 8,
    limit: Annotated[int | None, typer.Option(help="Score only the first N rows.", min=1)] = None,
) -> None:
    """Active learning: the K unlabelled rows the model is least sure about, or that cover the data best."""
    from tunewise.data.select import METHODS, select_file
    from tunewise.models import load_model, load_tokenizer

    if by not in METHODS:
        raise TunewiseError(f"--by {by}: choose from {', '.join(METHODS)}")
    chosen = select_file(
        path,
        out,
        k,
        load_model(model),
        load_tokenizer(model),
        labelled=labelled,
        model_name=model,
        by=by,
        fields=field,
        max_length=max_length,
        batch_size=batch_size,
        limit=limit,
    )
    for c in chosen[:10]:
        console.print(f"{c.rank:>3}  {c.score:10.4f}  {c.source}", highlight=False)
    console.print(f"{len(chosen)} rows chosen by {by} -> {out}", highlight=False)


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
def models_pull(
    name: Annotated[str, typer.Argument(help="An alias or a Hugging Face id.", show_default=False)],
) -> None:
    """Make a model available offline (an alias is converted once into the cache)."""
    from tunewise.models import pull

    console.print(f"{name}: ready at {pull(name)}")


def main() -> None:
    """Entry point: user errors print one paragraph and exit 2, never a traceback."""
    try:
        # standalone_mode=False: click would turn our KeyboardInterrupt into "Aborted!" and exit 1.
        result = app(standalone_mode=False)
    except TunewiseError as err:
        err_console.print(f"[bold red]error:[/] {escape(str(err))}", highlight=False, soft_wrap=True)
        sys.exit(2)
    except click.ClickException as err:
        err.show()
        sys.exit(err.exit_code)
    except (KeyboardInterrupt, click.exceptions.Abort):
        sys.exit(130)
    sys.exit(result if isinstance(result, int) else 0)


if __name__ == "__main__":
    main()
