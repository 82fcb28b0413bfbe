"""The main jobs, top to bottom: prepare the data, train, evaluate base vs tuned.

Everything a user can get wrong (config, files, rows, model name) is checked before the run
directory exists, so a bad input never leaves a half-written run behind.
"""

from __future__ import annotations

import json
import shutil
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rich.table import Table

from tunewise.config import Config, dump_config, load_config
from tunewise.console import format_interval, make_console
from tunewise.errors import ConfigError, TunewiseError

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase

    from tunewise.data import Example, RenderStats, Reject, Rendered
    from tunewise.data.check import DataCheck

__all__ = ["Prepared", "check_prepared", "evaluate", "find_run_dir", "prepare_data", "report_check", "run", "train"]

console = make_console()


@dataclass
class Prepared:
    """Rendered train/eval/test rows plus what was set aside and why."""

    train: list[Rendered]
    eval: list[Rendered]
    test: list[Rendered]
    eval_examples: list[Example]
    stats: dict[str, RenderStats]
    rejects: list[Reject] = field(default_factory=list)
    train_examples: list[Example] = field(default_factory=list)
    """The training rows kept, as examples: the pool the few-shot and retrieval baselines draw from."""
    test_examples: list[Example] = field(default_factory=list)
    classes: list[str] = field(default_factory=list)
    """task classification: the labels, in class-id order (`Rendered.labels` is `[class id]`)."""
    eval_parts: dict[str, int] = field(default_factory=dict)
    """Multi-task: dataset name -> its number of eval rows, in the order `eval` holds them."""
    mixture: list[dict[str, Any]] = field(default_factory=list)
    """Multi-task: per dataset, its sampling probability and the training rows drawn (mixture.json)."""


def load_tokenizer_for(config: Config) -> PreTrainedTokenizerBase:
    """The tokenizer of `config.model`, with the configured chat template applied (task chat, or
    whenever `model.chat_template` is set; plain text and classification rows use none)."""
    from tunewise.data import resolve_chat_template
    from tunewise.models import load_tokenizer

    tokenizer = load_tokenizer(config.model.name, revision=config.model.revision,
                               trust_remote_code=config.model.trust_remote_code)
    if config.task == "chat" or config.model.chat_template:
        resolve_chat_template(tokenizer, config.model.chat_template)
    return tokenizer


def prepare_data(config: Config, tokenizer: PreTrainedTokenizerBase) -> Prepared:
    """Load, split and render the configured data; raise on bad input before anything is written.

    `task: classification` reads `{text, label}` rows (`tasks/classification.py`); `data.datasets`
    prepares each dataset like this and mixes them (`tasks/multitask.py`).
    """
    from tunewise.data import load_examples, render_all, split_examples

    data = config.data
    if config.task == "classification":
        from tunewise.tasks.classification import prepare_classification

        return prepare_classification(config, tokenizer)
    if data.datasets:
        from tunewise.tasks.multitask import prepare_mixture

        return prepare_mixture(config, tokenizer)
    if not data.train:
        raise ConfigError(["data.train: no training file given; set `data.train: path/to/train.jsonl`"])
    rejects: list[Reject] = []

    def load(path: str) -> list[Example]:
        examples, bad = load_examples(path, shape=data.shape, columns=data.columns, on_bad_rows=data.on_bad_rows)
        rejects.extend(bad)
        plain = examples[0].text is not None
        if plain != (config.task == "completion"):  # the task and the rows must agree
            wanted, found = ("plain text", "chat rows") if config.task == "completion" else ("chat", "plain text {text}")
            raise ConfigError([f"task: {config.task} trains on {wanted} rows, but {path} holds {found}; set task: "
                               f"{'completion' if plain else 'chat'} (docs/tasks.md)"])
        return examples

    train_ex = load(data.train)
    eval_ex = load(data.eval) if data.eval else None
    test_ex = load(data.test) if data.test else None
    # Split only what was not given as its own file.
    train_ex, split_eval, split_test = split_examples(
        train_ex, eval_fraction=0.0 if eval_ex is not None else data.split.eval,
        test_fraction=0.0 if test_ex is not None else data.split.test, seed=data.split.seed)
    eval_ex = split_eval if eval_ex is None else eval_ex
    test_ex = split_test if test_ex is None else test_ex

    rendered: dict[str, list[Rendered]] = {}
    stats: dict[str, RenderStats] = {}
    kept: dict[str, list[Example]] = {}
    for name, examples in (("train", train_ex), ("eval", eval_ex), ("test", test_ex)):
        if config.task == "completion":  # long documents become windows, not truncated (tasks/completion.py)
            from tunewise.tasks.completion import render_documents

            rows, stat, dropped = render_documents(examples, tokenizer, max_length=data.max_length)
        else:
            rows, stat, dropped = render_all(examples, tokenizer, train_on=data.train_on,
                                             max_length=data.max_length)
        rendered[name], stats[name] = rows, stat
        rejects.extend(dropped)
        sources = {r.source for r in rows}
        kept[name] = [ex for ex in examples if ex.source in sources]
    if not rendered["train"]:
        raise TunewiseError(f"{data.train}: no training row has a trained token left after rendering "
                            f"(max_length={data.max_length}); see the rejected rows with `tunewise data preview`.")
    return Prepared(train=rendered["train"], eval=rendered["eval"], test=rendered["test"],
                    eval_examples=kept["eval"], stats=stats, rejects=rejects, train_examples=kept["train"],
                    test_examples=kept["test"])


def check_prepared(config: Config, data: Prepared, tokenizer: PreTrainedTokenizerBase | None = None
                   ) -> DataCheck | None:
    """Run the data audit on prepared rows, print what it found, and stop on a blocking finding.

    With the `tokenizer`, answers are also measured in tokens (`too_short`). Returns None when
    `data.check.enabled` is false.
    """
    from tunewise.data.check import check_data, suite_texts

    if not config.data.check.enabled:
        return None
    # The rendered lengths are what training sees (chat template included, cut at data.max_length).
    lengths = {r.source: (r.n_tokens + r.n_dropped_tokens, r.truncated) for r in [*data.train, *data.eval, *data.test]}
    labels = None
    if data.classes:
        labels = {r.source: data.classes[r.labels[0]] for r in [*data.train, *data.eval, *data.test]}
    from tunewise.data.audit import token_counter

    return report_check(check_data(data.train_examples, {"eval": data.eval_examples, "test": data.test_examples},
                                   config, suites=suite_texts(config), lengths=lengths, labels=labels,
                                   count_tokens=token_counter(tokenizer) if tokenizer is not None else None))


def report_check(check: DataCheck) -> DataCheck:
    """Print what the data audit found (a table); raise when a finding is listed in `data.check.block_on`."""
    from tunewise.data.audit import print_audit

    print_audit(check, console)
    if check.blocking:
        kinds = ", ".join(f.kind for f in check.blocking)
        raise TunewiseError(f"data audit: {kinds} found and data.check.block_on stops the run on it (see above). "
                            f"Fix the data (`tunewise data clean`), or take {kinds} out of data.check.block_on to "
                            f"train anyway.")
    return check


def _stem(config_path: str | Path | None) -> str:
    return Path(config_path).stem if config_path else "run"


def find_run_dir(config: Config, config_path: str | Path | None, *, must_exist: bool) -> Path | None:
    """The run directory of `output.name`, or the newest run of this config when unnamed."""
    base = Path(config.output.dir)
    if config.output.name:
        path = base / config.output.name
        return path if path.exists() or not must_exist else None
    # Only run directories (they hold config.yaml): `tunewise cv` writes `<stem>-cv-<timestamp>/` beside them.
    runs = sorted(p for p in base.glob(f"{_stem(config_path)}-*") if (p / "config.yaml").is_file())
    return runs[-1] if runs else None


def _new_run_dir(config: Config, config_path: str | Path | None) -> Path:
    base = Path(config.output.dir)
    if config.output.name:
        path = base / config.output.name
        if path.exists() and any(path.iterdir()):
            raise TunewiseError(f"run directory {path} already exists; continue it with train.resume=true, "
                                f"or choose another output.name")
        return path
    stamp = time.strftime("%Y%m%d-%H%M%S")
    path = base / f"{_stem(config_path)}-{stamp}"
    n = 1
    while path.exists():
        n += 1
        path = base / f"{_stem(config_path)}-{stamp}-{n}"
    return path


def _write_json(path: Path, payload: Any) -> None:
    path.write_text(json.dumps(payload, indent=2, default=str) + "\n", encoding="utf-8")


def train(config: Config, config_path: str | Path | None = None) -> Path:
    """Fine-tune as configured and return the run directory.

    The directory holds `config.yaml` (resolved), `metrics.jsonl`, `checkpoints/`, `adapter/`
    (weights + tokenizer), `data_stats.json`, `train_summary.json` and, when rows were set aside,
    `rejects.jsonl`. With `stages`, one such directory per stage inside the run directory
    returned, and the stages table (`tasks/stages.py`; the full evaluation is `run`'s).
    """
    if config.stages:
        from tunewise.tasks.stages import run_stages

        return run_stages(config, config_path, evaluate=False)
    return _train(config, config_path).run_dir


@dataclass
class _Trained:
    run_dir: Path
    model: Any
    tokenizer: PreTrainedTokenizerBase
    data: Prepared


def _train(config: Config, config_path: str | Path | None, *, model: Any = None, data: Prepared | None = None,
           check: DataCheck | None = None, callbacks: list[Any] | None = None) -> _Trained:
    """Train one run. A later stage of a sequential run passes the `model` to train on (already
    wrapped by its method) and its `data` and `check`, prepared before the first stage trained;
    `tunewise tune` passes `callbacks` (Trainer callbacks: its pruning and NaN guard)."""
    from transformers import set_seed

    from tunewise.data import write_rejects
    from tunewise.guard.monitor import build_monitor
    from tunewise.guard.setup import build_guard, plan_guard
    from tunewise.guard.wise_ft import check_wise_ft, run_wise_ft
    from tunewise.methods import METHODS, check_method, count_parameters, load_kwargs, save_tuned, training_callbacks
    from tunewise.models import load_model
    from tunewise.tasks import check_head_trains, collator_for, describe_data, model_load_kwargs, write_task_files
    from tunewise.tracking import Tracker
    from tunewise.training.callbacks import TrackMetrics
    from tunewise.training.loop import check_training, fit

    resume = config.train.resume
    if resume:
        run_dir = find_run_dir(config, config_path, must_exist=True)
        if run_dir is None:
            raise TunewiseError(f"train.resume=true but no earlier run of this config was found in "
                                f"{config.output.dir}/; start a fresh run without train.resume")
    else:
        run_dir = _new_run_dir(config, config_path)

    tokenizer = load_tokenizer_for(config)
    check_method(config)  # what the model's shape decides (top_k, module names), from config.json
    if data is None:
        data = prepare_data(config, tokenizer)
        check = check_prepared(config, data, tokenizer) if not resume else None
    console.print(describe_data(config, data), highlight=False)
    check_training(config.train, train_rows=len(data.train), eval_rows=len(data.eval))
    guard_plan = plan_guard(config, tokenizer)  # guard: general data read and checked before the model loads
    check_wise_ft(config, eval_rows=len(data.eval))
    # The forgetting monitor (guard/monitor.py): its suites and prompts are loaded now, so a bad file fails early.
    monitor = build_monitor(config, tokenizer, run_dir, log=lambda line: console.print(line, highlight=False))
    if model is None:
        model = load_model(config.model.name, revision=config.model.revision,
                           trust_remote_code=config.model.trust_remote_code, **load_kwargs(config),
                           **model_load_kwargs(config, data))  # a classification head for task classification
        # The method's new weights (adapters, heads) are drawn from the run's seed too: same seed, same run.
        set_seed(config.train.seed)
        model = METHODS[config.method.type](model, config.method)
        check_head_trains(config, model)  # a classification head left frozen would stay random
    trainable, total = count_parameters(model)
    console.print(f"method: {config.method.type}, trainable parameters {trainable:,} of {total:,} "
                  f"({100 * trainable / total:.2f}%)")
    # The forgetting guard: replay rows mixed in, one loss term per regularizer (docs/forgetting.md).
    guard = build_guard(guard_plan, model, tokenizer, data.train, log=lambda line: console.print(line, highlight=False))

    fresh = not run_dir.exists()
    run_dir.mkdir(parents=True, exist_ok=True)
    tracker: Tracker | None = None
    try:
        dump_config(config, run_dir / "config.yaml")
        _write_json(run_dir / "data_stats.json", {k: asdict(v) for k, v in data.stats.items()})
        if guard.info:
            _write_json(run_dir / "regularize.json", guard.info)
        if data.rejects:
            write_rejects(data.rejects, run_dir / "rejects.jsonl")
        if check is not None:
            _write_json(run_dir / "audit.json", check.to_dict())
        console.print(f"run directory: {run_dir}")
        # Tracking never stops a run: a tracker that fails is switched off with a warning.
        tracker = Tracker.open(config, run_dir, experiment=Path(config_path).stem if config_path else None)
        if tracker.describe():
            console.print(f"tracking: {tracker.describe()}", highlight=False)
        tracker.log_files(run_dir / "config.yaml")
        result = fit(model, tokenizer, guard.rows, data.eval, config.train, run_dir, resume=resume, terms=guard.terms,
                     callbacks=[TrackMetrics(tracker), *training_callbacks(model, config.method, log=console.print),
                                *(callbacks or [])],
                     monitors=[monitor] if monitor is not None else None,
                     collator=collator_for(config, tokenizer.pad_token_id))
    except BaseException as err:
        if tracker is not None:
            tracker.close("KILLED" if isinstance(err, KeyboardInterrupt) else "FAILED")
        # Nothing resumable was written: leave no half-made run directory behind.
        if fresh and not (run_dir / "checkpoints").exists():
            shutil.rmtree(run_dir, ignore_errors=True)
        raise

    summary = {**asdict(result), "trainable_parameters": trainable, "total_parameters": total,
               "trainable_percent": 100 * trainable / total, "method": config.method.type}
    _write_json(run_dir / "train_summary.json", summary)
    tracker.log_metrics({f"cost/{key}": summary[key] for key in
                         ("tokens_per_s", "wall_s", "peak_rss_mb", "tokens_seen", "trainable_parameters")},
                        step=result.steps)
    tracker.log_files(run_dir / "train_summary.json")
    if result.interrupted:
        tracker.close("KILLED")
        console.print(f"[yellow]Stopped at step {result.steps}; checkpoint saved in {result.checkpoint}.[/]\n"
                      f"Continue with: tunewise train {config_path or 'CONFIG'} train.resume=true "
                      f"output.name={run_dir.name}")
        raise KeyboardInterrupt
    if result.stopped_early_at is not None:
        console.print(f"early stopping at step {result.stopped_early_at}: {config.train.early_stopping.metric} "
                      f"stopped improving; the saved adapter is the best checkpoint, {result.best_checkpoint} "
                      f"({result.best_metric})", highlight=False)
    # WiSE-FT (guard.wise_ft): the model is left at the α chosen, and saved so.
    run_wise_ft(config, model, tokenizer, data.eval, run_dir, monitor, tracker=tracker, step=result.steps,
                log=lambda line: console.print(line, highlight=False))
    adapter_dir = run_dir / "adapter"
    save_tuned(model, adapter_dir, config.method.type)  # an adapter, or the changed weights (see methods/weights.py)
    tokenizer.save_pretrained(adapter_dir)
    write_task_files(run_dir, config, data)  # labels.json (classification), mixture.json (multi-task)
    tracker.close("FINISHED")
    console.print(f"trained {result.steps} steps in {result.wall_s:.0f}s "
                  f"({result.tokens_per_s:.0f} tokens/s, peak memory {result.peak_rss_mb:.0f} MB); "
                  f"adapter saved to {adapter_dir}")
    return _Trained(run_dir, model, tokenizer, data)


def _with_suites(config: Config, suites: list[str] | None, limit: int | None) -> Config:
    """Apply `--suite` (replaces the configured suites; paths relative to the cwd) and `--limit`."""
    from tunewise.config import SuiteConfig

    chosen = config.eval.suites
    if suites is not None:
        chosen = [SuiteConfig(name=str(Path(s).resolve()) if Path(s).suffix and not s.startswith("hf:") else s)
                  for s in suites]
    if limit is not None:
        chosen = [s.model_copy(update={"limit": limit}) for s in chosen]
    return config.model_copy(update={"eval": config.eval.model_copy(update={"suites": chosen})})


def evaluate(target: str | Path | None = None, overrides: list[str] | None = None, *,
             suites: list[str] | None = None, limit: int | None = None) -> dict[str, Any]:
    """Score base and tuned side by side: eval loss on the run's eval rows, and every suite.

    Args:
        target: a run directory, a config (its newest run; the base model alone when it has no
            run yet), or None for the base model of the default config.
        suites: suite names or files replacing `eval.suites`.
        limit: score at most this many items of each suite.

    Writes `eval_summary.json` into the run directory (when there is one), prints the tables,
    and returns the summary.
    """
    from tunewise.methods import load_kwargs, load_tuned
    from tunewise.models import load_model
    from tunewise.tasks import model_load_kwargs

    run_dir: Path | None = None
    if target is not None and Path(target).is_dir():
        run_dir = Path(target)
        _not_a_stages_dir(run_dir)
        config = load_config(_run_config(run_dir), overrides)
    elif target is not None:
        config = load_config(target, overrides)
        run_dir = find_run_dir(config, target, must_exist=True)
        if run_dir is None:
            console.print(f"no run of {target} in {config.output.dir}/ yet: scoring the base model alone")
    else:
        config = load_config(None, overrides)
    config = _with_suites(config, suites, limit)
    if run_dir is not None and not (run_dir / "adapter").is_dir():
        raise TunewiseError(f"{run_dir} has no trained adapter yet (training unfinished?); finish it with "
                            f"train.resume=true, then evaluate")

    tokenizer = load_tokenizer_for(config)
    classification = config.task == "classification"
    data = prepare_data(config, tokenizer) if run_dir is not None or classification else None
    if classification and run_dir is None:  # no trained head yet: the majority and prompting baselines alone
        return _compare_and_save(config, None, None, tokenizer, data)
    if classification:
        from tunewise.tasks.classification import check_labels

        check_labels(run_dir, data.classes)  # the saved head's labels must be the data's
    model = load_model(config.model.name, revision=config.model.revision,
                       trust_remote_code=config.model.trust_remote_code,
                       **(load_kwargs(config) if run_dir is not None else {}), **model_load_kwargs(config, data))
    if run_dir is not None:
        model = load_tuned(model, run_dir / "adapter")  # base + the run's adapter or tuned weights
    return _compare_and_save(config, run_dir, model, tokenizer, data)


def _not_a_stages_dir(path: Path) -> None:
    from tunewise.tasks.stages import CONFIG_FILE, SUMMARY_FILE

    if (path / CONFIG_FILE).is_file():
        stages = sorted(p.name for p in path.iterdir() if (p / "config.yaml").is_file())
        raise TunewiseError(f"{path} is a sequential run (its stages table is {path / SUMMARY_FILE}); evaluate one "
                            f"of its stages: {', '.join(str(path / s) for s in stages) or '(none trained yet)'}")


def _run_config(run_dir: Path) -> Path:
    config_file = run_dir / "config.yaml"
    if not config_file.is_file():
        raise TunewiseError(f"{run_dir} is not a tunewise run directory (no config.yaml); "
                            f"pass a run directory written by `tunewise train`, or a config file")
    return config_file


def _compare_and_save(config: Config, run_dir: Path | None, model: Any, tokenizer: PreTrainedTokenizerBase,
                      data: Prepared | None) -> dict[str, Any]:
    from tunewise.evaluation.baselines import ShotPool, score_eval_rows
    from tunewise.evaluation.compare import compare
    from tunewise.evaluation.suite_eval import evaluate_suites
    from tunewise.tracking import log_eval

    from tunewise.tasks.multitask import dataset_losses, print_datasets, select_eval

    if config.task == "classification":  # a head, not a language model: accuracy and F1 (tasks/classification.py)
        from tunewise.tasks.classification import evaluate_classifier

        assert data is not None, "a classification evaluation needs its prepared data"
        return evaluate_classifier(config, run_dir, model, tokenizer, data)
    summary: dict[str, Any] = {}
    sides = ("base", "tuned") if run_dir is not None else ("base",)
    pool: ShotPool | None = None
    if data is not None:
        rows, examples = select_eval(data, config.eval.limit)  # with a mixture, the first rows of each dataset
        if not rows:
            raise TunewiseError("no eval rows: set data.eval to a file or data.split.eval above 0")
        console.print(f"evaluating base and tuned on {len(rows)} eval rows ...")
        comparison = compare(model, tokenizer, rows, examples, batch_size=config.eval.batch_size,
                             generations=config.eval.generations, max_new_tokens=config.eval.max_new_tokens)
        summary = comparison.to_dict()
        _print_comparison(summary)
        if data.eval_parts:  # a mixture: each dataset's eval loss on its own
            summary["datasets"] = dataset_losses(data.eval_parts, comparison.per_row, limit=config.eval.limit,
                                                 bootstrap=config.eval.bootstrap, confidence=config.eval.confidence,
                                                 seed=config.train.seed)
            print_datasets(summary["datasets"], config.eval.confidence)
        baselines = config.eval.baselines
        if run_dir is not None and (baselines.few_shot or baselines.retrieval):
            # Was fine-tuning worth it? The base model with training examples in its prompt.
            pool = ShotPool(data.train_examples, baselines)
            summary["baselines"] = {**pool.describe(), "eval_rows": None, "suites": [], "notes": pool.notes}
            if pool.variants:
                console.print("scoring the cheaper alternatives (base model + training examples in the prompt) ...")
                summary["baselines"]["eval_rows"] = score_eval_rows(
                    model, tokenizer, examples, pool, train_on=config.data.train_on,
                    batch_size=config.eval.batch_size, generations=config.eval.generations,
                    max_new_tokens=config.eval.max_new_tokens, bootstrap=config.eval.bootstrap,
                    confidence=config.eval.confidence, seed=config.train.seed,
                    log=lambda line: console.print(line, highlight=False), scored=(rows, comparison.per_row))
    if config.eval.suites:
        console.print(f"scoring {len(config.eval.suites)} suites ({' and '.join(sides)}) ...")
        results = evaluate_suites(model, tokenizer, config.eval, sides=sides, seed=config.train.seed,
                                  log=lambda line: console.print(line, highlight=False), pool=pool)
        summary["suites"] = [r.to_dict() for r in results]
        if "baselines" in summary:
            summary["baselines"]["suites"] = [s["extra"].pop("baselines") for s in summary["suites"]
                                              if "baselines" in s["extra"]]
        _print_suites(summary["suites"], config.eval.confidence)
    if "baselines" in summary:
        _print_baselines(summary, config.eval.confidence)
    if run_dir is not None:
        _write_json(run_dir / "eval_summary.json", summary)
        console.print(f"eval summary: {run_dir / 'eval_summary.json'}")
        log_eval(config, run_dir, summary)
    return summary


def _print_suites(results: list[dict[str, Any]], confidence: float) -> None:
    pct = f"{100 * confidence:.0f}%"
    table = Table(title=f"suites (value [{pct} interval])")
    for column in ("suite", "role", "metric", "n", "base", "tuned", "change"):
        table.add_column(column, justify="left" if column in ("suite", "role", "metric") else "right")

    for r in results:
        change = format_interval(r["delta"], signed=True)
        if r["delta"] and (r["delta"]["low"] > 0 or r["delta"]["high"] < 0) and r["higher_is_better"] is not None:
            better = (r["delta"]["value"] > 0) == r["higher_is_better"]
            change = f"[{'green' if better else 'red'}]{change}[/]"
        table.add_row(r["name"], r["role"], r["metric"], str(r["n"]), format_interval(r["base"]),
                      format_interval(r["tuned"]), change)
    console.print(table)


def _print_baselines(summary: dict[str, Any], confidence: float) -> None:
    from tunewise.report import worth_it

    block = summary["baselines"]
    pct = f"{100 * confidence:.0f}%"

    measures = []
    if block.get("eval_rows"):
        measures.append(("eval rows, answer loss", block["eval_rows"]["variants"], block["eval_rows"]["tuned_vs"],
                         "loss"))
    measures += [(f"{s['name']}, {s['metric']}", s["variants"], s["tuned_vs"], None) for s in block.get("suites", [])]
    for title, variants, tuned_vs, key in measures:
        table = Table(title=f"was fine-tuning worth it? {title} (value [{pct} interval])")
        for column in ("model and prompt", "value", "tuned − this"):
            table.add_column(column, justify="left" if column == "model and prompt" else "right")
        for name in ("base", "few_shot", "retrieval", "tuned"):
            if name in variants:
                part = variants[name]
                table.add_row(part["label"], format_interval(part[key] if key else part),
                              format_interval(tuned_vs.get(name), signed=True) if name != "tuned" else "")
        console.print(table)
    for beat, line in worth_it(summary) or []:
        console.print(f"[{'green' if beat else 'red'}]{line}[/]", highlight=False)
    for note in block.get("notes", []):
        console.print(f"[yellow]note:[/] {note}", highlight=False)


def _print_comparison(summary: dict[str, Any]) -> None:
    table = Table(title="base vs tuned (eval rows)")
    for column in ("metric", "base", "tuned", "change"):
        table.add_column(column, justify="right" if column != "metric" else "left")
    base, tuned = summary["base"], summary["tuned"]
    table.add_row("loss", f"{base['loss']:.3f}", f"{tuned['loss']:.3f}", f"{summary['delta_loss']:+.3f}")
    table.add_row("perplexity", f"{base['perplexity']:.2f}", f"{tuned['perplexity']:.2f}",
                  f"{100 * (tuned['perplexity'] / base['perplexity'] - 1):+.1f}%")
    console.print(table)
    for i, sample in enumerate(summary["generations"], 1):
        console.print(f"[bold]{i}. {sample['prompt']}[/]\n  reference: {sample['reference']}\n"
                      f"  base:      {sample['base']}\n  tuned:     {sample['tuned']}")


def run(config: Config, config_path: str | Path | None = None) -> Path:
    """The main job: prepare the data, train, evaluate base vs tuned, write the report card.

    Returns the run directory. With `stages`, every stage is trained and evaluated in turn and the
    stages table printed (`tasks/stages.py`); the directory returned holds one run per stage.
    """
    from tunewise.report import build_report, verdict
    from tunewise.tracking import log_report

    if config.stages:
        from tunewise.tasks.stages import run_stages

        return run_stages(config, config_path)
    trained = _train(config, config_path)
    # The freshly trained model and rendered rows are still in memory: no reload, no re-render.
    _compare_and_save(config, trained.run_dir, trained.model, trained.tokenizer, trained.data)
    report = build_report(trained.run_dir)
    log_report(trained.run_dir, config)
    for line in verdict(trained.run_dir):
        console.print(line, highlight=False)
    console.print(f"report card: {report}")
    return trained.run_dir

