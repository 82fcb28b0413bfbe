"""The forgetting monitor on tiny models: budgets, the deltas it adds to every eval's log, what
`warn`, `stop` and `rollback` do on a constructed drop, the KL probe's invariants, and the
config errors of the `guard.monitor` section."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import torch
from transformers import TrainerCallback

from training.fitting import lora_model, run, train_config
from tunewise.config import MonitorConfig, load_config, suite_key
from tunewise.errors import ConfigError, DataError
from tunewise.guard.monitor import (
    FORGETTING_FILE,
    ForgettingMonitor,
    Probe,
    ProbeScores,
    breaches,
    load_prompts,
    restore_weights,
    snapshot_weights,
)
from tunewise.testing import tiny_model, tiny_tokenizer


class ScriptedProbe:
    """A probe that returns a constructed score sequence: one `chat` score per eval, in order."""

    def __init__(self, chat: list[float], base: float = 0.8) -> None:
        self.chat = list(chat)
        self.base = base
        self.calls = 0
        self._kl_rows: list[Any] = []

    def describe(self) -> dict[str, Any]:
        return {"chat": {"kind": "generation", "metric": "contains", "n": 10, "source": "chat"}}

    def measure_base(self, model: Any) -> ProbeScores:
        return ProbeScores({"chat": self.base})

    def measure(self, model: Any) -> ProbeScores:
        self.calls += 1
        return ProbeScores({"chat": self.chat[self.calls - 1]})


class WeightsAtEval(TrainerCallback):
    """The trainable weights at each eval, by step."""

    def __init__(self) -> None:
        self.at: dict[int, dict[str, torch.Tensor]] = {}

    def on_evaluate(self, args, state, control, model=None, **kwargs):
        self.at[state.global_step] = {n: p.detach().clone() for n, p in model.named_parameters() if p.requires_grad}


def monitored(
    tmp_path: Path, probe: ScriptedProbe, *, action: str, budgets: dict[str, float], steps: int = 8
) -> tuple[Any, list[dict[str, Any]], torch.nn.Module, WeightsAtEval]:
    """Train a tiny LoRA model `steps` steps, evaluating every 2, under a monitor fed by `probe`;
    forgetting.json goes to tmp_path/monitored."""
    config = MonitorConfig(enabled=True, budgets=budgets, action=action)
    model = lora_model()
    weights = WeightsAtEval()
    monitor = ForgettingMonitor(probe, config, tmp_path / "monitored", log=lambda _: None)  # type: ignore[arg-type]
    (tmp_path / "monitored").mkdir()
    result, records = run(
        tmp_path,
        train_config(max_steps=steps, eval_every=2),
        model=model,
        eval_rows=4,
        monitors=[monitor],
        callbacks=[weights],
    )
    return result, records, model, weights


def test_breaches_are_drops_past_the_budget_and_kl_past_its_own() -> None:
    base = ProbeScores({"general_knowledge": 0.70, "chat": 0.60}, kl=0.0)
    now = ProbeScores({"general_knowledge": 0.66, "chat": 0.40}, kl=0.25)
    found = breaches(base, now, {"general_knowledge": 0.05, "chat": 0.1, "kl": 0.2})
    assert [(b.key, round(b.value, 6)) for b in found] == [("chat", 0.2), ("kl", 0.25)]
    assert "chat dropped 0.200 > budget 0.1" in found[0].text()
    # A gain is never a breach, and a budget of 0 allows no drop at all.
    assert breaches(base, ProbeScores({"chat": 0.9}), {"chat": 0.0}) == []
    assert [b.key for b in breaches(base, ProbeScores({"chat": 0.59}), {"chat": 0.0})] == ["chat"]


def test_each_eval_log_carries_scores_deltas_and_the_record_is_written(tmp_path: Path) -> None:
    probe = ScriptedProbe([0.8, 0.7, 0.75, 0.6])
    config = MonitorConfig(enabled=True)
    monitor = ForgettingMonitor(probe, config, tmp_path, log=lambda _: None)  # type: ignore[arg-type]
    result, records = run(tmp_path, train_config(max_steps=8, eval_every=2), eval_rows=4, monitors=[monitor])
    evals = [r for r in records if "eval_loss" in r]
    assert [r["step"] for r in evals] == [2, 4, 6, 8]
    assert [r["eval_general/chat"] for r in evals] == [0.8, 0.7, 0.75, 0.6]
    assert [round(r["eval_general/chat_delta"], 6) for r in evals] == [0.0, -0.1, -0.05, -0.2]
    saved = json.loads((tmp_path / FORGETTING_FILE).read_text())
    assert saved["base"] == {"chat": 0.8} and [p["step"] for p in saved["points"]] == [2, 4, 6, 8]
    assert saved["fired"] == [] and result.steps == 8


def test_warn_records_the_breach_and_trains_on(tmp_path: Path) -> None:
    result, _, _, _ = monitored(tmp_path, ScriptedProbe([0.8, 0.5, 0.5, 0.5]), action="warn", budgets={"chat": 0.1})
    monitor_file = json.loads((tmp_path / "monitored" / FORGETTING_FILE).read_text())
    assert result.steps == 8
    assert [f["step"] for f in monitor_file["fired"]] == [4, 6, 8]
    assert monitor_file["rollback"] is None and monitor_file["stopped_at"] is None


def test_stop_ends_training_at_the_first_breach(tmp_path: Path) -> None:
    result, records, _, _ = monitored(
        tmp_path, ScriptedProbe([0.78, 0.75, 0.6, 0.6]), action="stop", budgets={"chat": 0.1}
    )
    saved = json.loads((tmp_path / "monitored" / FORGETTING_FILE).read_text())
    assert result.steps == 6 and saved["stopped_at"] == 6
    assert max(r["step"] for r in records) == 6


def test_rollback_restores_the_best_eval_within_budget(tmp_path: Path) -> None:
    # Steps 2 and 4 within budget, 6 and 8 over it: the end state is replaced by the better of 2 and 4.
    result, records, model, weights = monitored(
        tmp_path, ScriptedProbe([0.78, 0.75, 0.6, 0.5]), action="rollback", budgets={"chat": 0.1}
    )
    saved = json.loads((tmp_path / "monitored" / FORGETTING_FILE).read_text())
    loss = {r["step"]: r["eval_loss"] for r in records if "eval_loss" in r}
    best = min((2, 4), key=lambda s: loss[s])
    assert result.steps == 8
    assert saved["rollback"]["step"] == best and saved["rollback"]["restored"]
    now = {n: p.detach() for n, p in model.named_parameters() if p.requires_grad}
    assert all(torch.equal(now[n], weights.at[best][n]) for n in now)
    assert not all(torch.equal(now[n], weights.at[8][n]) for n in now)


def test_rollback_with_no_eval_within_budget_restores_the_starting_weights(tmp_path: Path) -> None:
    model = lora_model()
    start = {n: p.detach().clone() for n, p in model.named_parameters() if p.requires_grad}
    config = MonitorConfig(enabled=True, budgets={"chat": 0.05}, action="rollback")
    probe = ScriptedProbe([0.5] * 4)
    monitor = ForgettingMonitor(probe, config, tmp_path, log=lambda _: None)  # type: ignore[arg-type]
    run(tmp_path, train_config(max_steps=4, eval_every=2), model=model, eval_rows=4, monitors=[monitor])
    now = {n: p.detach() for n, p in model.named_parameters() if p.requires_grad}
    assert all(torch.equal(now[n], start[n]) for n in start)
    assert json.loads((tmp_path / FORGETTING_FILE).read_text())["rollback"]["step"] == 0


def test_rollback_leaves_the_model_when_the_end_is_the_best_within_budget(tmp_path: Path) -> None:
    # Over budget at step 2 only; if step 4 has the lowest eval loss among 4, 6, 8 ... whichever wins
    # is restored, and when it is the last step nothing changes.
    _result, records, model, weights = monitored(
        tmp_path, ScriptedProbe([0.5, 0.8, 0.8, 0.8]), action="rollback", budgets={"chat": 0.1}
    )
    saved = json.loads((tmp_path / "monitored" / FORGETTING_FILE).read_text())
    loss = {r["step"]: r["eval_loss"] for r in records if "eval_loss" in r}
    best = min((4, 6, 8), key=lambda s: loss[s])
    assert saved["rollback"]["step"] == best and saved["rollback"]["restored"] == (best != 8)
    now = {n: p.detach() for n, p in model.named_parameters() if p.requires_grad}
    assert all(torch.equal(now[n], weights.at[best][n]) for n in now)


def test_snapshot_and_restore_round_trip() -> None:
    model = tiny_model(seed=0)
    names = [n for n, _ in model.named_parameters()][:3]
    saved = snapshot_weights(model, names)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(1.0)
    restore_weights(model, saved)
    params = dict(model.named_parameters())
    assert all(torch.equal(params[n], saved[n]) for n in names)


def _probe(**settings: Any) -> Probe:
    config = MonitorConfig(enabled=True, limit=4, kl_limit=3, max_new_tokens=4, **settings)
    return Probe(config, tiny_tokenizer(), batch_size=2)


def test_kl_to_base_is_zero_for_the_base_and_positive_once_the_adapter_moves() -> None:
    model = lora_model()  # LoRA starts with B = 0: the tuned model is the base model
    probe = _probe()
    base = probe.measure_base(model)
    assert base.kl == 0.0 and len(probe._kl_rows) == 3
    same = probe.measure(model)
    assert same.kl == 0.0 and same.values == base.values
    with torch.no_grad():
        for name, param in model.named_parameters():
            if "lora_B" in name:
                param.normal_(0, 0.5, generator=torch.Generator().manual_seed(1))
    assert probe.measure(model).kl > 0
    assert model.training  # the monitor leaves the model in the mode it found


def test_probe_scores_multiple_choice_files_and_names_them_by_stem(tmp_path: Path) -> None:
    suite = tmp_path / "my_mc.test.jsonl"
    suite.write_text(
        "".join(
            json.dumps({"query": f"Question {i}?", "choices": ["yes", "no"], "gold": i % 2}) + "\n" for i in range(6)
        )
    )
    probe = _probe(suites=[{"name": str(suite)}], kl=False)
    scores = probe.measure_base(tiny_model())
    assert list(scores.values) == ["my_mc"] == [suite_key(str(suite))] and 0.0 <= scores.values["my_mc"] <= 1.0
    assert probe.describe()["my_mc"]["n"] == 4  # guard.monitor.limit


def test_the_monitor_scores_a_suite_exactly_as_eval_does() -> None:
    """One suite-scoring function: the monitor's number is `tunewise eval`'s number on the same items."""
    from tunewise.config import EvalConfig
    from tunewise.evaluation.suite_eval import evaluate_suites

    model = tiny_model(seed=3)
    probe = _probe(suites=["general_knowledge", "chat"], kl=False)
    config = EvalConfig(
        suites=[{"name": "general_knowledge", "limit": 4}, {"name": "chat", "limit": 4}],
        max_new_tokens=4,
        batch_size=2,
        bootstrap=100,
    )
    evaluated = {
        r.name: r.base["value"]
        for r in evaluate_suites(model, tiny_tokenizer(), config, sides=("base",), log=lambda _: None)
    }
    assert probe.measure_base(model).values == evaluated


def test_a_suite_that_is_no_general_probe_is_refused() -> None:
    with pytest.raises(ConfigError, match=r"guard\.monitor\.suites\.0 \(safety\)"):
        _probe(suites=["safety"])


def test_neutral_prompts_builtin_and_bad_files(tmp_path: Path) -> None:
    builtin = load_prompts(None, None)
    assert len(builtin) == 40 and len(set(builtin)) == 40
    assert load_prompts(None, 5) == builtin[:5]
    bad = tmp_path / "prompts.jsonl"
    bad.write_text('{"prompt": "Hello there"}\n{"text": "no prompt key"}\n')
    with pytest.raises(DataError, match=r"prompts\.jsonl:2"):
        load_prompts(str(bad), None)
    with pytest.raises(DataError, match="guard.monitor.prompts"):
        load_prompts(str(tmp_path / "missing.jsonl"), None)


@pytest.mark.parametrize(
    ("overrides", "key", "message"),
    [
        (
            ["guard.monitor.enabled=true", "guard.monitor.budgets.arc_easy_test=0.05"],
            "guard.monitor.budgets.arc_easy_test",
            "no such suite in guard.monitor.suites (general_knowledge, chat)",
        ),
        (
            ["guard.monitor.enabled=true", "guard.monitor.kl=false", "guard.monitor.budgets.kl=0.1"],
            "guard.monitor.budgets.kl",
            "the KL is not measured",
        ),
        (
            ["guard.monitor.enabled=true", "guard.monitor.action=rollback"],
            "guard.monitor.action",
            "guard.monitor.budgets is empty",
        ),
        (["guard.monitor.budgets.chat=0.1"], "guard.monitor.enabled", "set guard.monitor.enabled: true"),
        (
            [
                "guard.monitor.enabled=true",
                "guard.monitor.action=stop",
                "guard.monitor.budgets.chat=0.1",
                "train.eval_every=0",
            ],
            "guard.monitor.action",
            "train.eval_every is 0",
        ),
        (
            ["guard.monitor.enabled=true", "guard.monitor.action=explode"],
            "guard.monitor.action",
            "'warn', 'stop' or 'rollback'",
        ),
        (
            ["guard.monitor.enabled=true", "guard.monitor.budgets.chat=-0.1"],
            "guard.monitor.budgets.chat",
            "greater than or equal",
        ),
        (["guard.monitor.enabled=true", "task=classification"], "guard.monitor.enabled", "classification"),
    ],
)
def test_forgetting_config_errors_name_the_key(overrides: list[str], key: str, message: str) -> None:
    with pytest.raises(ConfigError) as err:
        load_config(None, ["data.train=t.jsonl", *overrides])
    text = str(err.value)
    assert key in text and message in text, text


def test_budgets_on_file_suites_use_the_file_stem_and_paths_anchor_at_the_config(tmp_path: Path) -> None:
    config_file = tmp_path / "run.yaml"
    config_file.write_text(
        "data: {train: t.jsonl}\n"
        "guard:\n  monitor:\n    enabled: true\n"
        "    suites: [general_knowledge, data/arc_easy_test.jsonl]\n"
        "    prompts: my_prompts.jsonl\n    budgets: {arc_easy_test: 0.05, kl: 0.2}\n"
        "    action: rollback\n"
    )
    config = load_config(config_file)
    assert config.guard.monitor.suites[1].name == str(tmp_path / "data" / "arc_easy_test.jsonl")
    assert config.guard.monitor.prompts == str(tmp_path / "my_prompts.jsonl")
    # An unknown budget is blamed on its line of the file.
    config_file.write_text("data: {train: t.jsonl}\nguard:\n  monitor:\n    enabled: true\n    budgets: {arc: 0.05}\n")
    with pytest.raises(ConfigError, match=r"guard\.monitor\.budgets\.arc \(.*run\.yaml:5\)"):
        load_config(config_file)


def test_the_monitor_is_off_by_default_and_for_classification() -> None:
    assert not load_config(None, ["data.train=t.jsonl"]).guard.monitor.enabled
    config = load_config(None, ["data.train=t.jsonl", "task=classification"])
    assert not config.guard.monitor.enabled
