"""Forgetting guards side by side: what each keeps of the base model, and what it costs the task.

Fine-tunes the default model (full fine-tuning) on a narrow task — SST-2 movie reviews cast as
instructions answered with one label word (`../shared/data/sst2`), or with `--task pubmedqa`
biomedical abstracts answered yes/no/maybe (`../shared/data/pubmedqa`) — at a learning rate that erodes
general ability, once unguarded and once with each guard of `guard:` and with a recommended
combination, all through `tunewise.run.train`. Every tuned model is then scored with the
library's own evaluation (`tunewise.evaluation.suite_eval.evaluate_suites`):

- task: accuracy on held-out task rows (SST-2 test reviews, or the last PubMedQA rows; the greedy
  answer contains the right label word);
- ARC-Easy: a fixed subset (the first `--arc` items) of `../shared/data/arc/arc_easy_test.jsonl`,
  multiple choice by log-likelihood (acc_norm);
- chat: the built-in general chat suite (the first `--chat` items), by greedy generation;
- KL: mean KL(base ‖ tuned) per token (`tunewise.guard.token_kl`) on neutral chat prompts — the chat
  suite's prompts followed by the base model's own greedy answers, over the answer tokens.

It prints one table (base row first) and checks the target of issue 5 for the recommended guard:
on chat and on KL it loses at most a third of the unguarded run's drop, it keeps at least 90% of the
unguarded task gain, and its ARC-Easy score does not fall below the base model's.

    python benchmarks/forgetting.py                                   # the full comparison
    python benchmarks/forgetting.py --train-rows 64 --epochs 1 --arc 40 --chat 24 --task-eval 40 \\
        --synth-limit 40 --variants none,recommended                  # a quick look

Caches (self-synthesized answers, Fisher) live in $TUNEWISE_HOME/guard; the first run of a guard
pays for them and its wall time shows it (the `setup_s` column). Exits 1 when the target is missed.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
SST2 = SHARED / "sst2"
PUBMEDQA = SHARED / "pubmedqa" / "pubmed_qa_labeled.jsonl"
ARC = SHARED / "arc" / "arc_easy_test.jsonl"
INSTRUCTION = "Is the sentiment of this movie review positive or negative? Answer with one word.\n\nReview: "


def sst2_rows(path: Path, limit: int) -> list[tuple[str, str]]:
    """(review, label word) from an `stsa.binary.*` file: `1 text` / `0 text` per line."""
    out = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.strip():
            out.append((line[2:].strip(), "positive" if line[0] == "1" else "negative"))
        if len(out) == limit:
            break
    return out


def pubmedqa_rows(train_rows: int, eval_rows: int) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    """(abstract + question + choices, yes/no/maybe) from PubMedQA's labelled set: the first rows
    train, the last ones are held out (disjoint as long as train + eval <= 1000)."""
    rows = [json.loads(line) for line in PUBMEDQA.read_text(encoding="utf-8").splitlines() if line.strip()]
    if train_rows + eval_rows > len(rows):
        raise SystemExit(f"{PUBMEDQA} has {len(rows)} rows; --train-rows + --task-eval must not exceed that")
    pairs = [(r["context"].strip(), r["continuation"].strip()) for r in rows]
    return pairs[:train_rows], pairs[len(pairs) - eval_rows:]


def write_task_files(work: Path, task: str, train_rows: int, eval_rows: int) -> tuple[Path, Path]:
    if task == "sst2":
        train_pairs = [(INSTRUCTION + text, label) for text, label in sst2_rows(SST2 / "stsa.binary.train", train_rows)]
        eval_pairs = [(INSTRUCTION + text, label) for text, label in sst2_rows(SST2 / "stsa.binary.test", eval_rows)]
    else:
        train_pairs, eval_pairs = pubmedqa_rows(train_rows, eval_rows)
    train = work / f"{task}_train.jsonl"
    train.write_text("".join(json.dumps({"messages": [{"role": "user", "content": prompt},
                                                       {"role": "assistant", "content": label}]}) + "\n"
                             for prompt, label in train_pairs), encoding="utf-8")
    suite = work / f"{task}_task_suite.jsonl"
    suite.write_text("".join(json.dumps({"prompt": prompt, "answers": [label]}) + "\n"
                             for prompt, label in eval_pairs), encoding="utf-8")
    return train, suite


VARIANTS: dict[str, list[str]] = {
    "none": [],
    "replay": ["guard.general=self", "guard.replay.ratio=0.25"],
    "ewc": ["guard.general=self", "guard.ewc.weight=0.1", "guard.ewc.samples=32"],
    "kl": ["guard.kl.weight=1.0", "guard.kl.on=batch"],
    "l2sp": ["guard.l2sp.weight=0.1"],
    # KL on general rows rather than on the batch: on the batch it holds the task's own answers to the
    # base model's, which is exactly what the fine-tune must change.
    "replay+kl": ["guard.general=self", "guard.replay.ratio=0.25", "guard.kl.weight=1.0",
                  "guard.kl.on=general", "guard.kl.batch_size=2"],
    # The same two guards, harder: replay+kl kept the whole task gain in docs/forgetting.md's run
    # but not quite two thirds of the chat suite, so there was room to hold the model closer.
    "recommended": ["guard.general=self", "guard.replay.ratio=0.4", "guard.kl.weight=2.0",
                    "guard.kl.on=general", "guard.kl.batch_size=4"],
}


def score(model: Any, tokenizer: Any, *, task_suite: Path, args: argparse.Namespace) -> dict[str, float]:
    """Task accuracy, ARC-Easy acc_norm and chat-suite score of `model` as it is (no adapter switching)."""
    from tunewise.config import EvalConfig, SuiteConfig
    from tunewise.evaluation.suite_eval import evaluate_suites

    quiet = lambda _: None  # noqa: E731
    out = {}
    # Each suite with its own answer length: a label word needs 8 tokens, a chat answer more.
    for key, spec, tokens in (("task", SuiteConfig(name=str(task_suite), role="task", metric="contains"), 8),
                              ("arc", SuiteConfig(name=str(ARC), role="general", limit=args.arc), 8),
                              ("chat", SuiteConfig(name="chat", limit=args.chat), args.chat_tokens)):
        config = EvalConfig(suites=[spec], bootstrap=100, max_new_tokens=tokens, batch_size=args.eval_batch)
        # sides=("base",) scores the model exactly as given: the tuned models here are plain models.
        (result,) = evaluate_suites(model, tokenizer, config, sides=("base",), log=quiet)
        out[key] = result.base["value"]
    return out


def kl_rows(base: Any, tokenizer: Any, args: argparse.Namespace) -> list[Any]:
    """Chat-suite prompts with the base model's greedy answers, rendered with the answer trained."""
    from tunewise.data import Example, render_all
    from tunewise.evaluation.suite import load_suite
    from tunewise.inference import generate_texts as generate

    prompts = [item["prompt"] for item in load_suite("chat").items[:args.kl_prompts]]
    answers = generate(base, tokenizer, [[{"role": "user", "content": p}] for p in prompts],
                       max_new_tokens=args.chat_tokens, batch_size=args.eval_batch)
    examples = [Example(source=f"kl:{i}", messages=({"role": "user", "content": p}, {"role": "assistant", "content": a}))
                for i, (p, a) in enumerate(zip(prompts, answers)) if a]
    rows, _, _ = render_all(examples, tokenizer, max_length=512)
    return rows


@torch.no_grad()
def mean_kl(tuned: Any, base: Any, rows: list[Any], pad_id: int) -> float:
    """Token-weighted mean KL(base ‖ tuned) over the answer tokens of `rows`."""
    from tunewise.guard import next_token_mask, token_kl
    from tunewise.training.collate import PadCollator

    collate, total, count = PadCollator(pad_id=pad_id), 0.0, 0
    tuned.eval()
    base.eval()
    for start in range(0, len(rows), 8):
        batch = collate([{"input_ids": r.input_ids, "labels": r.labels} for r in rows[start:start + 8]])
        mask = next_token_mask(batch)
        forward = {"input_ids": batch["input_ids"], "attention_mask": batch["attention_mask"]}
        value = token_kl(tuned(**forward).logits, base(**forward).logits, mask)
        total += float(value) * int(mask.sum())
        count += int(mask.sum())
    return total / max(count, 1)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--task", choices=("sst2", "pubmedqa"), default="sst2",
                        help="the narrow task: SST-2 reviews -> positive/negative, or PubMedQA abstracts -> yes/no/maybe")
    parser.add_argument("--train-rows", type=int, default=512, help="task training rows")
    parser.add_argument("--epochs", type=float, default=2.0)
    parser.add_argument("--lr", type=float, default=3e-4, help="high enough to erode general ability")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--task-eval", type=int, default=200, help="held-out task rows scored")
    parser.add_argument("--arc", type=int, default=200, help="ARC-Easy items (the first N, a fixed subset)")
    parser.add_argument("--chat", type=int, default=138, help="chat-suite items (the first N)")
    parser.add_argument("--chat-tokens", type=int, default=48, help="answer length for chat and KL")
    parser.add_argument("--kl-prompts", type=int, default=64, help="neutral chat prompts the KL is measured on")
    parser.add_argument("--synth-limit", type=int, default=None, help="seed prompts answered for self-synthesis")
    parser.add_argument("--synth-tokens", type=int, default=160, help="longest self-synthesized answer")
    parser.add_argument("--eval-batch", type=int, default=16)
    parser.add_argument("--variants", default=",".join(VARIANTS), help=f"comma-separated, from {', '.join(VARIANTS)}")
    parser.add_argument("--json", type=Path, default=None, help="also write the table as JSON here")
    parser.add_argument("--keep", type=Path, default=None, help="keep the run directories here")
    args = parser.parse_args()

    from tunewise.config import load_config
    from tunewise.models import convert_alias, load_model
    from tunewise.run import load_tokenizer_for, train

    variants = [v.strip() for v in args.variants.split(",") if v.strip()]
    unknown = [v for v in variants if v not in VARIANTS]
    if unknown:
        parser.error(f"unknown variants {unknown}; choose from {', '.join(VARIANTS)}")
    torch.set_num_threads(max(1, min(torch.get_num_threads(), os.cpu_count() or 1)))
    print(f"load average before: {os.getloadavg()[0]:.1f}", flush=True)
    model_dir = str(convert_alias("smollm2-135m-instruct"))
    work = Path(tempfile.mkdtemp(prefix="tunewise-forgetting-")) if args.keep is None else args.keep
    work.mkdir(parents=True, exist_ok=True)
    train_file, task_suite = write_task_files(work, args.task, args.train_rows, args.task_eval)
    max_length = 256 if args.task == "sst2" else 1024  # PubMedQA abstracts run to several hundred tokens

    common = [f"model.name={model_dir}", f"data.train={train_file}", "data.split.eval=0", f"data.max_length={max_length}",
              "data.check.enabled=false", "method.type=full", f"train.lr={args.lr}", f"train.epochs={args.epochs}",
              f"train.batch_size={args.batch_size}", "train.eval_every=0", "train.save_every=100000",
              "train.save_total_limit=1", "train.log_every=5", "train.warmup_ratio=0.05", "train.precision=fp32",
              "eval.suites=[]", "output.tracking=[]", f"output.dir={work / 'runs'}"]
    if args.synth_limit:
        common.append(f"guard.synth.limit={args.synth_limit}")
    common.append(f"guard.synth.max_new_tokens={args.synth_tokens}")

    base = load_model(model_dir)
    tokenizer = load_tokenizer_for(load_config(None, common))
    started = time.monotonic()
    table = [{"variant": "base", **score(base, tokenizer, task_suite=task_suite, args=args), "kl": 0.0,
              "train_s": 0.0, "setup_s": 0.0}]
    rows = kl_rows(base, tokenizer, args)
    print(f"base scored in {time.monotonic() - started:.0f} s: {table[0]}", flush=True)

    for name in variants:
        config = load_config(None, [*common, *VARIANTS[name], f"output.name={name}"])
        started = time.monotonic()
        run_dir = train(config)
        wall = time.monotonic() - started
        guard = json.loads((run_dir / "regularize.json").read_text()) if (run_dir / "regularize.json").is_file() else {}
        tuned = load_model(str(run_dir / "adapter"))  # full fine-tuning saves the whole model: a plain model
        scores = score(tuned, tokenizer, task_suite=task_suite, args=args)
        row = {"variant": name, **scores, "kl": mean_kl(tuned, base, rows, tokenizer.pad_token_id),
               "train_s": wall, "setup_s": guard.get("setup_s", 0.0)}
        table.append(row)
        print(f"{name}: {row}", flush=True)
        del tuned

    print(f"\nload average after: {os.getloadavg()[0]:.1f}")
    print(f"\n{args.train_rows} {args.task} rows, {args.epochs:g} epochs, lr {args.lr:g}, full fine-tuning; task = "
          f"{args.task_eval} held-out rows, ARC-Easy = first {args.arc}, chat = first {args.chat}, "
          f"KL on {len(rows)} chat prompts")
    header = f"| {'variant':<12} | task acc | ARC-Easy | chat  | KL to base | train wall s | guard setup s |"
    print(header)
    print("|" + "|".join("-" * (len(c)) for c in header.split("|")[1:-1]) + "|")
    for r in table:
        print(f"| {r['variant']:<12} | {r['task']:8.3f} | {r['arc']:8.3f} | {r['chat']:5.3f} | {r['kl']:10.4f} "
              f"| {r['train_s']:12.0f} | {r['setup_s']:13.0f} |")
    if args.json:
        args.json.write_text(json.dumps(table, indent=2) + "\n", encoding="utf-8")

    by = {r["variant"]: r for r in table}
    if "none" in by and "recommended" in by:
        b, u, g = by["base"], by["none"], by["recommended"]
        checks = {
            "chat: keeps ≥ 2/3 of the unguarded drop": (b["chat"] - g["chat"]) <= max(0.0, b["chat"] - u["chat"]) / 3,
            "KL: at most 1/3 of the unguarded KL": g["kl"] <= u["kl"] / 3,
            "task: ≥ 90% of the unguarded gain": (g["task"] - b["task"]) >= 0.9 * (u["task"] - b["task"]),
            "ARC-Easy: not below the base": g["arc"] >= b["arc"],
        }
        for text, ok in checks.items():
            print(f"{'PASS' if ok else 'MISS'}  {text}")
        return 0 if all(checks.values()) else 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
