"""Training throughput and memory: `tunewise train` defaults against TRL's `SFTTrainer` defaults.

Both sides train the default model (SmolLM2-135M-Instruct, float32 weights from tunewise's cache)
with the same LoRA (r=16, alpha=32, dropout 0.05, all linear layers), the same learning rate, the
same batch (8 rows, no accumulation), one epoch over the same chat rows from
../shared/data/llamafactory_demo/alpaca_en_demo.json (rows of 20–512 tokens after the chat
template, so nobody truncates), each trained on the answer tokens only (TRL gets the rows as
conversational prompt/completion pairs, which its defaults train on the completion only), and both
end with one evaluation on the same held-out rows. Every other setting is each side's default: TRL
with gradient checkpointing, bf16 autocast, padded random batches; tunewise with whatever its defaults
are (`train.precision: auto` picks bf16 only where the hardware has it, fp32 elsewhere).

TRL's bf16 default is emulated, and several times slower than fp32, on a CPU without AVX512-BF16 or
AMX. On such a machine a third side runs, `trl-matched`: TRL's defaults with the precision tunewise
picked (fp32), so the ratio against the peer a careful user would configure is printed beside the
ratio against the defaults (the issue's target is against the defaults).

Each side runs in its own process (`tunewise train CONFIG` through the CLI; TRL in a child of this
script), so peak resident memory (`wait4`'s ru_maxrss) is that side's alone. Printed per side:
real tokens (no padding; the same count on both sides or the script says so), tokens per second
over training (the final evaluation's time taken out), peak RSS, final eval loss; then the ratios
and tunewise's model FLOP utilisation against a bf16 matrix-product peak measured in this run.

    python benchmarks/throughput.py                       # 256 train rows + 32 eval rows
    python benchmarks/throughput.py --rows 64 --repeats 2 # quicker; sides alternate trl, tunewise, trl, ...
    python benchmarks/throughput.py --sides trl-matched,tunewise   # skip TRL's (slow here) defaults

Timings on a shared machine are only as good as its load: the load average is printed before and
after each side, the sides alternate with --repeats, and ratios are taken within one invocation.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "llamafactory_demo" / "alpaca_en_demo.json"
MODEL = "smollm2-135m-instruct"
TARGETS = {"speed": 3.0, "memory": 0.6, "loss": 0.02}


def _load_average() -> str:
    try:
        return " ".join(f"{x:.2f}" for x in os.getloadavg())
    except OSError:  # pragma: no cover
        return "n/a"


def _chat(row: dict[str, str]) -> tuple[dict[str, str], dict[str, str]]:
    prompt = row["instruction"] + (f"\n\n{row['input']}" if row.get("input") else "")
    return {"role": "user", "content": prompt}, {"role": "assistant", "content": row["output"]}


def prepare(workdir: Path, rows: int, eval_rows: int, max_tokens: int) -> dict[str, Any]:
    """Pick rows of 20..max_tokens tokens (rendered as tunewise renders them), write them for both sides."""
    from tunewise.models import load_tokenizer

    tokenizer = load_tokenizer(MODEL)
    picked = []
    for row in json.loads(DATA.read_text(encoding="utf-8")):
        user, assistant = _chat(row)
        n = len(tokenizer.apply_chat_template([user, assistant], tokenize=True, return_dict=True)["input_ids"])
        if 20 <= n <= max_tokens:
            picked.append((user, assistant, n))
        if len(picked) == rows + eval_rows:
            break
    if len(picked) < rows + eval_rows:
        raise SystemExit(f"{DATA} has only {len(picked)} rows of 20..{max_tokens} tokens")
    splits = {"train": picked[:rows], "eval": picked[rows:]}
    for name, items in splits.items():
        with (workdir / f"{name}.jsonl").open("w", encoding="utf-8") as fh:  # tunewise: chat messages
            for user, assistant, _ in items:
                fh.write(json.dumps({"messages": [user, assistant]}) + "\n")
        with (workdir / f"{name}_trl.jsonl").open("w", encoding="utf-8") as fh:  # TRL: prompt/completion
            for user, assistant, _ in items:
                fh.write(json.dumps({"prompt": [user], "completion": [assistant]}) + "\n")
    lengths = [n for _, _, n in splits["train"]]
    return {"rows": rows, "eval_rows": eval_rows, "tokens": sum(lengths), "min": min(lengths), "max": max(lengths),
            "mean": sum(lengths) / len(lengths)}


def _write_config(workdir: Path, lr: float, batch: int, steps: int) -> Path:
    config = workdir / "tunewise.yaml"
    config.write_text(
        f"model: {{name: {MODEL}}}\n"
        f"data: {{train: {workdir / 'train.jsonl'}, eval: {workdir / 'eval.jsonl'}}}\n"
        "method: {type: lora, r: 16, alpha: 32, target_modules: all-linear}\n"
        # eval_every = the last step: one evaluation, at the end, as the TRL side does.
        f"train: {{epochs: 1, lr: {lr}, batch_size: {batch}, eval_every: {steps}}}\n"
        f"output: {{dir: {workdir / 'runs'}}}\n", encoding="utf-8")
    return config


def _run_child(command: list[str], log: Path) -> tuple[int, float, float]:
    """Run a side; its exit status, wall seconds and peak RSS (MB) — of that process tree alone."""
    started = time.perf_counter()
    with log.open("w") as out:
        proc = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT)
        _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    return proc.returncode, time.perf_counter() - started, usage.ru_maxrss / 1024


def run_tunewise(workdir: Path, lr: float, batch: int, steps: int, attempt: int) -> dict[str, Any]:
    config = _write_config(workdir, lr, batch, steps)
    log = workdir / f"tunewise-{attempt}.log"
    tunewise = Path(sys.executable).with_name("tunewise")
    code, _, rss = _run_child([str(tunewise), "train", str(config), f"output.name=tw{attempt}"], log)
    if code:
        raise SystemExit(f"tunewise train failed ({code}); see {log}")
    run_dir = workdir / "runs" / f"tw{attempt}"
    summary = json.loads((run_dir / "train_summary.json").read_text())
    records = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    evals = [r for r in records if "eval_loss" in r]
    eval_s = float(evals[-1].get("eval_runtime", 0.0))
    train_s = summary["wall_s"] - eval_s
    cpu_s = summary.get("cpu_s", 0.0) * train_s / summary["wall_s"]  # the eval's share taken out pro rata
    train_stats = json.loads((run_dir / "data_stats.json").read_text())["train"]
    return {"tokens": summary["tokens_seen"], "train_s": train_s, "tokens_per_s": summary["tokens_seen"] / train_s,
            "tokens_per_cpu_s": summary["tokens_seen"] / cpu_s if cpu_s else 0.0,
            "peak_rss_mb": rss, "eval_loss": evals[-1]["eval_loss"], "steps": summary["steps"],
            "trained_share": train_stats["tokens_trained"] / train_stats["tokens_total"]}


def trl_child(workdir: Path, lr: float, batch: int, steps: int, out: Path, precision: str) -> None:
    """The TRL side (run in its own process): SFTTrainer with its defaults and the shared settings;
    `precision` "default" keeps TRL's (bf16), "fp32"/"bf16" set it."""
    import torch
    from datasets import load_dataset
    from peft import LoraConfig
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import SFTConfig, SFTTrainer

    from tunewise.models import convert_alias

    path = convert_alias(MODEL)
    tokenizer = AutoTokenizer.from_pretrained(path)
    model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32)
    data = load_dataset("json", data_files={"train": str(workdir / "train_trl.jsonl"),
                                            "eval": str(workdir / "eval_trl.jsonl")})
    args = SFTConfig(output_dir=str(workdir / "trl"), learning_rate=lr, per_device_train_batch_size=batch,
                     per_device_eval_batch_size=batch, num_train_epochs=1, eval_strategy="steps",
                     eval_steps=steps, report_to="none", include_num_input_tokens_seen="non_padding",
                     use_cpu=not torch.cuda.is_available(),  # required on a CPU with bf16
                     **({} if precision == "default" else {"bf16": precision == "bf16"}))
    peft = LoraConfig(r=16, lora_alpha=32, lora_dropout=0.05, target_modules="all-linear", task_type="CAUSAL_LM")
    trainer = SFTTrainer(model=model, args=args, train_dataset=data["train"], eval_dataset=data["eval"],
                         processing_class=tokenizer, peft_config=peft)
    real = sum(len(ids) for ids in trainer.train_dataset["input_ids"])
    trained = sum(sum(y != -100 for y in labels) for labels in trainer.train_dataset["labels"])
    started, cpu_started = time.perf_counter(), time.process_time()
    trainer.train()
    wall, cpu = time.perf_counter() - started, time.process_time() - cpu_started
    evals = [r for r in trainer.state.log_history if "eval_loss" in r]
    train_s = wall - float(evals[-1].get("eval_runtime", 0.0))
    cpu_s = cpu * train_s / wall  # the eval's share taken out pro rata, as on the tunewise side
    out.write_text(json.dumps({"tokens": real, "train_s": train_s, "tokens_per_s": real / train_s,
                               "tokens_per_cpu_s": real / cpu_s,
                               "eval_loss": evals[-1]["eval_loss"], "steps": trainer.state.global_step,
                               "trained_share": trained / real,
                               "counted_tokens": int(trainer.state.num_input_tokens_seen or 0)}))


def run_trl(workdir: Path, lr: float, batch: int, steps: int, attempt: int, precision: str = "default") -> dict[str, Any]:
    name = "trl" if precision == "default" else "trl-matched"
    out = workdir / f"{name}-{attempt}.json"
    log = workdir / f"{name}-{attempt}.log"
    code, _, rss = _run_child([sys.executable, __file__, "--trl-child", str(workdir), "--lr", str(lr),
                               "--batch-size", str(batch), "--steps", str(steps), "--out", str(out),
                               "--precision", precision], log)
    if code:
        raise SystemExit(f"the TRL side failed ({code}); see {log}")
    return {**json.loads(out.read_text()), "peak_rss_mb": rss}


def _cuda() -> bool:
    import torch

    return torch.cuda.is_available()


def matmul_peak(dtype: str, seconds: float = 3.0) -> float:
    """Matrix-product FLOP/s in `dtype` ("fp32"/"bf16") on this machine now (best of repeated
    1024×1024 @ 1024×1024)."""
    import torch

    kind = torch.bfloat16 if dtype == "bf16" else torch.float32
    a, b = torch.randn(1024, 1024, dtype=kind), torch.randn(1024, 1024, dtype=kind)
    for _ in range(3):
        a @ b
    best, until = 0.0, time.perf_counter() + seconds
    while time.perf_counter() < until:
        t = time.perf_counter()
        for _ in range(10):
            a @ b
        best = max(best, 10 * 2 * 1024**3 / (time.perf_counter() - t))
    return best


def training_flops_per_token(stats: dict[str, Any], trained_share: float) -> float:
    """Model FLOPs per real token of a LoRA step: forward and input-gradient products through every
    block (4·N), LoRA weight gradients (2·N_lora), causal attention (QKᵀ and AV over half the row on
    average: 2·hidden·length forward, twice that backward, per layer), and the output head only where
    a token is trained (4·V·H × trained share)."""
    from transformers import AutoConfig

    from tunewise.models import convert_alias

    c = AutoConfig.from_pretrained(convert_alias(MODEL))
    h, i, layers, v = c.hidden_size, c.intermediate_size, c.num_hidden_layers, c.vocab_size
    kv = h * c.num_key_value_heads // c.num_attention_heads
    block = h * h * 2 + h * kv * 2 + 3 * h * i
    lora = 16 * ((h + h) * 2 + (h + kv) * 2 + 3 * (h + i))
    body = layers * (4 * (block + lora) + 2 * lora)
    attention = 6 * layers * h * stats["mean"]
    return body + attention + 4 * v * h * trained_share


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=256, help="training rows (default 256)")
    parser.add_argument("--eval-rows", type=int, default=32)
    parser.add_argument("--max-tokens", type=int, default=512, help="longest row kept, in tokens")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--lr", type=float, default=2e-4)
    parser.add_argument("--repeats", type=int, default=1, help="alternate the sides this many times each")
    parser.add_argument("--sides", default=None,
                        help="order within a repeat, from trl, trl-matched, tunewise (default: trl,tunewise, "
                             "plus trl-matched where TRL's bf16 default does not match this hardware)")
    parser.add_argument("--workdir", type=Path, default=None, help="keep the run files here (default: a temp dir)")
    parser.add_argument("--trl-child", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--steps", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--precision", default="default", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.trl_child:
        trl_child(args.trl_child, args.lr, args.batch_size, args.steps, args.out, args.precision)
        return 0

    from tunewise.training.loop import resolve_precision

    precision = resolve_precision("auto")  # what `tunewise train` picks here, and what TRL's default is not
    sides = (args.sides or ("trl,tunewise" if precision == "bf16" else "trl,trl-matched,tunewise")).split(",")
    unknown = sorted(set(sides) - {"trl", "trl-matched", "tunewise"})
    if unknown or "tunewise" not in sides or not {"trl", "trl-matched"} & set(sides):
        parser.error(f"--sides: tunewise and at least one TRL side from trl, trl-matched (got {args.sides})")

    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="tw-throughput-"))
    workdir.mkdir(parents=True, exist_ok=True)
    stats = prepare(workdir, args.rows, args.eval_rows, args.max_tokens)
    steps = -(-args.rows // args.batch_size)
    print(f"data: {stats['rows']} train rows ({stats['tokens']:,} tokens, {stats['min']}..{stats['max']}, "
          f"mean {stats['mean']:.0f}), {stats['eval_rows']} eval rows; batch {args.batch_size}, {steps} steps, "
          f"lr {args.lr:g}; work files in {workdir}", flush=True)
    print(f"precision: TRL's default bf16 autocast; tunewise auto -> {precision} on this "
          f"{'GPU' if _cuda() else 'CPU'}" + ("" if precision == "bf16" else
          " (no hardware bf16: bf16 is emulated); trl-matched = TRL's defaults with fp32"), flush=True)
    results: dict[str, list[dict[str, Any]]] = {side: [] for side in sides}
    peaks = [matmul_peak(precision)]
    runners = {"trl": run_trl, "tunewise": run_tunewise,
               "trl-matched": lambda *a: run_trl(*a, precision=precision)}
    for attempt in range(args.repeats):
        for side in sides:
            before = _load_average()
            result = runners[side](workdir, args.lr, args.batch_size, steps, attempt)
            results[side].append(result)
            print(f"{side:11s} #{attempt}: {result['tokens']:,} real tokens, {result['tokens_per_s']:.1f} tokens/s "
                  f"({result.get('tokens_per_cpu_s', 0.0):.1f} per CPU-second), "
                  f"peak RSS {result['peak_rss_mb']:,.0f} MB, eval loss {result['eval_loss']:.4f} "
                  f"(load {before} -> {_load_average()})", flush=True)
        peaks.append(matmul_peak(precision))

    def median(side: str, key: str) -> float:
        return statistics.median(r[key] for r in results[side])

    peers = [side for side in results if side != "tunewise"]
    tw_tokens = results["tunewise"][0]["tokens"]
    for peer in peers:
        if results[peer][0]["tokens"] != tw_tokens:
            print(f"note: the sides tokenized differently: {peer} {results[peer][0]['tokens']:,} vs tunewise "
                  f"{tw_tokens:,} real tokens")
    print("trained (answer) share of the tokens: " +
          ", ".join(f"{side} {results[side][0]['trained_share']:.4f}" for side in results))
    peak = statistics.median(peaks)
    trained_share = results["tunewise"][0]["trained_share"]  # answer tokens / all tokens
    mfu = median("tunewise", "tokens_per_s") * training_flops_per_token(stats, trained_share) / peak
    print()
    print(f"{'':12s}{'tokens/s':>10s}{'per CPU-s':>11s}{'peak RSS MB':>13s}{'eval loss':>11s}")
    for side in results:
        print(f"{side:12s}{median(side, 'tokens_per_s'):10.1f}{median(side, 'tokens_per_cpu_s'):11.1f}"
              f"{median(side, 'peak_rss_mb'):13,.0f}{median(side, 'eval_loss'):11.4f}")
    for peer in peers:
        speed = median("tunewise", "tokens_per_s") / median(peer, "tokens_per_s")
        cpu_speed = median("tunewise", "tokens_per_cpu_s") / median(peer, "tokens_per_cpu_s")
        pairs = [t["tokens_per_s"] / r["tokens_per_s"] for t, r in zip(results["tunewise"], results[peer], strict=True)]
        memory = median("tunewise", "peak_rss_mb") / median(peer, "peak_rss_mb")
        loss = median("tunewise", "eval_loss") / median(peer, "eval_loss") - 1
        target = peer == "trl"  # the targets are against TRL's defaults
        print(f"\nagainst {peer}" + (" (TRL's defaults: the targets)" if target else
                                      f" (TRL's defaults with {precision}: context, no target)"))
        print(f"  speed     tunewise/{peer} {speed:.2f}x (per pair: {', '.join(f'{p:.2f}' for p in pairs)}"
              + (f"; target >= {TARGETS['speed']}x)" if target else ")"))
        print(f"  speed by CPU time {cpu_speed:.2f}x (tokens per CPU-second: steadier on a busy machine)")
        print(f"  memory    tunewise/{peer} {memory:.2f}x" + (f" (target <= {TARGETS['memory']}x)" if target else ""))
        print(f"  eval loss tunewise vs {peer} {100 * loss:+.2f}%"
              + (f" (target within {100 * TARGETS['loss']:.0f}%)" if target else ""))
    print(f"\nMFU tunewise {100 * mfu:.1f}% of a measured {precision} matmul peak of {peak / 1e9:.0f} GFLOP/s "
          f"(peaks this run: {', '.join(f'{p / 1e9:.0f}' for p in peaks)})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
