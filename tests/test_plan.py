"""`tunewise plan`: exact parameter counts from the meta device, memory estimates that follow the
settings, and a warning with fixes when a run will not fit."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tunewise import plan as planning
from tunewise.config import TrainConfig, load_config
from tunewise.errors import ConfigError
from tunewise.plan import ModelShape, estimate_memory, plan

ROWS = [
    {
        "messages": [
            {"role": "user", "content": f"Question number {i}: what is {i} plus {i}?"},
            {"role": "assistant", "content": f"{i} plus {i} is {2 * i}."},
        ]
    }
    for i in range(40)
]


def write_config(tmp_path: Path, model_dir: Path, extra: str = "") -> Path:
    (tmp_path / "train.jsonl").write_text("".join(json.dumps(r) + "\n" for r in ROWS))
    config = tmp_path / "plan.yaml"
    config.write_text(
        f"model: {{name: {model_dir}}}\n"
        "data: {train: train.jsonl, split: {eval: 0.25}, max_length: 128, check: {enabled: false}}\n"
        "train: {epochs: 2, batch_size: 4, eval_every: 5, precision: fp32}\n"
        f"output: {{dir: {tmp_path / 'runs'}, tracking: []}}\n{extra}"
    )
    return config


@pytest.mark.parametrize("method", ["lora", "full", "freeze"])
def test_counts_equal_the_real_model_after_its_method(tmp_path: Path, tiny_model_dir: Path, method: str) -> None:
    from transformers import set_seed

    from tunewise.methods import METHODS, count_parameters
    from tunewise.models import load_model

    settings = {"lora": "{type: lora, r: 4}", "full": "{type: full}", "freeze": "{type: freeze, top_k: 1}"}[method]
    config = load_config(write_config(tmp_path, tiny_model_dir, f"method: {settings}\n"))
    planned = plan(config)
    set_seed(0)
    real = METHODS[method](load_model(str(tiny_model_dir)), config.method)
    assert planned.counted_on == "meta device" or method != "lora"
    assert (planned.trainable, planned.total) == count_parameters(real)
    assert planned.train_rows == 30 and planned.eval_rows == 10
    assert planned.steps == 2 * 8  # 30 rows / batch 4 = 8 steps per epoch
    assert planned.tokens_to_train == 2 * planned.tokens_per_epoch
    assert planned.memory is not None and planned.fits and planned.time_s


def test_a_plan_reuses_what_preflight_found(
    tmp_path: Path, tiny_model_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tunewise.run import Run

    path = write_config(tmp_path, tiny_model_dir)
    config = load_config(path)
    found = Run(config, path).preflight()
    alone = plan(config)

    def no_second_preparation(*args: object) -> None:
        raise AssertionError("the data was prepared again")

    monkeypatch.setattr("tunewise.tasks.prepare_data", no_second_preparation)
    reused = plan(config, preflight=found)
    assert (reused.train_rows, reused.eval_rows, reused.tokens_per_epoch, reused.steps, reused.trainable) == (
        alone.train_rows,
        alone.eval_rows,
        alone.tokens_per_epoch,
        alone.steps,
        alone.trainable,
    )
    assert not (tmp_path / "runs").exists()


SHAPE = ModelShape(
    hidden=576,
    layers=30,
    vocab=49152,
    total=134_515_008,
    trainable=4_884_480,
    matmul=139_000_000,
    head=28_311_552,
    trainable_shapes=((16, 576), (576, 16)),
    backward_layers=30,
    lora=True,
)


def train(**settings: object) -> TrainConfig:
    return TrainConfig(**{"batch_size": 8, **settings})


def test_the_estimate_follows_the_settings() -> None:
    def parts(**settings: object) -> dict[str, float]:
        precision = str(settings.pop("precision", "bf16"))
        return estimate_memory(SHAPE, train(**settings), precision=precision, seq=256).parts

    base = parts()
    assert base["optimizer state"] == 8 * SHAPE.trainable, "AdamW: two fp32 moments per trainable weight"
    assert base["gradients"] == 4 * SHAPE.trainable
    assert parts(optimizer="sgd")["optimizer state"] == 0
    assert parts(optimizer="sgd", momentum=0.9)["optimizer state"] == 4 * SHAPE.trainable
    assert parts(optimizer="adafactor")["optimizer state"] == 4 * 2 * (16 + 576), "factored: rows + columns"
    assert parts(gradient_checkpointing=True)["activations"] < base["activations"] / 2
    assert parts(precision="fp32")["mixed-precision copies"] == 0 < base["mixed-precision copies"]
    doubled = estimate_memory(SHAPE, train(batch_size=16), precision="bf16", seq=256).parts
    assert doubled["activations"] == 2 * base["activations"] and doubled["logits"] == 2 * base["logits"]
    assert doubled["weights"] == base["weights"]


def test_the_packed_estimate_is_bounded_by_one_pass() -> None:
    from tunewise.training.loss import CHUNK

    def packed(**settings: object) -> dict[str, float]:
        return estimate_memory(SHAPE, train(**settings), precision="fp32", seq=300, packed=True).parts

    padded = estimate_memory(SHAPE, train(), precision="fp32", seq=300).parts
    # 8 rows × 300 tokens run as passes of at most 512 tokens; a 300-token row never shares the limit.
    assert packed()["activations"] == padded["activations"] * 512 / (8 * 300)
    assert packed(batch_size=32)["activations"] == packed()["activations"], "more rows: more passes, not more memory"
    assert packed(tokens_per_pass=256)["activations"] == padded["activations"] * 300 / (8 * 300), "a row is one pass"
    assert packed(batch_size=1, tokens_per_pass=4096)["activations"] == padded["activations"] / 8
    assert packed(tokens_per_pass=4096)["logits"] == padded["logits"] * CHUNK / (8 * 300), "one loss chunk at a time"
    whole = estimate_memory(SHAPE, train(tokens_per_pass=None), precision="fp32", seq=300, packed=True).parts
    assert whole["activations"] == padded["activations"]


def test_the_plan_knows_which_runs_take_the_fast_path(tmp_path: Path, tiny_model_dir: Path) -> None:
    config = write_config(tmp_path, tiny_model_dir, "method: {type: lora, r: 4}\n")
    fast = plan(load_config(config, ["train.batch_size=8"]))
    assert 8 * fast.longest_row > 512 > fast.longest_row and fast.memory.pass_tokens == 512
    for slow in ("train.packing=false", "train.neftune_alpha=5", "guard.kl.weight=1"):
        assert plan(load_config(config, ["train.batch_size=8", slow])).memory.pass_tokens is None, slow
    for kept in ("train.penalty.l2=0.01", "guard.l2sp.weight=0.1"):
        assert plan(load_config(config, ["train.batch_size=8", kept])).memory.pass_tokens == 512, kept
    assert plan(load_config(config, ["train.tokens_per_pass=8"])).memory.pass_tokens == fast.longest_row


def test_a_run_that_does_not_fit_warns_and_says_what_would(
    tmp_path: Path, tiny_model_dir: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    config = load_config(write_config(tmp_path, tiny_model_dir), ["train.batch_size=32"])
    fits = plan(config)
    assert fits.fits and fits.peak_bytes is not None
    # Room for the model and a little more: the batch of 32 no longer fits, smaller ones do.
    fixed = fits.memory.total - fits.memory.parts["activations"] - fits.memory.parts["logits"]
    monkeypatch.setattr(planning, "available_memory", lambda: ((fixed + 0.2 * (fits.peak_bytes - fixed)) / 0.9, "RAM"))
    tight = plan(config)
    assert tight.fits is False and tight.fixes
    assert all(peak <= 0.9 * tight.available_bytes for _, peak in tight.fixes)
    planning.print_plan(tight)
    out = capsys.readouterr().out
    assert "will not fit" in out and "train.batch_size=" in out


def test_a_huge_model_will_not_fit(tmp_path: Path, tiny_model_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # Only config.json is read: a 40-billion-parameter model costs nothing to plan.
    huge = tmp_path / "huge"
    huge.mkdir()
    for file in tiny_model_dir.iterdir():
        if file.suffix != ".safetensors":
            (huge / file.name).write_bytes(file.read_bytes())
    spec = json.loads((huge / "config.json").read_text())
    spec.update(
        hidden_size=8192, intermediate_size=28672, num_hidden_layers=48, num_attention_heads=64, num_key_value_heads=8
    )
    (huge / "config.json").write_text(json.dumps(spec))
    result = plan(load_config(write_config(tmp_path, huge, "method: {type: lora, r: 8}\n")))
    assert result.total and result.total > 30e9 and 0 < result.trainable < 0.01 * result.total
    assert result.fits is False
    assert result.memory is not None and result.memory.parts["weights"] > 4 * 30e9
    assert not result.fixes, "no setting makes 160 GB of weights fit"
    planning.print_plan(result)
    assert "will not fit" in capsys.readouterr().out


def test_incompatible_settings_are_errors_before_anything_loads(tmp_path: Path, tiny_model_dir: Path) -> None:
    config = load_config(
        write_config(tmp_path, tiny_model_dir), ["data.split.eval=0", "train.early_stopping.enabled=true"]
    )
    with pytest.raises(ConfigError, match="train.early_stopping: there are no eval rows"):
        plan(config)


def test_measure_runs_real_steps(tmp_path: Path, tiny_model_dir: Path) -> None:
    result = plan(load_config(write_config(tmp_path, tiny_model_dir)), measure=True)
    assert result.measured is not None and result.measured.steps == 3
    assert result.tokens_per_s == result.measured.tokens_per_s > 0
    assert result.peak_bytes == result.measured.peak_bytes > 0
    assert not (tmp_path / "runs").exists(), "planning writes no run directory"


def test_cli_plan_prints_the_table(tmp_path: Path, tiny_model_dir: Path) -> None:
    from tunewise.cli import app

    done = CliRunner().invoke(app, ["plan", str(write_config(tmp_path, tiny_model_dir)), "train.batch_size=2"])
    assert done.exit_code == 0, done.output
    for line in ("trainable parameters", "estimated peak memory", "estimated time", "fits"):
        assert line in done.output
