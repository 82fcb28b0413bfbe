"""Replay: the configured share of general rows, honoured over a real training epoch."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch
from guard_helpers import fit_rows, method_model, rows

from tunewise.guard.replay import mix_replay, replay_count
from tunewise.training.collate import PadCollator


@pytest.mark.parametrize(
    ("task_rows", "ratio", "expected"), [(80, 0.2, 20), (100, 0.5, 100), (7, 0.0, 0), (30, 0.1, 3)]
)
def test_replay_count_makes_ratio_the_share_of_all_rows(task_rows: int, ratio: float, expected: int) -> None:
    assert replay_count(task_rows, ratio) == expected
    with pytest.raises(ValueError):
        replay_count(10, 1.0)


def test_a_small_pool_is_used_evenly_before_any_row_repeats() -> None:
    task, general = rows(40, prefix="task"), rows(6, prefix="general", seed=1)
    mixed, drawn = mix_replay(task, general, 0.5, seed=3)
    assert len(drawn) == 40 and mixed[:40] == task
    counts = {g.source: sum(d.source == g.source for d in drawn) for g in general}
    assert set(counts.values()) <= {6, 7}  # 40 draws over 6 rows: each 6 or 7 times
    assert mix_replay(task, general, 0.5, seed=3)[1] == drawn  # seeded
    with pytest.raises(ValueError, match="general rows"):
        mix_replay(task, [], 0.2)


class _Counting(PadCollator):
    """Counts general rows (token ids >= 450) in every batch the Trainer draws."""

    def __init__(self) -> None:
        super().__init__(pad_id=2)
        self.general = self.total = 0

    def __call__(self, batch: list[dict[str, Any]]) -> dict[str, torch.Tensor]:
        self.total += len(batch)
        self.general += sum(min(r["input_ids"]) >= 450 for r in batch)
        return super().__call__(batch)


def test_the_ratio_is_honoured_over_an_epoch(tmp_path: Path) -> None:
    task = rows(36, high=400, prefix="task")
    general = rows(5, low=450, high=500, prefix="general", seed=2)
    mixed, _drawn = mix_replay(task, general, 0.25, seed=0)
    counter = _Counting()
    fit_rows(
        tmp_path, method_model("lora", r=2), mixed, collator=counter, max_steps=None, epochs=1.0, batch_size=4, lr=1e-3
    )
    assert counter.total == len(mixed) == 48
    assert counter.general / counter.total == pytest.approx(0.25, abs=0.02)
