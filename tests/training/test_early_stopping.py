"""Early stopping: stops on a stalled metric after `patience` evals, keeps the best checkpoint."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from fitting import lora_model, run, train_config, trainable, write_run_config
from safetensors.torch import load_file
from transformers import TrainerCallback, TrainerControl

from tunewise.errors import ConfigError
from tunewise.training.callbacks import EarlyStopping


def stops_after(values: list[float], *, patience: int, min_delta: float = 0.0, mode: str = "min") -> int | None:
    """Feed a constructed metric to the callback; the 1-based eval at which it stops, or None."""
    callback = EarlyStopping(patience, min_delta)
    args = SimpleNamespace(metric_for_best_model="eval_score", greater_is_better=mode == "max")
    state = SimpleNamespace(global_step=0, best_metric=None)
    for i, value in enumerate(values, 1):
        control = TrainerControl()
        state.global_step = i
        callback.on_evaluate(args, state, control, {"eval_score": value})
        better = state.best_metric is None or (
            value > state.best_metric if mode == "max" else value < state.best_metric
        )
        state.best_metric = value if better else state.best_metric  # what the Trainer does after the callbacks
        if control.should_training_stop:
            return i
    return None


def test_stops_after_patience_evals_without_improvement() -> None:
    assert stops_after([1.0, 0.8, 0.8, 0.9, 0.85], patience=2) == 4
    assert stops_after([1.0, 0.8, 0.8, 0.7, 0.75, 0.6], patience=2) is None, "an improvement resets the count"
    assert stops_after([0.5, 0.7, 0.7, 0.7], patience=1, mode="max") == 3


def test_an_improvement_smaller_than_min_delta_does_not_count() -> None:
    assert stops_after([1.0, 0.995, 0.99, 0.985], patience=3, min_delta=0.05) == 4


def test_small_steps_that_add_up_to_min_delta_do_count() -> None:
    # Each eval improves by 0.01 < min_delta, but every second eval has moved 0.02 > min_delta from the
    # last counted improvement (transformers' own callback would stop at the third eval here).
    assert stops_after([1.0, 0.99, 0.98, 0.97, 0.96, 0.95, 0.94], patience=2, min_delta=0.015) is None


class StalledScore(TrainerCallback):
    """Adds a constructed eval metric, one value per eval, before early stopping sees the eval."""

    def __init__(self, values: list[float]) -> None:
        self.values = list(values)

    def on_evaluate(self, args, state, control, metrics=None, **kwargs):
        metrics["eval_score"] = self.values.pop(0)


def test_fit_stops_on_a_stalled_metric_and_ends_with_the_best_checkpoint(tmp_path: Path) -> None:
    model = lora_model()
    stopping = {"enabled": True, "metric": "score", "mode": "max", "patience": 2, "min_delta": 0.02}
    result, records = run(
        tmp_path,
        train_config(max_steps=20, eval_every=2, early_stopping=stopping),
        model=model,
        eval_rows=4,
        callbacks=[StalledScore([0.5, 0.7, 0.7, 0.69, 0.9, 0.9])],
    )
    # Evals at steps 2, 4, 6, 8: best 0.7 at step 4, then two evals without a 0.02 improvement.
    assert result.stopped_early_at == 8 and result.steps == 8
    assert records[-1]["step"] == 8
    assert result.best_checkpoint is not None and Path(result.best_checkpoint).name == "checkpoint-4"
    assert result.best_metric == pytest.approx(0.7)
    best = load_file(Path(result.best_checkpoint) / "adapter_model.safetensors")
    last = load_file(Path(result.checkpoint) / "adapter_model.safetensors")
    final = {n.replace(".default", ""): p for n, p in trainable(model).items()}
    assert any(not torch.equal(best[n], last[n]) for n in best), "the run went on after the best step"
    for name, weight in best.items():
        assert torch.equal(final[name], weight), f"{name}: the model should hold the best checkpoint's weights"


def test_a_metric_the_eval_does_not_log_is_a_config_error(tmp_path: Path) -> None:
    stopping = {"enabled": True, "metric": "accuracy"}
    with pytest.raises(ConfigError, match=r"train.early_stopping.metric: eval_accuracy .*eval_loss"):
        run(tmp_path, train_config(max_steps=4, eval_every=2, early_stopping=stopping), eval_rows=4)


def test_early_stopping_problems_are_found_before_training(tmp_path: Path) -> None:
    from tunewise.training.loop import check_training

    stopping = {"enabled": True}
    with pytest.raises(ConfigError, match="no eval rows"):
        check_training(train_config(early_stopping=stopping, eval_every=2), train_rows=16, eval_rows=0)
    with pytest.raises(ConfigError, match="could never stop early"):
        check_training(train_config(early_stopping=stopping, eval_every=10, max_steps=4), train_rows=16, eval_rows=4)


@pytest.fixture()
def stopping_config(tmp_path: Path, tiny_model_dir: Path) -> Path:
    # mode: max on a falling eval loss: the first eval stays the best, the run stalls from there.
    return write_run_config(
        tmp_path,
        tiny_model_dir,
        "{max_steps: 30, lr: 0.01, batch_size: 4, eval_every: 2, log_every: 1, "
        "warmup_ratio: 0.0, precision: fp32, save_total_limit: 1, "
        "early_stopping: {enabled: true, metric: eval_loss, mode: max, patience: 2}}",
    )


def test_the_saved_adapter_is_the_best_checkpoint(stopping_config: Path) -> None:
    from tunewise.config import load_config
    from tunewise.run import train

    run_dir = train(load_config(stopping_config), stopping_config)
    summary = json.loads((run_dir / "train_summary.json").read_text())
    assert summary["stopped_early_at"] is not None and summary["steps"] == summary["stopped_early_at"] < 30
    best = Path(summary["best_checkpoint"])
    assert best.is_dir(), "the best checkpoint survives save_total_limit"
    evals = {
        r["step"]: r["eval_loss"]
        for r in map(json.loads, (run_dir / "metrics.jsonl").read_text().splitlines())
        if "eval_loss" in r
    }
    assert summary["best_metric"] == max(evals.values()) == evals[int(best.name.split("-")[-1])]
    saved = load_file(run_dir / "adapter" / "adapter_model.safetensors")
    kept = load_file(best / "adapter_model.safetensors")
    assert saved.keys() == kept.keys() and all(torch.equal(saved[k], kept[k]) for k in saved)


def test_early_stopping_without_eval_rows_fails_before_the_model_loads(
    stopping_config: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tunewise import models
    from tunewise.config import load_config
    from tunewise.run import train

    monkeypatch.setattr(models, "load_model", lambda *a, **k: pytest.fail("the model was loaded"))
    with pytest.raises(ConfigError, match="train.early_stopping: there are no eval rows"):
        train(load_config(stopping_config, ["data.split.eval=0"]), stopping_config)
    assert not (stopping_config.parent / "runs").exists()


def test_a_resumed_run_keeps_its_patience_count(tmp_path: Path) -> None:
    from fitting import make_rows

    from tunewise.testing import tiny_tokenizer
    from tunewise.training.loop import fit

    stopping = {"enabled": True, "metric": "score", "mode": "max", "patience": 2}

    def part(max_steps: int, resume: bool, values: list[float]) -> object:
        train = train_config(max_steps=max_steps, eval_every=2, save_total_limit=1, early_stopping=stopping)
        return fit(
            lora_model(),
            tiny_tokenizer(),
            make_rows(),
            make_rows(4, seed=99),
            train,
            tmp_path,
            resume=resume,
            callbacks=[StalledScore(values)],
        )

    first = part(4, False, [0.5, 0.5])  # evals at 2 (best) and 4 (no improvement: count 1)
    assert first.stopped_early_at is None
    # Resumed: one more eval without improvement reaches the patience of 2. Checkpoint rotation
    # deletes checkpoint-4, the one resumed from, on the way.
    second = part(20, True, [0.5, 0.5, 0.5])
    assert second.stopped_early_at == 6
    assert Path(second.best_checkpoint).name == "checkpoint-2"
    assert not (tmp_path / "checkpoints" / "checkpoint-4").exists()
