"""Sequence classification: a classification head on the base model, trained on `{text, label}` rows.

The model is the base causal LM loaded as `AutoModelForSequenceClassification`: the same
transformer, with its vocabulary projection replaced by a new `score` layer (hidden → labels) that
reads the last token of the text. The configured method trains as usual — for a PEFT method the
head trains fully beside the adapter (PEFT's `modules_to_save`) and is saved with it.

Data. Every row needs `text` and `label` (rename other columns with `data.columns`). Labels are
strings or whole numbers, compared as text; their order (numeric when every label is a number)
gives the class ids, and `labels.json` in the run directory keeps them. A label in the eval or
test rows that training never shows is a config error, found before the model loads. A text is
tokenized as is (no chat template) and cut on the right at `data.max_length`.

Evaluation. A new head starts random, so "the base model" cannot score the task by it. Instead the
fine-tune is compared, on the same eval rows with bootstrap intervals and paired deltas, with

- `majority`: always the most frequent training label (the floor any classifier must clear);
- `base` — the base causal LM prompted **zero-shot**: the text and the label names in a user turn
  (through the chat template when the tokenizer has one), each label name scored as the answer by
  its log-likelihood, the most likely one predicted. Give label words with `data.label_names`
  (`{0: negative, 1: positive}`): bare ids give the prompt nothing to go on;
- `few_shot` / `retrieval` (`eval.baselines`): the same prompt after k labelled training examples
  as earlier chat turns, drawn at random or nearest by BM25.

Accuracy and macro-F1 of each, in `eval_summary.json` (`classification`), as task-suite results
(`suites`, base = zero-shot) and as "was fine-tuning worth it?" measurements (`baselines`).
Classification suites (`{text, label}` files in `eval.suites`) are scored the same way.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import chain, islice
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from tunewise.console import format_interval, make_console
from tunewise.data.shapes import BadRow, Example, Reject
from tunewise.data.templates import IGNORE_INDEX, Rendered, RenderStats
from tunewise.errors import ConfigError, DataError, TunewiseError
from tunewise.inference import device_of, eval_mode
from tunewise.rundir import RunDir, write_json
from tunewise.tasks.base import Prepared, load_tokenizer, row_counts

if TYPE_CHECKING:
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

    from tunewise.config import Config, DataConfig

__all__ = [
    "LABELS_FILE",
    "TASK",
    "ClassificationTask",
    "LabelCollator",
    "Labeled",
    "evaluate_classifier",
    "head_kwargs",
    "label_order",
    "load_labeled",
    "predict",
    "prepare_classification",
    "prompt_predictions",
]

console = make_console()

LABELS_FILE = RunDir.LABELS
"""In the run directory: the labels in class-id order and their names."""
_METRICS = ("accuracy", "f1_macro")
_DETECT_SAMPLE = 100


@dataclass(frozen=True)
class Labeled:
    """One `{text, label}` row; `label` as text (`1` and `"1"` are the same label)."""

    source: str
    text: str
    label: str


# --------------------------------------------------------------------------- data


def _label(value: Any) -> str:
    if isinstance(value, bool) or value is None:
        raise BadRow(
            "missing key `label`" if value is None else f"`label` must be a string or a whole number, not {value!r}"
        )
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, (int, str)) and str(value).strip():
        return str(value).strip()
    raise BadRow(f"`label` must be a non-empty string or a whole number, not {value!r:.40}")


def load_labeled(
    path: str, *, columns: dict[str, str] | None = None, on_bad_rows: str = "error"
) -> tuple[list[Labeled], list[Reject]]:
    """Read `{text, label}` rows from any file `read_rows` reads.

    Raises:
        ConfigError: the file's rows have no `text` and `label` (after `columns`).
        DataError: a row is malformed and `on_bad_rows` is `error`, or no row is usable.
    """
    from tunewise.data.io import read_rows
    from tunewise.data.shapes import check_renames, rename_columns, required_str

    rows = read_rows(path)
    head = list(islice(rows, _DETECT_SAMPLE))
    renames = dict(columns or {})
    if renames:
        check_renames(head, renames, path)
    keys = set().union(*(rename_columns(r.data, renames).keys() for r in head))
    if not {"text", "label"} <= keys:
        hint = (
            " They look like chat data: fine-tune on them with task: chat."
            if keys & {"messages", "conversations", "instruction", "prompt"}
            else ""
        )
        raise ConfigError(
            [
                f"task: classification needs {{text, label}} rows, and {path} has columns "
                f"{', '.join(sorted(keys)) or 'none'}. Map yours with data.columns, e.g. "
                f"{{review: text, sentiment: label}}.{hint}"
            ]
        )
    out: list[Labeled] = []
    rejects: list[Reject] = []
    for row in chain(head, rows):
        data = rename_columns(row.data, renames)
        try:
            out.append(Labeled(row.source, required_str(data, "text"), _label(data.get("label"))))
        except BadRow as bad:
            if on_bad_rows == "error":
                raise DataError(
                    f"{row.source}: {bad.reason}. Fix this row, or set `data.on_bad_rows: skip` to "
                    f"leave such rows out (each is written to rejects.jsonl with its reason)."
                ) from None
            rejects.append(Reject(row.source, bad.reason, row.data))
    if not out:
        raise DataError(
            f"{path}: no usable {{text, label}} rows (first problem: {rejects[0].source}: {rejects[0].reason})"
        )
    return out, rejects


def label_order(labels: set[str] | Sequence[str]) -> list[str]:
    """The class ids' order: numeric when every label is a whole number, else alphabetical."""
    unique = set(labels)
    if all(re.fullmatch(r"-?\d+", label) for label in unique):
        return sorted(unique, key=int)
    return sorted(unique)


def _render(
    rows: Sequence[Labeled], classes: list[str], tokenizer: PreTrainedTokenizerBase, max_length: int
) -> tuple[list[Rendered], RenderStats]:
    from tunewise.tasks.multitask import rows_stats

    index = {label: i for i, label in enumerate(classes)}
    encoded = tokenizer([r.text for r in rows], add_special_tokens=True)["input_ids"] if rows else []
    out = []
    for row, ids in zip(rows, encoded):
        ids = list(ids)
        # The head reads the rightmost token that is not padding: a trailing pad id would hide the text's end.
        while ids and ids[-1] == tokenizer.pad_token_id:
            ids.pop()
        dropped = max(0, len(ids) - max_length)
        ids = ids[:max_length] or [tokenizer.eos_token_id if tokenizer.eos_token_id is not None else 0]
        out.append(
            Rendered(
                source=row.source,
                input_ids=ids,
                labels=[index[row.label]],
                n_tokens=len(ids),
                n_trained=1,
                truncated=dropped > 0,
                n_dropped_tokens=dropped,
            )
        )
    empty = RenderStats(
        rows=0,
        rows_truncated=0,
        rows_without_trained_tokens=0,
        tokens_total=0,
        tokens_trained=0,
        tokens_dropped=0,
        max_length=max_length,
        length_min=0,
        length_mean=0.0,
        length_p50=0,
        length_p95=0,
        length_max=0,
    )
    return out, rows_stats(out, [empty])


def prepare_classification(config: Config, tokenizer: PreTrainedTokenizerBase) -> Prepared:
    """Load, split, check and tokenize `{text, label}` data; every problem is raised before a model loads.

    `Rendered.labels` of a row is `[class id]`; `Prepared.classes` lists the labels by id, and the
    examples (for the data check and the prompting baselines) carry the texts.

    Raises:
        ConfigError: no training file, fewer than two labels, an eval/test label never seen in
            training, `data.label_names` naming unknown labels, or a suite that is not a
            classification suite or has unknown labels.
    """
    from tunewise.data import split_examples

    data = config.data
    if not data.train:
        raise ConfigError(
            ["data.train: no training file given; set `data.train: path/to/train.jsonl` ({text, label} rows)"]
        )
    rejects: list[Reject] = []

    def load(path: str) -> list[Labeled]:
        rows, bad = load_labeled(path, columns=data.columns, on_bad_rows=data.on_bad_rows)
        rejects.extend(bad)
        return rows

    train = load(data.train)
    eval_ = load(data.eval) if data.eval else None
    test = load(data.test) if data.test else None
    train, split_eval, split_test = split_examples(
        train,
        eval_fraction=0.0 if eval_ is not None else data.split.eval,
        test_fraction=0.0 if test is not None else data.split.test,
        seed=data.split.seed,
    )
    eval_ = split_eval if eval_ is None else eval_
    test = split_test if test is None else test

    classes = label_order({r.label for r in train})
    problems = []
    if len(classes) < 2:
        problems.append(
            f"data.train: every training row has the label {classes[0]!r}; a classifier needs at least two labels"
        )
    for key, rows in (("eval", eval_), ("test", test)):
        unseen = [r for r in rows if r.label not in classes]
        if unseen:
            counts = Counter(r.label for r in unseen)
            problems.append(
                f"data.{key}: label {', '.join(map(repr, counts))} ({unseen[0].source} and {len(unseen) - 1} more "
                f"rows) never occurs in the training rows, so the head could not predict it (training labels: "
                f"{', '.join(classes)}); add training rows with it, or drop these rows"
            )
    for label in data.label_names or {}:
        if label not in classes:
            problems.append(
                f"data.label_names: {label!r} is not a label of the training rows (labels: {', '.join(classes)})"
            )
    problems += _suite_problems(config, classes)
    if problems:
        raise ConfigError(problems)

    rendered = {}
    stats = {}
    for name, rows in (("train", train), ("eval", eval_), ("test", test)):
        rendered[name], stats[name] = _render(rows, classes, tokenizer, data.max_length)

    def examples(rows: list[Labeled]) -> list[Example]:
        return [Example(r.source, text=r.text) for r in rows]

    return Prepared(
        train=rendered["train"],
        eval=rendered["eval"],
        test=rendered["test"],
        eval_examples=examples(eval_),
        stats=stats,
        rejects=rejects,
        train_examples=examples(train),
        test_examples=examples(test),
        classes=classes,
    )


def _suite_problems(config: Config, classes: list[str]) -> list[str]:
    from tunewise.evaluation.suite import load_suite

    problems = []
    for spec in config.eval.suites:
        suite = load_suite(spec.name, limit=spec.limit, columns=spec.columns)
        if suite.kind != "classification":
            problems.append(
                f"eval.suites ({spec.name}): a {suite.kind} suite scores a language model; a "
                f"classification run scores {{text, label}} suites with its head — remove it"
            )
            continue
        unknown = sorted({_label(it["label"]) for it in suite.items} - set(classes))
        if unknown:
            problems.append(
                f"eval.suites ({spec.name}): labels {', '.join(unknown)} never occur in the training "
                f"rows (training labels: {', '.join(classes)})"
            )
    return problems


def head_kwargs(classes: Sequence[str]) -> dict[str, Any]:
    """`load_model` arguments for a sequence-classification head over `classes`."""
    from transformers import AutoModelForSequenceClassification

    return {
        "model_class": AutoModelForSequenceClassification,
        "num_labels": len(classes),
        "id2label": dict(enumerate(classes)),
        "label2id": {c: i for i, c in enumerate(classes)},
    }


def write_labels(run_dir: Path, config: Config, classes: Sequence[str]) -> None:
    """`labels.json`: the labels in class-id order and their names, beside the adapter."""
    names = config.data.label_names or {}
    payload = {"labels": list(classes), "names": {c: names.get(c, c) for c in classes}}
    write_json(run_dir / LABELS_FILE, payload, default=None)


def check_labels(run_dir: Path, classes: Sequence[str]) -> None:
    """Raise when the run's head was trained on other labels than the data now gives."""
    path = run_dir / LABELS_FILE
    if path.is_file():
        saved = json.loads(path.read_text(encoding="utf-8")).get("labels")
        if saved != list(classes):
            raise TunewiseError(
                f"{path}: the head was trained on labels {saved}, but the data now gives "
                f"{list(classes)}; evaluate with the data the run was trained on"
            )


@dataclass
class LabelCollator:
    """Right-pad `input_ids` to the batch's longest row; `labels` become one class id per row."""

    pad_id: int
    multiple_of: int = 1

    def __call__(self, rows: list[dict[str, Any]]) -> dict[str, torch.Tensor]:
        longest = max(len(r["input_ids"]) for r in rows)
        width = -(-longest // self.multiple_of) * self.multiple_of
        input_ids = torch.full((len(rows), width), self.pad_id, dtype=torch.long)
        attention = torch.zeros((len(rows), width), dtype=torch.long)
        for i, row in enumerate(rows):
            n = len(row["input_ids"])
            input_ids[i, :n] = torch.as_tensor(row["input_ids"])
            attention[i, :n] = 1
        labels = torch.tensor([r["labels"][0] for r in rows], dtype=torch.long)
        return {"input_ids": input_ids, "attention_mask": attention, "labels": labels}


# --------------------------------------------------------------------------- predictions


def predict(model: PreTrainedModel, rows: Sequence[Rendered], *, pad_id: int, batch_size: int) -> np.ndarray:
    """The class id the head predicts for each row, in row order (batched by similar length), in eval mode."""
    collate = LabelCollator(pad_id=pad_id)
    device = device_of(model)
    out = np.zeros(len(rows), dtype=int)
    order = sorted(range(len(rows)), key=lambda i: rows[i].n_tokens)
    with eval_mode(model):
        for start in range(0, len(order), batch_size):
            chunk = order[start : start + batch_size]
            batch = collate(
                [{"input_ids": rows[i].input_ids, "labels": rows[i].labels or [IGNORE_INDEX]} for i in chunk]
            )
            logits = model(
                input_ids=batch["input_ids"].to(device), attention_mask=batch["attention_mask"].to(device)
            ).logits
            out[chunk] = logits.argmax(-1).cpu().numpy()
    return out


def _instruction(text: str, names: Sequence[str]) -> str:
    return f"Classify the text as one of: {', '.join(names)}.\n\nText: {text}\n\nAnswer with the label only."


def _shots_as_chat(texts: Sequence[str], answers: Sequence[str], names: Sequence[str]) -> list[Example]:
    return [
        Example(
            f"shot:{i}",
            messages=({"role": "user", "content": _instruction(t, names)}, {"role": "assistant", "content": a}),
        )
        for i, (t, a) in enumerate(zip(texts, answers))
    ]


def prompt_predictions(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    texts: Sequence[str],
    names: Sequence[str],
    *,
    contexts: Sequence[list[dict[str, str]]] | None = None,
    batch_size: int = 8,
) -> np.ndarray:
    """The label a causal LM prefers for each text, prompted with the label names (see the module docstring).

    Each name is scored as the answer by its summed log-likelihood (`score_multiple_choice`, the
    query being the rendered prompt); `contexts[i]` (earlier chat turns) goes before prompt i.

    Returns:
        The index into `names` of the most likely label, per text.
    """
    from tunewise.evaluation.scoring import score_multiple_choice

    chat = bool(getattr(tokenizer, "chat_template", None))
    items = []
    for i, text in enumerate(texts):
        turns = list(contexts[i]) if contexts else []
        if chat:
            query = tokenizer.apply_chat_template(
                [*turns, {"role": "user", "content": _instruction(text, names)}],
                add_generation_prompt=True,
                tokenize=False,
            )
        else:  # no template: the same turns as plain "Text: / Label:" lines
            shots = "".join(f"{t['content']}\n" if t["role"] == "user" else f"Label: {t['content']}\n\n" for t in turns)
            query = f"{shots}{_instruction(text, names)}\nLabel:"
        items.append({"query": query, "choices": list(names), "gold": 0})
    scores = score_multiple_choice(
        model, tokenizer, items, delimiter="" if chat else " ", batch_size=batch_size, progress=False
    )
    return np.array([s.pred_raw for s in scores], dtype=int)


# --------------------------------------------------------------------------- evaluation


def _metrics(pred: Sequence[int] | np.ndarray, gold: Sequence[int] | np.ndarray) -> dict[str, Any]:
    from tunewise.evaluation.metrics import get_metric

    p, g = [str(int(x)) for x in pred], [str(int(x)) for x in gold]
    return {name: get_metric(name)(p, g) for name in _METRICS}


def _iv(iv: Any) -> dict[str, float]:
    return {"value": iv.value, "low": iv.low, "high": iv.high}


class _Scored:
    """Every variant's predictions on one set of rows, and the numbers that follow."""

    def __init__(
        self, name: str, gold: np.ndarray, preds: dict[str, np.ndarray], labels: dict[str, str], boot: dict[str, Any]
    ) -> None:
        self.name, self.gold, self.preds, self.labels, self.boot = name, gold, preds, labels, boot
        self.scores = {v: _metrics(p, gold) for v, p in preds.items()}

    def variants(self) -> dict[str, Any]:
        return {
            v: {"label": self.labels[v], **{m: _iv(s[m].interval(**self.boot)) for m in _METRICS}}
            for v, s in self.scores.items()
        }

    def tuned_vs(self) -> dict[str, Any]:
        from tunewise.evaluation.metrics import score_delta

        if "tuned" not in self.scores:
            return {}
        out: dict[str, Any] = {}
        for v, s in self.scores.items():
            if v != "tuned":
                out[v] = {}
                for m in _METRICS:
                    d = score_delta(s[m], self.scores["tuned"][m], **self.boot)
                    out[v][m] = {"value": d.value, "low": d.low, "high": d.high, "p_value": d.p_value}
        return out

    def suite_results(self, zero_shot_label: str) -> list[dict[str, Any]]:
        """As task-suite results (the report's and the run list's format): base = the zero-shot prompt."""
        variants, deltas = self.variants(), self.tuned_vs()
        out = []
        for m in _METRICS:
            base = variants["base"][m]
            result = {
                "name": self.name,
                "kind": "classification",
                "role": "task",
                "metric": m,
                "higher_is_better": True,
                "n": len(self.gold),
                "base": base,
                "tuned": variants["tuned"][m] if "tuned" in variants else None,
                "delta": dict(deltas["base"][m].items()) if deltas else None,
                "extra": {"base": zero_shot_label, "majority": variants["majority"][m]},
            }
            out.append(result)
        return out

    def baselines(self, k: dict[str, int]) -> list[dict[str, Any]]:
        """As "was fine-tuning worth it?" measurements: one per metric, variants with examples in the prompt."""
        if "tuned" not in self.scores or not any(v in self.scores for v in ("few_shot", "retrieval")):
            return []
        variants, deltas = self.variants(), self.tuned_vs()
        out = []
        for m in _METRICS:
            parts = {
                v: {"label": variants[v]["label"], **variants[v][m], "examples": float(k.get(v, 0))}
                for v in ("base", "few_shot", "retrieval", "tuned")
                if v in variants
            }
            out.append(
                {
                    "name": self.name,
                    "kind": "classification",
                    "metric": m,
                    "higher_is_better": True,
                    "n": len(self.gold),
                    "variants": parts,
                    "tuned_vs": {v: deltas[v][m] for v in ("base", "few_shot", "retrieval") if v in deltas},
                }
            )
        return out

    def confusion(self, k: int) -> list[list[int]] | None:
        """Counts of (true, predicted) class ids of the fine-tuned head; None without one."""
        if "tuned" not in self.preds:
            return None
        matrix = np.zeros((k, k), dtype=int)
        for g, p in zip(self.gold, self.preds["tuned"]):
            matrix[g, p] += 1
        return matrix.tolist()


def evaluate_classifier(
    config: Config,
    run_dir: Path | None,
    model: PreTrainedModel | None,
    tokenizer: PreTrainedTokenizerBase,
    data: Prepared,
) -> dict[str, Any]:
    """Score the fine-tuned head and the baselines on the eval rows and classification suites.

    Args:
        run_dir: the trained run; None scores the baselines alone (no tuned model).
        model: the trained classifier; None when there is none yet.

    Returns:
        The summary `eval_summary.json` holds (see the module docstring); the caller writes it.
    """
    from tunewise.evaluation.baselines import ShotPool
    from tunewise.evaluation.suite import load_suite
    from tunewise.models import load_model

    classes = data.classes
    names = [(config.data.label_names or {}).get(c, c) for c in classes]
    rows, examples = data.eval, data.eval_examples
    if config.eval.limit:
        rows, examples = rows[: config.eval.limit], examples[: config.eval.limit]
    if not rows:
        raise TunewiseError("no eval rows: set data.eval to a file or data.split.eval above 0")
    sets = [("eval rows", [ex.text or "" for ex in examples], np.array([r.labels[0] for r in rows]), rows)]
    for spec in config.eval.suites:
        suite = load_suite(spec.name, limit=spec.limit, columns=spec.columns)
        labeled = [Labeled(src, it["text"], _label(it["label"])) for it, src in zip(suite.items, suite.sources)]
        rendered, _ = _render(labeled, classes, tokenizer, config.data.max_length)
        sets.append((suite.name, [r.text for r in labeled], np.array([r.labels[0] for r in rendered]), rendered))

    train_labels = [r.labels[0] for r in data.train]
    majority = Counter(train_labels).most_common(1)[0][0]
    notes = []
    if not config.data.label_names and all(re.fullmatch(r"-?\d+", c) for c in classes):
        notes.append(
            f"the labels are bare ids ({', '.join(classes)}): the prompting baselines score those ids as "
            f"answers, which tells the model nothing; name them with data.label_names for a fair baseline"
        )
    pool = ShotPool(
        _shots_as_chat([ex.text or "" for ex in data.train_examples], [names[i] for i in train_labels], names),
        config.eval.baselines,
    )
    notes += pool.notes
    labels = {
        "majority": f"always {names[majority]!r} (the most frequent training label)",
        "base": "base model, zero-shot prompt (label names scored by log-likelihood)",
        "tuned": "fine-tuned classification head",
    }
    labels.update(
        {
            v: f"base model, {pool.k[v]} {'random' if v == 'few_shot' else 'retrieved'} training examples in the prompt"
            for v in pool.variants
        }
    )

    preds: list[dict[str, np.ndarray]] = [{"majority": np.full(len(gold), majority)} for _, _, gold, _ in sets]
    if model is not None:
        console.print(f"classifying {sum(len(s[2]) for s in sets)} rows with the fine-tuned head ...")
        for p, (_, _, _, rendered) in zip(preds, sets):
            p["tuned"] = predict(model, rendered, pad_id=tokenizer.pad_token_id, batch_size=config.eval.batch_size)
    # The prompting baselines need the language-model head the classifier replaced: the base model, loaded again.
    console.print(f"prompting the base model: zero-shot{''.join(', ' + v for v in pool.variants)} ...")
    lm = load_model(config.model.name, revision=config.model.revision, trust_remote_code=config.model.trust_remote_code)
    # A text that is also a training row is never its own example (pool rows are keyed by their prompt).
    same: dict[str, set[int]] = {}
    for i, ex in enumerate(pool.examples):
        same.setdefault((ex.messages or ())[0]["content"], set()).add(i)
    try:
        for p, (_, texts, _, _) in zip(preds, sets):
            p["base"] = prompt_predictions(lm, tokenizer, texts, names, batch_size=config.eval.batch_size)
            exclude = [same.get(_instruction(t, names), set()) for t in texts]
            for variant, picked in pool.pick(texts, exclude).items():
                contexts = [[dict(m) for i in idx for m in pool.examples[i].messages or ()] for idx in picked]
                p[variant] = prompt_predictions(
                    lm, tokenizer, texts, names, contexts=contexts, batch_size=config.eval.batch_size
                )
    finally:
        del lm

    boot = {"n_resamples": config.eval.bootstrap, "confidence": config.eval.confidence, "seed": config.train.seed}
    order = ("majority", "base", "few_shot", "retrieval", "tuned")
    scored = [
        _Scored(name, gold, {v: p[v] for v in order if v in p}, labels, boot)
        for (name, _, gold, _), p in zip(sets, preds)
    ]
    main = scored[0]
    summary: dict[str, Any] = {
        "task": "classification",
        "classification": {
            "labels": classes,
            "names": dict(zip(classes, names)),
            "rows": len(main.gold),
            "support": {classes[i]: int(n) for i, n in sorted(Counter(main.gold.tolist()).items())},
            "variants": main.variants(),
            "tuned_vs": main.tuned_vs(),
            "confusion": {"labels": classes, "matrix": main.confusion(len(classes))},
            "suites": [
                {"name": s.name, "rows": len(s.gold), "variants": s.variants(), "tuned_vs": s.tuned_vs()}
                for s in scored[1:]
            ],
            "notes": notes,
        },
        "suites": [result for s in scored for result in s.suite_results(labels["base"])],
    }
    measures = [m for s in scored for m in s.baselines(pool.k)]
    if measures:
        summary["baselines"] = {**pool.describe(), "eval_rows": None, "suites": measures, "notes": notes}
    _print(summary, config.eval.confidence)
    return summary


def _print(summary: dict[str, Any], confidence: float) -> None:
    from rich.table import Table

    from tunewise.report import worth_it

    block = summary["classification"]
    pct = f"{100 * confidence:.0f}%"

    for title, variants, deltas, n in [
        ("eval rows", block["variants"], block["tuned_vs"], block["rows"]),
        *((s["name"], s["variants"], s["tuned_vs"], s["rows"]) for s in block["suites"]),
    ]:
        table = Table(title=f"classification, {title} (n={n}; value [{pct} interval])")
        for column in ("model", "accuracy", "macro-F1", "tuned − this (accuracy)", "tuned − this (macro-F1)"):
            table.add_column(column, justify="left" if column == "model" else "right")
        for name, part in variants.items():
            d = deltas.get(name) or {}
            table.add_row(
                part["label"],
                format_interval(part["accuracy"]),
                format_interval(part["f1_macro"]),
                format_interval(d.get("accuracy"), True),
                format_interval(d.get("f1_macro"), True),
            )
        console.print(table)
    matrix = block["confusion"]["matrix"]
    if matrix:
        names = list(block["names"].values())
        table = Table(title="confusion of the fine-tuned head on the eval rows (rows: true label, columns: predicted)")
        table.add_column("true \\ predicted")
        for name in names:
            table.add_column(name, justify="right")
        for name, counts in zip(names, matrix):
            table.add_row(name, *map(str, counts))
        console.print(table)
    for beat, line in worth_it(summary) or []:
        console.print(f"[{'green' if beat else 'red'}]{line}[/]", highlight=False)
    for note in block["notes"]:
        console.print(f"[yellow]note:[/] {note}", highlight=False)


class ClassificationTask:
    """`task: classification`: a sequence-classification head on the base model for {text, label} rows."""

    name = "classification"
    description = "a classification head on the base model for {text, label} rows"
    plain_text: bool | None = None
    head = True

    def load_tokenizer(self, config: Config) -> PreTrainedTokenizerBase:
        return load_tokenizer(config, chat_template=False)

    def prepare(self, config: Config, tokenizer: PreTrainedTokenizerBase) -> Prepared:
        return prepare_classification(config, tokenizer)

    def render(
        self, examples: list[Example], tokenizer: PreTrainedTokenizerBase, data: DataConfig
    ) -> tuple[list[Rendered], RenderStats, list[Reject]]:
        # {text, label} rows are rendered against the label set, which only `prepare` knows; no other
        # rows of this kind exist (the config refuses the guards that read general rows).
        raise TunewiseError("task classification renders its rows in prepare(), with the label set")

    def model_class(self) -> Any:
        from transformers import AutoModelForSequenceClassification

        return AutoModelForSequenceClassification  # the label count does not change the method checks

    def model_load_kwargs(self, data: Prepared | None) -> dict[str, Any]:
        if data is None or not data.classes:
            raise ValueError("a classification model needs the label set of the prepared data")
        return head_kwargs(data.classes)

    def check_model(self, config: Config, model: Any) -> None:
        """Raise when the new head would stay frozen (and so random) under the method.

        Raises:
            ConfigError: naming the method setting that trains it.
        """
        heads = [(name, p) for name, p in model.named_parameters() if {"score", "classifier"} & set(name.split("."))]
        if heads and not any(p.requires_grad for _, p in heads):
            hint = (
                "set method.train_head: true (the head is the new score layer here)"
                if config.method.type in ("freeze", "gradual_unfreeze")
                else "use lora, ia3 or full"
            )
            raise ConfigError(
                [
                    f"method.type: {config.method.type} leaves the new classification head frozen, so "
                    f"it would stay random; {hint}"
                ]
            )

    def collator(self, pad_id: int) -> Any:
        # Padded lengths in multiples of 8 suit GPU tensor cores, as the training loop's own collator does.
        return LabelCollator(pad_id=pad_id, multiple_of=8 if torch.cuda.is_available() else 1)

    def describe_data(self, config: Config, data: Prepared) -> str:
        rows, aside = row_counts(data)
        counts = Counter(row.labels[0] for row in data.train)
        names = config.data.label_names or {}
        shares = ", ".join(
            f"{names.get(c, c)} {100 * counts[i] / len(data.train):.0f}%" for i, c in enumerate(data.classes)
        )
        return f"{rows}{aside}; {len(data.classes)} labels in training: {shares}"

    def check_saved(self, run_dir: Path, data: Prepared) -> None:
        check_labels(run_dir, data.classes)  # the saved head's labels must be the data's

    def write_files(self, run_dir: Path, config: Config, data: Prepared) -> None:
        write_labels(run_dir, config, data.classes)

    def evaluate(
        self,
        config: Config,
        run_dir: Path | None,
        model: Any,
        tokenizer: PreTrainedTokenizerBase,
        data: Prepared | None,
    ) -> dict[str, Any]:
        # A head, not a language model: accuracy and F1 against the majority and prompting baselines.
        if data is None:
            raise ValueError("a classification evaluation needs its prepared data")
        return evaluate_classifier(config, run_dir, model, tokenizer, data)


TASK = ClassificationTask()
