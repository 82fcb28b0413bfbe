from __future__ import annotations

from importlib import resources
from pathlib import Path
from typing import get_args, get_origin

import pytest
import yaml
from pydantic import BaseModel

from tunewise.config import Config, dump_config, load_config, parse_overrides
from tunewise.errors import ConfigError

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def write(tmp_path: Path, text: str, name: str = "run.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_precedence_defaults_then_yaml_then_overrides(tmp_path: Path) -> None:
    path = write(tmp_path, "data: {train: t.jsonl}\ntrain: {lr: 0.001, batch_size: 4}\n")
    config = load_config(path, ["train.lr=3e-5"])
    assert config.train.lr == 3e-5  # override beats YAML
    assert config.train.batch_size == 4  # YAML beats default
    assert config.train.epochs == Config.model_fields["train"].default_factory().epochs  # default kept


def test_override_values_are_typed(tmp_path: Path) -> None:
    path = write(tmp_path, "data: {train: t.jsonl}\n")
    config = load_config(
        path,
        [
            "train.max_steps=5",
            "model.trust_remote_code=true",
            "method.target_modules=[q_proj, v_proj]",
            "output.name=my-run",
        ],
    )
    assert config.train.max_steps == 5
    assert config.model.trust_remote_code is True
    assert config.method.target_modules == ["q_proj", "v_proj"]
    assert config.output.name == "my-run"


def test_yaml_paths_are_relative_to_the_file_and_override_paths_to_cwd(tmp_path: Path, monkeypatch) -> None:
    (tmp_path / "conf").mkdir()
    path = write(tmp_path / "conf", "data: {train: data/t.jsonl}\n")
    monkeypatch.chdir(tmp_path)
    assert load_config(path).data.train == str(tmp_path / "conf" / "data" / "t.jsonl")
    assert load_config(path, ["data.eval=e.jsonl"]).data.eval == str(tmp_path / "e.jsonl")


def test_every_problem_is_reported_at_once_with_key_line_and_suggestion(tmp_path: Path) -> None:
    path = write(tmp_path, "data:\n  train: t.jsonl\n  max_lenght: 512\ntrain:\n  lr: fast\n")
    with pytest.raises(ConfigError) as info:
        load_config(path, ["train.batchsize=4", "eval.limit=0"])
    problems = info.value.problems
    assert len(problems) == 4
    text = str(info.value)
    assert f"data.max_lenght ({path}:3): unknown key; did you mean 'max_length'?" in text
    assert f"train.lr ({path}:5)" in text and "'fast'" in text
    assert "train.batchsize (command-line override): unknown key; did you mean 'batch_size'?" in text
    assert "eval.limit (command-line override)" in text


def test_unknown_section_lists_known_keys(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"trian .*did you mean 'train'"):
        load_config(write(tmp_path, "data: {train: t.jsonl}\ntrian: {lr: 1}\n"))


def test_missing_training_file_key_is_reported_when_training(tmp_path: Path) -> None:
    from tunewise.run import prepare_data

    config = load_config(write(tmp_path, "train: {lr: 0.001}\n"))  # fine for base-only eval
    with pytest.raises(ConfigError, match="data.train"):
        prepare_data(config, tokenizer=None)


def test_unreadable_yaml_names_file_and_line(tmp_path: Path) -> None:
    path = write(tmp_path, "data:\n  train: t.jsonl\n  shape: [chat\n")
    with pytest.raises(ConfigError, match=rf"{path}:\d+:\d+: not valid YAML"):
        load_config(path)


def test_a_key_given_twice_is_an_error_not_a_silent_drop(tmp_path: Path) -> None:
    path = write(tmp_path, "train: {lr: 0.001}\nmodel: {name: m}\ntrain: {epochs: 2}\ndata:\n  train: a\n  train: b\n")
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    text = str(caught.value)
    assert f"{path}: line 3: train is given twice (also on line 1)" in text
    assert "line 6: data.train is given twice (also on line 5)" in text
    assert load_config(write(tmp_path, "train: {lr: 0.001}\neval: {suites: []}\n")).train.lr == 0.001


def test_top_level_must_be_a_mapping(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="top level must be a mapping"):
        load_config(write(tmp_path, "- a\n- b\n"))


def test_missing_config_file_suggests_init(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="tunewise init"):
        load_config(tmp_path / "nope.yaml")


def test_malformed_override_is_a_problem_not_a_crash() -> None:
    nested, problems = parse_overrides(["train.lr=1e-4", "oops", "=3", "a..b=1"])
    assert nested == {"train": {"lr": 1e-4}}
    assert len(problems) == 3


def test_split_fractions_must_leave_training_rows(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="leaves no training rows"):
        load_config(write(tmp_path, "data: {train: t.jsonl, split: {eval: 0.6, test: 0.4}}\n"))


def test_resolved_config_round_trips(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, "data: {train: t.jsonl}\n"), ["train.max_steps=7"])
    dump_config(config, tmp_path / "resolved.yaml")
    again = load_config(tmp_path / "resolved.yaml")
    assert again == config


def test_starter_config_matches_the_schema_defaults(tmp_path: Path) -> None:
    text = resources.files("tunewise").joinpath("templates/starter.yaml").read_text()
    starter = load_config(write(tmp_path, text))
    defaults = Config(data={"train": starter.data.train})
    assert starter == defaults
    # Every key of the schema appears in the starter, so the commented file stays complete.
    assert set(yaml.safe_load(text)) == set(Config.model_fields)
    for section, field in Config.model_fields.items():
        if isinstance(field.annotation, type) and issubclass(field.annotation, BaseModel):  # not task, stages
            assert set(yaml.safe_load(text)[section]) == set(field.annotation.model_fields), section
    # The method section shows the default method's keys (every method's: docs/config.md).
    assert set(yaml.safe_load(text)["method"]) == set(type(defaults.method).model_fields)


@pytest.mark.parametrize("path", sorted(EXAMPLES.glob("*.yaml")), ids=lambda p: p.name)
def test_every_example_config_is_valid(path: Path) -> None:
    config = load_config(path)
    assert Path(config.data.train).is_file(), f"{path}: data.train points at a missing file"


def test_every_config_key_is_documented() -> None:
    doc = (Path(__file__).resolve().parents[1] / "docs" / "config.md").read_text()

    def keys(model, prefix: str):
        for name, field in model.model_fields.items():
            annotation = field.annotation
            if (
                get_origin(annotation) is list
                and isinstance(get_args(annotation)[0], type)
                and issubclass(get_args(annotation)[0], BaseModel)
            ):
                yield f"{prefix}{name}"
                yield from keys(get_args(annotation)[0], f"{prefix}{name}[].")
            elif isinstance(annotation, type) and issubclass(annotation, BaseModel):
                yield from keys(annotation, f"{prefix}{name}.")
            else:
                yield f"{prefix}{name}"

    missing = [k for k in keys(Config, "") if f"`{k}`" not in doc]
    assert not missing, f"docs/config.md lacks {missing}"


def test_the_renamed_guard_sections_are_errors_that_name_the_new_keys(tmp_path: Path) -> None:
    # regularize: became guard:, forgetting: became guard.monitor: (one name per concept, the forgetting guard).
    path = write(
        tmp_path,
        "data: {train: t.jsonl}\n"
        "regularize:\n  kl: {weight: 1.0}\n  replay: {ratio: 0.2}\n"
        "forgetting: {enabled: true, budgets: {chat: 0.1}}\n",
    )
    with pytest.raises(ConfigError) as err:
        load_config(path)
    assert err.value.problems == [
        f"regularize ({path}:2): was renamed guard: (same keys: guard.kl.weight, guard.replay.ratio)",
        f"forgetting ({path}:5): was renamed guard.monitor: (same keys: guard.monitor.enabled, "
        f"guard.monitor.budgets.chat)",
    ]
    with pytest.raises(ConfigError) as err:
        load_config(None, ["regularize.kl.weight=1", "forgetting.action=stop"])
    assert err.value.problems == [
        "regularize (command-line override): was renamed guard: (same keys: guard.kl.weight)",
        "forgetting (command-line override): was renamed guard.monitor: (same keys: guard.monitor.action)",
    ]
    # Nothing written under it: a few of the section's keys, so the message still shows where they went.
    with pytest.raises(ConfigError, match=r"regularize .*: was renamed guard: \(same keys: guard\.general, "):
        load_config(None, ["regularize=null"])
    # The new keys hold the same settings.
    config = load_config(None, ["guard.kl.weight=1", "guard.monitor.enabled=true", "guard.monitor.budgets.chat=0.1"])
    assert (
        config.guard.kl.weight == 1.0 and config.guard.monitor.enabled and config.guard.monitor.budgets == {"chat": 0.1}
    )
    assert "regularize" not in Config.model_fields and "forgetting" not in Config.model_fields


def test_suites_accept_names_paths_and_tables(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "data: {train: t.jsonl}\neval: {suites: [chat, my/suite.jsonl, {name: general_knowledge, limit: 50}]}\n",
    )
    suites = load_config(path).eval.suites
    assert [s.name for s in suites] == ["chat", str(tmp_path / "my" / "suite.jsonl"), "general_knowledge"]
    assert suites[2].limit == 50 and suites[0].role == "auto"
    assert load_config(path, ["eval.suites=[]"]).eval.suites == []


def test_unknown_key_inside_a_suite_gets_a_suggestion(tmp_path: Path) -> None:
    path = write(tmp_path, "data: {train: t.jsonl}\neval:\n  suites:\n    - {name: chat, limt: 5}\n")
    with pytest.raises(
        ConfigError, match=r"eval\.suites\.0\.limt \(.*run\.yaml:4\): unknown key; did you mean 'limit'"
    ):
        load_config(path)
