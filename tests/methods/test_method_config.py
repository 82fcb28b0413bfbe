"""The method section: one key picks the method, each method's keys are its own, bad combinations
are config errors with the reason — and what the model's shape decides is found from config.json
before any weight loads."""

from __future__ import annotations

import re
from pathlib import Path
from typing import get_args

import pytest
from pydantic import Tag

from tunewise.config import METHOD_CONFIGS, Config, LoraConfig, MethodConfig, load_config
from tunewise.errors import ConfigError
from tunewise.methods import METHODS, check_method
from tunewise.testing import save_tiny_model, tiny_model_config

DOCS = Path(__file__).resolve().parents[2] / "docs"


def problems(*overrides: str, path: Path | None = None) -> str:
    with pytest.raises(ConfigError) as info:
        load_config(path, list(overrides))
    return str(info.value)


def test_registry_config_classes_and_docs_list_the_same_methods() -> None:
    assert list(METHODS) == list(METHOD_CONFIGS)
    methods_doc = (DOCS / "methods.md").read_text()
    config_doc = (DOCS / "config.md").read_text()
    for name, cls in METHOD_CONFIGS.items():
        assert f"`{name}`" in methods_doc, f"docs/methods.md does not describe {name}"
        for key in cls.model_fields:
            assert f"`method.{key}`" in config_doc, f"docs/config.md lacks method.{key} ({name})"


def test_the_method_union_holds_every_method_config_under_its_type() -> None:
    # MethodConfig is spelled out member by member for type checkers; it must match the table.
    union, *_ = get_args(MethodConfig)
    members = {}
    for member in get_args(union):
        cls, *metadata = get_args(member)
        [tag] = [m.tag for m in metadata if isinstance(m, Tag)]
        members[tag] = cls
    assert members == METHOD_CONFIGS
    assert list(members) == list(METHOD_CONFIGS)


def test_lora_stays_the_default_and_type_may_be_left_out(tmp_path: Path) -> None:
    assert isinstance(Config().method, LoraConfig) and Config().method.type == "lora"
    path = tmp_path / "run.yaml"
    path.write_text("method: {r: 8}\n")
    assert load_config(path).method == LoraConfig(r=8)
    assert load_config(None, ["method.target_modules=[q_proj, v_proj]"]).method.target_modules == ["q_proj", "v_proj"]


@pytest.mark.parametrize("name", list(METHOD_CONFIGS))
def test_every_method_validates_with_its_defaults_and_round_trips(tmp_path: Path, name: str) -> None:
    from tunewise.config import dump_config

    config = load_config(None, [f"method.type={name}"])
    assert type(config.method) is METHOD_CONFIGS[name]
    dump_config(config, tmp_path / "resolved.yaml")
    assert load_config(tmp_path / "resolved.yaml") == config


def test_keys_of_another_method_are_errors_with_their_owner(tmp_path: Path) -> None:
    path = tmp_path / "run.yaml"
    path.write_text("method:\n  type: freeze\n  top_k: 2\n  r: 8\n  topk: 1\n")
    text = problems(path=path)
    assert f"method.r ({path}:4): not a key of method.type freeze; it belongs to method.type lora or qlora" in text
    assert f"method.topk ({path}:5): unknown key; did you mean 'top_k'?" in text


def test_qlora_settings_with_full_fine_tuning_explain_why(tmp_path: Path) -> None:
    text = problems("method.type=full", "method.double_quant=true")
    assert "method.double_quant (command-line override): not a key of method.type full" in text
    assert "4-bit quantized base cannot be trained directly" in text and "method.type=qlora" in text


def test_unknown_method_suggests_the_nearest() -> None:
    text = problems("method.type=lorra")
    assert "method.type (command-line override): unknown method 'lorra'; did you mean 'lora'?" in text
    assert "gradual_unfreeze" in text


def test_schedule_and_selection_rules() -> None:
    assert "exactly one of method.every_steps and method.every_epochs" in problems(
        "method.type=gradual_unfreeze", "method.every_steps=10", "method.every_epochs=1"
    )
    only_epochs = load_config(None, ["method.type=gradual_unfreeze", "method.every_epochs=0.5"]).method
    assert only_epochs.every_steps is None and only_epochs.every_epochs == 0.5
    assert "nothing would train" in problems("method.type=freeze", "method.top_k=0")
    assert "not in method.target_modules" in problems(
        "method.type=ia3", "method.target_modules=[v_proj]", "method.feedforward_modules=[down_proj]"
    )


@pytest.fixture(scope="module")
def config_only_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A model directory holding config.json and nothing else: no weights can be loaded from it."""
    path = tmp_path_factory.mktemp("config-only")
    tiny_model_config(num_hidden_layers=4).save_pretrained(path)
    assert [p.name for p in path.iterdir()] == ["config.json"]
    return path


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (
            ["method.type=freeze", "method.top_k=6"],
            r"method\.top_k: 6 is more than the 4 transformer blocks of .* \(from its config.json\); use at most 4",
        ),
        (["method.type=gradual_unfreeze", "method.group_size=5"], r"method\.group_size: 5 is more than the 4"),
        (
            ["method.type=freeze", "method.train_head=true"],
            r"ties its output head to its input embeddings .* set both to true",
        ),
        (
            ["method.type=freeze", "method.modules=[model.layers.*.mlp, '*.ffn']"],
            r"method\.modules: '\*\.ffn' matches no module or parameter of this model; names look like model\.layers\.3",
        ),
        (
            ["method.target_modules=[q_proj, query]"],
            r"method\.target_modules: 'query' matches no module of this model; its linear layers are down_proj, "
            r"gate_proj, .*q_proj",
        ),
        (["method.type=ia3", "method.target_modules=[attn]"], r"'attn' matches no module"),
        (
            ["method.type=prompt", "method.num_virtual_tokens=20", "data.max_length=500"],
            r"20 virtual tokens \+ data\.max_length 500 exceed the model's 512 positions",
        ),
    ],
)
def test_shape_dependent_problems_are_found_from_config_json_alone(
    config_only_dir: Path, overrides: list[str], message: str
) -> None:
    config = load_config(None, [f"model.name={config_only_dir}", *overrides])
    with pytest.raises(ConfigError, match=message):
        check_method(config)


def test_valid_settings_pass_the_check(config_only_dir: Path) -> None:
    for overrides in (
        ["method.type=freeze", "method.top_k=4", "method.modules=['*norm*']"],
        ["method.type=freeze", "method.train_head=true", "method.train_embeddings=true"],
        ["method.target_modules=[q_proj, v_proj]"],
        ["method.target_modules=.*\\.q_proj"],
        ["method.type=ia3"],
        ["method.type=prefix", "data.max_length=128"],
        ["method.type=full"],
    ):
        check_method(load_config(None, [f"model.name={config_only_dir}", *overrides]))


def test_training_stops_on_a_shape_problem_before_the_model_loads(tmp_path: Path, monkeypatch) -> None:
    import tunewise.models
    from tunewise.run import train

    model_dir = save_tiny_model(tmp_path / "tiny")
    (tmp_path / "train.jsonl").write_text(
        '{"messages": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello."}]}\n' * 4
    )

    def no_loading(*args, **kwargs):
        raise AssertionError("the model was loaded before the config error was found")

    monkeypatch.setattr(tunewise.models, "load_model", no_loading)
    config = load_config(
        None,
        [
            f"model.name={model_dir}",
            f"data.train={tmp_path / 'train.jsonl'}",
            "method.type=freeze",
            "method.top_k=3",
            f"output.dir={tmp_path / 'runs'}",
        ],
    )
    with pytest.raises(ConfigError, match=re.escape("method.top_k: 3 is more than the 2 transformer blocks")):
        train(config)
    assert not (tmp_path / "runs").exists()


@pytest.mark.parametrize("name", [n for n in METHOD_CONFIGS if n != "qlora"])
def test_methods_apply_on_the_meta_device_with_the_real_counts(name: str) -> None:
    """`tunewise plan` counts trainable parameters on a meta-device model: the counts must be the real ones."""
    import torch
    from transformers import AutoModelForCausalLM

    from tunewise.methods import count_parameters
    from tunewise.testing import tiny_model

    settings = Config(method={"type": name}).method
    with torch.device("meta"):
        meta = METHODS[name](AutoModelForCausalLM.from_config(tiny_model_config(num_hidden_layers=4)), settings)
    real = METHODS[name](tiny_model(seed=0, num_hidden_layers=4), settings)
    assert count_parameters(meta) == count_parameters(real)
