"""Training callbacks: the readable progress line."""

from __future__ import annotations

from tunewise.training.callbacks import progress_line


def test_progress_line_shows_the_known_keys_in_order_and_leaves_the_rest() -> None:
    logs = {"loss": 1.23456, "grad_norm": 0.51234, "learning_rate": 0.000487, "epoch": 0.5, "total_flos": 9e12}
    assert progress_line(25, 114, logs, 212.4) == "step 25/114  loss 1.2346  lr 4.87e-04  grad norm 0.512  212 tokens/s"
    assert progress_line(50, 114, {"eval_loss": 0.9, "eval_runtime": 3.1}, None) == "step 50/114  eval loss 0.9000"
