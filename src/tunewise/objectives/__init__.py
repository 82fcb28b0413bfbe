"""Training objectives: the loss a run minimises, next to the method that decides which weights train.

`objective:` in the config picks one (see docs/training.md#objectives):

| objective | trains on | loss |
|---|---|---|
| `sft` (default) | the rows the task rendered | the task's own: cross-entropy on the trained tokens, or on the class id |

Each objective is one module (`sft.py`) holding one object that satisfies the `Objective` protocol
(`base.py`); `OBJECTIVES` below lists them. A new objective (DPO, KTO, ORPO, SimPO, reward models:
issue 19) is one new module plus one line in that table.
"""

from __future__ import annotations

from tunewise.objectives.base import Objective
from tunewise.objectives.sft import OBJECTIVE as SFT

__all__ = ["OBJECTIVES", "Objective"]

OBJECTIVES: dict[str, Objective] = {objective.name: objective for objective in (SFT,)}
"""objective -> its code (a test keeps this table, `tunewise.config.Objective` and docs/training.md in step)."""
