"""The `guard:` section: off by default, every problem found before the model loads."""

from __future__ import annotations

from pathlib import Path

import pytest
from guard_helpers import method_model, rows, write_jsonl

from tunewise.config import Config, load_config
from tunewise.errors import ConfigError, DataError
from tunewise.guard.setup import build_guard, plan_guard
from tunewise.testing import tiny_tokenizer


def test_every_guard_is_off_by_default() -> None:
    reg = Config().guard
    assert (reg.replay.ratio, reg.ewc.weight, reg.kl.weight, reg.l2sp.weight) == (0, 0, 0, 0)
    assert reg.general is None and reg.needs_general == []
    plan = plan_guard(Config(), tiny_tokenizer())
    assert not plan.active
    train = rows(3)
    guard = build_guard(plan, method_model("lora"), tiny_tokenizer(), train)
    assert guard.rows == train and guard.terms == [] and guard.info == {}


@pytest.mark.parametrize(
    "overrides",
    [
        ["guard.replay.ratio=0.2"],
        ["guard.ewc.weight=10"],
        ["guard.kl.weight=1", "guard.kl.on=general"],
        ["guard.kl.weight=1", "guard.kl.on=both"],
    ],
)
def test_a_guard_needing_general_data_without_any_names_the_key_to_set(overrides: list[str]) -> None:
    with pytest.raises(ConfigError) as err:
        load_config(None, overrides)
    message = str(err.value)
    assert overrides[-1].split("=")[0].replace(".on", ".on") in message or "guard." in message
    assert "guard.general: self" in message


def test_guards_that_need_no_general_data_are_fine_without_it() -> None:
    config = load_config(None, ["guard.kl.weight=1", "guard.l2sp.weight=0.01"])
    assert config.guard.needs_general == []


def test_all_problems_are_reported_at_once_with_the_file_line(tmp_path: Path) -> None:
    file = tmp_path / "c.yaml"
    file.write_text(
        "task: classification\nguard:\n  kl: {weight: 1}\n  l2sp: {weight: 0.1}\n"
        "  replay: {ratio: 1.5}\n  ewc: {wieght: 2}\n"
    )
    with pytest.raises(ConfigError) as err:
        load_config(file)
    message = str(err.value)
    assert "guard.replay.ratio" in message and "less than 1" in message
    assert "guard.ewc.wieght" in message and "did you mean 'weight'" in message


def test_classification_takes_only_l2sp() -> None:
    with pytest.raises(ConfigError, match=r"guard.kl.weight.*classification head.*guard.l2sp"):
        load_config(None, ["task=classification", "guard.kl.weight=1"])
    assert load_config(None, ["task=classification", "guard.l2sp.weight=0.1"]).guard.l2sp.weight == 0.1


def test_completion_cannot_replay_chat_answers() -> None:
    with pytest.raises(ConfigError, match=r"guard.general.*plain-text"):
        load_config(None, ["task=completion", "guard.general=self", "guard.replay.ratio=0.1"])


def test_file_paths_are_anchored_at_the_config_file(tmp_path: Path) -> None:
    (tmp_path / "sub").mkdir()
    file = tmp_path / "sub" / "c.yaml"
    file.write_text("guard:\n  general: general.jsonl\n  replay: {ratio: 0.1}\n  synth: {prompts: p.jsonl}\n")
    reg = load_config(file).guard
    assert reg.general == str(tmp_path / "sub" / "general.jsonl")
    assert reg.synth.prompts == str(tmp_path / "sub" / "p.jsonl")
    assert load_config(None, ["guard.general=self", "guard.replay.ratio=0.1"]).guard.general == "self"


def test_a_missing_or_mismatched_general_file_fails_in_the_plan(tmp_path: Path) -> None:
    config = load_config(None, [f"guard.general={tmp_path / 'nope.jsonl'}", "guard.ewc.weight=1"])
    with pytest.raises(DataError, match="nope.jsonl"):
        plan_guard(config, tiny_tokenizer())
    text = write_jsonl(tmp_path / "text.jsonl", [{"text": "plain words"}])
    config = load_config(None, [f"guard.general={text}", "guard.ewc.weight=1"])
    with pytest.raises(DataError, match=r"guard.general holds plain text.*task chat"):
        plan_guard(config, tiny_tokenizer())
    bad = write_jsonl(tmp_path / "p.jsonl", [{"prompt": "hi"}, {"text": "no prompt"}])
    config = load_config(None, ["guard.general=self", "guard.replay.ratio=0.1", f"guard.synth.prompts={bad}"])
    with pytest.raises(DataError, match=r"p.jsonl:2"):
        plan_guard(config, tiny_tokenizer())


def test_the_guard_builds_rows_and_terms_from_a_general_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TUNEWISE_HOME", str(tmp_path / "home"))
    general = write_jsonl(
        tmp_path / "general.jsonl",
        [
            {
                "messages": [
                    {"role": "user", "content": f"Question {i}?"},
                    {"role": "assistant", "content": f"Answer {i}."},
                ]
            }
            for i in range(6)
        ],
    )
    config = load_config(
        None,
        [
            f"guard.general={general}",
            "guard.replay.ratio=0.5",
            "guard.ewc.weight=10",
            "guard.ewc.samples=3",
            "guard.kl.weight=1",
            "guard.kl.on=both",
            "guard.l2sp.weight=0.01",
        ],
    )
    tok = tiny_tokenizer()
    train = rows(8)
    lines: list[str] = []
    guard = build_guard(plan_guard(config, tok), method_model("full"), tok, train, log=lines.append)
    assert [t.name for t in guard.terms] == ["ewc", "kl", "l2sp"]
    assert len(guard.rows) == 16 and guard.rows[:8] == train
    assert guard.info["replay"]["replay_rows"] == 8 and guard.info["ewc"]["samples"] == 3
    assert guard.info["general"] == {"source": str(general), "rows": 6, "rendered_rows": 6}
    assert any(line.startswith("replay: 8 general rows") for line in lines)


def test_wise_ft_errors_name_the_key_where_it_lives_under_guard(tmp_path: Path) -> None:
    file = tmp_path / "c.yaml"
    file.write_text("task: classification\nguard:\n  wise_ft: {enabled: true}\n")
    with pytest.raises(ConfigError) as err:
        load_config(file)
    [problem] = err.value.problems
    assert problem.startswith(f"guard.wise_ft.enabled ({file}:3): a classification head has no base value")
    assert "set guard.wise_ft.enabled: false" in problem
    # WiSE-FT is a key of `guard`, never of the monitor's `guard.monitor` (whose budgets it reads).
    assert "guard.monitor.wise_ft" not in problem
    with pytest.raises(ConfigError, match=r"guard\.monitor\.wise_ft \(.*\): unknown key"):
        load_config(None, ["guard.monitor.wise_ft.enabled=true"])
