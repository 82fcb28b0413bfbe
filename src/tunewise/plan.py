"""`tunewise plan`: what a run will train, how much memory it needs and how long it takes — before
anything trains.

Parameters are counted exactly: the model is built from its config.json on the meta device (no
weights read, no memory spent) and the configured method is applied to it. Rows and tokens come
from the data rendered exactly as training renders it. Memory and time are estimates from the
model's shape, with constants measured on a real run (docs/training.md shows the formula and the
measurements); `--measure` replaces both estimates with a few real training steps on the longest
rows.

Peak memory (bytes), device = CPU RAM or GPU memory, constants in `CALIBRATION`:

    runtime                      Python, torch, transformers, tokenizer, data   (measured constant)
  + weights                      4 × weights (fp32 load); ~0.56 × QLoRA's 4-bit linear weights
  + base copy                    4 × trainable for full / partial fine-tuning (the originals are kept)
  + mixed-precision copies       2 × the matmul weights backward goes through, under bf16 autocast
  + gradients                    4 × trainable
  + optimizer state              AdamW 8 × trainable; SGD 4 × trainable with momentum, else 0;
                                 Adafactor 4 × (rows + cols) per matrix, 4 × n per vector
  + activations                  batch × seq × hidden × layers × ACT  (the blocks backward goes
                                 through; ACT by method and precision; with gradient checkpointing
                                 batch × seq × hidden × (layers × KEPT + ACT))
  + logits                       batch × seq × vocab × LOGIT

where seq is the longest row (rows are batched by length, so the longest batch is full of long
rows). On the packed fast path (docs/performance.md: causal LMs without loss terms or NEFTune) a
batch runs as passes of at most `train.tokens_per_pass` tokens (a longer row alone), so batch × seq
becomes min(batch × seq, max(tokens_per_pass, seq)) for the activations, and the label-only loss keeps
the logits of one chunk of at most 1024 trained positions at a time. Time = tokens to train / throughput, throughput = FLOPS / flops per token, flops per token
= 2·N (forward) + 2·N·g (backward through the share g of blocks it reaches) + 2·T (weight
gradients of the T trainable weights) + a share of 2·N·g with gradient checkpointing, N the
weights used in matrix products (the output head only for the share of tokens that are trained: the
label-only loss of training/loss.py); plus attention, 2 × layers × seq × hidden per pass.
"""

from __future__ import annotations

import json
import math
import os
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from tunewise.config import Config, TrainConfig
from tunewise.console import make_console
from tunewise.errors import ConfigError

if TYPE_CHECKING:
    from transformers import PreTrainedModel

    from tunewise.run import Preflight

__all__ = [
    "CALIBRATION",
    "MemoryEstimate",
    "ModelShape",
    "Plan",
    "estimate_memory",
    "flops_per_token",
    "plan",
    "print_plan",
]

console = make_console()

GB = 1024**3

CALIBRATION: dict[str, float] = {
    # Measured with `tunewise train` on SmolLM2-135M-Instruct (2 CPU cores, Xeon with AVX512-BF16/AMX,
    # fixed-length rows, 2 steps, peak_rss_mb of train_summary.json); docs/training.md lists the runs.
    "runtime_bytes_cpu": 0.68 * GB,  # Python, torch, transformers, mlflow, tokenizer, data
    "runtime_bytes_cuda": 0.6 * GB,  # the CUDA context; not measured here (no GPU), the usual size
    # Activation bytes kept for backward, per token × hidden unit × block, bf16 autocast:
    "act_full": 25.0,  # full / partial fine-tuning (no adapter layers)
    "act_lora": 72.0,  # LoRA: each adapted layer keeps its own copies of its input
    "act_lora_dropout": 40.0,  # ... plus this when method.dropout > 0 (the dropped-out input and its mask)
    "act_fp32_factor": 1.67,  # fp32 keeps fp32 activations: this many times the bf16 figure
    "act_checkpointed": 20.0,  # with gradient checkpointing: kept per token × hidden × block
    "logit_bytes": 12.6,  # per token × vocab entry: logits, their fp32 copy, log-softmax, gradient
    # Effective FLOP/s of a training step on a quiet 2-core machine (other work on the cores cuts it
    # several-fold): LoRA runs many small matrix products and elementwise ops, so it gets less out of
    # the hardware than full fine-tuning.
    "cpu_flops_bf16": 1.95e11,
    "cpu_flops_bf16_lora": 1.4e11,
    "cpu_flops_fp32": 1.5e11,
    # fp32 LoRA on the packed fast path: 179 real tokens/s = 1.0e11 by flops_per_token, measured with
    # benchmarks/throughput.py's defaults (256 alpaca rows, batch 8) on a 2-core Xeon without
    # AVX512-BF16 (fp32 matmul peak 256 GFLOP/s), 2026-11-28; docs/performance.md.
    "cpu_flops_fp32_lora": 1.0e11,
    "recompute_share": 0.1,  # gradient checkpointing's extra forward cost this share of a forward (measured)
    "cuda_flops": 1.5e14,  # not measured here (no GPU): ~30-40% of a recent data-centre GPU's bf16 peak
}
"""Constants of the estimates, measured as docs/training.md describes (`--measure` needs none)."""

FIT_MARGIN = 0.9
"""Warn when the estimated peak exceeds this share of the available memory."""


@dataclass(frozen=True)
class ModelShape:
    """What the estimates need to know about a model, read from its (meta) module tree."""

    hidden: int
    layers: int
    vocab: int
    """Rows of the output head: logits per token (0 for a classification head, one logit row per row)."""
    total: int
    """All parameters (a tied embedding counted once)."""
    trainable: int
    matmul: int
    """Weights used in matrix products per token: every Linear, and the output head (which may be the
    tied embedding matrix); input embedding lookups cost nothing."""
    head: int
    """Weights of the output head (part of `matmul`)."""
    trainable_shapes: tuple[tuple[int, ...], ...]
    backward_layers: int
    """Transformer blocks the backward pass goes through (from the lowest one with a trainable weight)."""
    quantized_linear: int = 0
    """Weights stored in 4 bits (QLoRA's base linear layers)."""
    base_copies: int = 0
    """Weights copied before training (full and partial fine-tuning keep the originals of the weights
    they train, for the base side of every comparison)."""
    lora: bool = False
    """The method adds LoRA layers (LoRA, QLoRA)."""
    lora_dropout: bool = False
    """... with dropout on their input."""


@dataclass
class MemoryEstimate:
    """Peak memory of a training run, by part (bytes)."""

    parts: dict[str, float]
    device: str
    batch: int
    seq: int
    pass_tokens: int | None = None
    """Tokens of the largest forward/backward pass on the packed fast path; None: padded batches."""

    @property
    def total(self) -> float:
        return sum(self.parts.values())


@dataclass
class Measured:
    """A few real training steps on the longest rows."""

    steps: int
    tokens_per_s: float
    peak_bytes: float
    wall_s: float


@dataclass
class Plan:
    """What `tunewise plan` found, printed as a table by `print_plan`."""

    model: str
    method: str
    device: str
    precision: str
    trainable: int | None
    total: int | None
    counted_on: str
    """How the parameters were counted: `meta device`, or why they could not be."""
    train_rows: int
    eval_rows: int
    tokens_per_epoch: int
    trained_tokens_per_epoch: int
    longest_row: int
    steps: int
    tokens_to_train: int
    memory: MemoryEstimate | None
    available_bytes: float | None
    available_what: str
    tokens_per_s: float | None
    throughput_from: str
    measured: Measured | None = None
    warnings: list[str] = field(default_factory=list)
    fixes: list[tuple[str, float]] = field(default_factory=list)
    """Overrides that would fit, each with its estimated peak (bytes); filled when it does not fit."""

    @property
    def peak_bytes(self) -> float | None:
        if self.measured is not None:
            return self.measured.peak_bytes
        return self.memory.total if self.memory is not None else None

    @property
    def time_s(self) -> float | None:
        return self.tokens_to_train / self.tokens_per_s if self.tokens_per_s else None

    @property
    def fits(self) -> bool | None:
        if self.peak_bytes is None or self.available_bytes is None:
            return None
        return self.peak_bytes <= FIT_MARGIN * self.available_bytes


# ---- the model's shape ---------------------------------------------------------------------------


def _text_config(model: PreTrainedModel) -> Any:
    config = model.config
    return config.get_text_config() if hasattr(config, "get_text_config") else config


def model_shape(model: PreTrainedModel, *, quantized: bool = False) -> ModelShape:
    """Read a `ModelShape` from a model (real or on the meta device) after its method was applied.

    Args:
        quantized: the base linear layers will be loaded in 4 bits (QLoRA).
    """
    from tunewise.methods import count_parameters

    text = _text_config(model)
    trainable, total = count_parameters(model)
    seen: set[int] = set()
    matmul = quantized_linear = 0
    for name, module in model.named_modules():
        if isinstance(module, torch.nn.Linear) and id(module.weight) not in seen:
            seen.add(id(module.weight))
            matmul += module.weight.numel()
            if quantized and not module.weight.requires_grad and "lora_" not in name and "lm_head" not in name:
                quantized_linear += module.weight.numel()
    output = model.get_output_embeddings() if hasattr(model, "get_output_embeddings") else None
    head = output.weight.numel() if output is not None else 0
    if output is not None and id(output.weight) not in seen:
        matmul += head
    layers = int(getattr(text, "num_hidden_layers", 0) or 0)
    return ModelShape(
        hidden=int(getattr(text, "hidden_size", 0) or 0),
        layers=layers,
        vocab=output.weight.shape[0] if output is not None else 0,
        total=total,
        trainable=trainable,
        matmul=matmul,
        head=head,
        trainable_shapes=tuple(tuple(p.shape) for p in model.parameters() if p.requires_grad),
        backward_layers=_backward_layers(model, layers),
        quantized_linear=quantized_linear,
        # An adapter leaves the base weights alone; every other method keeps their originals.
        base_copies=0 if hasattr(model, "peft_config") else trainable,
        lora=any("lora_A" in name for name, _ in model.named_modules()),
        lora_dropout=any(
            isinstance(m, torch.nn.Dropout) and m.p > 0 for name, m in model.named_modules() if "lora_dropout" in name
        ),
    )


_BLOCK = re.compile(r"\.(?:layers|h|blocks|layer)\.(\d+)\.")
_BELOW_BLOCKS = re.compile(r"embed|wte|wpe|prompt|prefix")


def _backward_layers(model: torch.nn.Module, layers: int) -> int:
    """Blocks from the lowest one holding a trainable weight to the top: backward stops below it.

    A trainable embedding or soft prompt (below every block) means all of them.
    """
    lowest = None
    for name, param in model.named_parameters():
        if not param.requires_grad:
            continue
        found = _BLOCK.search(f".{name}")
        if found is not None:
            lowest = int(found.group(1)) if lowest is None else min(lowest, int(found.group(1)))
        elif _BELOW_BLOCKS.search(name):
            return layers  # input embeddings, soft prompts, prefixes: backward goes all the way down
        # anything else sits above the blocks (an output head, the final norm): no block to go through
    return layers - lowest if lowest is not None else 0


# ---- the estimates -------------------------------------------------------------------------------


def _optimizer_bytes(train: TrainConfig, shape: ModelShape) -> float:
    if train.optimizer == "adamw":
        return 8.0 * shape.trainable  # exp_avg and exp_avg_sq, fp32
    if train.optimizer == "sgd":
        return 4.0 * shape.trainable if train.momentum else 0.0
    # Adafactor keeps a row and a column average per matrix instead of a full second moment.
    return 4.0 * sum(s[0] + math.prod(s[1:]) if len(s) >= 2 else math.prod(s) for s in shape.trainable_shapes)


def estimate_memory(
    shape: ModelShape, train: TrainConfig, *, precision: str, seq: int, device: str = "cpu", packed: bool = False
) -> MemoryEstimate:
    """Peak training memory by part; see the module docstring for the formula.

    Args:
        precision: resolved (`fp32`, `bf16`, `fp16`).
        seq: tokens of the longest row.
        device: `cpu` or `cuda`.
        packed: the run takes the packed fast path (`takes_fast_path`).
    """
    from tunewise.training.loss import CHUNK

    mixed = precision in ("bf16", "fp16")
    tokens = train.batch_size * seq
    pass_tokens = None
    if packed:
        pass_tokens = tokens if train.tokens_per_pass is None else min(tokens, max(train.tokens_per_pass, seq))
        tokens = pass_tokens
    if shape.lora:
        act = CALIBRATION["act_lora"] + (CALIBRATION["act_lora_dropout"] if shape.lora_dropout else 0.0)
    else:
        act = CALIBRATION["act_full"]
    if not mixed:
        act *= CALIBRATION["act_fp32_factor"]
    layers = shape.backward_layers
    reach = layers / shape.layers if shape.layers else 1.0
    if train.gradient_checkpointing and layers:
        # Kept: what each block's checkpoint holds; recomputed in backward: one block at a time.
        activations = tokens * shape.hidden * (CALIBRATION["act_checkpointed"] * layers + act)
    else:
        activations = tokens * shape.hidden * layers * act
    weights = 4.0 * (shape.total - shape.quantized_linear) + 0.5625 * shape.quantized_linear
    parts = {
        "runtime": CALIBRATION["runtime_bytes_cuda" if device == "cuda" else "runtime_bytes_cpu"],
        "weights": weights,
        "base copy": 4.0 * shape.base_copies,
        # bf16 copies of the weights a backward pass goes through (the head, and the blocks it reaches)
        "mixed-precision copies": 2.0 * (shape.head + (shape.matmul - shape.head) * reach) if mixed else 0.0,
        "gradients": 4.0 * shape.trainable,
        "optimizer state": _optimizer_bytes(train, shape),
        "activations": activations,
        "logits": (min(tokens, CHUNK) if packed else tokens) * shape.vocab * CALIBRATION["logit_bytes"]
        if shape.backward_layers or shape.trainable
        else 0.0,
    }
    return MemoryEstimate(parts=parts, device=device, batch=train.batch_size, seq=seq, pass_tokens=pass_tokens)


def takes_fast_path(config: Config, model: torch.nn.Module) -> bool:
    """Whether training `model` (already wrapped by its method) as `config` says runs on packed
    batches with the label-only loss — the same rule as `training.loop.fit`: a packable causal LM with
    a plain output head, `train.packing` on, no NEFTune, and no loss term that reads the batch's
    logits (`guard.kl.on` batch or both); penalties, EWC, L2-SP and KL on general rows keep it."""
    from tunewise.training.loss import has_plain_head
    from tunewise.training.packing import can_pack

    train, kl = config.train, config.guard.kl
    reads_logits = kl.weight > 0 and kl.on != "general"
    return bool(
        train.packing and train.neftune_alpha is None and not reads_logits and can_pack(model) and has_plain_head(model)
    )


def flops_per_token(shape: ModelShape, train: TrainConfig, *, seq: int, head_share: float = 1.0) -> float:
    """Training FLOPs per token: forward, backward through the layers it reaches, weight gradients,
    the recomputed forward of gradient checkpointing (at its measured share), and attention over
    `seq` positions (causal).

    Args:
        head_share: share of the tokens the output head runs on; training's label-only loss
            (training/loss.py) runs it on the trained tokens only.
    """
    reach = shape.backward_layers / shape.layers if shape.layers else 1.0
    attention = 2.0 * shape.layers * seq * shape.hidden  # QKᵀ and AV over half the positions on average
    forward = 2.0 * (shape.matmul - shape.head * (1.0 - head_share)) + attention
    backward = reach * forward + 2.0 * shape.trainable
    recompute = CALIBRATION["recompute_share"] * reach * forward if train.gradient_checkpointing else 0.0
    return forward + backward + recompute


def _device() -> str:
    return "cuda" if torch.cuda.is_available() else "cpu"


def available_memory() -> tuple[float | None, str]:
    """Memory a run can use: free GPU memory, else the RAM available now (and the cgroup limit)."""
    if torch.cuda.is_available():
        _free, total = torch.cuda.mem_get_info()
        return float(total), f"GPU memory ({torch.cuda.get_device_name()})"
    found: list[float] = []
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                found.append(float(line.split()[1]) * 1024)
    except OSError:
        pass
    try:
        limit = Path("/sys/fs/cgroup/memory.max").read_text().strip()
        if limit.isdigit():
            found.append(float(limit))
    except OSError:
        pass
    if not found:
        try:
            found.append(float(os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")))
        except (ValueError, OSError, AttributeError):
            return None, "unknown"
    return min(found), "RAM available now"


def _throughput(
    shape: ModelShape, train: TrainConfig, *, precision: str, seq: int, head_share: float = 1.0
) -> tuple[float, str]:
    if _device() == "cuda":
        flops, source = CALIBRATION["cuda_flops"], "assumed GPU speed (not calibrated; use --measure)"
    else:
        key = "cpu_flops_bf16" if precision in ("bf16", "fp16") else "cpu_flops_fp32"
        flops = CALIBRATION[key + "_lora" if shape.lora else key]
        cores = os.cpu_count() or 1
        flops *= cores / 2  # calibrated on 2 cores; compute scales with cores to first order
        source = f"estimated from the model's FLOPs at {flops / 1e9:.0f} GFLOP/s ({precision}, {cores} cores)"
    return flops / flops_per_token(shape, train, seq=seq, head_share=head_share), source


# ---- the plan ------------------------------------------------------------------------------------


def _meta_model(config: Config, load_kwargs: dict[str, Any]) -> tuple[PreTrainedModel | None, str]:
    """The configured model on the meta device with its method applied, or None and why not.

    Args:
        load_kwargs: the task's `load_model` arguments (a classification head's class and labels).
    """
    from transformers import AutoConfig, AutoModelForCausalLM

    from tunewise.methods import METHODS
    from tunewise.models import friendly_errors, local_only_files, resolve_model

    kwargs = dict(load_kwargs)
    model_class = kwargs.pop("model_class", AutoModelForCausalLM)
    name = config.model.name
    target = resolve_model(name)
    with friendly_errors(name, target, "config"):
        model_config = AutoConfig.from_pretrained(
            target,
            revision=config.model.revision,
            trust_remote_code=config.model.trust_remote_code,
            local_files_only=local_only_files(target),
            **kwargs,
        )
    # A method that needs real weights (QLoRA quantizes them as they load) counts as the method
    # it puts on top: the same adapters.
    kind = "lora" if config.method.type == "qlora" else config.method.type
    with torch.device("meta"):
        model = model_class.from_config(model_config, trust_remote_code=config.model.trust_remote_code)
    size = 4.0 * sum(p.numel() for p in model.parameters())
    try:
        with torch.device("meta"):
            return METHODS[kind](model, config.method), "meta device"
    except ConfigError:
        raise
    except Exception as err:
        reason = f"{type(err).__name__}: {err}"
    # Load the real weights when they take little of the memory there is; else say what is missing.
    available, _ = available_memory()
    if available is None or size > 0.5 * available:
        return None, f"not countable without loading the weights ({reason}); use --measure"
    from tunewise.models import load_model

    model = load_model(
        name, revision=config.model.revision, trust_remote_code=config.model.trust_remote_code, **load_kwargs
    )
    return METHODS[kind](model, config.method), "loaded model (the method does not run on the meta device)"


def plan(config: Config, *, measure: bool = False, preflight: Preflight | None = None) -> Plan:
    """Count, estimate and check a run without training it.

    Args:
        measure: also load the model and run three real training steps on the longest rows; the
            measured peak memory and throughput replace the estimates.
        preflight: what `Run.preflight` found for this config (its tokenizer and prepared data are
            used, and its method check stands); None loads, checks and prepares them here.

    Raises:
        ConfigError: settings that cannot work together, found from the data and config.json.
    """
    from tunewise.methods import check_method, count_parameters
    from tunewise.tasks import load_tokenizer_for, model_load_kwargs, prepare_data, task_of
    from tunewise.training.loop import check_training, planned_steps, resolve_precision

    if preflight is not None:
        tokenizer, data = preflight.tokenizer, preflight.data
    else:
        tokenizer = load_tokenizer_for(config)
        check_method(config, task_of(config).model_class())
        data = prepare_data(config, tokenizer)
    train = config.train
    check_training(train, train_rows=len(data.train), eval_rows=len(data.eval))
    precision = resolve_precision(train.precision)
    device = _device()

    lengths = [r.n_tokens for r in data.train]
    longest = max(lengths)
    tokens_per_epoch = sum(lengths)
    steps = planned_steps(train, len(data.train))
    # Tokens the run will see: whole epochs, or max_steps batches of average rows.
    if train.max_steps:
        to_train = round(steps * train.batch_size * train.grad_accum * tokens_per_epoch / len(lengths))
    else:
        to_train = round(train.epochs * tokens_per_epoch)

    task_kwargs = model_load_kwargs(config, data)
    meta, counted_on = _meta_model(config, task_kwargs)
    if train.batch_size > len(data.train):  # a batch never holds more rows than there are
        train = train.model_copy(update={"batch_size": len(data.train)})
        config = config.model_copy(update={"train": train})
    memory = tokens_per_s = None
    throughput_from = "unknown"
    warnings: list[str] = []
    trainable = total = None
    if meta is not None:
        trainable, total = count_parameters(meta)
        shape = model_shape(meta, quantized=config.method.type == "qlora")
        packed = takes_fast_path(config, meta)
        memory = estimate_memory(shape, train, precision=precision, seq=longest, device=device, packed=packed)
        # The output head runs on the trained tokens only (training/loss.py); a head that is the
        # whole output (classification) has no vocabulary to skip.
        share = sum(r.n_trained for r in data.train) / max(tokens_per_epoch, 1) if shape.vocab else 1.0
        tokens_per_s, throughput_from = _throughput(
            shape, train, precision=precision, seq=sum(lengths) // len(lengths), head_share=share
        )
    available, available_what = available_memory()
    result = Plan(
        model=config.model.name,
        method=config.method.type,
        device=device,
        precision=precision,
        trainable=trainable,
        total=total,
        counted_on=counted_on,
        train_rows=len(data.train),
        eval_rows=len(data.eval),
        tokens_per_epoch=tokens_per_epoch,
        trained_tokens_per_epoch=sum(r.n_trained for r in data.train),
        longest_row=longest,
        steps=steps,
        tokens_to_train=to_train,
        memory=memory,
        available_bytes=available,
        available_what=available_what,
        tokens_per_s=tokens_per_s,
        throughput_from=throughput_from,
        warnings=warnings,
    )
    if measure:
        result.measured = _measure(config, data.train, tokenizer, task_kwargs)
        result.tokens_per_s = result.measured.tokens_per_s
        result.throughput_from = f"measured: {result.measured.steps} steps on the longest rows"
    if precision == "bf16" and device == "cpu" and train.precision == "bf16":
        from tunewise.training.loop import cpu_has_bf16

        if not cpu_has_bf16():
            warnings.append(
                "train.precision: bf16 on a CPU without AVX512-BF16/AMX is emulated and slower "
                "than fp32; use precision auto or fp32"
            )
    if train.eval_every and data.eval and train.eval_every > steps:
        warnings.append(
            f"train.eval_every: {train.eval_every} is more than the run's {steps} steps: no eval until the end"
        )
    if result.fits is False and meta is not None:
        result.fixes = _fixes(
            config,
            shape,
            precision=precision,
            seq=longest,
            device=device,
            available=available,
            task_kwargs=task_kwargs,
            packed=packed,
        )
    return result


def _fixes(
    config: Config,
    shape: ModelShape,
    *,
    precision: str,
    seq: int,
    device: str,
    available: float | None,
    task_kwargs: dict[str, Any],
    packed: bool = False,
) -> list[tuple[str, float]]:
    """Overrides that bring the estimate under the available memory, cheapest change first."""
    train = config.train
    tried: list[tuple[str, TrainConfig, int]] = []
    if packed and train.tokens_per_pass:
        for tokens in (train.tokens_per_pass // 2, train.tokens_per_pass // 4):
            if tokens >= 64:
                tried.append(
                    (f"train.tokens_per_pass={tokens}", train.model_copy(update={"tokens_per_pass": tokens}), seq)
                )
    if not train.gradient_checkpointing:
        tried.append(
            ("train.gradient_checkpointing=true", train.model_copy(update={"gradient_checkpointing": True}), seq)
        )
    for batch in (train.batch_size // 2, train.batch_size // 4, 1):
        if 0 < batch < train.batch_size:
            accum = train.grad_accum * train.batch_size // batch
            tried.append(
                (
                    f"train.batch_size={batch} train.grad_accum={accum}",
                    train.model_copy(update={"batch_size": batch, "grad_accum": accum}),
                    seq,
                )
            )
    if train.optimizer == "adamw" and shape.trainable > 10_000_000:
        tried.append(("train.optimizer=adafactor", train.model_copy(update={"optimizer": "adafactor"}), seq))
    for length in (seq // 2, seq // 4):
        if length >= 64:
            tried.append((f"data.max_length={length}", train, length))
    both = train.model_copy(
        update={"gradient_checkpointing": True, "batch_size": 1, "grad_accum": train.grad_accum * train.batch_size}
    )
    tried.append(
        (f"train.gradient_checkpointing=true train.batch_size=1 train.grad_accum={both.grad_accum}", both, seq)
    )
    fixes = []
    for overrides, changed, length in tried:
        peak = estimate_memory(shape, changed, precision=precision, seq=length, device=device, packed=packed).total
        if available is None or peak <= FIT_MARGIN * available:
            fixes.append((overrides, peak))
    if shape.trainable > 0.2 * shape.total:
        from tunewise.config import LoraConfig

        lora, _ = _meta_model(config.model_copy(update={"method": LoraConfig()}), task_kwargs)
        if lora is not None:
            peak = estimate_memory(
                model_shape(lora), train, precision=precision, seq=seq, device=device, packed=packed
            ).total
            if available is None or peak <= FIT_MARGIN * available:
                fixes.append(("method.type=lora", peak))
    return fixes[:4]


def _measure(config: Config, rows: list[Any], tokenizer: Any, task_kwargs: dict[str, Any]) -> Measured:
    """Three real optimizer steps on the longest rows, in a throw-away directory."""
    import tempfile

    from transformers import set_seed

    from tunewise.methods import METHODS, load_kwargs
    from tunewise.models import load_model
    from tunewise.rundir import RunDir
    from tunewise.tasks import collator_for
    from tunewise.training.loop import fit, peak_rss_mb

    train = config.train
    steps = 3
    longest = sorted(rows, key=lambda r: r.n_tokens, reverse=True)[: steps * train.batch_size * train.grad_accum]
    model = load_model(
        config.model.name,
        revision=config.model.revision,
        trust_remote_code=config.model.trust_remote_code,
        **load_kwargs(config),
        **task_kwargs,
    )
    set_seed(train.seed)
    model = METHODS[config.method.type](model, config.method)
    # The same steps as the run, minus what only matters over a whole run (schedule, evals, saves).
    quick = train.model_copy(
        update={
            "max_steps": steps,
            "eval_every": 0,
            "save_every": 10**9,
            "log_every": 1,
            "resume": False,
            "scheduler": "constant",
            "warmup_steps": None,
            "step_size": None,
            "gamma": None,
            "num_cycles": 1,
            "early_stopping": train.early_stopping.model_copy(update={"enabled": False}),
        }
    )
    if torch.cuda.is_available():
        torch.cuda.reset_peak_memory_stats()
    with tempfile.TemporaryDirectory(prefix="tunewise-plan-") as tmp:
        console.print(f"measuring: {steps} training steps on the {len(longest)} longest rows ...")
        started = time.monotonic()
        result = fit(
            model,
            tokenizer,
            longest,
            [],
            quick,
            Path(tmp),
            resume=False,
            collator=collator_for(config, tokenizer.pad_token_id),
        )
        wall = time.monotonic() - started
        records = [json.loads(line) for line in RunDir(tmp).metrics.read_text().splitlines()]
    logged = [r for r in records if "loss" in r]
    # From the end of step 1 on: the first step pays for allocation and kernel warm-up.
    if len(logged) >= 2 and logged[-1]["elapsed_s"] > logged[0]["elapsed_s"]:
        rate = (logged[-1]["tokens_seen"] - logged[0]["tokens_seen"]) / (
            logged[-1]["elapsed_s"] - logged[0]["elapsed_s"]
        )
    else:
        rate = result.tokens_per_s
    peak = (
        float(torch.cuda.max_memory_allocated()) + CALIBRATION["runtime_bytes_cuda"]
        if torch.cuda.is_available()
        else peak_rss_mb() * 1024**2
    )
    return Measured(steps=result.steps, tokens_per_s=rate, peak_bytes=peak, wall_s=wall)


# ---- printing ------------------------------------------------------------------------------------


def _gb(n: float) -> str:
    return f"{n / GB:.2f} GB"


def _duration(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 90 * 60:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def print_plan(result: Plan) -> None:
    """Print the plan as a table, then the memory breakdown, the verdict and any fixes."""
    from rich.table import Table

    table = Table(title=f"plan: {result.model}, {result.method}, {result.device}, {result.precision}")
    table.add_column("what", justify="left")
    table.add_column("value", justify="right")
    if result.trainable is not None and result.total:
        table.add_row(
            "trainable parameters",
            f"{result.trainable:,} of {result.total:,} ({100 * result.trainable / result.total:.2f}%)",
        )
    else:
        table.add_row("trainable parameters", result.counted_on)
    table.add_row("rows (train / eval)", f"{result.train_rows:,} / {result.eval_rows:,}")
    table.add_row("tokens per epoch (trained)", f"{result.tokens_per_epoch:,} ({result.trained_tokens_per_epoch:,})")
    table.add_row("longest row", f"{result.longest_row:,} tokens")
    table.add_row("optimizer steps", f"{result.steps:,}")
    table.add_row("tokens to train", f"{result.tokens_to_train:,}")
    if result.memory is not None:
        table.add_row("estimated peak memory", _gb(result.memory.total))
    if result.measured is not None:
        table.add_row("measured peak memory", _gb(result.measured.peak_bytes))
    table.add_row(
        f"available ({result.available_what})",
        _gb(result.available_bytes) if result.available_bytes is not None else "unknown",
    )
    if result.tokens_per_s:
        table.add_row("throughput", f"{result.tokens_per_s:,.0f} tokens/s ({result.throughput_from})")
    if result.time_s is not None:
        table.add_row("estimated time", _duration(result.time_s))
    console.print(table)
    if result.memory is not None:
        parts = ", ".join(f"{name} {_gb(value)}" for name, value in result.memory.parts.items() if value)
        memory = result.memory
        shape = (
            f"packed, passes of ≤ {memory.pass_tokens} tokens"
            if memory.pass_tokens is not None
            else f"batch {memory.batch} × {memory.seq} tokens"
        )
        console.print(f"memory estimate ({shape}): {parts}", highlight=False)
    for warning in result.warnings:
        console.print(f"[yellow]warning:[/] {warning}", highlight=False)
    if result.fits is False:
        console.print(
            f"[red]will not fit: the peak ({_gb(result.peak_bytes or 0)}) is above "
            f"{FIT_MARGIN:.0%} of the {result.available_what} ({_gb(result.available_bytes or 0)}).[/]",
            highlight=False,
        )
        if result.fixes:
            console.print("Changes that would fit (estimated peak):", highlight=False)
            for overrides, peak in result.fixes:
                console.print(f"  {overrides}   → {_gb(peak)}", highlight=False)
        else:
            console.print("No single change found that fits; use a smaller model, or a machine with more memory.")
    elif result.fits:
        console.print("[green]fits[/] in the available memory.", highlight=False)
