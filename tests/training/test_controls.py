"""Each training control does what it says, shown on a tiny random model with `fit` itself.

Rows are random token ids of one length (no padding), so batch order is the sampler's permutation
and two runs can be compared step by step.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pytest
import torch
from fitting import Probe, Record, lora_model, losses, make_rows, run, train_config, trainable

from tunewise.config import TrainConfig

# ---- seed -------------------------------------------------------------------------------------


def test_same_seed_same_loss_curve_and_another_seed_another(tmp_path: Path) -> None:
    # Dropout and NEFTune draw random numbers every step: the seed must govern them all.
    settings = dict(max_steps=6, dropout=0.2, neftune_alpha=5.0)
    _, first = run(tmp_path, train_config(seed=7, **settings))
    _, again = run(tmp_path, train_config(seed=7, **settings))
    _, other = run(tmp_path, train_config(seed=8, **settings))
    assert len(losses(first)) == 6
    assert losses(first) == losses(again), "same seed: bit-identical loss curve"
    assert max(abs(a - b) for a, b in zip(losses(first), losses(other))) > 1e-4


# ---- loss terms -------------------------------------------------------------------------------


@pytest.mark.parametrize("grad_accum", [1, 2])
def test_l2_and_l1_are_logged_terms_that_add_up_to_the_loss(tmp_path: Path, grad_accum: int) -> None:
    model = lora_model()
    params = trainable(model)
    l2 = sum(float(p.pow(2).sum()) for p in params.values())
    l1 = sum(float(p.abs().sum()) for p in params.values())
    _, records = run(
        tmp_path,
        train_config(max_steps=3, batch_size=4 // grad_accum, grad_accum=grad_accum, penalty={"l1": 1e-3, "l2": 1e-2}),
        model=model,
    )
    logs = [r for r in records if "loss" in r]
    first = logs[0]
    # Logged at step 1: the penalty of the weights that step was computed on, counted once per
    # optimizer step however many micro-batches were accumulated.
    assert first["loss/l2"] == pytest.approx(1e-2 * l2, rel=1e-5)
    assert first["loss/l1"] == pytest.approx(1e-3 * l1, rel=1e-5)
    for log in logs:
        assert log["loss"] == pytest.approx(log["loss/task"] + log["loss/l2"] + log["loss/l1"], rel=1e-5)


def test_l2_penalty_pulls_the_trainable_weights_towards_zero(tmp_path: Path) -> None:
    plain, strong = lora_model(), lora_model()
    sgd = dict(optimizer="sgd", lr=0.05, max_steps=10, max_grad_norm=0.0)
    run(tmp_path, train_config(**sgd), model=plain)
    run(tmp_path, train_config(**sgd, penalty={"l2": 1.0}), model=strong)

    def norm(model: torch.nn.Module) -> float:
        return sum(float(p.pow(2).sum()) for p in trainable(model).values())

    assert norm(strong) < 0.7 * norm(plain)


def test_penalty_is_not_part_of_the_eval_loss(tmp_path: Path) -> None:
    settings = dict(max_steps=2, eval_every=2, lr=1e-12)  # lr ~ 0: both runs evaluate the same weights
    _, plain = run(tmp_path, train_config(**settings), eval_rows=4)
    _, penalised = run(tmp_path, train_config(**settings, penalty={"l2": 10.0}), eval_rows=4)
    eval_loss = [r["eval_loss"] for r in plain if "eval_loss" in r]
    assert eval_loss == pytest.approx([r["eval_loss"] for r in penalised if "eval_loss" in r], abs=1e-6)
    assert not any("loss/task" in r for r in plain), "no terms: no parts logged"


def test_a_custom_term_runs_on_every_training_micro_batch_only(tmp_path: Path) -> None:
    probe = Probe(lambda model, inputs, outputs: (model.training, inputs["input_ids"].shape[0]))
    run(tmp_path, train_config(max_steps=3, batch_size=2, grad_accum=2, eval_every=3), eval_rows=4, terms=[probe])
    assert probe.seen == [(True, 2)] * 6


# ---- optimizers, clipping, weight decay ---------------------------------------------------------


@pytest.mark.parametrize(
    ("settings", "cls", "expected"),
    [
        (
            dict(optimizer="adamw", betas=(0.8, 0.95), eps=1e-6, weight_decay=0.1),
            "AdamW",
            dict(betas=(0.8, 0.95), eps=1e-6, weight_decay=0.1),
        ),
        (dict(optimizer="adafactor"), "Adafactor", dict(relative_step=False, scale_parameter=False)),
        (dict(optimizer="sgd", momentum=0.9), "SGD", dict(momentum=0.9)),
    ],
)
def test_the_configured_optimizer_is_the_one_stepping(tmp_path: Path, settings: dict, cls: str, expected: dict) -> None:
    record = Record()
    run(tmp_path, train_config(max_steps=1, **settings), callbacks=[record])
    optimizer = record.optimizers[0]
    assert type(optimizer).__name__ == cls
    group = optimizer.param_groups[0]  # the decayed group: the LoRA matrices
    assert group["lr"] == pytest.approx(1e-2)
    for key, value in expected.items():
        assert (tuple(group[key]) if isinstance(value, tuple) else group[key]) == pytest.approx(value), key


def test_plain_sgd_steps_by_exactly_lr_times_the_gradient(tmp_path: Path) -> None:
    record = Record()
    run(tmp_path, train_config(max_steps=2, optimizer="sgd", lr=0.1, max_grad_norm=0.0), callbacks=[record])
    for before, after in zip(record.before, record.after):
        for name, (weight, grad) in before.items():
            torch.testing.assert_close(after[name], weight - 0.1 * grad, rtol=0, atol=1e-7)


def test_gradients_are_clipped_to_max_grad_norm(tmp_path: Path) -> None:
    record = Record()
    _, records = run(tmp_path, train_config(max_steps=2, max_grad_norm=1e-3), callbacks=[record])
    assert all(r["grad_norm"] > 1e-2 for r in records if "grad_norm" in r), "logged: the norm before clipping"
    for before in record.before:
        total = math.sqrt(sum(float(g.pow(2).sum()) for _, g in before.values()))
        assert total == pytest.approx(1e-3, rel=1e-3)


# ---- schedules ----------------------------------------------------------------------------------


def lr_curve(train: TrainConfig, steps: int) -> list[float]:
    """The learning rate of each optimizer step, as the trainer of `fit` builds the schedule."""
    from tunewise.training.loop import _training_arguments
    from tunewise.training.trainer import TunewiseTrainer

    model = lora_model()
    trainer = TunewiseTrainer(
        model=model, args=_training_arguments(train, Path("unused"), has_eval=False, on_cpu=True), train_config=train
    )
    trainer.create_optimizer_and_scheduler(num_training_steps=steps)
    curve = []
    for _ in range(steps):
        curve.append(trainer.optimizer.param_groups[0]["lr"])
        trainer.optimizer.step()
        trainer.lr_scheduler.step()
    return curve


def test_step_schedule_warms_up_then_multiplies_by_gamma_every_step_size() -> None:
    curve = lr_curve(train_config(lr=1.0, scheduler="step", step_size=3, gamma=0.5, warmup_steps=2), 10)
    assert curve == pytest.approx([0.0, 0.5, 1, 1, 1, 0.5, 0.5, 0.5, 0.25, 0.25])


def test_step_schedule_gamma_defaults_to_a_tenth() -> None:
    curve = lr_curve(train_config(lr=1.0, scheduler="step", step_size=2, warmup_steps=0), 5)
    assert curve == pytest.approx([1, 1, 0.1, 0.1, 0.01])


def test_exponential_schedule_multiplies_by_gamma_every_step() -> None:
    curve = lr_curve(train_config(lr=1.0, scheduler="exponential", gamma=0.9, warmup_steps=1), 5)
    assert curve == pytest.approx([0.0, 1, 0.9, 0.81, 0.729])


def test_linear_with_warmup_and_constant_with_warmup() -> None:
    linear = lr_curve(train_config(lr=1.0, scheduler="linear", warmup_steps=2), 6)
    assert linear == pytest.approx([0, 0.5, 1, 0.75, 0.5, 0.25])
    constant = lr_curve(train_config(lr=1.0, scheduler="constant_with_warmup", warmup_ratio=0.25), 8)
    assert constant == pytest.approx([0, 0.5, 1, 1, 1, 1, 1, 1])


def test_cosine_decays_to_zero_and_cosine_with_restarts_restarts() -> None:
    cosine = lr_curve(train_config(lr=1.0, scheduler="cosine"), 8)
    assert cosine[0] == 1 and cosine[4] == pytest.approx(0.5) and cosine == sorted(cosine, reverse=True)
    restarts = lr_curve(train_config(lr=1.0, scheduler="cosine_with_restarts", num_cycles=2), 8)
    assert restarts[:4] == pytest.approx(cosine[::2]) and restarts[4:] == pytest.approx(restarts[:4])


def test_the_logged_learning_rate_follows_the_hand_written_schedule(tmp_path: Path) -> None:
    _, records = run(tmp_path, train_config(max_steps=5, lr=1.0, optimizer="sgd", scheduler="exponential", gamma=0.5))
    # Each log carries the rate its step used.
    assert [r["learning_rate"] for r in records if "loss" in r] == pytest.approx([1, 0.5, 0.25, 0.125, 0.0625])


# ---- batches, steps, precision, checkpointing, dropout, NEFTune --------------------------------


def test_gradient_accumulation_gives_the_same_steps_as_the_bigger_batch(tmp_path: Path) -> None:
    whole, big = run(tmp_path, train_config(max_steps=4, batch_size=4))
    halves, accumulated = run(tmp_path, train_config(max_steps=4, batch_size=2, grad_accum=2))
    assert losses(accumulated) == pytest.approx(losses(big), abs=1e-5)
    assert halves.tokens_seen == whole.tokens_seen == 4 * 4 * 12


def test_epochs_count_optimizer_steps_over_the_rows(tmp_path: Path) -> None:
    from tunewise.training.loop import planned_steps

    train = train_config(max_steps=None, epochs=2, batch_size=4, grad_accum=2)
    result, _ = run(tmp_path, train, rows=make_rows(20))
    # 20 rows = 5 batches = 3 optimizer steps per epoch (the last accumulates one batch).
    assert result.steps == planned_steps(train, 20) == 6


@pytest.mark.parametrize(("precision", "dtype"), [("fp32", torch.float32), ("bf16", torch.bfloat16)])
def test_precision_is_the_dtype_the_forward_runs_in(tmp_path: Path, precision: str, dtype: torch.dtype) -> None:
    # Inside the forward (accelerate hands the logits back as fp32 whatever ran inside).
    seen = []
    model = lora_model()
    layer = model.get_base_model().model.layers[0].mlp
    layer.register_forward_hook(lambda module, args, output: seen.append(output.dtype))
    run(tmp_path, train_config(max_steps=1, precision=precision), model=model)
    assert seen == [dtype]
    assert all(p.dtype == torch.float32 for p in model.parameters()), "master weights stay fp32"


def test_gradient_checkpointing_is_on_and_changes_nothing_but_memory(tmp_path: Path) -> None:
    # A probe in both runs: a term that reads the outputs takes the padded path, the same in both.
    off = Probe(lambda model, inputs, outputs: model.get_base_model().is_activation_checkpointing)
    probe = Probe(lambda model, inputs, outputs: model.get_base_model().is_activation_checkpointing)
    _, plain = run(tmp_path, train_config(max_steps=3), terms=[off])
    _, checkpointed = run(tmp_path, train_config(max_steps=3, gradient_checkpointing=True), terms=[probe])
    assert off.seen == [False] * 3 and probe.seen == [True] * 3
    assert losses(checkpointed) == pytest.approx(losses(plain), abs=1e-6)


def test_dropout_is_set_on_the_model_and_not_on_the_adapter() -> None:
    from tunewise.training.dropout import set_dropout

    model = lora_model()
    model.peft_config["default"].lora_dropout = 0.0
    assert set_dropout(model, 0.5) == ["attention_dropout × 2"]
    assert model.config.attention_dropout == 0.5
    assert all(m.p == 0.0 for n, m in model.named_modules() if isinstance(m, torch.nn.Dropout))  # LoRA's
    ids = torch.arange(3, 19).reshape(2, 8)
    model.train()
    assert not torch.equal(model(ids).logits, model(ids).logits), "training: attention dropout is random"
    model.eval()
    assert torch.equal(model(ids).logits, model(ids).logits)


def test_neftune_adds_bounded_noise_to_the_embeddings_while_training_only(tmp_path: Path) -> None:
    def noise(model: torch.nn.Module, inputs: dict[str, Any], outputs: Any) -> float:
        ids = inputs["input_ids"]
        embeddings = model.get_input_embeddings()
        return float((embeddings(ids) - embeddings.weight[ids]).abs().max())

    probe = Probe(noise)
    model = lora_model()
    run(tmp_path, train_config(max_steps=2, neftune_alpha=5.0), model=model, terms=[probe])
    bound = 5.0 / math.sqrt(12 * 32)  # alpha / sqrt(sequence length × hidden size)
    assert all(0 < seen <= bound + 1e-6 for seen in probe.seen)
    ids = torch.arange(3, 15).reshape(1, 12)
    model.train()
    embeddings = model.get_input_embeddings()
    assert torch.equal(embeddings(ids), embeddings.weight[ids]), "the noise hook is gone after training"


def test_a_model_without_dropout_says_so() -> None:
    from tunewise.training.dropout import set_dropout

    assert set_dropout(torch.nn.Sequential(torch.nn.Linear(4, 4)), 0.1) == []


def test_deterministic_turns_on_deterministic_kernels(tmp_path: Path) -> None:
    try:
        run(tmp_path, train_config(max_steps=1, deterministic=True))
        assert torch.are_deterministic_algorithms_enabled()
    finally:
        torch.use_deterministic_algorithms(False)
