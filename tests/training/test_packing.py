"""Padding-free packing: a packed batch computes exactly what its rows computed one at a time."""

from __future__ import annotations

import itertools

import pytest
import torch
from fitting import lora_model, run, train_config

from tunewise.testing import tiny_model
from tunewise.training.collate import PadCollator
from tunewise.training.loss import causal_lm_loss
from tunewise.training.packing import PACKED_ATTENTION, PackCollator, can_pack, packed_attention_for


def _rows(lengths: tuple[int, ...] = (5, 17, 3, 11, 8), seed: int = 0) -> list[dict[str, list[int]]]:
    g = torch.Generator().manual_seed(seed)
    rows = []
    for n in lengths:
        ids = torch.randint(3, 400, (n,), generator=g).tolist()
        # A prompt (untrained) then a trained answer, as a chat row.
        rows.append({"input_ids": ids, "labels": [-100] * (n // 2) + ids[n // 2 :]})
    return rows


def _alone(model: torch.nn.Module, rows: list[dict[str, list[int]]]) -> torch.Tensor:
    """Mean next-token cross-entropy over the trained tokens, each row run through the model alone."""
    total, count = torch.zeros(()), 0
    for row in rows:
        logits = model(input_ids=torch.tensor([row["input_ids"]])).logits[0, :-1].float()
        targets = torch.tensor(row["labels"][1:])
        total = total + torch.nn.functional.cross_entropy(logits, targets, reduction="sum")
        count += int((targets != -100).sum())
    return total / count


def test_collator_concatenates_rows_with_restarting_positions() -> None:
    rows = _rows((3, 4))
    batch = PackCollator()(rows)
    assert set(batch) == {"input_ids", "labels", "position_ids"}  # no attention mask to hide the rows
    assert batch["input_ids"].tolist() == [rows[0]["input_ids"] + rows[1]["input_ids"]]
    assert batch["position_ids"].tolist() == [[0, 1, 2, 0, 1, 2, 3]]
    # Each row's first label is ignored: the previous row's last token must not learn to predict it.
    expected = rows[0]["labels"] + rows[1]["labels"]
    expected[0] = expected[3] = -100
    assert batch["labels"].tolist() == [expected]


@pytest.mark.parametrize("implementation", ["sdpa", "eager"])
@pytest.mark.parametrize("row_by_row", [True, False], ids=["packed_attention", "transformers_mask"])
def test_packed_loss_and_gradients_equal_one_row_at_a_time(implementation: str, row_by_row: bool) -> None:
    rows = _rows()
    model = lora_model(seed=1, attn_implementation=implementation).train()
    with torch.random.fork_rng(devices=[]):  # LoRA B starts at 0: give the adapters a nonzero update
        torch.manual_seed(3)
        for name, p in model.named_parameters():
            if "lora_B" in name:
                p.data.normal_(0, 0.05)
    params = [p for p in model.parameters() if p.requires_grad]

    expected = _alone(model, rows)
    expected_grads = torch.autograd.grad(expected, params)

    batch = PackCollator()(rows)
    if row_by_row:
        with packed_attention_for(model):
            loss, count = causal_lm_loss(model, batch)
    else:  # the model's own attention with the block-diagonal mask transformers builds from position_ids
        loss, count = causal_lm_loss(model, batch)
    grads = torch.autograd.grad(loss, params)

    assert count == sum(sum(1 for y in r["labels"][1:] if y != -100) for r in rows)
    torch.testing.assert_close(loss, expected, rtol=1e-5, atol=1e-6)
    for got, want in zip(grads, expected_grads, strict=True):
        torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("row_by_row", [True, False], ids=["packed_attention", "transformers_mask"])
def test_no_row_sees_another(row_by_row: bool) -> None:
    model = tiny_model(seed=2)
    rows = _rows((6, 9, 4))
    changed = [dict(r) for r in rows]
    changed[0] = {**rows[0], "input_ids": [(t + 7) % 400 + 3 for t in rows[0]["input_ids"]]}

    def hidden(batch_rows: list[dict[str, list[int]]]) -> torch.Tensor:
        batch = PackCollator()(batch_rows)
        batch.pop("labels")
        with packed_attention_for(model) if row_by_row else torch.no_grad(), torch.no_grad():
            # No key/value cache: with one, transformers does not read packed rows from position_ids.
            return model.get_decoder()(**batch, use_cache=False).last_hidden_state[0]

    before, after = hidden(rows), hidden(changed)
    first = len(rows[0]["input_ids"])
    assert not torch.allclose(before[:first], after[:first])  # the changed row did change
    torch.testing.assert_close(after[first:], before[first:], rtol=0, atol=0)  # and nothing else


def test_packed_attention_is_switched_back() -> None:
    model = lora_model()
    base = model.get_base_model()
    before = base.config._attn_implementation
    with packed_attention_for(model):
        assert base.config._attn_implementation == PACKED_ATTENTION
    assert base.config._attn_implementation == before
    # And generation afterwards (a key/value cache, one new token at a time) works as before.
    out = model.generate(input_ids=torch.tensor([[5, 6, 7]]), max_new_tokens=3, do_sample=False)
    assert out.shape == (1, 6)


def test_padded_batch_through_packed_attention_equals_sdpa() -> None:
    model = tiny_model(seed=4, attn_implementation="sdpa")
    batch = PadCollator(pad_id=2)(_rows())
    expected = causal_lm_loss(model, batch)[0]
    with packed_attention_for(model):
        torch.testing.assert_close(causal_lm_loss(model, batch)[0], expected)


def test_can_pack_only_what_stays_exact() -> None:
    from peft import PrefixTuningConfig, TaskType, get_peft_model
    from transformers import LlamaForSequenceClassification

    from tunewise.testing import tiny_model_config

    assert can_pack(tiny_model())
    assert can_pack(lora_model())
    prefix = get_peft_model(tiny_model(), PrefixTuningConfig(task_type=TaskType.CAUSAL_LM, num_virtual_tokens=4))
    assert not can_pack(prefix)  # virtual tokens go in front of the one packed row only
    assert not can_pack(LlamaForSequenceClassification(tiny_model_config(num_labels=2)))


def test_fit_packs_by_default_and_counts_every_real_token(tmp_path) -> None:
    from tunewise.data import Rendered

    lengths = [5, 17, 3, 11, 8, 30, 2, 9]
    rows = [
        Rendered(f"r:{i}", r["input_ids"], r["labels"], n, sum(y != -100 for y in r["labels"]), False, 0)
        for i, (r, n) in enumerate(zip(_rows(tuple(lengths)), lengths, strict=True))
    ]
    result, records = run(tmp_path, train_config(max_steps=None, epochs=1, batch_size=4), rows=rows)
    assert result.steps == 2
    assert result.tokens_seen == sum(lengths)  # no padding counted, no end-of-turn token missed
    assert all(r["loss"] == r["loss"] for r in records if "loss" in r)  # finite, not NaN


def test_split_packed_cuts_between_rows_within_the_budget() -> None:
    from tunewise.training.packing import split_packed

    lengths = (5, 3, 9, 2, 2, 7)
    rows = [
        {"input_ids": list(range(10 * i, 10 * i + n)), "labels": list(range(10 * i, 10 * i + n))}
        for i, n in enumerate(lengths)
    ]
    batch = PackCollator()(rows)

    def rows_of(parts: list[dict[str, torch.Tensor]]) -> list[tuple[int, ...]]:
        found = []
        for part in parts:
            ids, positions = part["input_ids"][0].tolist(), part["position_ids"][0].tolist()
            starts = [i for i, q in enumerate(positions) if q == 0] + [len(ids)]
            found += [tuple(ids[a:b]) for a, b in itertools.pairwise(starts)]
        return sorted(found)

    for budget in (4, 6, 10, 13):
        parts = split_packed(batch, budget)
        assert rows_of(parts) == sorted(tuple(r["input_ids"]) for r in rows), "every row once, whole"
        for part in parts:
            assert part["position_ids"][0, 0] == 0 and part["labels"][0, 0] == -100  # each a packed batch
            assert part["input_ids"].shape[1] <= budget or (part["position_ids"][0] == 0).sum() == 1  # long rows alone
            assert (part["labels"] == -100).sum() == (part["position_ids"] == 0).sum()  # only each row's first label
    # First-fit decreasing: 9 | 3 + 7 | 5 + 2 + 2 — three passes where cutting in order takes four.
    assert [p["input_ids"].shape[1] for p in split_packed(batch, 10)] == [9, 10, 9]
    assert split_packed(batch, 100) == [batch]


def test_passes_give_the_gradient_of_the_whole_batch(tmp_path) -> None:
    from tunewise.data import Rendered

    lengths = [5, 17, 3, 11, 8, 30, 2, 9]
    rows = [
        Rendered(f"r:{i}", r["input_ids"], r["labels"], n, sum(y != -100 for y in r["labels"]), False, 0)
        for i, (r, n) in enumerate(zip(_rows(tuple(lengths)), lengths, strict=True))
    ]
    whole_model, parts_model = lora_model(seed=9), lora_model(seed=9)
    train = train_config(max_steps=3, batch_size=4, grad_accum=2)
    _, whole = run(tmp_path, train.model_copy(update={"tokens_per_pass": None}), model=whole_model, rows=rows)
    _, parts = run(tmp_path, train.model_copy(update={"tokens_per_pass": 12}), model=parts_model, rows=rows)
    whole_losses, parts_losses = [r["loss"] for r in whole if "loss" in r], [r["loss"] for r in parts if "loss" in r]
    assert len(whole_losses) == 3
    assert parts_losses == pytest.approx(whole_losses, rel=1e-5)
    for (name, a), b in zip(whole_model.named_parameters(), parts_model.parameters(), strict=True):
        if a.requires_grad:
            torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-6, msg=name)


def test_terms_that_do_not_read_outputs_keep_the_fast_path_and_count_once_per_batch(tmp_path) -> None:
    from tunewise.data import Rendered
    from tunewise.guard.regularizers import L2SP, KLToBase

    lengths = [5, 17, 3, 11, 8, 30, 2, 9]
    rows = [
        Rendered(f"r:{i}", r["input_ids"], r["labels"], n, sum(y != -100 for y in r["labels"]), False, 0)
        for i, (r, n) in enumerate(zip(_rows(tuple(lengths)), lengths, strict=True))
    ]
    assert not L2SP(weight=1.0, params={}, anchor={}).reads_outputs
    assert (
        KLToBase(weight=1.0, on="batch").reads_outputs
        and not KLToBase(weight=1.0, on="general", general=rows).reads_outputs
    )
    # An L2 penalty in the loss: padded batches with the model's own loss against packed passes of
    # at most 12 tokens (a batch cut in up to four passes); the penalty must count once per batch.
    train = train_config(max_steps=3, batch_size=4, grad_accum=2, penalty={"l2": 0.05}, group_by_length=True)
    padded_model, packed_model = lora_model(seed=9), lora_model(seed=9)
    _, padded = run(tmp_path, train.model_copy(update={"packing": False}), model=padded_model, rows=rows)
    _, packed = run(tmp_path, train.model_copy(update={"tokens_per_pass": 12}), model=packed_model, rows=rows)
    assert [r["loss/l2"] for r in packed if "loss/l2" in r] == pytest.approx(
        [r["loss/l2"] for r in padded if "loss/l2" in r], rel=1e-5
    )
    assert [r["loss"] for r in packed if "loss" in r] == pytest.approx(
        [r["loss"] for r in padded if "loss" in r], rel=1e-5
    )
    for (name, a), b in zip(padded_model.named_parameters(), packed_model.parameters(), strict=True):
        if a.requires_grad:
            torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-6, msg=name)
