"""The forgetting guard: keep what the base model knew while it learns a narrow task.

Regularizers (`guard:` in the config), each a named, separately logged loss term
(`tunewise.training.terms.LossTerm`):

- `replay` — general data mixed into the training rows (replay.py; `self` synthesizes it with the
  base model from a seed prompt set, synth.py),
- `ewc` — diagonal-Fisher elastic weight consolidation (ewc.py),
- `kl` — KL divergence to the base model's next-token distributions, LwF (kl.py, terms in
  regularizers.py),
- `l2sp` — squared distance to the starting weights (regularizers.py).

The forgetting monitor and WiSE-FT live beside them (monitor.py, wise_ft.py).
"""

from __future__ import annotations

from tunewise.guard.kl import base_logits, next_token_mask, token_kl

__all__ = ["base_logits", "next_token_mask", "token_kl"]
