"""Full and partial fine-tuning on a tiny model: exactly the intended parameters change, the rest
stay bit-identical, the loss falls, and the base side of a comparison is the untouched model."""

from __future__ import annotations

from pathlib import Path

import torch
from tuning import method, row_loss, rows, train_method

from tunewise.methods import METHODS, as_base, count_parameters
from tunewise.methods.layout import layout
from tunewise.testing import tiny_model


def names_under(model: torch.nn.Module, *prefixes: str) -> set[str]:
    return {n for n, _ in model.named_parameters() if n.startswith(prefixes)}


def test_full_changes_every_parameter_and_the_loss_falls(tmp_path: Path) -> None:
    run = train_method(tmp_path, method(type="full"), lr=1e-3)
    every = {n for n, _ in run.model.named_parameters()}
    assert run.trainable == every
    assert run.changed() == every
    assert run.loss_after < run.loss_before


def test_freeze_top_k_changes_exactly_the_top_blocks(tmp_path: Path) -> None:
    run = train_method(tmp_path, method(type="freeze", top_k=2))
    top = names_under(run.model, "model.layers.2.", "model.layers.3.")
    assert run.trainable == top
    assert run.changed() == top, "embeddings, head, final norm and blocks 0-1 must stay bit-identical"
    assert run.loss_after < run.loss_before


def test_freeze_by_module_name_and_with_the_head(tmp_path: Path) -> None:
    untied = tiny_model(seed=0, num_hidden_layers=4, tie_word_embeddings=False)
    config = method(type="freeze", top_k=0, modules=["model.layers.*.mlp", "*.0.self_attn.q_proj"], train_head=True)
    run = train_method(tmp_path, config, model=untied)
    expected = {n for n in names_under(run.model, "model.layers.") if ".mlp." in n} | {
        "model.layers.0.self_attn.q_proj.weight",
        "model.norm.weight",
        "lm_head.weight",
    }
    assert run.trainable == expected
    assert run.changed() == expected
    assert "model.embed_tokens.weight" not in run.changed()
    assert run.loss_after < run.loss_before


def test_tied_embeddings_train_with_the_head(tmp_path: Path) -> None:
    run = train_method(tmp_path, method(type="freeze", top_k=1, train_embeddings=True, train_head=True))
    assert run.changed() == names_under(run.model, "model.layers.3.") | {
        "model.embed_tokens.weight",
        "model.norm.weight",
    }


def test_layout_of_a_llama_model() -> None:
    parts = layout(tiny_model(seed=0, num_hidden_layers=3))
    assert parts.block_path == "model.layers" and len(parts.blocks) == 3
    assert all(name.startswith(f"model.layers.{i}.") for i, block in enumerate(parts.blocks) for name in block)
    assert parts.tied and parts.embeddings == ["model.embed_tokens.weight"]
    assert parts.head == ["model.embed_tokens.weight", "model.norm.weight"]
    untied = layout(tiny_model(seed=0, tie_word_embeddings=False))
    assert not untied.tied and set(untied.head) == {"model.norm.weight", "lm_head.weight"}


def test_base_side_restores_the_original_weights_and_nests(tmp_path: Path) -> None:
    run = train_method(tmp_path, method(type="freeze", top_k=2))
    pristine = tiny_model(seed=0, num_hidden_layers=4)
    data = rows()
    tuned_loss = row_loss(run.model, data)
    with as_base(run.model):
        assert row_loss(run.model, data) == row_loss(pristine, data)
        with as_base(run.model):  # suites call side("base") inside other base sections
            assert row_loss(run.model, data) == row_loss(pristine, data)
    assert row_loss(run.model, data) == tuned_loss, "the tuned weights come back after the base side"


def test_counts_on_the_tiny_model() -> None:
    model = tiny_model(seed=0, num_hidden_layers=4)
    total = sum(p.numel() for p in model.parameters())
    one_block = sum(p.numel() for p in model.model.layers[3].parameters())
    frozen = METHODS["freeze"](model, method(type="freeze", top_k=1))
    assert count_parameters(frozen) == (one_block, total)
    assert count_parameters(METHODS["full"](tiny_model(seed=0), method(type="full")))[0] == sum(
        p.numel() for p in tiny_model(seed=0).parameters()
    )
