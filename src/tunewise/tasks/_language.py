"""What the language-model tasks (chat, completion) share: reading one data file set, the
multi-task mixture, and scoring base vs tuned as a language model (eval loss, generations, suites,
the cheaper alternatives)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rich.table import Table

from tunewise.console import format_interval, make_console
from tunewise.errors import ConfigError, TunewiseError
from tunewise.tasks.base import Prepared, load_tokenizer, row_counts

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase

    from tunewise.config import Config, DataConfig
    from tunewise.data import Example, Reject, Rendered, RenderStats

__all__ = ["LanguageModelTask", "describe_language_data", "evaluate_language_model", "prepare_language_data"]

console = make_console()

Renderer = Callable[
    ["list[Example]", "PreTrainedTokenizerBase", "DataConfig"], "tuple[list[Rendered], RenderStats, list[Reject]]"
]


def prepare_language_data(
    config: Config, tokenizer: PreTrainedTokenizerBase, *, plain_text: bool, render: Renderer
) -> Prepared:
    """Load, split and render `data.train`/`eval`/`test` (or mix `data.datasets`, `multitask.py`).

    Args:
        plain_text: the rows the task reads: plain `{text}` (completion) or chat rows.
        render: renders one split's examples into rows, with their statistics and the rows dropped.

    Raises:
        ConfigError: no training file, or rows of the other kind.
        TunewiseError: no training row keeps a trained token.
    """
    from tunewise.data import load_examples, split_examples

    data = config.data
    if data.datasets:
        from tunewise.tasks.multitask import prepare_mixture

        return prepare_mixture(
            config, lambda one: prepare_language_data(one, tokenizer, plain_text=plain_text, render=render)
        )
    if not data.train:
        raise ConfigError(["data.train: no training file given; set `data.train: path/to/train.jsonl`"])
    rejects: list[Reject] = []

    def load(path: str) -> list[Example]:
        examples, bad = load_examples(path, shape=data.shape, columns=data.columns, on_bad_rows=data.on_bad_rows)
        rejects.extend(bad)
        plain = examples[0].text is not None
        if plain != plain_text:  # the task and the rows must agree
            wanted, found = ("plain text", "chat rows") if plain_text else ("chat", "plain text {text}")
            raise ConfigError(
                [
                    f"task: {config.task} trains on {wanted} rows, but {path} holds {found}; set task: "
                    f"{'completion' if plain else 'chat'} (docs/tasks.md)"
                ]
            )
        return examples

    train_ex = load(data.train)
    eval_ex = load(data.eval) if data.eval else None
    test_ex = load(data.test) if data.test else None
    # Split only what was not given as its own file.
    train_ex, split_eval, split_test = split_examples(
        train_ex,
        eval_fraction=0.0 if eval_ex is not None else data.split.eval,
        test_fraction=0.0 if test_ex is not None else data.split.test,
        seed=data.split.seed,
    )
    eval_ex = split_eval if eval_ex is None else eval_ex
    test_ex = split_test if test_ex is None else test_ex

    rendered: dict[str, list[Rendered]] = {}
    stats: dict[str, RenderStats] = {}
    kept: dict[str, list[Example]] = {}
    for name, examples in (("train", train_ex), ("eval", eval_ex), ("test", test_ex)):
        rows, stat, dropped = render(examples, tokenizer, data)
        rendered[name], stats[name] = rows, stat
        rejects.extend(dropped)
        sources = {r.source for r in rows}
        kept[name] = [ex for ex in examples if ex.source in sources]
    if not rendered["train"]:
        raise TunewiseError(
            f"{data.train}: no training row has a trained token left after rendering "
            f"(max_length={data.max_length}); see the rejected rows with `tunewise data preview`."
        )
    return Prepared(
        train=rendered["train"],
        eval=rendered["eval"],
        test=rendered["test"],
        eval_examples=kept["eval"],
        stats=stats,
        rejects=rejects,
        train_examples=kept["train"],
        test_examples=kept["test"],
    )


def describe_language_data(config: Config, data: Prepared) -> str:
    """The rows, trained tokens per epoch, and the mixture drawn when `data.datasets` mixes several."""
    rows, aside = row_counts(data)
    text = f"{rows}, {data.stats['train'].tokens_trained} trained tokens per epoch{aside}"
    if data.mixture:
        from tunewise.tasks.multitask import describe_mixture

        text += (
            f"\nmixture ({config.data.mixing.strategy}"
            + (
                f", temperature {config.data.mixing.temperature:g}"
                if config.data.mixing.strategy == "temperature"
                else ""
            )
            + "):\n"
            + describe_mixture(data.mixture)
        )
    return text


def evaluate_language_model(
    config: Config, run_dir: Any, model: Any, tokenizer: PreTrainedTokenizerBase, data: Prepared | None
) -> dict[str, Any]:
    """Base vs tuned as language models: eval loss and generations on the eval rows (per dataset for
    a mixture), every suite, and the few-shot and retrieval alternatives; prints the tables.

    Args:
        run_dir: the trained run (None: the base model alone).
        data: the prepared data; None scores the suites alone.
    """
    from tunewise.evaluation.baselines import ShotPool, score_eval_rows
    from tunewise.evaluation.compare import compare
    from tunewise.evaluation.suite_eval import evaluate_suites
    from tunewise.tasks.multitask import dataset_losses, print_datasets, select_eval

    summary: dict[str, Any] = {}
    sides = ("base", "tuned") if run_dir is not None else ("base",)
    pool: ShotPool | None = None
    if data is not None:
        rows, examples = select_eval(data, config.eval.limit)  # with a mixture, the first rows of each dataset
        if not rows:
            raise TunewiseError("no eval rows: set data.eval to a file or data.split.eval above 0")
        console.print(f"evaluating base and tuned on {len(rows)} eval rows ...")
        comparison = compare(
            model,
            tokenizer,
            rows,
            examples,
            batch_size=config.eval.batch_size,
            generations=config.eval.generations,
            max_new_tokens=config.eval.max_new_tokens,
        )
        summary = comparison.to_dict()
        _print_comparison(summary)
        if data.eval_parts:  # a mixture: each dataset's eval loss on its own
            summary["datasets"] = dataset_losses(
                data.eval_parts,
                comparison.per_row,
                limit=config.eval.limit,
                bootstrap=config.eval.bootstrap,
                confidence=config.eval.confidence,
                seed=config.train.seed,
            )
            print_datasets(summary["datasets"], config.eval.confidence)
        baselines = config.eval.baselines
        if run_dir is not None and (baselines.few_shot or baselines.retrieval):
            # Was fine-tuning worth it? The base model with training examples in its prompt.
            pool = ShotPool(data.train_examples, baselines)
            summary["baselines"] = {**pool.describe(), "eval_rows": None, "suites": [], "notes": pool.notes}
            if pool.variants:
                console.print("scoring the cheaper alternatives (base model + training examples in the prompt) ...")
                summary["baselines"]["eval_rows"] = score_eval_rows(
                    model,
                    tokenizer,
                    examples,
                    pool,
                    train_on=config.data.train_on,
                    batch_size=config.eval.batch_size,
                    generations=config.eval.generations,
                    max_new_tokens=config.eval.max_new_tokens,
                    bootstrap=config.eval.bootstrap,
                    confidence=config.eval.confidence,
                    seed=config.train.seed,
                    log=lambda line: console.print(line, highlight=False),
                    scored=(rows, comparison.per_row),
                )
    if config.eval.suites:
        console.print(f"scoring {len(config.eval.suites)} suites ({' and '.join(sides)}) ...")
        results = evaluate_suites(
            model,
            tokenizer,
            config.eval,
            sides=sides,
            seed=config.train.seed,
            log=lambda line: console.print(line, highlight=False),
            pool=pool,
        )
        summary["suites"] = [r.to_dict() for r in results]
        if "baselines" in summary:
            summary["baselines"]["suites"] = [
                s["extra"].pop("baselines") for s in summary["suites"] if "baselines" in s["extra"]
            ]
        _print_suites(summary["suites"], config.eval.confidence)
    if "baselines" in summary:
        _print_baselines(summary, config.eval.confidence)
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
        table.add_row(
            r["name"],
            r["role"],
            r["metric"],
            str(r["n"]),
            format_interval(r["base"]),
            format_interval(r["tuned"]),
            change,
        )
    console.print(table)


def _print_baselines(summary: dict[str, Any], confidence: float) -> None:
    from tunewise.report import worth_it

    block = summary["baselines"]
    pct = f"{100 * confidence:.0f}%"

    measures: list[tuple[str, Any, Any, str | None]] = []
    if block.get("eval_rows"):
        measures.append(
            ("eval rows, answer loss", block["eval_rows"]["variants"], block["eval_rows"]["tuned_vs"], "loss")
        )
    measures += [(f"{s['name']}, {s['metric']}", s["variants"], s["tuned_vs"], None) for s in block.get("suites", [])]
    for title, variants, tuned_vs, key in measures:
        table = Table(title=f"was fine-tuning worth it? {title} (value [{pct} interval])")
        for column in ("model and prompt", "value", "tuned − this"):
            table.add_column(column, justify="left" if column == "model and prompt" else "right")
        for name in ("base", "few_shot", "retrieval", "tuned"):
            if name in variants:
                part = variants[name]
                table.add_row(
                    part["label"],
                    format_interval(part[key] if key else part),
                    format_interval(tuned_vs.get(name), signed=True) if name != "tuned" else "",
                )
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
    table.add_row(
        "perplexity",
        f"{base['perplexity']:.2f}",
        f"{tuned['perplexity']:.2f}",
        f"{100 * (tuned['perplexity'] / base['perplexity'] - 1):+.1f}%",
    )
    console.print(table)
    for i, sample in enumerate(summary["generations"], 1):
        console.print(
            f"[bold]{i}. {sample['prompt']}[/]\n  reference: {sample['reference']}\n"
            f"  base:      {sample['base']}\n  tuned:     {sample['tuned']}"
        )


class LanguageModelTask:
    """What a causal-language-model task is (chat, completion): no new head, the training loop's
    own collator, scored as a language model. A task kind sets its name, its rows (`plain_text`,
    whether the chat template applies) and how it renders them (`render`)."""

    name: str
    description: str
    plain_text: bool | None
    head = False

    def load_tokenizer(self, config: Config) -> PreTrainedTokenizerBase:
        return load_tokenizer(config, chat_template=not self.plain_text)

    def prepare(self, config: Config, tokenizer: PreTrainedTokenizerBase) -> Prepared:
        return prepare_language_data(config, tokenizer, plain_text=bool(self.plain_text), render=self.render)

    def render(
        self, examples: list[Example], tokenizer: PreTrainedTokenizerBase, data: DataConfig
    ) -> tuple[list[Rendered], RenderStats, list[Reject]]:
        raise NotImplementedError

    def model_class(self) -> Any:
        return None

    def model_load_kwargs(self, data: Prepared | None) -> dict[str, Any]:
        return {}

    def check_model(self, config: Config, model: Any) -> None:
        return None

    def collator(self, pad_id: int) -> Any:
        return None

    def describe_data(self, config: Config, data: Prepared) -> str:
        return describe_language_data(config, data)

    def check_saved(self, run_dir: Path, data: Prepared) -> None:
        return None

    def write_files(self, run_dir: Path, config: Config, data: Prepared) -> None:
        return None

    def evaluate(
        self,
        config: Config,
        run_dir: Path | None,
        model: Any,
        tokenizer: PreTrainedTokenizerBase,
        data: Prepared | None,
    ) -> dict[str, Any]:
        return evaluate_language_model(config, run_dir, model, tokenizer, data)
