"""The search space and the objectives, without training: schema checks before any trial, draws
that follow the chosen method, forgetting as the report card measures it, the pruning callback."""

from __future__ import annotations

import math
from pathlib import Path

import optuna
import pytest

from tunewise.config import load_config
from tunewise.errors import ConfigError, TunewiseError
from tunewise.tune import apply_params, check_space, forgetting, objective_values
from tunewise.tune.callbacks import TrialCallback
from tunewise.tune.objectives import check_objectives, directions
from tunewise.tune.search import _retry_interrupted
from tunewise.tune.space import grid_space, sample_params

optuna.logging.set_verbosity(optuna.logging.WARNING)


def config_with(tmp_path: Path, tune: str, extra: str = ""):
    path = tmp_path / "search.yaml"
    path.write_text("data: {train: train.jsonl}\n" + extra + "tune:\n" + tune)
    return load_config(path), path


def space_problems(tmp_path: Path, tune: str, extra: str = "") -> list[str]:
    from tunewise.config import key_lines

    config, path = config_with(tmp_path, tune, extra)
    with pytest.raises(ConfigError) as err:
        check_space(config, key_lines(path.read_text()), str(path))
    return err.value.problems


def test_unknown_key_and_out_of_schema_values_are_named_with_their_line(tmp_path: Path) -> None:
    problems = space_problems(
        tmp_path,
        "  space:\n"
        "    train.lr: {log_uniform: [1.0e-5, 1.0e-3]}\n"
        "    train.warmup_ration: {uniform: [0.1, 0.2]}\n"
        "    train.batch_size: {int: [0, 8]}\n"
        "    method.top_k: {choice: [1, 2]}\n",
    )
    text = "\n".join(problems)
    assert len(problems) == 3, text
    assert "tune.space.train.warmup_ration (" in text and "search.yaml:5): not a config key" in text
    assert "did you mean 'warmup_ratio'" in text
    assert "tune.space.train.batch_size" in text and "search.yaml:6" in text and "0 does not fit" in text
    assert "tune.space.method.top_k" in text and "method.type freeze" in text  # where top_k belongs


def test_a_space_key_under_a_renamed_section_names_the_new_key(tmp_path: Path) -> None:
    problems = space_problems(
        tmp_path,
        "  space:\n"
        "    regularize.replay.ratio: {uniform: [0.0, 0.3]}\n"
        "    forgetting.limit: {choice: [8, 16]}\n"
        "    guard.kl.weight: {choice: [0.0, 1.0]}\n"
        "    guard.monitor.kl_limit: {choice: [4, 8]}\n",
    )
    path = tmp_path / "search.yaml"
    assert problems == [
        f"tune.space.regularize.replay.ratio ({path}:4): not a config key: "
        f"regularize: was renamed guard: (same keys: guard.replay.ratio)",
        f"tune.space.forgetting.limit ({path}:5): not a config key: "
        f"forgetting: was renamed guard.monitor: (same keys: guard.monitor.limit)",
    ]


def test_searching_the_search_or_the_output_is_refused_and_grid_needs_finite_values(tmp_path: Path) -> None:
    problems = space_problems(
        tmp_path,
        "  sampler: grid\n  space:\n    tune.seed: {choice: [1, 2]}\n    train.lr: {log_uniform: [1.0e-5, 1.0e-3]}\n",
    )
    assert any(p.startswith("tune.space.tune.seed") for p in problems)
    assert any("grid sampler needs a finite list" in p and "train.lr" in p for p in problems)
    assert space_problems(tmp_path, "  space: {}\n")[0].startswith("tune.space: nothing to search")


def test_method_keys_follow_the_method_drawn(tmp_path: Path) -> None:
    config, _ = config_with(
        tmp_path,
        "  sampler: random\n  space:\n    method.type: {choice: [lora, ia3]}\n    method.r: {choice: [4, 8]}\n",
    )
    check_space(config)  # r belongs to lora, one of the types drawn: fine
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=1))
    drawn = [sample_params(study.ask(), config) for _ in range(12)]
    assert {d["method.type"] for d in drawn} == {"lora", "ia3"}
    for params in drawn:
        assert ("method.r" in params) == (params["method.type"] == "lora")
        trial_config = apply_params(config, params)  # every draw makes a valid config
        assert trial_config.method.type == params["method.type"]
        if "method.r" in params:
            assert trial_config.method.r == params["method.r"]


def test_apply_params_sets_nested_keys_and_drops_the_search(tmp_path: Path) -> None:
    config, _ = config_with(tmp_path, "  space: {train.lr: {uniform: [0.1, 0.2]}}\n")
    out = apply_params(
        config, {"train.lr": 0.15, "train.early_stopping.patience": 7, "method.target_modules": ["q_proj", "v_proj"]}
    )
    assert out.train.lr == 0.15 and out.train.early_stopping.patience == 7
    assert out.method.target_modules == ["q_proj", "v_proj"]
    assert out.tune.space == {} and config.train.lr == 2e-4  # the base is untouched


def test_list_choices_and_grids(tmp_path: Path) -> None:
    config, _ = config_with(
        tmp_path,
        "  sampler: grid\n  space:\n"
        "    method.target_modules: {choice: [[q_proj, v_proj], all-linear]}\n"
        "    train.warmup_ratio: {uniform: [0.0, 0.2], step: 0.1}\n"
        "    train.max_steps: {int: [2, 6], step: 2}\n",
    )
    check_space(config)
    grid = grid_space(config)
    assert grid["train.warmup_ratio"] == [0.0, 0.1, 0.2] and grid["train.max_steps"] == [2, 4, 6]
    study = optuna.create_study(sampler=optuna.samplers.GridSampler(grid, seed=0))
    params = sample_params(study.ask(), config)
    assert params["method.target_modules"] in (["q_proj", "v_proj"], "all-linear")


def summary_with(base: float, tuned: float, *, higher: bool = True, role: str = "general") -> dict:
    return {
        "base": {"loss": 2.0, "perplexity": math.exp(2.0)},
        "tuned": {"loss": 1.5, "perplexity": math.exp(1.5)},
        "delta_loss": -0.5,
        "suites": [
            {
                "name": "general_knowledge",
                "role": role,
                "metric": "acc_norm",
                "higher_is_better": higher,
                "base": {"value": base, "low": base, "high": base},
                "tuned": {"value": tuned, "low": tuned, "high": tuned},
                "delta": {"value": tuned - base, "low": tuned - base, "high": tuned - base},
            }
        ],
    }


def test_forgetting_is_zero_for_no_change_and_signed_by_the_metric_direction() -> None:
    assert forgetting(summary_with(0.6, 0.6)) == 0.0
    assert forgetting(summary_with(0.6, 0.5)) == pytest.approx(0.1)  # accuracy dropped: forgot
    assert forgetting(summary_with(0.6, 0.7)) == pytest.approx(-0.1)  # improved
    assert forgetting(summary_with(0.2, 0.3, higher=False)) == pytest.approx(0.1)  # a rate that should fall rose
    assert forgetting(summary_with(0.6, 0.5, role="task")) is None  # only general suites count


def test_objective_values_read_the_eval_summary() -> None:
    config = load_config(None, ["tune.objectives=[eval_loss, forgetting]"])
    assert objective_values(summary_with(0.6, 0.5), config.tune.objectives) == pytest.approx([1.5, 0.1])
    config = load_config(
        None, ["tune.objectives=[{metric: suite/general_knowledge/acc_norm/tuned, direction: maximize}]"]
    )
    assert objective_values(summary_with(0.6, 0.5), config.tune.objectives) == pytest.approx([0.5])
    assert directions(config.tune.objectives) == ["maximize"]
    broken = summary_with(0.6, 0.5)
    broken["tuned"]["loss"] = float("nan")
    with pytest.raises(TunewiseError, match="nan"):
        objective_values(broken, load_config(None).tune.objectives)


def test_objective_problems_are_found_before_any_trial() -> None:
    config = load_config(None, ["tune.objectives=[accuracy, forgetting]", "eval.suites=[safety]", "tune.pruner=median"])
    with pytest.raises(ConfigError) as err:
        check_objectives(config)
    text = "\n".join(err.value.problems)
    assert "tune.objectives.0.direction" in text and "tune.objectives.0.metric: unknown metric 'accuracy'" in text
    assert "tune.objectives.1.metric: forgetting" in text and "general_knowledge" in text
    assert "tune.pruner: median prunes single-objective searches only" in text


class _State:
    def __init__(self, step: int) -> None:
        self.global_step = step


def test_trial_callback_reports_evals_prunes_and_stops_on_nan() -> None:
    from transformers import TrainerControl

    study = optuna.create_study(pruner=optuna.pruners.MedianPruner(n_startup_trials=1, n_warmup_steps=0))
    good = study.ask()
    for step, loss in ((1, 1.0), (2, 0.5)):
        good.report(loss, step)
    study.tell(good, 0.5)
    trial = study.ask()
    callback = TrialCallback(trial, "loss", sign=1.0)
    control = TrainerControl()
    callback.on_evaluate(None, _State(1), control, metrics={"eval_loss": 0.9})  # better than the median: goes on
    assert not control.should_training_stop and callback.pruned_at is None
    callback.on_evaluate(None, _State(2), control, metrics={"eval_loss": 3.0})  # far worse: pruned
    assert control.should_training_stop and callback.pruned_at == 2
    assert trial.storage.get_trial(trial._trial_id).intermediate_values == {1: 0.9, 2: 3.0}

    guard, control = TrialCallback(None), TrainerControl()
    guard.on_log(None, _State(3), control, logs={"loss": 1.2})
    assert not control.should_training_stop
    guard.on_log(None, _State(4), control, logs={"loss": float("nan")})
    assert control.should_training_stop and guard.diverged_at == 4

    with pytest.raises(ConfigError, match="tune.prune_metric: eval_accuracy"):
        TrialCallback(study.ask(), "accuracy").on_evaluate(
            None, _State(1), TrainerControl(), metrics={"eval_loss": 1.0}
        )


def test_a_trial_stopped_by_ctrl_c_is_queued_again_once() -> None:
    from optuna.distributions import FloatDistribution
    from optuna.trial import TrialState, create_trial

    study = optuna.create_study()
    dist = {"train.lr": FloatDistribution(1e-5, 1e-3, log=True)}
    study.add_trial(
        create_trial(
            state=TrialState.FAIL, params={"train.lr": 1e-4}, distributions=dist, user_attrs={"interrupted": True}
        )
    )
    study.add_trial(
        create_trial(
            state=TrialState.FAIL, params={"train.lr": 2e-4}, distributions=dist, user_attrs={"error": "out of memory"}
        )
    )  # a real failure is not retried
    assert _retry_interrupted(study) == 1
    assert _retry_interrupted(study) == 0
    waiting = study.get_trials(states=(TrialState.WAITING,))
    # A queued trial holds its values as fixed params until it runs.
    assert [t.system_attrs["fixed_params"] for t in waiting] == [{"train.lr": 1e-4}]
    assert waiting[0].user_attrs == {"retry_of": 0}
