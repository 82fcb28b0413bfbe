"""Replay (rehearsal): general rows mixed into the training rows at a fixed share.

With `ratio` r and n task rows, n·r/(1−r) general rows are added, so that r of the rows trained
on are general. When the general pool is smaller than that, every pool row is used before any is
used again (each pass over the pool in a fresh seeded order). The Trainer then shuffles task and
general rows together, so every epoch sees the same share.
"""

from __future__ import annotations

import random
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Sequence

    from tunewise.data import Rendered

__all__ = ["mix_replay", "replay_count"]


def replay_count(task_rows: int, ratio: float) -> int:
    """General rows to add to `task_rows` task rows so that `ratio` of all rows are general."""
    if not 0.0 <= ratio < 1.0:
        raise ValueError(f"replay ratio must be in [0, 1), got {ratio}")
    return round(task_rows * ratio / (1.0 - ratio))


def mix_replay(
    task: Sequence[Rendered], general: Sequence[Rendered], ratio: float, seed: int = 0
) -> tuple[list[Rendered], list[Rendered]]:
    """The training rows with general rows mixed in.

    Returns:
        `(all rows, the general rows drawn)`: the task rows in order, then the drawn general rows.
    """
    count = replay_count(len(task), ratio)
    if count and not general:
        raise ValueError("replay needs general rows to draw from; none were given")
    rng = random.Random(seed)
    drawn: list[Rendered] = []
    while len(drawn) < count:
        order = list(range(len(general)))
        rng.shuffle(order)
        drawn.extend(general[i] for i in order[: count - len(drawn)])
    return [*task, *drawn], drawn
